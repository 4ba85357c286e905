"""Per-spike coordinates for the spike views, and exact polygon selection.

This module is the pure, UI-independent layer behind the terminal's spike views (feature,
template-feature and amplitude views, see ``docs/VIEWS.md``). It never imports Textual.

What a view plots
-----------------
A view is a :class:`ViewSpec`: a set of clusters (with **all** their spikes) and two axes,
each a :class:`Dim`:

``Dim.pc(channel, pc)``
    The spike's principal-component feature ``pc`` (0 = first PC) on channel row ``channel``,
    read from Kilosort's sparse ``pc_features.npy`` ``(n_rows, n_pcs, n_loc)``: the row of
    the spike (see *subsets* below), the column ``l`` where ``pc_feature_ind[template, l] ==
    channel`` for the spike's **original template** (``spike_templates``, never the cluster,
    as phylib). When that template has no feature on the channel the value is ``0.0`` (phylib
    does the same: a sparse feature absent from the file is zero).
``Dim.template(cluster, template_ids, counts)``
    phy's template-feature projection: with ``tf`` the spike's row of
    ``template_features.npy`` and ``template_feature_ind[t]`` the templates those columns
    refer to, the value is ``sum_k tf[k] * w[ind[t, k]] / sum(w)``, where ``w`` are the
    template counts of the reference cluster (how many of its spikes came from each
    template). This is phy's ``np.average`` of the dense per-template projections weighted
    by the template counts; templates absent from the spike's row count as zero.
``Dim.time()``
    Spike time in seconds (``spike_times / sample_rate``).
``Dim.amplitude()``
    ``amplitudes.npy`` (Kilosort's per-spike template scaling).

Channel and PC choice (phy's FeatureView)
-----------------------------------------
A cluster's channels are the best channels of its **dominant template** (the template most of
its spikes came from; ties to the smaller id), computed as phy's Template GUI does
(:class:`curalog.analysis.stats.metrics.TemplateGeometry`: unwhitened peak-to-peak amplitude, best
channel first, 12 nearest channels on the same shank for dense templates). Without
``templates.npy`` the dominant template's ``pc_feature_ind`` row is used instead. For several
clusters (:func:`feature_channels`) the list starts with the first cluster's channels that
every selected cluster has too, followed by the first cluster's other channels (phy keeps the
same two groups; curalog keeps the first cluster's order within each). The default axes are
phy's grid cell ``0A,1A``: x = best channel PC 1, y = second channel PC 1
(:func:`default_feature_dims`); :func:`phy_feature_grid` gives phy's full 4 x 4 grid and
:func:`step_dim` steps an axis through channels and components.

Subsets and missing files
-------------------------
``pc_feature_spike_ids.npy`` (resp. ``template_feature_spike_ids.npy``) lists which spike each
row of ``pc_features.npy`` (``template_features.npy``) belongs to; without it, row ``i`` is
spike ``i`` and the file must cover every spike. A spike with no row has **no feature**: its
coordinate is NaN, it is not plotted, and :func:`spikes_in_polygon` refuses to split a
cluster that has such spikes unless told what to do with them (``missing="outside"``: they
stay in the remainder). A folder without ``pc_features.npy`` (``template_features.npy``,
``amplitudes.npy``) has no feature (template-feature, amplitude) view:
:meth:`FeatureSource.unavailable` says why, and building the view raises
:class:`ViewUnavailableError` with that one-line message.

Polygon selection
-----------------
:func:`points_in_polygon` is the even-odd (crossing-number) rule in float64 with **closed**
boundary semantics: a point exactly on an edge or a vertex is inside. The test on the boundary
and the crossing decisions use the sign of one cross product, so they are exact whenever
that product is exactly representable (e.g. integer coordinates below 2**24 in magnitude,
or multiples of a common power of two such as the braille grid's dot centres); otherwise a
point within rounding error (~1e-16 relative) of an edge may land on either side, always the
same way for the same inputs. The polygon is closed implicitly (last vertex to first);
repeated vertices and self-intersections are allowed (even-odd: a region covered twice is
outside). NaN points are never inside.

Background
----------
:func:`background_spikes` is for display only: a deterministic, bounded, evenly strided
subsample of the spikes of all other clusters (restricted to spikes that have features when
the axes need them). Selections never use it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numba
import numpy as np

from curalog.analysis.stats.metrics import TemplateGeometry
from curalog.errors import CuralogError, DatasetError

__all__ = [
    "Dim",
    "FeatureSource",
    "Layer",
    "MissingFeaturesError",
    "PolygonError",
    "ViewData",
    "ViewSpec",
    "ViewUnavailableError",
    "amplitude_view",
    "background_spikes",
    "cluster_channels",
    "compute_view",
    "coordinates",
    "default_feature_dims",
    "feature_channels",
    "feature_view",
    "phy_feature_grid",
    "points_in_polygon",
    "split_preview",
    "split_provenance",
    "spikes_in_polygon",
    "step_dim",
    "template_feature_view",
    "view_from_provenance",
]

#: Default number of background spikes shown by :func:`compute_view` (display only).
DEFAULT_MAX_BACKGROUND = 20_000

#: What to do with spikes that have no coordinates when selecting by polygon.
MissingPolicy = Literal["refuse", "outside"]

_PC_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# ---------------------------------------------------------------------- errors
class ViewUnavailableError(CuralogError):
    """A view cannot be shown: the folder lacks its files or the selection does not fit.

    Attributes
    ----------
    reason : str
        The one-line explanation (also the message), for the view to display.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MissingFeaturesError(CuralogError):
    """A polygon split was refused because some of the clusters' spikes have no features.

    Attributes
    ----------
    counts : dict of int to int
        Number of spikes without coordinates per cluster.
    """

    def __init__(self, message: str, counts: dict[int, int]):
        super().__init__(message)
        self.counts = counts


