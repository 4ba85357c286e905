"""The fast statistics kernels against plain numpy formulations of the same definitions.

The kernels in :mod:`curalog.analysis.stats.metrics` take shortcuts for speed (a two-pass
median + histogram for non-negative amplitudes, one fused pass for the time-based metrics,
a branch-free merge of gathered arrays); each must give exactly what the straightforward
computation gives, bit for bit, including values that sit on bin edges.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats.metrics import (
    _amp_kernel,
    _core_kernel,
    _cutoff_from_hist,
    _half_gaussian,
    merge_passes,
)

HALF_W = _half_gaussian(3.0)


def reference_amp(a: np.ndarray, n_bins: int = 100, min_ratio: float = 5.0):
    """numpy's median, and the cutoff from numpy's histogram (negated when the median is)."""
    if a.size == 0 or np.isnan(a).any():
        return math.nan, math.nan
    med = float(np.median(a))
    if a.size / n_bins < min_ratio or not np.isfinite(a).all():
        return med, math.nan
    x = -a if med < 0 else a
    lo, hi = x.min(), x.max()
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    h = np.histogram(x, np.linspace(lo, hi, n_bins + 1))[0].astype(np.float64)
    return med, float(_cutoff_from_hist(h, a.size, HALF_W))


def same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == y


@st.composite
def amplitude_sets(draw):
    n = draw(st.integers(1, 3000))
    seed = draw(st.integers(0, 2**32 - 1))
    kinds = ["gamma", "integers", "rounded", "scaled", "zeros", "edges", "odd_edges", "neg"]
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(seed)
    if kind == "gamma":
        a = rng.gamma(6.0, 3.0, n)
    elif kind == "integers":  # many ties, many values exactly on histogram edges
        a = rng.integers(0, draw(st.integers(1, 300)), n).astype(np.float64)
    elif kind == "rounded":
        a = np.abs(np.round(rng.normal(20, 5, n), 1))
    elif kind == "scaled":
        a = rng.uniform(0, 1, n) * 10.0 ** draw(st.integers(-6, 8))
    elif kind == "zeros":
        a = np.abs(rng.normal(0, 1, n))
        a[: n // 2] = 0.0
    elif kind == "edges":  # every value an edge of linspace(0, 100, 101)
        a = np.linspace(0, 100, 101)[rng.integers(0, 101, n)]
    elif kind == "odd_edges":  # edges of an arbitrary range: rounding puts some just below
        lo = draw(st.floats(0, 50))
        hi = lo + draw(st.floats(1e-3, 100))
        edges = np.linspace(lo, hi, 101)
        a = np.r_[lo, hi, edges[rng.integers(0, 101, n)]]
    else:  # mixed signs take the general path
        a = rng.normal(-3, 5, n)
    return a


@settings(max_examples=400, deadline=None)
@given(amplitude_sets())
def test_amplitude_median_and_cutoff_equal_numpys(a):
    med, cut = _amp_kernel(a, 100, HALF_W, 5.0)
    ref_med, ref_cut = reference_amp(a)
    assert same(med, ref_med)
    assert same(cut, ref_cut)


def test_amplitude_kernel_special_values():
    assert all(math.isnan(v) for v in _amp_kernel(np.zeros(0), 100, HALF_W, 5.0))
    with_nan = np.r_[np.ones(600), np.nan]
    assert all(math.isnan(v) for v in _amp_kernel(with_nan, 100, HALF_W, 5.0))
    const = np.full(700, 3.0)
    assert _amp_kernel(const, 100, HALF_W, 5.0) == reference_amp(const)
    huge = np.r_[np.ones(600), np.inf]
    med, cut = _amp_kernel(huge, 100, HALF_W, 5.0)
    assert med == 1.0 and math.isnan(cut)


def reference_core(t, amps, fs, isi_thr_s, t_r, pr_bin, pr_nbins, n_series, total):
    n = t.shape[0]
    ts = t / fs
    isi = int(np.sum(np.diff(ts) < isi_thr_s))
    rp = int(sum(np.searchsorted(t, t[i] + t_r, side="right") - i - 1 for i in range(n)))
    last = pr_nbins * pr_bin
    if pr_nbins:
        pr = np.histogram(t, np.arange(0, last + 1, pr_bin))[0]
    else:
        pr = np.zeros(0, dtype=np.int64)
    sbin = np.minimum(t * n_series // total, n_series - 1)
    sc = np.bincount(sbin, minlength=n_series)
    sa = np.zeros(n_series)
    for k in range(n):  # the same additions in the same order
        sa[sbin[k]] += amps[k]
    return pr, sc, sa, isi, rp


@st.composite
def spike_trains(draw):
    n = draw(st.integers(0, 300))
    gaps = draw(st.lists(st.integers(0, 400), min_size=n, max_size=n))
    t = np.cumsum(np.asarray(gaps, dtype=np.int64))
    amps = np.asarray(draw(st.lists(st.floats(-50, 50), min_size=n, max_size=n)))
    return t, amps


@settings(max_examples=150, deadline=None)
@given(
    spike_trains(), st.integers(1, 60), st.integers(0, 8), st.integers(1, 5000), st.integers(0, 3)
)
def test_core_kernel_equals_plain_formulas(train, t_r, pr_nbins, pr_bin, on_edge):
    t, amps = train
    if on_edge:  # spikes exactly on the last presence edge count in the last bin
        t = np.sort(np.r_[t, np.full(on_edge, pr_nbins * pr_bin, dtype=np.int64)])
        amps = np.r_[amps, np.ones(on_edge)]
    fs = 10_000.0
    total = max(1, int(t[-1]) + 1) if t.size else 1
    n_series = 7
    got = _core_kernel(t, amps, True, fs, 0.0015, t_r, pr_bin, pr_nbins, n_series, total)
    exp = reference_core(t, amps, fs, 0.0015, t_r, pr_bin, pr_nbins, n_series, total)
    np.testing.assert_array_equal(got[0], exp[0])  # presence, incl. spikes on the last edge
    np.testing.assert_array_equal(got[1], exp[1])
    np.testing.assert_array_equal(got[2], exp[2])
    assert got[3] == exp[3] and got[4] == exp[4]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 4), st.integers(0, 400))
def test_merge_of_gathered_arrays_equals_gathering_the_union(seed, k, n):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.integers(0, 10_000, n))
    amps = rng.normal(size=n)
    owner = rng.integers(0, k, n)
    parts = [np.flatnonzero(owner == i) for i in range(k)]
    union = np.flatnonzero(owner >= 0)
    t, a = merge_passes(parts, [(times[p], amps[p]) for p in parts])
    np.testing.assert_array_equal(t, times[union])
    np.testing.assert_array_equal(a, amps[union])
    t2, a2 = merge_passes(parts, [(times[p], None) for p in parts])
    np.testing.assert_array_equal(t2, times[union])
    assert a2 is None
