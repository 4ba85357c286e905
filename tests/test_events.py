"""Packed spike selections: exact round trips, compact encodings, refusal of lies."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.errors import LogCorruptError
from curalog.events.envelope import pack_indices, pack_values, unpack_array


@settings(deadline=None)  # the first example may compile the packing kernel
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


def _reference_pack(arr: np.ndarray) -> dict:
    """The delta-zlib encoding written out plainly (the format the log has always held)."""
    import zlib

    start = int(arr[0]) if arr.size else 0
    deltas = np.diff(arr.astype(np.int64), prepend=np.int64(start))
    top = int(deltas.max()) if deltas.size else 0
    dtype = "<u2" if top < 2**16 else "<u4" if top < 2**32 else "<u8"
    stored = dtype == "<u2" and arr.size >= 1024 and 4 * int(np.sum(deltas <= 1)) < arr.size
    data = zlib.compress(deltas.astype(dtype).tobytes(), 0 if stored else 1)
    return {"enc": "delta-zlib", "dtype": dtype, "n": int(arr.size), "start": start, "data": data}


@settings(deadline=None)
@given(
    st.sets(st.integers(0, 2**34), max_size=3000),
    st.sampled_from([np.int32, np.int64]),
    st.sampled_from([1, 300, 70_000]),
)
def test_indices_pack_byte_for_byte_as_the_format_defines(values, dtype, spread):
    arr = np.array(sorted({v // spread if spread > 1 else v for v in values}), dtype=np.int64)
    if dtype is np.int32:
        arr = arr[arr < 2**31].astype(np.int32)
    assert pack_indices(arr) == _reference_pack(arr)


def test_a_spread_selection_is_stored_and_a_run_deflated():
    rng = np.random.default_rng(3)
    spread = np.sort(rng.choice(10_000_000, 6_000, replace=False)).astype(np.int32)
    assert pack_indices(spread) == _reference_pack(spread)
    assert len(pack_indices(spread)["data"]) > 2 * 6_000  # stored: 16-bit deltas + framing
    run = np.arange(100, 5_000, dtype=np.int32)
    assert len(pack_indices(run)["data"]) < 200