class PolygonError(CuralogError):
    """The polygon is not usable (fewer than 3 vertices, non-finite coordinates, bad shape)."""


# ---------------------------------------------------------------------- axes
@dataclass(frozen=True)
class Dim:
    """One axis of a spike view (see the module docstring for each kind).

    Use the constructors :meth:`pc`, :meth:`template`, :meth:`time` and :meth:`amplitude`.

    Attributes
    ----------
    kind : {"pc", "template", "time", "amplitude"}
    channel : int
        Channel row (index into ``channel_map``) for ``"pc"``, else -1.
    component : int
        Principal component (0 = first) for ``"pc"``, else 0.
    cluster : int
        Reference cluster of a ``"template"`` axis, else -1 (informative only).
    templates, weights : tuple of int
        Template ids and their counts in the reference cluster (``"template"`` only). They
        make the axis self-contained: evaluating it does not need the cluster state.
    """

    kind: Literal["pc", "template", "time", "amplitude"]
    channel: int = -1
    component: int = 0
    cluster: int = -1
    templates: tuple[int, ...] = ()
    weights: tuple[int, ...] = ()

    # -- constructors
    @classmethod
    def pc(cls, channel: int, component: int = 0) -> Dim:
        """PC feature ``component`` (0-based) on channel row ``channel``."""
        return cls("pc", channel=int(channel), component=int(component))

    @classmethod
    def template(cls, cluster: int, template_ids: Iterable[int], counts: Iterable[int]) -> Dim:
        """Projection on the templates of ``cluster`` weighted by its template counts."""
        ids = [int(t) for t in template_ids]
        cnt = [int(c) for c in counts]
        if len(ids) != len(cnt):
            raise ValueError("template_ids and counts differ in length")
        keep = [(t, c) for t, c in sorted(zip(ids, cnt, strict=True)) if c > 0]
        return cls(
            "template",
            cluster=int(cluster),
            templates=tuple(t for t, _ in keep),
            weights=tuple(c for _, c in keep),
        )

    @classmethod
    def time(cls) -> Dim:
        """Spike time in seconds."""
        return cls("time")

    @classmethod
    def amplitude(cls) -> Dim:
        """``amplitudes.npy``."""
        return cls("amplitude")

    # -- description
    def label(self, channel_map: np.ndarray | None = None) -> str:
        """A short axis label, e.g. ``"ch 12 PC1"``, ``"time (s)"``, ``"on 7's templates"``."""
        if self.kind == "pc":
            ch = self.channel
            if channel_map is not None and 0 <= ch < len(channel_map):
                ch = int(channel_map[ch])
            return f"ch {ch} PC{self.component + 1}"
        if self.kind == "template":
            return f"proj. on {self.cluster}'s templates"
        if self.kind == "time":
            return "time (s)"
        return "amplitude"

    def to_dict(self) -> dict[str, Any]:
        """A msgpack/JSON-safe description (the inverse of :meth:`from_dict`)."""
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "pc":
            d.update(channel=self.channel, pc=self.component)
        elif self.kind == "template":
            d.update(
                cluster=self.cluster, templates=list(self.templates), weights=list(self.weights)
            )
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Dim:
        kind = d.get("kind")
        if kind == "pc":
            return cls.pc(int(d["channel"]), int(d.get("pc", 0)))
        if kind == "template":
            return cls.template(int(d.get("cluster", -1)), d["templates"], d["weights"])
        if kind == "time":
            return cls.time()
        if kind == "amplitude":
            return cls.amplitude()
        raise ValueError(f"unknown axis kind {kind!r}")


