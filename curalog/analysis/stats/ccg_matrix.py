"""The correlogram matrix of a few clusters (phy's CorrelogramView) and ISI histograms.

:class:`CorrelogramMatrix` gives, for up to a handful of clusters and any binning, the full
matrix of auto- (diagonal) and cross-correlograms with phy's conventions
(:mod:`curalog.analysis.stats.correlograms`: ``W = 2 h + 1`` bins, bin ``h`` the zero lag,
positive lags of ``[i, j]`` = cluster ``j`` after cluster ``i``, the displayed zero bin of a
CCG symmetrised as ``max(H_ij[0], H_ji[0])``).

It keeps the *directed halves* ``H_ab`` per binning and cluster pair, keyed by cluster id
(ids are never reused, so an entry never goes stale), and composes merged clusters from
their parents instead of reading spikes again. For ``M = X u Y`` (disjoint)::

    H_MM = H_XX + H_YY + H_XY + H_YX          (every pair of M counted once, any bin)
    H_MZ = H_XZ + H_YZ,   H_ZM = H_ZX + H_ZY  (Z disjoint from M)

so after a merge the matrix of the new cluster with the clusters already shown costs no
kernel call when the parents' halves are cached; :attr:`computed` / :attr:`composed` count
both paths (the tests check that a merge composes).

Rates: :func:`to_rate` turns counts into phy's display unit, the conditional firing rate of
the second cluster around a spike of the first (Hz): ``ccg[k] / (N_i * bin_s)``; its
baseline for independent trains is the second cluster's mean rate ``N_j / T``.

ISI: :func:`isi_histogram` bins the intervals between consecutive spikes of one cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curalog.analysis.stats.correlograms import (
    CorrelogramBins,
    acg_half,
    ccg_halves,
    gather_times,
    make_bins,
)

__all__ = [
    "BIN_STEPS_MS",
    "WINDOW_STEPS_MS",
    "CorrelogramMatrix",
    "MatrixResult",
    "isi_histogram",
    "matrix_for",
    "step_value",
    "to_rate",
]

#: The bin sizes and windows the keys step through (phy's defaults: 1 ms, 50 ms).
BIN_STEPS_MS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
WINDOW_STEPS_MS = (5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)


def step_value(steps: Sequence[float], value: float, direction: int) -> float:
    """The next value of ``steps`` above (``direction > 0``) or below ``value``, clamped."""
    if direction > 0:
        bigger = [s for s in steps if s > value * (1 + 1e-9)]
        return bigger[0] if bigger else steps[-1]
    smaller = [s for s in steps if s < value * (1 - 1e-9)]
    return smaller[-1] if smaller else steps[0]


@dataclass(frozen=True)
class MatrixResult:
    """A correlogram matrix.

    Attributes
    ----------
    cluster_ids : tuple of int
    counts : ndarray, shape (n, n, W), int64
        ``counts[i, i]`` the ACG of cluster i, ``counts[i, j]`` the CCG (positive lags: j
        after i; zero bin symmetrised as phy displays it).
    n_spikes : ndarray of int64
    bins : CorrelogramBins
    duration : float
        Seconds (the rate baseline's denominator).
    """

    cluster_ids: tuple[int, ...]
    counts: np.ndarray
    n_spikes: np.ndarray
    bins: CorrelogramBins
    duration: float

    @property
    def bin_ms(self) -> float:
        return self.bins.bin_samples * 1e3 / self.bins.sample_rate

    @property
    def window_ms(self) -> float:
        return 2 * self.bins.half * self.bin_ms

    def rate(self, i: int, j: int) -> np.ndarray:
        """``counts[i, j]`` as the rate of cluster j around a spike of cluster i (Hz)."""
        return to_rate(self.counts[i, j], int(self.n_spikes[i]), self.bin_ms)

    def baseline(self, j: int) -> float:
        """The rate the second cluster would show without any correlation: its mean rate."""
        return float(self.n_spikes[j]) / max(self.duration, 1e-12)


def to_rate(counts: np.ndarray, n_first: int, bin_ms: float) -> np.ndarray:
    """Counts per bin -> Hz: ``counts / (n_first * bin_s)`` (zeros when ``n_first`` is 0)."""
    c = np.asarray(counts, dtype=np.float64)
    if n_first <= 0:
        return np.zeros_like(c)
    return c / (n_first * bin_ms / 1e3)


def isi_histogram(
    spike_times: np.ndarray, sample_rate: float, *, bin_ms: float = 1.0, window_ms: float = 50.0
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the intervals between consecutive spikes (sorted ``spike_times``, samples).

    Returns ``(counts, edges_ms)`` with ``int(window / bin)`` bins ``[k bin, (k + 1) bin)``
    from 0; longer intervals are not counted. Equal times give a 0 ms interval (bin 0).
    """
    t = np.asarray(spike_times, dtype=np.int64)
    n_bins = max(1, int(round(window_ms / bin_ms)))
    edges = np.arange(n_bins + 1) * bin_ms
    if t.shape[0] < 2:
        return np.zeros(n_bins, dtype=np.int64), edges
    isi_ms = np.diff(t) * (1e3 / float(sample_rate))
    k = np.floor(isi_ms / bin_ms * (1 + 1e-12)).astype(np.int64)
    k = k[(k >= 0) & (k < n_bins)]
    return np.bincount(k, minlength=n_bins).astype(np.int64), edges


class CorrelogramMatrix:
    """Directed correlogram halves of clusters, per binning, composed on merges.

    Parameters
    ----------
    spike_times : ndarray
        All spike times in samples (sorted; may be a memory map).
    sample_rate : float
    spikes_of : callable
        ``spikes_of(cluster_id)`` -> the cluster's sorted spike indices.
    duration : float
        Seconds (for the rate baseline).
    """

    def __init__(
        self,
        spike_times: np.ndarray,
        sample_rate: float,
        spikes_of: Callable[[int], np.ndarray],
        duration: float,
    ):
        self.spike_times = spike_times
        self.sample_rate = float(sample_rate)
        self.spikes_of = spikes_of
        self.duration = float(duration)
        self._lock = threading.Lock()
        self._halves: dict[tuple[int, int, int, int], np.ndarray] = {}  # (B, h, a, b) -> H_ab
        self._parents: dict[int, tuple[int, ...]] = {}
        self._n: dict[int, int] = {}
        self.computed = 0  # kernel calls (one per ACG, one per CCG pair)
        self.composed = 0  # halves obtained from a merge's parents

    def bins(self, bin_ms: float = 1.0, window_ms: float = 50.0) -> CorrelogramBins:
        return make_bins(self.sample_rate, bin_ms, window_ms)

    def note_merge(self, parents: Sequence[int], new: int) -> None:
        """Record that ``new`` is exactly the union of ``parents`` (a merge)."""
        with self._lock:
            self._parents[int(new)] = tuple(int(p) for p in parents)

    def on_update(self, update: object) -> None:
        """Feed a :class:`curalog.Update`: a merge (not an undo) records the parents."""
        if getattr(update, "kind", None) != "merge" or getattr(update, "history", None) == "undo":
            return
        added = tuple(getattr(update, "added", ()))
        if len(added) == 1:
            self.note_merge(tuple(getattr(update, "deleted", ())), added[0])

    # ------------------------------------------------------------------ halves
    def _get(self, key: tuple[int, int, int, int]) -> np.ndarray | None:
        with self._lock:
            return self._halves.get(key)

    def _put(self, key: tuple[int, int, int, int], value: np.ndarray) -> None:
        with self._lock:
            self._halves[key] = value

    def _spikes(self, cid: int) -> np.ndarray:
        s = np.asarray(self.spikes_of(cid))
        with self._lock:
            self._n[cid] = int(s.shape[0])
        return s

    def _parents_of(self, cid: int) -> tuple[int, ...] | None:
        with self._lock:
            return self._parents.get(cid)

    def _from_parents(self, bins: CorrelogramBins, a: int, b: int) -> np.ndarray | None:
        """``H_ab`` composed from cached halves of a's or b's parents, else None."""
        B, h = bins.bin_samples, bins.half
        pa = self._parents_of(a)
        if a == b:
            if not pa:
                return None
            parts = [self._get((B, h, p, q)) for p in pa for q in pa]
            if any(x is None for x in parts):
                return None
            return np.sum(parts, axis=0)
        for side, parents in ((0, pa), (1, self._parents_of(b))):
            if not parents:
                continue
            keys = [(B, h, p, b) if side == 0 else (B, h, a, p) for p in parents]
            parts = [self._get(k) for k in keys]
            if all(x is not None for x in parts):
                return np.sum(parts, axis=0)
        return None

    def half(self, bins: CorrelogramBins, a: int, b: int) -> np.ndarray:
        """The directed half ``H_ab`` (``h + 1`` counts); ``a == b`` gives ``H_aa``."""
        key = (bins.bin_samples, bins.half, int(a), int(b))
        got = self._get(key)
        if got is not None:
            return got
        got = self._from_parents(bins, int(a), int(b))
        if got is not None:
            self.composed += 1
            self._put(key, got)
            return got
        if a == b:
            s = self._spikes(a)
            got = acg_half(gather_times(self.spike_times, s), bins)
            self.computed += 1
            self._put(key, got)
            return got
        sa, sb = self._spikes(a), self._spikes(b)
        ta = gather_times(self.spike_times, sa)
        tb = gather_times(self.spike_times, sb)
        h_ab, h_ba = ccg_halves(ta, sa, tb, sb, bins)
        self.computed += 1
        self._put(key, h_ab)
        self._put((bins.bin_samples, bins.half, int(b), int(a)), h_ba)
        return h_ab

    def n_spikes(self, cid: int) -> int:
        with self._lock:
            n = self._n.get(cid)
        if n is None:
            n = int(np.asarray(self.spikes_of(cid)).shape[0])
            with self._lock:
                self._n[cid] = n
        return n

    # ------------------------------------------------------------------ matrix
    def matrix(
        self,
        cluster_ids: Sequence[int],
        bin_ms: float = 1.0,
        window_ms: float = 50.0,
        *,
        cancelled: Callable[[], bool] | None = None,
    ) -> MatrixResult | None:
        """The ``n x n`` correlogram matrix (None when ``cancelled()`` turns true midway)."""
        bins = self.bins(bin_ms, window_ms)
        ids = tuple(int(c) for c in cluster_ids)
        n, W, h = len(ids), bins.n_bins, bins.half
        out = np.zeros((n, n, W), dtype=np.int64)
        for i, a in enumerate(ids):
            for j in range(i, n):
                if cancelled is not None and cancelled():
                    return None
                b = ids[j]
                if i == j:
                    hh = self.half(bins, a, a)
                    out[i, i] = np.concatenate([hh[:0:-1], hh])
                    continue
                h_ab, h_ba = self.half(bins, a, b), self.half(bins, b, a)
                ccg = np.concatenate([h_ba[:0:-1], h_ab])
                ccg[h] = max(h_ab[0], h_ba[0])  # phy's displayed zero bin
                out[i, j] = ccg
                out[j, i] = ccg[::-1]
        sizes = np.array([self.n_spikes(c) for c in ids], dtype=np.int64)
        return MatrixResult(ids, out, sizes, bins, self.duration)


def matrix_for(cur: object) -> CorrelogramMatrix:
    """A :class:`CorrelogramMatrix` over a :class:`curalog.Curation`'s clusters, subscribed to
    its updates (so every later merge is composed from its parents)."""
    ds = cur.dataset  # type: ignore[attr-defined]
    got = CorrelogramMatrix(
        ds.spike_times,
        float(ds.sample_rate),
        lambda c: np.asarray(cur.spikes(c)),  # type: ignore[attr-defined]
        float(ds.duration),
    )
    cur.subscribe(got.on_update)  # type: ignore[attr-defined]
    return got
