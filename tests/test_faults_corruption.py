"""Every single-byte change and every truncation of a small log: detected, never a wrong state.

A flipped byte must be reported (a LogError while reading the header, or ``corruption`` for
a record) and must never be cut off silently as if it were a torn write. A truncation is a
torn write: the reader gets a valid prefix, the next writable open cuts the tail (keeping its
bytes) and replays exactly the state at that prefix.
"""

from __future__ import annotations

import numpy as np
import pytest

import curalog
from curalog.errors import LogCorruptError, LogError
from curalog.io.phy import export_phy
from curalog.store.log import scan_bytes

import faultlib

FORMAT_FIELD = (8, 9)  # bytes of the u16 format version (see test_flip_of_the_format_field_*)


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


@pytest.fixture
def small(tmp_path):
    folder, log, data = faultlib.build_small_log(tmp_path)
    digests = {}
    for k in range(len(scan_bytes(data, "ref").events) + 1):
        with curalog.open(folder, log, readonly=True, upto=k) as cur:
            digests[k] = faultlib.state_digest(cur)
    return folder, log, data, digests


def test_small_log_has_every_event_type(small):
    _, _, data, _ = small
    types = {e.type for e in scan_bytes(data, "ref").events}
    assert types >= {"merge", "split", "label", "undo", "redo", "note"}
    assert 1000 < len(data) < 4000


def test_every_single_byte_flip_is_detected_by_the_reader(small):
    _, _, data, _ = small
    stats = faultlib.flip_scan(data, (0x01, 0x02, 0x10, 0x80, 0xFF))
    undetected = [(p, v) for p, v in stats.undetected if p not in FORMAT_FIELD]
    assert stats.cases == 5 * len(data)
    assert undetected == [], undetected[:10]


def test_flip_of_the_format_field_is_detected(small):
    _, _, data, _ = small
    stats = faultlib.flip_scan(data, range(256), mode="set", positions=list(FORMAT_FIELD))
    assert [(p, v) for p, v in stats.undetected if p in FORMAT_FIELD] == []


def test_flipped_log_is_refused_for_writing_and_left_untouched(small, tmp_path):
    folder, log, data, digests = small
    n_events = len(scan_bytes(data, "ref").events)
    target = tmp_path / "flipped.log"
    positions = [p for p in range(0, len(data), 7) if p not in FORMAT_FIELD]
    for pos in positions:
        buf = bytearray(data)
        buf[pos] ^= 0xFF
        target.write_bytes(bytes(buf))
        with pytest.raises(LogError):
            curalog.open(folder, target).close()
        assert target.read_bytes() == bytes(buf), f"flip at {pos}: the damaged log was modified"
        try:
            cur = curalog.open(folder, target, readonly=True)
        except LogError:
            continue
        with cur:  # read-only: the valid prefix, flagged as damaged
            assert cur.corruption, f"flip at {pos} replayed without being reported"
            assert cur.seq < n_events
            assert faultlib.state_digest(cur) == digests[cur.seq]
    assert not list(tmp_path.glob("flipped.log.torn-*")), (
        "a flipped record was cut off as a torn tail"
    )


def test_every_truncation_is_a_valid_prefix_for_the_reader(small):
    _, _, data, _ = small
    first, ends = faultlib.prefix_counts(data)
    for n in range(len(data)):
        if n < first:
            with pytest.raises(LogError):
                scan_bytes(data[:n], "t")
            continue
        res = scan_bytes(data[:n], "t")
        k = sum(1 for e in ends if e <= n)
        assert res.corruption is None, (n, res.corruption)
        assert len(res.events) == k, n
        assert res.torn == (n != first and n not in ends), n
        assert res.good_end == (ends[k - 1] if k else first)


def test_truncated_log_reopens_to_the_prefix_state(small, tmp_path):
    folder, _, data, digests = small
    first, ends = faultlib.prefix_counts(data)
    points = sorted(
        {
            first,
            *ends,
            *(e - 1 for e in ends),
            *(e + 1 for e in ends[:-1]),
            *range(first, len(data), 17),
        }
    )
    for n in points:
        work = tmp_path / f"cut{n}"
        work.mkdir()
        log = work / "t.log"
        log.write_bytes(data[:n])
        with curalog.open(folder, log) as cur:
            k = sum(1 for e in ends if e <= n)
            assert cur.seq == k
            assert faultlib.state_digest(cur) == digests[k], n
        good = ends[k - 1] if k else first
        assert log.read_bytes() == data[:good]
        sides = list(work.glob("t.log.torn-*"))
        if n == good:
            assert not sides
        else:
            assert len(sides) == 1 and sides[0].read_bytes() == data[good:n]


def test_a_cut_log_keeps_working(small, tmp_path):
    folder, _, data, _ = small
    _, ends = faultlib.prefix_counts(data)
    log = tmp_path / "w.log"
    log.write_bytes(data[: ends[2] + 5])
    with curalog.open(folder, log) as cur:
        assert cur.seq == 3
        cur.label(cur.cluster_ids[:1].tolist(), group="noise")
        want = faultlib.state_digest(cur)
    with curalog.open(folder, log) as cur:
        assert cur.seq == 4 and not cur.warnings
        assert faultlib.state_digest(cur) == want


def _damaged_after_export(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    with curalog.open(folder) as cur:
        for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]:
            cur.merge([a, b])
        export_phy(cur)
    log = curalog.default_log_path(folder)
    exported = (folder / "spike_clusters.npy").read_bytes()
    offsets = curalog.store.log.read_log(log).offsets
    buf = bytearray(log.read_bytes())
    buf[offsets[1] + 30] ^= 0xFF  # bit rot in record 2 of 4
    log.write_bytes(bytes(buf))
    return folder, log, exported


def test_export_and_replay_refuse_a_damaged_log(tmp_path):
    folder, log, exported = _damaged_after_export(tmp_path)
    with pytest.raises(LogCorruptError):
        curalog.replay(folder)
    with curalog.open(folder, readonly=True) as cur:
        assert cur.corruption
        with pytest.raises(LogCorruptError):
            export_phy(cur)
    assert (folder / "spike_clusters.npy").read_bytes() == exported


def test_replay_upto_before_the_damage_is_allowed(tmp_path):
    folder, log, _ = _damaged_after_export(tmp_path)
    with curalog.open(folder, readonly=True, upto=1) as cur:
        assert cur.seq == 1
        assert np.count_nonzero(cur.spike_clusters == 20) > 0
