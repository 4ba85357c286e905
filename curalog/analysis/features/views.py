"""Which channels a view shows, what a view is (:class:`ViewSpec`), and the data a view plots
(clusters' spikes plus a background sample)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from curalog.analysis.features.dims import DEFAULT_MAX_BACKGROUND, Dim, ViewUnavailableError
from curalog.analysis.features.source import FeatureSource, _Sparse


# ---------------------------------------------------------------------- channels
def cluster_channels(source: FeatureSource, spikes: np.ndarray) -> np.ndarray:
    """phy's best channels of a cluster: those of its dominant template, best first.

    Falls back to the dominant template's ``pc_feature_ind`` row when ``templates.npy`` is
    absent. Returns channel rows (int64); empty when nothing is known.
    """
    ids, counts = source.template_counts(spikes)
    if ids.shape[0] == 0:
        return np.zeros(0, np.int64)
    dominant = int(ids[int(np.argmax(counts))])  # argmax keeps the smaller id on ties
    info = source.geometry.get(dominant) if source.geometry.available else None
    if info is not None:
        return np.asarray(info.channels, dtype=np.int64)
    got = source._load("pc")
    if isinstance(got, _Sparse) and dominant < got.ind.shape[0]:
        row = got.ind[dominant]
        return row[row >= 0].astype(np.int64)
    return np.zeros(0, np.int64)


def feature_channels(source: FeatureSource, clusters: Sequence[np.ndarray]) -> np.ndarray:
    """Channels of the feature view for the selected clusters (phy's rule).

    The first cluster's best channels that every other cluster's best channels contain,
    then the first cluster's remaining channels, each group in the first cluster's order.
    """
    if not clusters:
        return np.zeros(0, np.int64)
    first = [int(c) for c in cluster_channels(source, clusters[0])]
    others = [set(int(c) for c in cluster_channels(source, s)) for s in clusters[1:]]
    common = [c for c in first if all(c in o for o in others)]
    rest = [c for c in first if c not in common]
    return np.array(common + rest, dtype=np.int64)


def default_feature_dims(channels: Sequence[int], n_pcs: int) -> tuple[Dim, Dim]:
    """phy's grid cell ``0A,1A``: x = first channel PC 1, y = second channel PC 1.

    With a single channel, y is its second component.
    """
    if len(channels) == 0:
        raise ViewUnavailableError("no channel to show (the clusters' templates have no channels)")
    c0 = int(channels[0])
    if len(channels) > 1:
        return Dim.pc(c0, 0), Dim.pc(int(channels[1]), 0)
    return Dim.pc(c0, 0), Dim.pc(c0, 1 if n_pcs > 1 else 0)


def phy_feature_grid(channels: Sequence[int]) -> list[list[tuple[Dim, Dim]]]:
    """phy's default 4 x 4 FeatureView grid as ``grid[row][col] = (x, y)``.

    Dimensions ``0A, 1A, 0B, 1B`` (channel 0/1 of ``channels``, PC A/B); row ``r`` has y =
    the r-th of them, column ``c`` has x = the c-th, except the diagonal where x is time.
    """
    if len(channels) == 0:
        raise ViewUnavailableError("no channel to show")
    c0 = int(channels[0])
    c1 = int(channels[1]) if len(channels) > 1 else c0
    dims = [Dim.pc(c0, 0), Dim.pc(c1, 0), Dim.pc(c0, 1), Dim.pc(c1, 1)]
    return [[(Dim.time() if r == c else dims[c], dims[r]) for c in range(4)] for r in range(4)]


def step_dim(
    dim: Dim, channels: Sequence[int], n_pcs: int, *, channel_step: int = 0, pc_step: int = 0
) -> Dim:
    """Move a ``"pc"`` axis by ``channel_step`` through ``channels`` and by ``pc_step``
    through the components, wrapping around. Other kinds are returned unchanged."""
    if dim.kind != "pc" or not len(channels):
        return dim
    chans = [int(c) for c in channels]
    i = chans.index(dim.channel) if dim.channel in chans else 0
    ch = (
        chans[(i + channel_step) % len(chans)]
        if channel_step
        else (dim.channel if dim.channel in chans else chans[0])
    )
    comp = (dim.component + pc_step) % max(1, n_pcs)
    return Dim.pc(ch, comp)


# ---------------------------------------------------------------------- views
@dataclass(frozen=True, eq=False)
class ViewSpec:
    """What a spike view shows: clusters (all their spikes) on two axes.

    Attributes
    ----------
    kind : {"feature", "template_feature", "amplitude"}
        Which view built it (provenance and background policy).
    cluster_ids : tuple of int
        The selected clusters, in display (colour) order.
    spikes : tuple of ndarray
        Every spike of each cluster when the spec was built (sorted spike ids). A split
        applies to these; rebuild the spec after any action.
    x, y : Dim
    source : FeatureSource
    channels : tuple of int
        Channels to step through (feature view), best first.
    """

    kind: str
    cluster_ids: tuple[int, ...]
    spikes: tuple[np.ndarray, ...]
    x: Dim
    y: Dim
    source: FeatureSource = field(repr=False)
    channels: tuple[int, ...] = ()

    def with_dims(self, x: Dim | None = None, y: Dim | None = None) -> ViewSpec:
        """The same clusters on other axes."""
        return replace(self, x=x or self.x, y=y or self.y)

    def step(self, axis: Literal["x", "y"], *, channel_step: int = 0, pc_step: int = 0) -> ViewSpec:
        """Step one axis through :attr:`channels` / components (see :func:`step_dim`)."""
        d = getattr(self, axis)
        nd = step_dim(
            d, self.channels, self.source.n_pcs, channel_step=channel_step, pc_step=pc_step
        )
        return self.with_dims(**{axis: nd})

    @property
    def n_spikes(self) -> int:
        return int(sum(s.shape[0] for s in self.spikes))

    def labels(self) -> tuple[str, str]:
        """Axis labels ``(x, y)``."""
        cmap = self.source.channel_map
        return self.x.label(cmap), self.y.label(cmap)

    def to_dict(self) -> dict[str, Any]:
        """Provenance of the view (msgpack-safe, no spike arrays)."""
        return {
            "view": self.kind,
            "clusters": [int(c) for c in self.cluster_ids],
            "n_spikes": [int(s.shape[0]) for s in self.spikes],
            "x": self.x.to_dict(),
            "y": self.y.to_dict(),
        }


def _normalize_clusters(
    clusters: Mapping[int, np.ndarray] | Iterable[tuple[int, np.ndarray]],
) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    items = list(clusters.items()) if isinstance(clusters, Mapping) else list(clusters)
    if not items:
        raise ViewUnavailableError("select at least one cluster")
    ids = tuple(int(c) for c, _ in items)
    if len(set(ids)) != len(ids):
        raise ValueError("a cluster is selected twice")
    spikes = tuple(np.asarray(s) for _, s in items)
    return ids, spikes


def feature_view(
    source: FeatureSource,
    clusters: Mapping[int, np.ndarray] | Iterable[tuple[int, np.ndarray]],
    *,
    x: Dim | None = None,
    y: Dim | None = None,
) -> ViewSpec:
    """The feature view of the selected clusters (phy's FeatureView, one pane).

    Parameters
    ----------
    source : FeatureSource
    clusters : mapping or iterable of (cluster id, sorted spike ids)
        In selection order (the first cluster chooses the channels).
    x, y : Dim, optional
        Axes; default :func:`default_feature_dims` on :func:`feature_channels`.

    Raises
    ------
    ViewUnavailableError
        No ``pc_features.npy`` (or it is malformed), or no channel is known.
    """
    reason = source.unavailable("pc")
    if reason:
        raise ViewUnavailableError(reason)
    ids, spikes = _normalize_clusters(clusters)
    channels = feature_channels(source, spikes)
    dx, dy = default_feature_dims(channels, source.n_pcs)
    return ViewSpec(
        "feature", ids, spikes, x or dx, y or dy, source, tuple(int(c) for c in channels)
    )


def template_feature_view(
    source: FeatureSource, clusters: Mapping[int, np.ndarray] | Iterable[tuple[int, np.ndarray]]
) -> ViewSpec:
    """phy's TemplateFeatureView for a pair of clusters.

    x = projection on the first cluster's templates, y = on the second's, each weighted by
    that cluster's template counts (:meth:`Dim.template`); both clusters' spikes are shown.

    Raises
    ------
    ViewUnavailableError
        No ``template_features.npy``, or not exactly two clusters.
    """
    reason = source.unavailable("template")
    if reason:
        raise ViewUnavailableError(reason)
    ids, spikes = _normalize_clusters(clusters)
    if len(ids) != 2:
        raise ViewUnavailableError(f"the template-feature view needs two clusters (got {len(ids)})")
    dims = []
    for cid, s in zip(ids, spikes, strict=True):
        t, c = source.template_counts(s)
        dims.append(Dim.template(cid, t, c))
    return ViewSpec("template_feature", ids, spikes, dims[0], dims[1], source)


def amplitude_view(
    source: FeatureSource,
    clusters: Mapping[int, np.ndarray] | Iterable[tuple[int, np.ndarray]],
    *,
    y: Dim | None = None,
) -> ViewSpec:
    """Amplitude over time: x = time (s), y = ``amplitudes.npy`` (or another axis, e.g.
    ``Dim.pc(best channel, 0)`` for phy's "feature" amplitude).

    Raises
    ------
    ViewUnavailableError
        No ``amplitudes.npy`` (when ``y`` is the default).
    """
    ydim = y or Dim.amplitude()
    reason = source.unavailable(ydim.kind)
    if reason:
        raise ViewUnavailableError(reason)
    ids, spikes = _normalize_clusters(clusters)
    return ViewSpec("amplitude", ids, spikes, Dim.time(), ydim, source)


def view_from_provenance(
    source: FeatureSource, meta: Mapping[str, Any], spikes_of: Any
) -> ViewSpec:
    """Rebuild a :class:`ViewSpec` from :meth:`ViewSpec.to_dict` output.

    ``spikes_of(cluster_id)`` gives the clusters' spikes (e.g. ``Curation.spikes`` at the
    log position just before the split).
    """
    ids = [int(c) for c in meta["clusters"]]
    spikes = tuple(np.asarray(spikes_of(c)) for c in ids)
    return ViewSpec(
        str(meta["view"]),
        tuple(ids),
        spikes,
        Dim.from_dict(meta["x"]),
        Dim.from_dict(meta["y"]),
        source,
    )


# ---------------------------------------------------------------------- view data
@dataclass
class Layer:
    """Points of one cluster (or of the background) with finite coordinates.

    Attributes
    ----------
    cluster_id : int or None
        None for the background.
    spike_ids : ndarray of int
        The spikes plotted, ascending.
    x, y : ndarray of float64
    """

    cluster_id: int | None
    spike_ids: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.spike_ids.shape[0])


@dataclass
class ViewData:
    """Everything a view draws.

    Attributes
    ----------
    spec : ViewSpec
    layers : list of Layer
        One per selected cluster, in spec order, with **every** spike that has coordinates
        (never subsampled).
    background : Layer or None
        Display-only subsample of the other clusters' spikes.
    n_without : dict of int to int
        Spikes per cluster with no coordinates (not plotted; see :func:`spikes_in_polygon`).
    x_range, y_range : tuple of float
        Bounds of the foreground points with a 3 % margin (never degenerate).
    note : str or None
        A one-line remark for the view (e.g. how many spikes have no features).
    """

    spec: ViewSpec
    layers: list[Layer]
    background: Layer | None
    n_without: dict[int, int]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    note: str | None = None


def _padded_range(arrays: Sequence[np.ndarray], margin: float = 0.03) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for a in arrays:
        if a.shape[0]:
            lo = min(lo, float(a.min()))
            hi = max(hi, float(a.max()))
    if not math.isfinite(lo):
        return (-1.0, 1.0)
    if hi <= lo:
        half = max(abs(lo) * 0.05, 0.5)
        return (lo - half, hi + half)
    pad = (hi - lo) * margin
    return (lo - pad, hi + pad)


def coordinates(spec: ViewSpec, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of any spikes on the spec's axes (float64; NaN = no coordinates)."""
    x, y = spec.source.values(spikes, [spec.x, spec.y])
    return x, y


def background_spikes(
    source: FeatureSource,
    exclude: Sequence[np.ndarray],
    max_spikes: int,
    *,
    need: Sequence[str] = (),
) -> np.ndarray:
    """A deterministic, bounded subsample of the spikes not in ``exclude`` (display only).

    Parameters
    ----------
    source : FeatureSource
    exclude : sequence of ndarray
        Sorted spike ids to leave out (the selected clusters).
    max_spikes : int
        At most this many spikes are returned.
    need : sequence of {"pc", "tf"}
        Only spikes that have a row in these feature files (subset folders).

    Returns
    -------
    ndarray of int64
        Ascending spike ids: every k-th eligible spike, ``k`` chosen so that about
        ``max_spikes`` remain after the exclusion, then truncated evenly to ``max_spikes``.
    """
    if max_spikes <= 0:
        return np.zeros(0, np.int64)
    pool: np.ndarray | None = None
    for which in need:
        ids = source._sparse(which).spike_ids
        if ids is not None:
            pool = ids if pool is None else np.intersect1d(pool, ids, assume_unique=True)
    n_pool = source.n_spikes if pool is None else int(pool.shape[0])
    n_excl = sum(int(e.shape[0]) for e in exclude)
    eligible = max(1, n_pool - n_excl)
    step = max(1, eligible // max_spikes)
    cand = np.arange(0, n_pool, step, dtype=np.int64)
    if pool is not None:
        cand = pool[cand]
    keep = np.ones(cand.shape[0], dtype=bool)
    for e in exclude:
        e = np.asarray(e)
        if e.shape[0] == 0:
            continue
        pos = np.searchsorted(e, cand)
        pos[pos >= e.shape[0]] = 0
        keep &= e[pos] != cand
    cand = cand[keep]
    if cand.shape[0] > max_spikes:
        cand = cand[np.linspace(0, cand.shape[0] - 1, max_spikes).astype(np.int64)]
    return cand


def compute_view(
    spec: ViewSpec, *, background: bool = True, max_background: int = DEFAULT_MAX_BACKGROUND
) -> ViewData:
    """Coordinates of every spike of the spec's clusters, and a background subsample.

    Parameters
    ----------
    spec : ViewSpec
    background : bool
        Add the background layer (other clusters, grey). The template-feature view has none
        in phy; pass False there.
    max_background : int
        Bound on the background spikes (display only).

    Returns
    -------
    ViewData
    """
    layers = []
    n_without: dict[int, int] = {}
    for cid, spikes in zip(spec.cluster_ids, spec.spikes, strict=True):
        x, y = coordinates(spec, spikes)
        ok = np.isfinite(x) & np.isfinite(y)
        n_bad = int(ok.shape[0] - np.count_nonzero(ok))
        n_without[cid] = n_bad
        if n_bad:
            layers.append(Layer(cid, np.asarray(spikes)[ok], x[ok], y[ok]))
        else:
            layers.append(Layer(cid, np.asarray(spikes), x, y))
    bg = None
    if background and max_background > 0:
        need = spec.source.has_coordinates([spec.x, spec.y])
        bs = background_spikes(spec.source, spec.spikes, max_background, need=need)
        bx, by = coordinates(spec, bs)
        ok = np.isfinite(bx) & np.isfinite(by)
        bg = Layer(None, bs[ok], bx[ok], by[ok])
    note = None
    missing = {c: n for c, n in n_without.items() if n}
    if missing:
        parts = ", ".join(f"{n:,} of cluster {c}" for c, n in missing.items())
        note = f"{parts} without features (file covers a subset of spikes): not shown"
    return ViewData(
        spec,
        layers,
        bg,
        n_without,
        _padded_range([ly.x for ly in layers]),
        _padded_range([ly.y for ly in layers]),
        note,
    )