# ---------------------------------------------------------------------- sparse feature files
@dataclass
class _Sparse:
    """One sparse per-spike feature file with its channel/template index and row subset."""

    data: np.ndarray  # (n_rows, n_pcs, n_loc) or (n_rows, n_loc)
    ind: np.ndarray  # (n_templates, n_loc) int64, -1 = none
    spike_ids: np.ndarray | None  # sorted spike id of each row (None: row i = spike i)
    row_order: np.ndarray | None  # row of spike_ids[k] (None: identity)
    _loc_cache: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def subset(self) -> bool:
        return self.spike_ids is not None

    def rows(self, spikes: np.ndarray) -> np.ndarray:
        """Row of each spike, -1 where the spike has no row. Spikes may be any order."""
        spikes = np.asarray(spikes)
        if self.spike_ids is None:
            return spikes
        ids = self.spike_ids
        if ids.shape[0] == 0:
            return np.full(spikes.shape[0], -1, dtype=np.int64)
        pos = np.searchsorted(ids, spikes)
        pos[pos >= ids.shape[0]] = 0
        hit = ids[pos] == spikes
        rows = pos if self.row_order is None else self.row_order[pos]
        return np.where(hit, rows, -1).astype(np.int64, copy=False)

    def loc(self, channel: int) -> np.ndarray:
        """Column of ``channel`` in each template's row of ``ind`` (-1 when absent)."""
        got = self._loc_cache.get(channel)
        if got is None:
            hit = self.ind == channel
            got = np.where(hit.any(axis=1), hit.argmax(axis=1), -1).astype(np.int64)
            self._loc_cache[channel] = got
        return got


def _index_table(
    arr: np.ndarray, name: str, n_loc: int, n_templates: int, limit: int
) -> np.ndarray:
    """``pc_feature_ind`` / ``template_feature_ind`` as int64 with -1 for padding."""
    if arr.ndim != 2 or arr.shape[1] != n_loc:
        raise DatasetError(f"{name}: expected (n_templates, {n_loc}), got shape {arr.shape}")
    ind = np.asarray(arr)
    if ind.dtype.kind == "f":
        ind = np.where(np.isfinite(ind), ind, -1)
    elif ind.dtype.kind not in "iub":
        raise DatasetError(f"{name}: expected integer ids, got dtype {ind.dtype}")
    ind = ind.astype(np.int64)
    if ind.shape[0] < n_templates:
        raise DatasetError(f"{name}: {ind.shape[0]} rows but templates go up to {n_templates - 1}")
    if ind.size and ind.max() >= limit:
        raise DatasetError(f"{name}: index {int(ind.max())} out of range (< {limit} expected)")
    ind[ind < 0] = -1  # padding (SpikeInterface writes -1)
    return ind


