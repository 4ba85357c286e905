"""Fuzzing the log reader, the event decoder and replay with hostile input.

Outcome contract (faultlib.outcome): a clean result or a one-line CuralogError; any other
exception is a defect. Hostile input is built *inside* frames with valid checksums and hash
chain (faultlib.craft_log), so that it reaches the decoder and replay, not only the CRCs.

``*_wide`` tests use the full input space and are expected to fail until the defects they name
are fixed; the others avoid only those known triggers. ``CURALOG_FUZZ_EXAMPLES=N`` scales them.
"""

from __future__ import annotations

import time
import tracemalloc
import zlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import curalog
from curalog.errors import LogCorruptError

import faultlib


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return faultlib.FuzzContext(tmp_path_factory.mktemp("fuzzlog"))


@faultlib.fuzz_settings(300)
@given(faultlib.raw_logs())
def test_reader_on_arbitrary_bytes(data):
    faultlib.fuzz_scan(data)


@faultlib.fuzz_settings(200)
@given(ops=st.data())
def test_reader_on_damaged_logs_never_reads_other_events(ctx, ops):
    """Flips, overwrites, insertions, deletions, duplicated spans: an error or a true prefix."""
    faultlib.fuzz_mutation(ctx.base, ops.draw(faultlib.mutations(len(ctx.base))))


@faultlib.fuzz_settings(200)
@given(payload=faultlib.hostile_payloads(), as_header=st.booleans())
def test_hostile_msgpack_in_valid_frames(ctx, payload, as_header):
    """Huge declared lengths, deep nesting, reserved bytes, random values: as a record or header."""
    faultlib.fuzz_payload(ctx.header, payload, as_header=as_header)


@faultlib.fuzz_settings(120)
@given(env=faultlib.hostile_envelopes())
def test_hostile_envelopes(ctx, env):
    """Wrong types, unknown or newer types and versions, lying seq/prev: refused cleanly."""
    faultlib.fuzz_envelope(ctx.header, env)


@faultlib.fuzz_settings(300)
@given(obj=faultlib.hostile_arrays())
def test_packed_arrays_with_lying_sizes(obj):
    faultlib.fuzz_array(obj)


@faultlib.fuzz_settings(80)
@given(records=faultlib.hostile_records(wide=False))
def test_replay_of_hostile_records(ctx, records):
    """Bodies with the right keys and wrong values, replayed and exported: a clean error, or a
    state whose export is well-formed phy TSV. (Label bodies are kept well-typed: see _wide.)"""
    faultlib.fuzz_replay(ctx.folder, ctx.crafted, faultlib.craft_log(None, ctx.header, records))


@faultlib.fuzz_settings(50)
@given(data=st.data())
def test_hostile_headers(ctx, data):
    header = data.draw(faultlib.hostile_headers(ctx.header, wide=False))
    faultlib.fuzz_replay(ctx.folder, ctx.crafted, faultlib.craft_log(None, header, []))


@example(records=[("label", {"clusters": None, "field": "group", "value": "good", "previous": []})])
@example(records=[("merge", {"clusters": [float("inf"), 1.0], "new": 8, "n_spikes": 5})])
@example(
    records=[
        ("label", {"clusters": [1], "field": "group", "value": "good\r\n7\tgood", "previous": []})
    ]
)
@faultlib.fuzz_settings(60, report_multiple_bugs=False)
@given(records=faultlib.hostile_records(wide=True))
def test_replay_of_hostile_records_wide(ctx, records):
    faultlib.fuzz_replay(ctx.folder, ctx.crafted, faultlib.craft_log(None, ctx.header, records))


@example(overrides={"sorter_columns": None})
@example(overrides={"base_groups": 5})
@example(overrides={"base_groups": [[1]]})
@example(
    overrides={
        "dataset": {
            "n_spikes": float("inf"),
            "n_templates": 8,
            "spike_templates_sha256": "",
            "spike_times_sha256": "",
        }
    }
)
@faultlib.fuzz_settings(60, report_multiple_bugs=False)
@given(
    overrides=st.dictionaries(
        st.sampled_from(["base_groups", "sorter_columns", "dataset", "branch", "format"]),
        faultlib.msgpack_values(6),
        max_size=2,
    )
)
def test_hostile_headers_wide(ctx, overrides):
    faultlib.fuzz_replay(
        ctx.folder, ctx.crafted, faultlib.craft_log(None, {**ctx.header, **overrides}, [])
    )


def _split_declaring(n: int) -> dict:
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(bytes(1 << 20)) for _ in range((n * 8) >> 20)) + comp.flush()
    return {
        "spikes": {"enc": "delta-zlib", "dtype": "<u8", "n": n, "data": data},
        "added": [8, 9],
        "deleted": [0],
        "n_spikes": 1,
    }


def test_replay_memory_is_bounded_by_the_dataset(ctx):
    data = faultlib.craft_log(None, ctx.header, [("split", _split_declaring(1 << 22))])
    assert len(data) < 64 << 10
    ctx.crafted.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(LogCorruptError):
            curalog.open(ctx.folder, ctx.crafted, readonly=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB to refuse a 32 KiB record"


def test_deep_nesting_and_huge_lengths_are_bounded(ctx):
    """Explicit worst cases of the payload fuzzer (always run, whatever the example count)."""
    for payload in (
        b"\x91" * 100_000 + b"\xc0",
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xc6\xff\xff\xff\xff" + b"x" * 10,
        b"\x81\xa1v" * 50_000 + b"\xc0",
    ):
        for as_header in (False, True):
            t0 = time.perf_counter()
            faultlib.fuzz_payload(ctx.header, payload, as_header=as_header)
            assert time.perf_counter() - t0 < 5
