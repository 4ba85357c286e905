"""Correlogram kernels against a brute-force reference, phylib, and the merge identity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats.correlograms import (
    acg_half,
    autocorrelogram,
    ccg_halves,
    compose_acg,
    cross_correlogram,
    gather_times,
    make_bins,
    phy_symmetrize,
)


def brute_acg(t: np.ndarray, spikes: np.ndarray, b: int, h: int) -> np.ndarray:
    """Symmetric ACG from the definition: pairs i < j, bin floor((t_j - t_i) / B) <= h."""
    out = np.zeros(2 * h + 1, dtype=np.int64)
    ts = t[spikes]
    for i in range(len(ts)):
        for j in range(i + 1, len(ts)):
            k = (int(ts[j]) - int(ts[i])) // b
            if k <= h:
                out[h + k] += 1
                if k:
                    out[h - k] += 1
    return out


def brute_ccg(t: np.ndarray, sa: np.ndarray, sb: np.ndarray, b: int, h: int) -> np.ndarray:
    """Raw CCG(a, b): b after a on the positive side (zero bin: a first), a after b negative."""
    out = np.zeros(2 * h + 1, dtype=np.int64)
    for x in sa:
        for y in sb:
            if x < y:  # a-spike first (index order = time order)
                k = (int(t[y]) - int(t[x])) // b
                if k <= h:
                    out[h + k] += 1
            else:
                k = (int(t[x]) - int(t[y])) // b
                if 1 <= k <= h:
                    out[h - k] += 1
    return out


@st.composite
def spike_trains(draw, max_spikes: int = 60, n_clusters: int = 3):
    n = draw(st.integers(0, max_spikes))
    gaps = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))  # 0: exact ties
    t = np.cumsum(np.asarray(gaps, dtype=np.int64)) if n else np.zeros(0, dtype=np.int64)
    labels = np.asarray(
        draw(st.lists(st.integers(0, n_clusters - 1), min_size=n, max_size=n)), dtype=np.int64
    )
    bin_samples = draw(st.integers(1, 7))
    half = draw(st.integers(0, 8))
    return t, labels, bin_samples, half


def _bins(b: int, h: int):
    # sample rate 1000 Hz: 1 sample = 1 ms, so bin_ms = B and window = (2h + 1) B
    return make_bins(1000.0, float(b), float((2 * h + 1) * b))


def test_make_bins_phy_defaults():
    bins = make_bins(25_000.0)
    assert (bins.bin_samples, bins.half, bins.n_bins) == (25, 25, 51)
    assert make_bins(30_000.0, 1.0, 30.0).half == 15  # 0.5 * 30 / 1 must not truncate to 14
    assert make_bins(30_000.0, 0.3, 10.0).bin_samples == 9
    assert bins.lags_ms()[bins.half] == 0.0
    with pytest.raises(ValueError):
        make_bins(0.0)


@settings(max_examples=300, deadline=None)
@given(spike_trains())
def test_acg_equals_bruteforce(data):
    t, labels, b, h = data
    bins = _bins(b, h)
    assert (bins.bin_samples, bins.half) == (b, h)
    for c in range(3):
        sp = np.flatnonzero(labels == c)
        got = autocorrelogram(t, sp, bins)
        assert got.dtype == np.int64 and got.shape == (2 * h + 1,)
        np.testing.assert_array_equal(got, brute_acg(t, sp, b, h))


@settings(max_examples=300, deadline=None)
@given(spike_trains())
def test_ccg_equals_bruteforce_and_mirror(data):
    t, labels, b, h = data
    bins = _bins(b, h)
    sa, sb = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    ab = cross_correlogram(t, sa, sb, bins)
    ba = cross_correlogram(t, sb, sa, bins)
    np.testing.assert_array_equal(ab, brute_ccg(t, sa, sb, b, h))
    # mirror images except the zero bin, which holds each direction's own pairs
    np.testing.assert_array_equal(np.delete(ab, h), np.delete(ba[::-1], h))
    sym = cross_correlogram(t, sa, sb, bins, symmetrize=True)
    np.testing.assert_array_equal(sym, phy_symmetrize(ab, ba))
    assert sym[h] == max(ab[h], ba[h])


@settings(max_examples=300, deadline=None)
@given(spike_trains(n_clusters=4))
def test_merge_identity_exact_including_zero_bin(data):
    t, labels, b, h = data
    bins = _bins(b, h)
    parts = [np.flatnonzero(labels == c) for c in range(4)]
    a, bb = parts[0], parts[1]
    union = np.sort(np.concatenate([a, bb]))
    composed = compose_acg(
        autocorrelogram(t, a, bins),
        autocorrelogram(t, bb, bins),
        cross_correlogram(t, a, bb, bins),
        cross_correlogram(t, bb, a, bins),
    )
    np.testing.assert_array_equal(composed, autocorrelogram(t, union, bins))
    # k parents: sum of ACGs and of all ordered raw CCGs
    allp = np.sort(np.concatenate(parts))
    total = sum(autocorrelogram(t, p, bins) for p in parts)
    for i in range(4):
        for j in range(4):
            if i != j:
                total = total + cross_correlogram(t, parts[i], parts[j], bins)
    np.testing.assert_array_equal(total, autocorrelogram(t, allp, bins))


def test_zero_bin_symmetrised_sum_is_not_additive():
    """Why the cache keeps raw CCGs: phy's max-symmetrised zero bin would double count."""
    t = np.array([0, 0, 3, 10], dtype=np.int64)  # spikes 0 (a) and 1 (b) coincide
    a, b = np.array([0, 3]), np.array([1, 2])
    bins = _bins(5, 2)
    union = autocorrelogram(t, np.arange(4), bins)
    raw = compose_acg(
        autocorrelogram(t, a, bins),
        autocorrelogram(t, b, bins),
        cross_correlogram(t, a, b, bins),
        cross_correlogram(t, b, a, bins),
    )
    np.testing.assert_array_equal(raw, union)
    sym = compose_acg(
        autocorrelogram(t, a, bins),
        autocorrelogram(t, b, bins),
        cross_correlogram(t, a, b, bins, symmetrize=True),
        cross_correlogram(t, b, a, bins, symmetrize=True),
    )
    assert sym[2] != union[2]


