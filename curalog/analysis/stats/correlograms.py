"""Auto- and cross-correlograms with phy's conventions, exact and composable on merge.

Conventions (docs/PHY_SEMANTICS.md section 5.1, written here from that published description)
--------------------------------------------------------------------------------------
* Times are integer samples. ``B = int(sample_rate * bin_ms / 1000)`` samples per bin (at
  least 1) and ``h = int(0.5 * window_ms / bin_ms)`` bins per side, so a correlogram has
  ``W = 2 h + 1`` bins (an odd number; 51 for phy's 1 ms / 50 ms defaults), bin ``h`` being
  the zero-lag bin.
* Pairs are *ordered by spike index* (spike index order is time order, ties in time keep the
  file order). For a pair ``i < j`` the lag is ``d = t_j - t_i >= 0`` and its bin is
  ``k = floor(d / B)``; pairs with ``k > h`` are not counted. Bin ``k = 0`` therefore holds
  every pair of distinct spikes closer than one bin, including exact coincidences.

Directed halves
---------------
For two spike sets X and Y, the *directed half* ``H_XY[k]`` (``k = 0..h``) counts pairs
``(x, y)``, ``x`` in X, ``y`` in Y, where ``x`` precedes ``y`` in index order and
``floor((t_y - t_x) / B) = k``. Everything is built from directed halves:

* ``ACG(X) = [H_XX[h], ..., H_XX[1], H_XX[0], H_XX[1], ..., H_XX[h]]`` - identical to
  ``phylib.stats.ccg.correlograms(...)[x, x]``.
* ``CCG(X, Y) = [H_YX[h], ..., H_YX[1], H_XY[0], H_XY[1], ..., H_XY[h]]`` - the *raw*
  cross-correlogram: positive lags are Y after X, negative lags are X after Y, and the
  zero-lag bin holds only the near-coincident pairs in which the X spike comes first.
  ``CCG(Y, X)`` is its mirror image except in the zero bin, which holds ``H_YX[0]``.
* phy displays a symmetrised zero bin, ``max(H_XY[0], H_YX[0])``
  (:func:`phy_symmetrize`); every other bin is the raw one.

Exact composition on merge
--------------------------
Every unordered pair of distinct spikes of ``X u Y`` (X, Y disjoint) has exactly one
earlier-index spike, so it is counted in exactly one of ``H_XX, H_YY, H_XY, H_YX``, in the
same bin ``k``. Hence, bin for bin, *including the zero bin*::

    H_(XuY)(XuY) = H_XX + H_YY + H_XY + H_YX
    ACG(X u Y)   = ACG(X) + ACG(Y) + CCG(X, Y) + CCG(Y, X)          (raw CCGs)

At a lag bin ``k >= 1`` the right-hand side reads ``H_XX[k] + H_YY[k] + H_XY[k] + H_YX[k]``
on both sides of zero (the positive side of CCG(X,Y) is H_XY, of CCG(Y,X) it is H_YX, and the
negative sides are swapped). At the zero bin it reads ``H_XX[0] + H_YY[0] + H_XY[0] +
H_YX[0]``, because the raw zero bin of ``CCG(X, Y)`` keeps only the pairs with X first. With
phy's *symmetrised* zero bin the identity would count ``2 max(H_XY[0], H_YX[0])`` instead,
which is wrong whenever the two directions differ: so the cache keeps raw CCGs and only the
display symmetrises. The same identity generalises to k parents (sum of the k ACGs and of the
``k (k - 1)`` raw CCGs).

Kernels are numba ``njit(cache=True, nogil=True)`` so background threads run in parallel. An
ACG costs ``O(N K)`` with ``K`` the mean number of same-cluster spikes within one window
after a spike; a CCG costs ``O(N_X + N_Y + pairs)`` (a moving pointer, no sort).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = [
    "CorrelogramBins",
    "make_bins",
    "acg_half",
    "ccg_halves",
    "acg_from_half",
    "ccg_from_halves",
    "autocorrelogram",
    "cross_correlogram",
    "compose_acg",
    "phy_symmetrize",
    "gather_times",
]


@dataclass(frozen=True)
class CorrelogramBins:
    """Correlogram binning in samples.

    Attributes
    ----------
    bin_samples : int
        ``B``, samples per bin.
    half : int
        ``h``, bins per side (the zero bin excluded).
    sample_rate : float
        Samples per second.
    """

    bin_samples: int
    half: int
    sample_rate: float

    @property
    def n_bins(self) -> int:
        """``W = 2 h + 1``."""
        return 2 * self.half + 1

    @property
    def limit_samples(self) -> int:
        """Pairs with a lag of at least this many samples are not counted: ``(h + 1) B``."""
        return (self.half + 1) * self.bin_samples

    def lags_ms(self) -> np.ndarray:
        """Left edge of each bin in ms, from ``-h B`` to ``h B`` (bin ``h`` is ``[0, B)``).

        A negative bin ``-k`` holds lags ``d`` with ``floor(-d / B) = k``, i.e. in
        ``(-(k + 1) B, -k B]``.
        """
        return np.arange(-self.half, self.half + 1) * self.bin_samples * 1e3 / self.sample_rate


def make_bins(sample_rate: float, bin_ms: float = 1.0, window_ms: float = 50.0) -> CorrelogramBins:
    """phy's binning: ``B = int(fs * bin)`` samples, ``W = 2 int(0.5 window / bin) + 1`` bins.

    A relative tolerance of 1e-9 guards the two ``int()`` truncations against floating-point
    representation (``0.5 * 30 / 1`` must give 15, not 14); with phy's defaults the result is
    identical to phylib's (B = 25 at 25 kHz, W = 51).
    """
    if not (sample_rate > 0 and bin_ms > 0 and window_ms > 0):
        raise ValueError("sample_rate, bin_ms and window_ms must be positive")
    b = max(1, int(sample_rate * bin_ms / 1000.0 * (1 + 1e-9)))
    h = int(0.5 * window_ms / bin_ms * (1 + 1e-9))
    return CorrelogramBins(bin_samples=b, half=h, sample_rate=float(sample_rate))


# ---------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True)
def _gather(times: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    out = np.empty(spikes.shape[0], dtype=np.int64)
    for k in range(spikes.shape[0]):
        out[k] = times[spikes[k]]
    return out


def gather_times(spike_times: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """``spike_times[spikes]`` as a contiguous int64 array (works on memory maps)."""
    return _gather(spike_times, np.ascontiguousarray(spikes))


@numba.njit(cache=True, nogil=True)
def _bin_lut(bin_samples: int, half: int) -> np.ndarray:
    """``lut[d] = d // B`` for every counted lag ``d < L = (h + 1) B``, and ``lut[L] = h + 1``
    (a dump bin): lags are clipped to ``L`` so the inner loops need no division and no branch
    per pair."""
    limit = (half + 1) * bin_samples
    lut = np.empty(limit + 1, dtype=np.int64)
    for d in range(limit):
        lut[d] = d // bin_samples
    lut[limit] = half + 1
    return lut


@numba.njit(cache=True, nogil=True, inline="always")
def _count_after(tb, j, ti, lut, limit, out):
    """Count lags ``tb[j:] - ti`` below ``limit`` into ``out`` (``tb`` sorted), 4 at a time.

    Four candidates are binned without a branch (out-of-window lags land in the dump bin
    ``out[h + 1]``); the loop goes on while the fourth is still in the window. This trades
    a few wasted increments for far fewer mispredicted loop exits.
    """
    n = tb.shape[0]
    while j + 4 <= n:
        d0 = min(tb[j] - ti, limit)
        d1 = min(tb[j + 1] - ti, limit)
        d2 = min(tb[j + 2] - ti, limit)
        d3 = min(tb[j + 3] - ti, limit)
        out[lut[d0]] += 1
        out[lut[d1]] += 1
        out[lut[d2]] += 1
        out[lut[d3]] += 1
        if d3 >= limit:
            return
        j += 4
    while j < n:
        d = tb[j] - ti
        if d >= limit:
            return
        out[lut[d]] += 1
        j += 1


@numba.njit(cache=True, nogil=True)
def _acg_half_kernel(t: np.ndarray, bin_samples: int, half: int) -> np.ndarray:
    out = np.zeros(half + 2, dtype=np.int64)
    limit = (half + 1) * bin_samples
    lut = _bin_lut(bin_samples, half)
    for i in range(t.shape[0]):
        _count_after(t, i + 1, t[i], lut, limit, out)
    return out[: half + 1].copy()


@numba.njit(cache=True, nogil=True)
def _merge_ranks(ia, ib):
    """``ra[x] = #{y : ib[y] < ia[x]}`` and ``rb[y] = #{x : ia[x] < ib[y]}`` (disjoint sorted
    index sets), by a branch-free merge: both slots are written at every step and the one
    of the element not taken is overwritten later."""
    na = ia.shape[0]
    nb = ib.shape[0]
    ra = np.empty(na + 1, dtype=np.int64)
    rb = np.empty(nb + 1, dtype=np.int64)
    p = 0
    q = 0
    while p < na and q < nb:
        a_first = np.int64(ia[p] < ib[q])
        ra[p] = q
        rb[q] = p
        p += a_first
        q += 1 - a_first
    while p < na:
        ra[p] = nb
        p += 1
    while q < nb:
        rb[q] = na
        q += 1
    return ra[:na], rb[:nb]


@numba.njit(cache=True, nogil=True)
def _ccg_halves_kernel(ta, ia, tb, ib, bin_samples, half):
    h_ab = np.zeros(half + 2, dtype=np.int64)
    h_ba = np.zeros(half + 2, dtype=np.int64)
    lut = _bin_lut(bin_samples, half)
    limit = (half + 1) * bin_samples
    ra, rb = _merge_ranks(ia, ib)
    for x in range(ta.shape[0]):  # pairs (x, y) with x first: y from the first b after x
        _count_after(tb, ra[x], ta[x], lut, limit, h_ab)
    for y in range(tb.shape[0]):
        _count_after(ta, rb[y], tb[y], lut, limit, h_ba)
    return h_ab[: half + 1].copy(), h_ba[: half + 1].copy()


# ---------------------------------------------------------------------- public API
def acg_half(times: np.ndarray, bins: CorrelogramBins) -> np.ndarray:
    """Directed half ``H_XX`` (``h + 1`` int64 counts) of one cluster's sorted spike times.

    ``H[k] = #{(i, j) : i < j, floor((t_j - t_i) / B) = k}``, ``k = 0..h``.
    """
    t = np.ascontiguousarray(times, dtype=np.int64)
    return _acg_half_kernel(t, bins.bin_samples, bins.half)


def ccg_halves(
    times_a: np.ndarray,
    spikes_a: np.ndarray,
    times_b: np.ndarray,
    spikes_b: np.ndarray,
    bins: CorrelogramBins,
) -> tuple[np.ndarray, np.ndarray]:
    """Directed halves ``(H_ab, H_ba)`` of two disjoint clusters.

    ``times_x`` are the clusters' spike times (sorted, int64) and ``spikes_x`` their spike
    indices (sorted), which decide who comes first when two spikes share a sample.
    """
    ta = np.ascontiguousarray(times_a, dtype=np.int64)
    tb = np.ascontiguousarray(times_b, dtype=np.int64)
    ia = np.ascontiguousarray(spikes_a)
    ib = np.ascontiguousarray(spikes_b)
    if ia.dtype != ib.dtype:
        ia, ib = ia.astype(np.int64), ib.astype(np.int64)
    return _ccg_halves_kernel(ta, ia, tb, ib, bins.bin_samples, bins.half)


def acg_from_half(h: np.ndarray) -> np.ndarray:
    """``[H[h..1], H[0], H[1..h]]``: the symmetric ``W``-bin autocorrelogram."""
    return np.concatenate([h[:0:-1], h])


def ccg_from_halves(h_ab: np.ndarray, h_ba: np.ndarray) -> np.ndarray:
    """Raw ``CCG(a, b) = [H_ba[h..1], H_ab[0], H_ab[1..h]]`` (see the module docstring)."""
    return np.concatenate([h_ba[:0:-1], h_ab])


def autocorrelogram(
    spike_times: np.ndarray, spikes: np.ndarray, bins: CorrelogramBins
) -> np.ndarray:
    """ACG (``W`` int64 counts) of the spikes ``spikes`` (sorted indices into ``spike_times``).

    Equal to ``phylib.stats.ccg.correlograms(...)[c, c]`` on the same spikes.
    """
    return acg_from_half(acg_half(gather_times(spike_times, spikes), bins))


def cross_correlogram(
    spike_times: np.ndarray,
    spikes_a: np.ndarray,
    spikes_b: np.ndarray,
    bins: CorrelogramBins,
    *,
    symmetrize: bool = False,
) -> np.ndarray:
    """Raw ``CCG(a, b)`` (``W`` int64 counts) of two disjoint sorted spike-index sets.

    With ``symmetrize=True`` the zero bin is phy's ``max(H_ab[0], H_ba[0])``, so the result
    equals ``phylib.stats.ccg.correlograms(...)[a, b]``; keep the raw form for composition.
    """
    ta = gather_times(spike_times, spikes_a)
    tb = gather_times(spike_times, spikes_b)
    h_ab, h_ba = ccg_halves(ta, spikes_a, tb, spikes_b, bins)
    out = ccg_from_halves(h_ab, h_ba)
    if symmetrize:
        out[bins.half] = max(h_ab[0], h_ba[0])
    return out


def compose_acg(
    acg_a: np.ndarray, acg_b: np.ndarray, ccg_ab: np.ndarray, ccg_ba: np.ndarray
) -> np.ndarray:
    """``ACG(a u b) = ACG(a) + ACG(b) + CCG(a, b) + CCG(b, a)`` with *raw* CCGs (exact)."""
    return acg_a + acg_b + ccg_ab + ccg_ba


def phy_symmetrize(ccg_ab: np.ndarray, ccg_ba: np.ndarray) -> np.ndarray:
    """phy's displayed ``CCG(a, b)``: the raw one with the zero bin ``max`` of both directions."""
    out = ccg_ab.copy()
    mid = out.shape[0] // 2
    out[mid] = max(ccg_ab[mid], ccg_ba[mid])
    return out
