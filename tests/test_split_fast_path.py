"""The interactive split's fast path and the stored selections give what the general ones do."""

from __future__ import annotations

import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.clustering import ClusterState
from curalog.events.packing import STORE_MIN, pack_indices, unpack_array


def same_change(a, b) -> None:
    assert a.kind == b.kind and a.counter_after == b.counter_after
    assert a.descendants == b.descendants and a.largest_old == b.largest_old
    assert a.added_ids == b.added_ids and a.deleted_ids == b.deleted_ids
    for c in a.added:
        np.testing.assert_array_equal(a.added[c], b.added[c])
        assert a.added[c].dtype == b.added[c].dtype


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.floats(0.0, 1.0))
def test_split_inside_one_cluster_equals_the_general_path(seed, n_templates, frac):
    rng = np.random.default_rng(seed)
    state = ClusterState(rng.integers(0, n_templates, 300))
    if rng.random() < 0.5:  # a merged cluster with deferred writes pending
        ids = state.cluster_ids
        if ids.shape[0] > 1:
            state.apply(state.resolve_merge([int(ids[0]), int(ids[1])]))
    c = int(rng.choice(state.cluster_ids))
    members = state.spikes(c)
    k = max(1, int(frac * members.shape[0]))
    sel = np.sort(rng.choice(members, k, replace=False))
    fast = state.resolve_split(sel)
    general = state.resolve_split(sel, labels=np.zeros(k, dtype=np.int64))  # no fast path
    same_change(fast, general)
    # a selection that starts in one cluster and reaches into another is resolved as the
    # general path resolves it (the fast path tries the first spike's cluster only)
    outside = np.setdiff1d(np.arange(state.n_spikes), members)
    if outside.shape[0]:
        mixed = np.union1d(sel, rng.choice(outside, 1))
        labels = np.zeros(mixed.shape[0], dtype=np.int64)
        same_change(state.resolve_split(mixed), state.resolve_split(mixed, labels=labels))
    # a sorted selection across clusters, and an unsorted one, take the general path
    other = np.sort(rng.choice(state.n_spikes, 20, replace=False))
    same_change(state.resolve_split(other), state.resolve_split(other, labels=np.zeros(20, int)))


def test_long_spread_selections_are_stored_runs_and_short_ones_deflated():
    rng = np.random.default_rng(0)
    spread = np.sort(rng.choice(10_000_000, 20_000, replace=False))
    run = np.arange(5_000, 5_000 + 100_000)
    short = spread[: STORE_MIN - 1]
    wide = np.sort(rng.choice(2**40, 5_000, replace=False))  # 64-bit deltas
    for arr, stored in ((spread, True), (run, False), (short, False), (wide, False)):
        packed = pack_indices(arr)
        data = packed["data"]
        # a stored zlib stream holds the raw deltas (plus 11 bytes of framing)
        raw_size = arr.size * np.dtype(packed["dtype"]).itemsize
        assert (len(data) > raw_size) == stored
        np.testing.assert_array_equal(unpack_array(packed, "here", 10**13), arr)
        assert (
            zlib.decompress(data) == np.diff(arr, prepend=arr[0]).astype(packed["dtype"]).tobytes()
        )
    assert len(pack_indices(run)["data"]) < 2_000  # a run of 100 k spikes: a few hundred bytes
