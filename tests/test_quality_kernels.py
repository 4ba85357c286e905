"""The fast exact kernels behind the quality metrics equal numpy bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats.quality_pc import _knn
from curalog.analysis.stats.quality_spikes import _hist_uniform, median, quantiles

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
    counts, edges = _hist_uniform(a, 100)
    ref_c, ref_e = np.histogram(a, bins=100)
    np.testing.assert_array_equal(counts, ref_c)
    np.testing.assert_array_equal(edges, ref_e)


def test_knn_is_exact_nearest_neighbours():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(1)
    pts = rng.normal(size=(700, 12))
    got = _knn(pts, 5)
    _, ref = cKDTree(pts).query(pts, k=6)
    np.testing.assert_array_equal(got, ref[:, 1:])