def test_edges_of_window():
    """Lags of exactly (h + 1) B - 1 samples are in, (h + 1) B out; bin k starts at k B."""
    b, h = 4, 3
    bins = _bins(b, h)
    for lag, expect_bin in [(0, 0), (3, 0), (4, 1), (15, 3), (16, None)]:
        t = np.array([100, 100 + lag], dtype=np.int64)
        acg = autocorrelogram(t, np.arange(2), bins)
        if expect_bin is None:
            assert acg.sum() == 0
        else:
            assert acg[h + expect_bin] == 1 and acg[h - expect_bin] == 1
    h_ab, h_ba = ccg_halves(np.array([10]), np.array([0]), np.array([10]), np.array([1]), bins)
    assert h_ab[0] == 1 and h_ba.sum() == 0  # a tie: index order decides who is first


def test_memmap_and_dtypes(tmp_path):
    t = np.cumsum(np.random.default_rng(1).integers(0, 30, 500)).astype(np.int64)
    np.save(tmp_path / "t.npy", t)
    mm = np.load(tmp_path / "t.npy", mmap_mode="r")
    sp32 = np.arange(0, 500, 2, dtype=np.int32)
    bins = make_bins(1000.0, 3.0, 40.0)
    np.testing.assert_array_equal(
        autocorrelogram(mm, sp32, bins), autocorrelogram(t, sp32.astype(np.int64), bins)
    )
    np.testing.assert_array_equal(gather_times(mm, sp32), t[sp32])
    np.testing.assert_array_equal(
        acg_half(t[sp32], bins)[::-1], autocorrelogram(t, sp32, bins)[: bins.half + 1]
    )


@settings(max_examples=100, deadline=None)
@given(spike_trains(max_spikes=120))
def test_agrees_with_phylib(data):
    ccg = pytest.importorskip("phylib.stats.ccg")
    t, labels, b, h = data
    if len(t) < 2:
        return
    bins = _bins(b, h)
    ref = ccg.correlograms(
        t.astype(np.float64),
        labels,
        cluster_ids=[0, 1, 2],
        sample_rate=1.0,
        bin_size=float(b),
        window_size=float((2 * h + 1) * b),
        symmetrize=True,
    )
    parts = [np.flatnonzero(labels == c) for c in range(3)]
    for i in range(3):
        np.testing.assert_array_equal(autocorrelogram(t, parts[i], bins), ref[i, i])
        for j in range(3):
            if i != j:
                np.testing.assert_array_equal(
                    cross_correlogram(t, parts[i], parts[j], bins, symmetrize=True), ref[i, j]
                )


def test_phy_template_folder_against_phylib(phy_template):
    ccg = pytest.importorskip("phylib.stats.ccg")
    from curalog.dataset import load_dataset

    ds = load_dataset(phy_template)
    bins = make_bins(ds.sample_rate)  # 25 samples, 51 bins
    t = np.asarray(ds.spike_times)
    ids = np.unique(ds.spike_templates)
    ref = ccg.correlograms(
        t.astype(np.float64),
        ds.spike_templates.astype(np.int64),
        cluster_ids=ids,
        sample_rate=1.0,
        bin_size=25.0,
        window_size=51 * 25.0,
    )
    for i, c in enumerate(ids[:20]):
        sc = np.flatnonzero(ds.spike_templates == c)
        np.testing.assert_array_equal(autocorrelogram(t, sc, bins), ref[i, i])
        d = ids[(i + 1) % len(ids)]
        sd = np.flatnonzero(ds.spike_templates == d)
        np.testing.assert_array_equal(
            cross_correlogram(t, sc, sd, bins, symmetrize=True), ref[i, (i + 1) % len(ids)]
        )
