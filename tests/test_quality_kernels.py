"""The fast exact kernels behind the quality metrics equal numpy bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats.quality_pc import _knn
from curalog.analysis.stats.quality_spikes import histogram, median, quantiles

values = st.lists(
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1.0, -2.5, 1e-300])),
    min_size=1,
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(values, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_median_quantiles_histogram_are_numpys(vals, q1, q2):
    a = np.asarray(vals, dtype=np.float64)
    assert median(a) == np.median(a)
    assert quantiles(a, (q1, q2)) == list(np.quantile(a, [q1, q2]))
    try:
        ref_c, ref_e = np.histogram(a, bins=100)
    except ValueError:  # numpy refuses ranges too small for 100 finite bins; so do we
        with pytest.raises(ValueError):
            histogram(a, 100)
        return
    counts, edges = histogram(a, 100)
    np.testing.assert_array_equal(counts, ref_c)
    np.testing.assert_array_equal(edges, ref_e)


def test_knn_is_exact_nearest_neighbours():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(1)
    pts = rng.normal(size=(700, 12))
    got = _knn(pts, 5)
    _, ref = cKDTree(pts).query(pts, k=6)
    np.testing.assert_array_equal(got, ref[:, 1:])


def _noise_cutoff_reference(a: np.ndarray) -> tuple[float, float]:
    """SpikeInterface's compute_noise_cutoffs definition, written with numpy directly."""
    a = a[np.isfinite(a)]
    if a.shape[0] == 0:
        return np.nan, np.nan
    if np.median(a) < 0:
        a = -a
    try:
        counts, edges = np.histogram(a, bins=100)
    except ValueError:
        return np.nan, np.nan
    q_lo, q_hi = np.quantile(a, [0.1, 0.75])
    low = np.flatnonzero(edges[1:] <= q_lo)
    if low.shape[0] == 0:
        return np.nan, np.nan
    high = np.flatnonzero(edges[:-1] >= q_hi)
    mean_low = float(np.mean(counts[low]))
    ratio = mean_low / float(np.max(counts))
    if high.shape[0] < 2 or float(np.std(counts[high])) == 0:
        return np.nan, ratio
    return (mean_low - float(np.mean(counts[high]))) / float(np.std(counts[high])), ratio


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e4, 1e4), st.sampled_from([0.0, -3.0, np.inf, np.nan])),
        min_size=1,
        max_size=400,
    ),
    st.booleans(),
)
def test_noise_cutoff_is_the_definition(vals, negate):
    """One order-statistics pass serves the median and both signs' quantiles: the result is
    the definition's, also for negative amplitudes (the sign flip) and non-finite ones."""
    from curalog.analysis.stats.quality_spikes import noise_cutoff

    a = np.asarray(vals, dtype=np.float64) * (-1.0 if negate else 1.0)
    ours = noise_cutoff(a)
    ref = _noise_cutoff_reference(a)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))


def _silhouette_reference(x, y, labels):
    """The simplified silhouette written with numpy (SpikeInterface's definition)."""
    a = np.linalg.norm(x - x.mean(axis=0), axis=1)
    labs, inv = np.unique(labels, return_inverse=True)
    sums = np.zeros((labs.shape[0], y.shape[1]))
    np.add.at(sums, inv, y)
    cent = sums / np.bincount(inv, minlength=labs.shape[0])[:, None]
    d = np.sqrt(((x[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2))
    b = d[:, int(np.argmin(d.mean(axis=0)))]
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.mean((b - a) / np.maximum(b, a)))


def test_silhouette_kernel_is_the_definition():
    from curalog.analysis.stats.quality_pc import simplified_silhouette

    rng = np.random.default_rng(3)
    for _ in range(100):
        nx, ny, n_lab = (int(v) for v in rng.integers(1, (400, 900, 25)))
        x = rng.normal(size=(nx, 12))
        y = rng.normal(size=(ny, 12)) + 0.5
        labels = rng.integers(0, n_lab, ny) * 5 + 2
        assert simplified_silhouette(x, y, labels) == pytest.approx(
            _silhouette_reference(x, y, labels), rel=1e-12, abs=1e-15
        )
    zeros = simplified_silhouette(np.zeros((3, 2)), np.zeros((2, 2)), np.array([1, 1]))
    assert np.isnan(zeros)  # 0 / 0 for every point, as numpy gives


def test_spikes_by_template_is_a_stable_argsort():
    from curalog.analysis.stats.quality_pc import _by_template

    st = np.random.default_rng(4).integers(0, 60, 50_000)
    order, offsets = _by_template(st.astype(np.int64), 40)  # more templates than rows say
    np.testing.assert_array_equal(order, np.argsort(st, kind="stable"))
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(np.bincount(st))]))


