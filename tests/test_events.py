"""Packed spike selections: exact round trips, compact encodings, refusal of lies."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curalog.errors import LogCorruptError
from curalog.events.envelope import pack_indices, pack_values, unpack_array


@given(st.sets(st.integers(0, 2**40), max_size=300))
def test_indices_round_trip(values):
    arr = np.array(sorted(values), dtype=np.int64)
    packed = pack_indices(arr)
    assert np.array_equal(unpack_array(packed, "t"), arr)


@given(st.lists(st.integers(-(2**62), 2**62), max_size=300))
def test_values_round_trip(values):
    arr = np.array(values, dtype=np.int64)
    assert np.array_equal(unpack_array(pack_values(arr), "t"), arr)


def test_smallest_delta_type_is_used():
    assert (
        pack_indices(np.arange(5_000_000, 5_100_000, 7))["dtype"] == "<u2"
    )  # far start, small gaps
    assert pack_indices(np.array([0, 70_000]))["dtype"] == "<u4"
    assert pack_indices(np.array([0, 2**33]))["dtype"] == "<u8"
    run = pack_indices(np.arange(40_000_000, 41_000_000))
    assert len(run["data"]) < 10_000  # a contiguous million spikes packs to a few kB


def test_lies_are_refused():
    packed = pack_indices(np.arange(10))
    with pytest.raises(LogCorruptError, match="more than"):
        unpack_array(packed, "t", max_items=5)
    with pytest.raises(LogCorruptError, match="start"):
        unpack_array({**packed, "start": -3}, "t")
    with pytest.raises(LogCorruptError):
        unpack_array({**packed, "n": 11}, "t")
    with pytest.raises(LogCorruptError):
        unpack_array({**packed, "dtype": "<f8"}, "t")
