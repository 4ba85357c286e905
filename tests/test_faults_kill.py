"""SIGKILL fault injection: writers, exporters and readers racing a writer.

The fast mode runs a dozen kills of each kind; ``python bench/reliability.py --long`` runs
the same campaigns hundreds of times and prints the figures recorded in RELIABILITY.md.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import curalog

import faultlib

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fork + SIGKILL harness is Linux-only"
)


@pytest.fixture(scope="module")
def zygote():
    with faultlib.Zygote() as z:  # inherits the environment (and its CURALOG_CACHE_DIR)
        yield z


def _clean(stats) -> None:
    assert not stats.problems, stats.problems[:5]


def test_sigkill_writer_never_loses_an_acknowledged_event(zygote, tmp_path):
    stats = faultlib.kill_writer_campaign(tmp_path, runs=12, seed=11, rotate_every=6, zygote=zygote)
    assert stats.runs == 12
    assert stats.acked >= 12, stats  # the kills really landed amid appends
    assert stats.lost == 0
    assert stats.reopen_failures == 0
    assert stats.wrong_states == 0
    assert stats.victim_errors == 0
    _clean(stats)


def test_sigkill_exporter_leaves_old_or_new_complete_files(zygote, tmp_path):
    stats = faultlib.kill_export_campaign(tmp_path, runs=8, seed=5, n_spikes=200_000, zygote=zygote)
    assert stats.runs == 8
    assert stats.files_checked > 0
    assert stats.half_written == 0
    assert stats.wrong_content == 0
    assert stats.victim_errors == 0
    _clean(stats)


def test_readers_during_writes_always_see_a_valid_prefix(zygote, tmp_path):
    stats = faultlib.readers_during_writes(tmp_path, duration=1.5, seed=2, zygote=zygote)
    assert stats.writer_acks >= 3
    assert stats.reads >= 3
    assert stats.bad == 0
    _clean(stats)


def test_torn_tail_is_cut_and_kept_in_a_side_file(tmp_path):
    """What a kill inside write() leaves: the next writable open cuts it and keeps the bytes."""
    folder = faultlib.make_dataset(tmp_path / "ds", 500, 8)
    log = tmp_path / "t.log"
    with curalog.open(folder, log) as cur:
        cur.merge([1, 2])
    full = tmp_path / "full.log"  # the same history one acknowledged action further
    full.write_bytes(log.read_bytes())
    with curalog.open(folder, full) as cur:
        cur.split(np.arange(0, 500, 3))
        want = faultlib.state_digest(cur)
    data = full.read_bytes()
    good = faultlib.prefix_counts(data)[1]
    cut = good[-2] + 10  # ten bytes into the last record
    log.write_bytes(data[:cut])
    with curalog.open(folder, log) as cur:
        assert cur.seq == 1
        assert any("incomplete last record" in w for w in cur.warnings)
    assert log.read_bytes() == data[: good[-2]]
    sides = list(tmp_path.glob("t.log.torn-*"))
    assert len(sides) == 1 and sides[0].read_bytes() == data[good[-2] : cut]
    # the acknowledged prefix replays to the same state as before
    log.write_bytes(data)
    with curalog.open(folder, log, readonly=True) as cur:
        assert faultlib.state_digest(cur) == want


def test_replay_after_undo_keeps_the_id_counter(tmp_path):
    """Regression: a replay that skips undone actions must still advance the id counter
    past their ids (merge, undo, then any new action), or the log never reopens."""
    folder = faultlib.make_dataset(tmp_path / "ds", 600, 6, 1)
    log = tmp_path / "l.log"
    with curalog.open(folder, log) as cur:
        assert cur.merge([0, 1]) == 6
        cur.undo()
        assert cur.split([0, 1, 2]) == [7, 8, 9]
        assert cur.merge(cur.cluster_ids[:2].tolist()) == 10
        want = faultlib.state_digest(cur)
    with curalog.open(folder, log) as cur:
        assert faultlib.state_digest(cur) == want
        assert cur.merge(cur.cluster_ids[:2].tolist()) == 11
