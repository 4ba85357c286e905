"""phy's id rules, bit-for-bit, on the examples of docs/PHY_SEMANTICS.md section 2 (verified in phy)."""

import numpy as np
import pytest

from curalog.clustering import ClusterState
from curalog.errors import InvalidActionError


def apply(state: ClusterState, kind: str, *args):
    change = {
        "merge": state.resolve_merge,
        "split": state.resolve_split,
        "assign": state.resolve_assign,
    }[kind](*args)
    state.apply(change)
    return change


def test_merge_takes_counter_and_largest_parent_ties_to_smaller_id():
    s = ClusterState(np.array([0, 0, 1, 1, 1, 2, 2, 5, 5, 5]))
    ch = apply(s, "merge", [2, 0])
    assert ch.added_ids == [6] and ch.kind == "merge"
    assert ch.largest_old == 0  # 2 vs 2 spikes: the smaller id
    assert s.spike_clusters.tolist() == [6, 6, 1, 1, 1, 6, 6, 5, 5, 5]
    assert s.counter == 7
    assert s.spikes(6).tolist() == [0, 1, 5, 6]


def test_split_of_one_cluster():
    s = ClusterState(np.array([6, 6, 1, 1, 1, 6, 6, 5, 5, 5]))
    ch = apply(s, "split", [2, 3])
    assert s.spike_clusters.tolist() == [6, 6, 7, 7, 8, 6, 6, 5, 5, 5]
    assert ch.added_ids == [7, 8] and ch.deleted_ids == [1]
    assert set(ch.descendants) == {(1, 7), (1, 8)}
    # whole-cluster split = merge/rename into the next id
    ch2 = apply(s, "split", [7, 8, 9])
    assert ch2.kind == "merge" and ch2.added_ids == [9] and ch2.deleted_ids == [5]
    assert s.spike_clusters.tolist() == [6, 6, 7, 7, 8, 6, 6, 9, 9, 9]


@pytest.mark.parametrize(
    "selection, labels, expected, counter",
    [
        ([1, 2, 3], None, [10, 9, 9, 9, 11, 11, 11, 8, 8], 12),  # lasso over two clusters
        ([0, 1, 2, 3], None, [9, 9, 9, 9, 10, 10, 10, 8, 8], 11),  # all of 3 + part of 4
        ([0, 1, 2, 3, 4, 5, 6], None, [9] * 7 + [8, 8], 10),  # all of 3 and 4: merge
        ([3, 4, 5, 6], [0, 2, 2, 5], [3, 3, 3, 9, 11, 11, 14, 8, 8], 15),  # gaps preserved
        ([3, 4], [7, 3], [3, 3, 3, 13, 9, 14, 14, 8, 8], 15),  # ids follow label values
    ],
)
def test_split_examples(selection, labels, expected, counter):
    s = ClusterState(np.array([3, 3, 3, 4, 4, 4, 4, 8, 8]))
    apply(s, "split", selection, labels)
    assert s.spike_clusters.tolist() == expected
    assert s.counter == counter


def test_split_selection_order_does_not_matter():
    a = ClusterState(np.array([3, 3, 3, 4, 4, 4, 4, 8, 8]))
    b = ClusterState(np.array([3, 3, 3, 4, 4, 4, 4, 8, 8]))
    apply(a, "split", [3, 4], [7, 3])
    apply(b, "split", [4, 3], [3, 7])
    assert a.spike_clusters.tolist() == b.spike_clusters.tolist()


def test_undo_redo_reuse_ids_and_never_lower_counter():
    s = ClusterState(np.array([0, 0, 1, 1, 1, 2, 2, 5, 5, 5]))
    m = apply(s, "merge", [0, 2])  # -> 6
    sp = apply(s, "split", [2, 3])  # -> 7, 8
    s.revert(sp)
    assert s.spike_clusters.tolist() == [6, 6, 1, 1, 1, 6, 6, 5, 5, 5]
    assert s.counter == 9
    s.apply(sp)  # redo: same absolute ids
    assert s.spike_clusters.tolist() == [6, 6, 7, 7, 8, 6, 6, 5, 5, 5]
    s.revert(sp)
    s.revert(m)
    assert s.spike_clusters.tolist() == [0, 0, 1, 1, 1, 2, 2, 5, 5, 5]
    nxt = apply(s, "split", [2, 3])
    assert nxt.added_ids == [9, 10]  # ids of undone actions are never reused


def test_index_stays_consistent():
    rng = np.random.default_rng(1)
    s = ClusterState(rng.integers(0, 20, 2000))
    for _ in range(50):
        ids = s.cluster_ids
        if rng.random() < 0.5 and len(ids) > 2:
            apply(s, "merge", rng.choice(ids, 2, replace=False).tolist())
        else:
            apply(s, "split", rng.choice(2000, 30, replace=False))
    for c in s.cluster_ids:
        assert np.array_equal(s.spikes(c), np.flatnonzero(s.spike_clusters == c))
    assert sorted(np.unique(s.spike_clusters).tolist()) == s.cluster_ids.tolist()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: s.resolve_merge([3]), "at least two"),
        (lambda s: s.resolve_merge([3, 99]), "unknown cluster 99"),
        (lambda s: s.resolve_split([]), "empty"),
        (lambda s: s.resolve_split([0, 100]), "out of range"),
        (lambda s: s.resolve_split([-1]), "out of range"),
        (lambda s: s.resolve_split([1, 1]), "more than once"),
        (lambda s: s.resolve_split([1, 2], [0]), "labels for"),
        (lambda s: s.resolve_split([1.5]), "integers"),
        (lambda s: s.resolve_assign([0, 1], [20, 20]), "every spike"),
        (lambda s: s.resolve_assign([7, 8], [3, 3]), "already exists"),
    ],
)
def test_invalid_actions_are_refused_before_any_change(call, message):
    s = ClusterState(np.array([3, 3, 3, 4, 4, 4, 4, 8, 8]))
    before = s.spike_clusters.copy()
    with pytest.raises(InvalidActionError, match=message):
        call(s)
    assert np.array_equal(s.spike_clusters, before) and s.counter == 9