def _brute_knn(pts: np.ndarray, k: int) -> np.ndarray:
    """The definition: squared float64 distances summed in dimension order, the point itself
    excluded, the k smallest with ties to the lower index (a stable sort)."""
    d = np.zeros((pts.shape[0], pts.shape[0]))
    for c in range(pts.shape[1]):
        t = pts[None, :, c] - pts[:, None, c]
        d += t * t
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 400),
    st.integers(1, 24),
    st.integers(1, 6),
    st.sampled_from(["normal", "integers", "duplicates", "scaled", "float64"]),
    st.integers(0, 2**32 - 1),
)
def test_knn_equals_the_brute_force_definition_index_for_index(n, dim, k, kind, seed):
    """The float32-filtered kernel returns exactly the float64 brute force, ties included
    (integer grids and duplicated points make many), and so does its fallback."""
    rng = np.random.default_rng(seed)
    k = min(k, n - 1)
    if kind == "integers":
        pts = rng.integers(-3, 4, size=(n, dim)).astype(np.float32).astype(np.float64)
    elif kind == "duplicates":
        base = rng.normal(size=(max(1, n // 4), dim)).astype(np.float32)
        pts = base[rng.integers(0, base.shape[0], n)].astype(np.float64)
    elif kind == "scaled":
        pts = (rng.normal(size=(n, dim)) * 10.0 ** rng.integers(-20, 12)).astype(np.float32)
        pts = pts.astype(np.float64)
    elif kind == "float64":  # not float32-exact: the float64 kernel
        pts = rng.normal(size=(n, dim))
    else:
        pts = rng.normal(size=(n, dim)).astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(_knn(pts, k), _brute_knn(pts, k))


def test_knn_of_near_ties_is_exact():
    """Distances that differ below float32's resolution are ordered by their float64 value."""
    rng = np.random.default_rng(7)
    pts = rng.normal(size=(300, 12)).astype(np.float32).astype(np.float64)
    # points at nearly the same distance from point 0, differing in float32's last bits
    for j in range(1, 40):
        pts[j] = pts[0]
        pts[j, j % 12] = np.float32(pts[0, j % 12]) + np.float32(2.0**-10) * np.float32(
            1 + 2.0**-23 * j
        )
    np.testing.assert_array_equal(_knn(pts, 5), _brute_knn(pts, 5))


def test_the_cached_upsampling_filter_is_resample_polys_own():
    from scipy.signal import resample_poly

    from curalog.analysis.stats.template_metrics import _UPSAMPLING, _upsampling_filter

    rng = np.random.default_rng(2)
    for n in (8, 61, 82):
        w = rng.normal(size=n)
        np.testing.assert_array_equal(
            resample_poly(w, _UPSAMPLING, 1, window=_upsampling_filter()),
            resample_poly(w, _UPSAMPLING, 1),
        )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from([0.0, 1.0, np.nan, np.inf]),
        ),
        min_size=1,
        max_size=300,
    ),
    st.sampled_from([(5.0, 95.0), (1.0, 99.0), (25.0, 75.0)]),
)
def test_percentiles_and_median_are_numpys(vals, bounds):
    from curalog.analysis.stats.quality_spikes import _median_of, _percentiles

    a = np.asarray(vals, dtype=np.float64)
    lo, hi = bounds
    with np.errstate(invalid="ignore"):  # inf - inf in numpy's interpolation, both sides
        want = np.percentile(a, [lo, hi])
        want_med = np.median(a)
        got = np.array(_percentiles(a, lo, hi))
        got_med = np.array(_median_of(a))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_med, np.array(want_med))
