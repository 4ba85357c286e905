"""The spike-feature source of a dataset: sparse PC / template-feature files read lazily and
gathered per spike (numba), with the template geometry for amplitudes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from curalog.analysis.features.dims import Dim, ViewUnavailableError
from curalog.analysis.stats.metrics import TemplateGeometry
from curalog.errors import DatasetError


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