def _row_ids(
    arr: np.ndarray | None, name: str, n_rows: int, n_spikes: int, data_name: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validated ``*_spike_ids.npy``: (sorted ids, row order) or (None, None) for all spikes."""
    if arr is None:
        if n_rows != n_spikes:
            raise DatasetError(f"{data_name}: {n_rows} rows but {n_spikes} spikes and no {name}")
        return None, None
    vec = np.asarray(arr).reshape(-1)
    if vec.shape[0] != n_rows:
        raise DatasetError(f"{name}: {vec.shape[0]} ids but {data_name} has {n_rows} rows")
    if vec.dtype.kind == "f":
        if not np.all(np.isfinite(vec)) or not np.all(vec == np.floor(vec)):
            raise DatasetError(f"{name}: ids must be whole numbers")
    elif vec.dtype.kind not in "iu":
        raise DatasetError(f"{name}: expected integer spike ids, got dtype {vec.dtype}")
    vec = vec.astype(np.int64)
    if vec.size and (vec.min() < 0 or vec.max() >= n_spikes):
        raise DatasetError(f"{name}: spike ids outside [0, {n_spikes})")
    if vec.size > 1 and np.all(vec[1:] > vec[:-1]):
        if vec.shape[0] == n_spikes:
            return None, None  # covers every spike, in order
        return vec, None
    order = np.argsort(vec, kind="stable")
    ids = vec[order]
    if ids.size > 1 and np.any(ids[1:] == ids[:-1]):
        raise DatasetError(f"{name}: duplicate spike ids")
    return ids, order.astype(np.int64)


# ---------------------------------------------------------------------- numba kernels
@numba.njit(cache=True, nogil=True)
def _pc_gather(data, rows, spike_templates, spikes, loc, comp, out):  # pragma: no cover - numba
    n_t = loc.shape[0]
    for i in range(spikes.shape[0]):
        r = rows[i]
        if r < 0:
            out[i] = np.nan
            continue
        t = spike_templates[spikes[i]]
        col = loc[t] if 0 <= t < n_t else -1
        out[i] = 0.0 if col < 0 else data[r, comp, col]


@numba.njit(cache=True, nogil=True)
def _pc_gather2(
    data, rows, spike_templates, spikes, loc_a, comp_a, loc_b, comp_b, out_a, out_b
):  # pragma: no cover
    # both axes from one read of each spike's row
    n_t = loc_a.shape[0]
    for i in range(spikes.shape[0]):
        r = rows[i]
        if r < 0:
            out_a[i] = np.nan
            out_b[i] = np.nan
            continue
        t = spike_templates[spikes[i]]
        ca = loc_a[t] if 0 <= t < n_t else -1
        cb = loc_b[t] if 0 <= t < n_t else -1
        out_a[i] = 0.0 if ca < 0 else data[r, comp_a, ca]
        out_b[i] = 0.0 if cb < 0 else data[r, comp_b, cb]


@numba.njit(cache=True, nogil=True)
def _tf_project(data, rows, spike_templates, spikes, ind, w, wsum, out):  # pragma: no cover
    n_t = ind.shape[0]
    n_w = w.shape[0]
    for i in range(spikes.shape[0]):
        r = rows[i]
        if r < 0:
            out[i] = np.nan
            continue
        t = spike_templates[spikes[i]]
        acc = 0.0
        if 0 <= t < n_t:
            for k in range(ind.shape[1]):
                j = ind[t, k]
                if 0 <= j < n_w:
                    acc += data[r, k] * w[j]
        out[i] = acc / wsum


@numba.njit(cache=True, nogil=True)
def _pip_one(px, py, vx, vy):  # pragma: no cover - numba
    n = vx.shape[0]
    inside = False
    j = n - 1
    for i in range(n):
        ax = vx[j]
        ay = vy[j]
        bx = vx[i]
        by = vy[i]
        cross = (bx - ax) * (py - ay) - (px - ax) * (by - ay)
        if cross == 0.0 and min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by):
            return True  # on the boundary (edge or vertex): closed polygon
        # An edge straddling the horizontal line through p (half-open in y) crosses the ray
        # to the right of p iff p is strictly left of the edge taken upwards.
        if ((ay > py) != (by > py)) and ((by > ay and cross > 0.0) or (by < ay and cross < 0.0)):
            inside = not inside
        j = i
    return inside


@numba.njit(cache=True, nogil=True, parallel=True)
def _pip_many(x, y, vx, vy, xmin, xmax, ymin, ymax, out):  # pragma: no cover - numba
    for i in numba.prange(x.shape[0]):
        px = x[i]
        py = y[i]
        if not (xmin <= px <= xmax and ymin <= py <= ymax):  # also rejects NaN
            out[i] = False
        else:
            out[i] = _pip_one(px, py, vx, vy)


def _as_polygon(polygon: Any) -> np.ndarray:
    try:
        poly = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        raise PolygonError("polygon must be a sequence of (x, y) vertices") from None
    if poly.ndim != 2 or poly.shape[1] != 2:
        raise PolygonError(f"polygon must have shape (n, 2), got {poly.shape}")
    if poly.shape[0] < 3:
        raise PolygonError(f"polygon needs at least 3 vertices, got {poly.shape[0]}")
    if not np.all(np.isfinite(poly)):
        raise PolygonError("polygon vertices must be finite numbers")
    return np.ascontiguousarray(poly)


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: Any) -> np.ndarray:
    """Which points lie inside a polygon (even-odd rule, boundary included).

    Parameters
    ----------
    x, y : ndarray
        Point coordinates (any real dtype, compared in float64). NaN is never inside.
    polygon : array_like, shape (n, 2)
        Vertices in order, ``n >= 3``; closed implicitly. See the module docstring for the
        exact boundary semantics.

    Returns
    -------
    ndarray of bool
        One flag per point.

    Raises
    ------
    PolygonError
        For fewer than 3 vertices, non-finite vertices or a bad shape.
    """
    poly = _as_polygon(polygon)
    xs = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    ys = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError("x and y differ in length")
    out = np.zeros(xs.shape[0], dtype=np.bool_)
    if xs.shape[0]:
        vx = np.ascontiguousarray(poly[:, 0])
        vy = np.ascontiguousarray(poly[:, 1])
        _pip_many(xs, ys, vx, vy, vx.min(), vx.max(), vy.min(), vy.max(), out)
    return out


# ---------------------------------------------------------------------- the source
class FeatureSource:
    """Per-spike coordinates of one dataset, with the feature files loaded lazily.

    Parameters
    ----------
    dataset : curalog.Dataset
        The folder (any object with ``path``, ``spike_times``, ``spike_templates``,
        ``sample_rate``, ``n_templates``, ``amplitudes``, ``optional_array(name)``,
        ``channel_map``, ``channel_positions``, ``channel_shanks``, ``templates``,
        ``template_channels``).
    geometry : TemplateGeometry, optional
        Best-channel cache to share with the statistics engine (``engine.ctx.geometry``).

    Notes
    -----
    Thread-safe for concurrent reads once the files are loaded (loading takes a lock).
    """

    def __init__(self, dataset: Any, geometry: TemplateGeometry | None = None):
        self.dataset = dataset
        self.spike_templates = np.asarray(dataset.spike_templates)
        self.n_spikes = int(self.spike_templates.shape[0])
        self.n_templates = int(dataset.n_templates)
        self.geometry = geometry if geometry is not None else TemplateGeometry(dataset)
        self._lock = threading.Lock()
        self._loaded: dict[str, _Sparse | str] = {}
        self._max_tpl: int | None = None

    # -- file loading
    def _path(self, name: str) -> str:
        return str(self.dataset.path / name) if hasattr(self.dataset, "path") else name

    def _load(self, which: str) -> _Sparse | str:
        with self._lock:
            got = self._loaded.get(which)
            if got is None:
                try:
                    got = self._load_pc() if which == "pc" else self._load_tf()
                except DatasetError as exc:
                    got = f"{exc}"
                self._loaded[which] = got
            return got

    def _load_pc(self) -> _Sparse | str:
        opt = self.dataset.optional_array
        data = opt("pc_features.npy")
        if data is None:
            return (
                f"no PC features: {self._path('pc_features.npy')} is missing "
                "(Kilosort 4 and SpikeInterface write it only on request)"
            )
        name = self._path("pc_features.npy")
        if data.ndim != 3 or data.dtype.kind != "f":
            raise DatasetError(
                f"{name}: expected float (n_spikes, n_pcs, n_channels), got {data.dtype} {data.shape}"
            )
        ind = opt("pc_feature_ind.npy")
        if ind is None:
            raise DatasetError(
                f"{self._path('pc_feature_ind.npy')}: missing (needed with pc_features.npy)"
            )
        n_ch = int(getattr(self.dataset, "n_channels", 0)) or (1 << 62)
        table = _index_table(
            ind, self._path("pc_feature_ind.npy"), data.shape[2], self._max_template() + 1, n_ch
        )
        ids, order = _row_ids(
            opt("pc_feature_spike_ids.npy"),
            self._path("pc_feature_spike_ids.npy"),
            data.shape[0],
            self.n_spikes,
            name,
        )
        return _Sparse(np.asarray(data), table, ids, order)

    def _load_tf(self) -> _Sparse | str:
        opt = self.dataset.optional_array
        data = opt("template_features.npy")
        if data is None:
            return f"no template features: {self._path('template_features.npy')} is missing"
        name = self._path("template_features.npy")
        if data.ndim == 1:
            data = data.reshape(-1, 1)
        if data.ndim != 2 or data.dtype.kind != "f":
            raise DatasetError(
                f"{name}: expected float (n_spikes, n_features), got {data.dtype} {data.shape}"
            )
        ind = opt("template_feature_ind.npy")
        if ind is None:
            raise DatasetError(
                f"{self._path('template_feature_ind.npy')}: missing (needed with template_features.npy)"
            )
        if ind.ndim == 1:
            ind = ind.reshape(-1, 1)
        table = _index_table(
            ind,
            self._path("template_feature_ind.npy"),
            data.shape[1],
            self._max_template() + 1,
            self.n_templates,
        )
        ids, order = _row_ids(
            opt("template_feature_spike_ids.npy"),
            self._path("template_feature_spike_ids.npy"),
            data.shape[0],
            self.n_spikes,
            name,
        )
        return _Sparse(np.asarray(data), table, ids, order)

    def _max_template(self) -> int:
        if self._max_tpl is None:
            self._max_tpl = int(self.spike_templates.max()) if self.n_spikes else -1
        return self._max_tpl

    def _sparse(self, which: str) -> _Sparse:
        got = self._load(which)
        if isinstance(got, str):
            raise ViewUnavailableError(got)
        return got

    # -- availability
    def unavailable(self, kind: str) -> str | None:
        """Why axes of ``kind`` ("pc", "template", "amplitude", "time") cannot be computed,
        or None when they can. The reason is one line naming the file."""
        if kind == "pc":
            got = self._load("pc")
            return got if isinstance(got, str) else None
        if kind == "template":
            got = self._load("tf")
            return got if isinstance(got, str) else None
        if kind == "amplitude":
            try:
                amps = self.dataset.amplitudes
            except DatasetError as exc:
                return str(exc)
            return (
                None
                if amps is not None
                else f"no amplitudes: {self._path('amplitudes.npy')} is missing"
            )
        if kind == "time":
            return None
        return f"unknown axis kind {kind!r}"

    def is_subset(self, kind: str) -> bool:
        """True when the ``kind`` ("pc" or "template") file covers only some spikes."""
        got = self._load("pc" if kind == "pc" else "tf")
        return isinstance(got, _Sparse) and got.subset

    @property
    def n_pcs(self) -> int:
        """Components per channel in ``pc_features.npy`` (0 when absent)."""
        got = self._load("pc")
        return 0 if isinstance(got, str) else int(got.data.shape[1])

    def feature_spike_ids(self, kind: str) -> np.ndarray | None:
        """Sorted ids of the spikes that have a row in the ``kind`` file (None = all)."""
        return self._sparse("pc" if kind == "pc" else "tf").spike_ids

    @property
    def channel_map(self) -> np.ndarray | None:
        try:
            return np.asarray(self.dataset.channel_map)
        except Exception:  # pragma: no cover - defensive: labels only
            return None

    # -- per-spike values
    def template_counts(self, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(template ids ascending, counts)`` of the spikes' original templates."""
        t = self.spike_templates[np.asarray(spikes)]
        if t.shape[0] == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        counts = np.bincount(t, minlength=self._max_template() + 1)
        ids = np.flatnonzero(counts)
        return ids.astype(np.int64), counts[ids].astype(np.int64)

    def values(self, spikes: np.ndarray, dims: Sequence[Dim]) -> list[np.ndarray]:
        """Coordinates (float64, NaN = no feature) of ``spikes`` on each of ``dims``.

        Parameters
        ----------
        spikes : ndarray of int
            Spike indices, any order.
        dims : sequence of Dim

        Raises
        ------
        ViewUnavailableError
            When a needed file is missing or malformed.
        """
        spikes = np.ascontiguousarray(spikes)
        if spikes.dtype.kind not in "iu":
            spikes = spikes.astype(np.int64)
        if len(dims) == 2 and dims[0].kind == dims[1].kind == "pc":
            return self._two_pcs(spikes, dims[0], dims[1])
        rows: dict[str, np.ndarray] = {}
        out = []
        for dim in dims:
            v = np.empty(spikes.shape[0], dtype=np.float64)
            if dim.kind == "time":
                v[:] = np.asarray(self.dataset.spike_times[spikes], dtype=np.float64)
                v /= float(self.dataset.sample_rate)
            elif dim.kind == "amplitude":
                reason = self.unavailable("amplitude")
                if reason:
                    raise ViewUnavailableError(reason)
                v[:] = np.asarray(self.dataset.amplitudes[spikes], dtype=np.float64)
            elif dim.kind == "pc":
                sp = self._sparse("pc")
                if not 0 <= dim.component < sp.data.shape[1]:
                    raise ViewUnavailableError(
                        f"PC {dim.component + 1} does not exist ({sp.data.shape[1]} per channel)"
                    )
                if "pc" not in rows:
                    rows["pc"] = sp.rows(spikes)
                _pc_gather(
                    sp.data,
                    rows["pc"],
                    self.spike_templates,
                    spikes,
                    sp.loc(dim.channel),
                    dim.component,
                    v,
                )
            elif dim.kind == "template":
                sp = self._sparse("tf")
                if "tf" not in rows:
                    rows["tf"] = sp.rows(spikes)
                w = np.zeros(max(self.n_templates, max(dim.templates, default=-1) + 1), np.float64)
                w[list(dim.templates)] = dim.weights
                wsum = float(w.sum())
                if wsum <= 0:
                    v[:] = np.nan
                else:
                    _tf_project(
                        sp.data, rows["tf"], self.spike_templates, spikes, sp.ind, w, wsum, v
                    )
            else:
                raise ViewUnavailableError(f"unknown axis kind {dim.kind!r}")
            out.append(v)
        return out

    def _two_pcs(self, spikes: np.ndarray, a: Dim, b: Dim) -> list[np.ndarray]:
        sp = self._sparse("pc")
        for d in (a, b):
            if not 0 <= d.component < sp.data.shape[1]:
                raise ViewUnavailableError(
                    f"PC {d.component + 1} does not exist ({sp.data.shape[1]} per channel)"
                )
        xa = np.empty(spikes.shape[0], dtype=np.float64)
        xb = np.empty(spikes.shape[0], dtype=np.float64)
        _pc_gather2(
            sp.data,
            sp.rows(spikes),
            self.spike_templates,
            spikes,
            sp.loc(a.channel),
            a.component,
            sp.loc(b.channel),
            b.component,
            xa,
            xb,
        )
        return [xa, xb]

    def has_coordinates(self, dims: Sequence[Dim]) -> tuple[str, ...]:
        """The sparse files ("pc", "tf") that ``dims`` read; their subsets bound the spikes
        that can have coordinates."""
        need = []
        if any(d.kind == "pc" for d in dims):
            need.append("pc")
        if any(d.kind == "template" for d in dims):
            need.append("tf")
        return tuple(need)


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


# ---------------------------------------------------------------------- selection
def spikes_in_polygon(
    view_spec: ViewSpec, polygon: Any, *, missing: MissingPolicy = "refuse"
) -> np.ndarray:
    """Exact ids of all the selected clusters' spikes inside a polygon drawn on the view.

    Every spike of ``view_spec.spikes`` is tested, never only the displayed ones: the
    coordinates are recomputed from the files for all of them.

    Parameters
    ----------
    view_spec : ViewSpec
    polygon : array_like, shape (n, 2)
        Vertices in **data coordinates** of the view's axes (see :func:`points_in_polygon`
        for the even-odd rule and the closed-boundary semantics).
    missing : {"refuse", "outside"}
        Spikes without coordinates (no row in a subset ``pc_features`` /
        ``template_features``, or a non-finite amplitude) cannot be placed. ``"refuse"``
        (default) raises :class:`MissingFeaturesError` when the clusters have any;
        ``"outside"`` leaves them out of the selection, i.e. in the remainder of the split.

    Returns
    -------
    ndarray of int64
        Sorted spike ids inside the polygon (possibly empty).

    Raises
    ------
    PolygonError
        Bad polygon.
    MissingFeaturesError
        ``missing="refuse"`` and some spikes have no coordinates.
    """
    poly = _as_polygon(polygon)
    if missing not in ("refuse", "outside"):
        raise ValueError("missing must be 'refuse' or 'outside'")
    parts = []
    bad: dict[int, int] = {}
    for cid, spikes in zip(view_spec.cluster_ids, view_spec.spikes, strict=True):
        x, y = coordinates(view_spec, spikes)
        n_bad = int(x.shape[0] - np.count_nonzero(np.isfinite(x) & np.isfinite(y)))
        if n_bad:
            bad[cid] = n_bad
        parts.append(np.asarray(spikes)[points_in_polygon(x, y, poly)].astype(np.int64))
    if bad and missing == "refuse":
        total = view_spec.n_spikes
        desc = ", ".join(f"cluster {c}: {n:,}" for c, n in bad.items())
        raise MissingFeaturesError(
            f"split refused: {sum(bad.values()):,} of {total:,} spikes have no coordinates on "
            f"these axes ({desc}; the feature file covers a subset of spikes); "
            "use missing='outside' to keep them in the remainder",
            bad,
        )
    if not parts:
        return np.zeros(0, np.int64)
    out = np.concatenate(parts)
    if len(parts) > 1 or (out.shape[0] > 1 and not np.all(out[1:] > out[:-1])):
        out.sort()
    return out


@dataclass
class SplitPreview:
    """Masks of the displayed points inside a polygon, for previewing a split.

    Attributes
    ----------
    inside : list of ndarray of bool
        One mask per layer of the :class:`ViewData` (all spikes with coordinates).
    n_inside, n_outside : dict of int to int
        Per cluster, spikes with coordinates inside / outside.
    n_without : dict of int to int
        Per cluster, spikes without coordinates (refused or kept in the remainder).
    """

    inside: list[np.ndarray]
    n_inside: dict[int, int]
    n_outside: dict[int, int]
    n_without: dict[int, int]


def split_preview(data: ViewData, polygon: Any) -> SplitPreview:
    """Which plotted points a polygon takes (exact for all spikes with coordinates; the
    view layers hold every such spike)."""
    poly = _as_polygon(polygon)
    masks, n_in, n_out = [], {}, {}
    for layer in data.layers:
        m = points_in_polygon(layer.x, layer.y, poly)
        masks.append(m)
        k = int(np.count_nonzero(m))
        n_in[int(layer.cluster_id)] = k  # type: ignore[arg-type]
        n_out[int(layer.cluster_id)] = len(layer) - k  # type: ignore[arg-type]
    return SplitPreview(masks, n_in, n_out, dict(data.n_without))


def split_provenance(
    view_spec: ViewSpec, polygon: Any, *, missing: MissingPolicy = "refuse"
) -> dict[str, Any]:
    """The ``meta`` to store with the split event: view, axes, polygon and policy."""
    poly = _as_polygon(polygon)
    d = view_spec.to_dict()
    d["polygon"] = [[float(a), float(b)] for a, b in poly]
    d["rule"] = "even-odd, boundary inside"
    d["missing"] = missing
    return {"polygon_split": d}
