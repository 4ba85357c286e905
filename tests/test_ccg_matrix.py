"""The correlogram matrix (phy's CorrelogramView) and ISI histograms: exact, composed on merge."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats.ccg_matrix import (
    BIN_STEPS_MS,
    WINDOW_STEPS_MS,
    CorrelogramMatrix,
    isi_histogram,
    step_value,
    to_rate,
)
from curalog.analysis.stats.correlograms import autocorrelogram, cross_correlogram, make_bins

FS = 30_000.0


def make(times: np.ndarray, labels: np.ndarray) -> tuple[CorrelogramMatrix, dict[int, np.ndarray]]:
    clusters = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    m = CorrelogramMatrix(times, FS, lambda c: clusters[c], duration=float(times[-1]) / FS)
    return m, clusters


def reference(times, clusters, ids, bin_ms, window_ms) -> np.ndarray:
    bins = make_bins(FS, bin_ms, window_ms)
    n = len(ids)
    out = np.zeros((n, n, bins.n_bins), dtype=np.int64)
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            out[i, j] = (
                autocorrelogram(times, clusters[a], bins)
                if a == b
                else cross_correlogram(times, clusters[a], clusters[b], bins, symmetrize=True)
            )
    return out


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([(1.0, 50.0), (0.5, 20.0), (2.0, 100.0), (0.2, 10.0)]),
)
def test_matrix_equals_pairwise_correlograms(seed, binning):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    times = np.sort(rng.integers(0, 30_000 * 5, n)).astype(np.int64)
    labels = rng.integers(0, 4, n)
    m, clusters = make(times, labels)
    ids = sorted(clusters)
    got = m.matrix(ids, *binning)
    np.testing.assert_array_equal(got.counts, reference(times, clusters, ids, *binning))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_a_merge_is_composed_from_the_parents_and_exact(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 600))
    times = np.sort(rng.integers(0, 30_000 * 3, n)).astype(np.int64)
    times[5] = times[4]  # a coincidence: the zero bin must still compose exactly
    labels = rng.integers(0, 4, n)
    m, clusters = make(times, labels)
    m.matrix([0, 1, 2, 3], 1.0, 50.0)
    computed = m.computed
    clusters[9] = np.union1d(clusters[0], clusters[1])
    m.note_merge([0, 1], 9)
    got = m.matrix([9, 2, 3], 1.0, 50.0)
    assert m.computed == computed  # nothing read again: ACG(9), CCG(9, 2), CCG(9, 3) composed
    assert m.composed >= 3
    np.testing.assert_array_equal(got.counts, reference(times, clusters, [9, 2, 3], 1.0, 50.0))


def test_update_feed_records_merges_only():
    times = np.arange(0, 3000, 30, dtype=np.int64)
    labels = np.arange(times.shape[0]) % 2
    m, clusters = make(times, labels)

    class U:
        def __init__(self, kind, added, deleted, history=None):
            self.kind, self.added, self.deleted, self.history = kind, added, deleted, history

    m.on_update(U("split", (5, 6), (0,)))
    m.on_update(U("merge", (0,), (7,), history="undo"))
    assert m._parents_of(5) is None and m._parents_of(0) is None
    m.on_update(U("merge", (4,), (0, 1)))
    assert m._parents_of(4) == (0, 1)


def test_rates_and_baseline():
    times = np.arange(0, 30_000 * 10, 300, dtype=np.int64)  # 100 Hz regular train, 10 s
    m, clusters = make(times, np.zeros(times.shape[0], dtype=np.int64))
    res = m.matrix([0], 1.0, 50.0)
    rate = res.rate(0, 0)
    # a regular 10 ms train: the ACG peaks at +-10, 20 ms; each peak holds ~all spikes
    h = res.bins.half
    assert rate[h + 10] == pytest.approx(1000.0 * (1 - 1 / times.shape[0]), rel=1e-6)
    assert res.baseline(0) == pytest.approx(times.shape[0] / res.duration)
    assert to_rate(np.array([3]), 0, 1.0)[0] == 0.0


def test_isi_histogram_matches_numpy():
    rng = np.random.default_rng(3)
    t = np.sort(rng.integers(0, 30_000 * 60, 5000)).astype(np.int64)
    counts, edges = isi_histogram(t, FS, bin_ms=0.5, window_ms=20.0)
    isi = np.diff(t) / FS * 1e3
    ref, _ = np.histogram(isi[isi < 20.0], bins=edges)
    np.testing.assert_array_equal(counts, ref)
    assert edges[0] == 0.0 and edges[-1] == 20.0 and counts.shape == (40,)
    assert isi_histogram(t[:1], FS)[0].sum() == 0


def test_steps():
    assert step_value(BIN_STEPS_MS, 1.0, +1) == 2.0
    assert step_value(BIN_STEPS_MS, 1.0, -1) == 0.5
    assert step_value(WINDOW_STEPS_MS, 50.0, +1) == 100.0
    assert step_value(WINDOW_STEPS_MS, WINDOW_STEPS_MS[-1], +1) == WINDOW_STEPS_MS[-1]
    assert step_value(BIN_STEPS_MS, BIN_STEPS_MS[0], -1) == BIN_STEPS_MS[0]
