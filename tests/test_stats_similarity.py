"""phy's similarity rule, ranking order, merge update and the cosine fallback."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats.similarity import (
    cosine_similarity_templates,
    merge_rows,
    rank_similar,
    template_row,
    template_similarity,
)


def brute_sim(s, tc, td):
    return max(float(s[i, j]) for i in tc for j in td)


@st.composite
def setups(draw):
    n_t = draw(st.integers(2, 8))
    vals = draw(
        st.lists(
            st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=n_t * n_t, max_size=n_t * n_t
        )
    )  # few values: plenty of ties
    s = np.asarray(vals, dtype=np.float32).reshape(n_t, n_t)
    n_c = draw(st.integers(1, 6))
    sets = [
        np.unique(
            np.asarray(
                draw(st.lists(st.integers(0, n_t - 1), min_size=1, max_size=4)), dtype=np.int32
            )
        )
        for _ in range(n_c)
    ]
    ids = np.asarray(sorted(draw(st.sets(st.integers(0, 100), min_size=n_c, max_size=n_c))))
    return s, ids, sets


@settings(max_examples=200, deadline=None)
@given(setups())
def test_rule_ranking_and_merge(data):
    s, ids, sets = data
    ref = 0
    row = template_row(s, sets[ref])
    ranked = rank_similar(row, ids, sets, exclude=int(ids[ref]))
    expect = sorted(
        ((int(ids[k]), brute_sim(s, sets[ref], sets[k])) for k in range(len(ids)) if k != ref),
        key=lambda x: (-x[1], x[0]),
    )
    assert ranked == expect
    assert rank_similar(row, ids, sets, exclude=int(ids[ref]), limit=2) == expect[:2]
    # merge: the union's row is the element-wise max of the parents' rows
    if len(sets) >= 2:
        union = np.union1d(sets[0], sets[1])
        np.testing.assert_array_equal(
            merge_rows(template_row(s, sets[0]), template_row(s, sets[1])), template_row(s, union)
        )


def test_cosine_fallback_dense_and_sparse():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(5, 7, 6)).astype(np.float32)
    dense[4] = 0
    sim = cosine_similarity_templates(dense)
    flat = dense.reshape(5, -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1)
    for i in range(4):
        for j in range(4):
            assert (
                sim[i, j] == np.float32(flat[i] @ flat[j] / norms[i] / norms[j])
                or abs(sim[i, j] - flat[i] @ flat[j] / norms[i] / norms[j]) < 1e-5
            )
    assert np.all(sim[4] == 0) and np.all(sim[:, 4] == 0)
    # the same templates stored sparsely (3 local columns each) give the same similarity
    chans = np.array([[0, 1, 2], [3, 4, 5], [1, 2, 3], [0, 5, -1], [0, 1, 2]])
    sparse = np.zeros((5, 7, 3), dtype=np.float32)
    full = np.zeros_like(dense)
    for t in range(5):
        for k, c in enumerate(chans[t]):
            if c >= 0 and t < 4:
                sparse[t, :, k] = dense[t, :, c]
                full[t, :, c] = dense[t, :, c]
    np.testing.assert_allclose(
        cosine_similarity_templates(sparse, chans, 6), cosine_similarity_templates(full), atol=1e-6
    )


def test_source_selection(phy_template):
    from curalog.dataset import load_dataset

    ds = load_dataset(phy_template)
    assert not np.any(ds.similar_templates)  # the real folder ships all zeros
    s, src = template_similarity(ds)
    assert src == "templates-cosine" and s.shape == (64, 64)
    assert np.allclose(
        np.diag(s)[np.linalg.norm(np.asarray(ds.templates).reshape(64, -1), axis=1) > 0],
        1,
        atol=1e-5,
    )
    np.save(phy_template / "similar_templates.npy", np.eye(64, dtype=np.float32) * 0.5)
    s2, src2 = template_similarity(load_dataset(phy_template))
    assert src2 == "similar_templates" and s2[3, 3] == 0.5

    class NoTemplates:
        similar_templates = None
        templates = None

    assert template_similarity(NoTemplates()) == (None, "none")
