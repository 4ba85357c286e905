"""Writing an action's cluster ids while its record's fsync is in flight (write-ahead).

The ids are written into ``spike_clusters`` beside the fsync, on the caller's thread, and the
action still counts as done only after the fsync. A failed fsync or an interrupt undoes the
write: the in-memory state, the array and the log are left exactly as they were.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import curalog
from curalog.clustering import WRITE_AHEAD_MAX, ClusterState
from curalog.errors import LogError
from curalog.store.overlap import FsyncThread

import faultlib


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


def _act(cur, action: str):
    if action == "merge":
        return cur.merge([4, 5])
    if action == "split":
        return cur.split(cur.spikes(6)[::2])
    sp = cur.spikes(7)  # assign covers whole clusters: 7 becomes two new ids
    return cur.assign(sp, np.where(np.arange(sp.size) % 2 == 0, 900, 901))


def _flushed(cur) -> np.ndarray:
    return cur.state.spike_clusters.copy()  # reading it writes every deferred id


@pytest.mark.parametrize("action", ["merge", "split", "assign"])
def test_a_failed_fsync_undoes_the_ids_written_ahead(tmp_path, monkeypatch, action):
    folder = faultlib.make_dataset(tmp_path / "ds", 3000, 30)
    cur = curalog.open(folder)
    cur.merge([1, 2])
    before_array = _flushed(cur)
    before_log = cur.log_path.read_bytes()
    digest, counter, seq = faultlib.state_digest(cur), cur.state.counter, cur.seq
    written = []
    real_write_ahead = ClusterState.write_ahead

    def spy(self, change):
        written.append(real_write_ahead(self, change))
        return written[-1]

    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the record's fsync fails; the rollback's succeeds
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    with monkeypatch.context() as m:
        m.setattr(ClusterState, "write_ahead", spy)
        m.setattr(os, "fsync", fsync)
        with pytest.raises(LogError, match="Input/output error"):
            _act(cur, action)
    assert written == [True]  # the ids were written, then undone
    # the raw array, not the property: nothing deferred may hide a wrong restore
    assert np.array_equal(cur.state._spike_clusters, before_array)
    assert cur.log_path.read_bytes() == before_log
    assert (cur.state.counter, cur.seq, faultlib.state_digest(cur)) == (counter, seq, digest)
    _act(cur, action)  # the disk is back: the same action gets the ids a replay gives
    want = faultlib.state_digest(cur)
    cur.close()
    with curalog.open(folder) as again:
        assert faultlib.state_digest(again) == want


def test_an_interrupt_while_writing_ahead_leaves_everything_as_it_was(tmp_path, monkeypatch):
    folder = faultlib.make_dataset(tmp_path / "ds", 3000, 30)
    cur = curalog.open(folder)
    before_array = _flushed(cur)
    before_log = cur.log_path.read_bytes()
    digest = faultlib.state_digest(cur)
    real_write_ahead = ClusterState.write_ahead

    def interrupted(self, change):
        real_write_ahead(self, change)  # the ids are in the array...
        raise KeyboardInterrupt  # ...when Ctrl-C arrives

    with monkeypatch.context() as m:
        m.setattr(ClusterState, "write_ahead", interrupted)
        with pytest.raises(KeyboardInterrupt):
            cur.merge([4, 5])
    assert np.array_equal(cur.state._spike_clusters, before_array)
    assert cur.log_path.read_bytes() == before_log
    assert faultlib.state_digest(cur) == digest and 4 in cur.state and 5 in cur.state
    new = cur.merge([4, 5])
    cur.close()
    with curalog.open(folder) as again:
        assert new in again.state


def test_written_ahead_and_deferred_ids_agree_with_a_replay(tmp_path):
    """Small changes are written ahead, big ones deferred; every read is the replayed truth.

    The same random actions run on a log with fsync (write-ahead) and one without (every
    write deferred); the arrays agree after each step and with a replay at the end.
    """
    n = 4 * WRITE_AHEAD_MAX
    folder = faultlib.make_dataset(tmp_path / "ds", n, 8)
    rng = np.random.default_rng(5)
    ahead = curalog.open(folder, tmp_path / "a.log")
    deferred = curalog.open(folder, tmp_path / "b.log", sync=False)
    big = ahead.merge([0, 1, 2])  # about 3 n / 8 spikes: deferred even with fsync
    deferred.merge([0, 1, 2])
    assert ahead.state.n_spikes_of(big) > WRITE_AHEAD_MAX and ahead.state._pending
    assert np.array_equal(ahead.state.spike_clusters, deferred.state.spike_clusters)
    assert ahead.state.n_spikes_of(5) <= WRITE_AHEAD_MAX
    ahead.split(ahead.spikes(5)[:50])  # relabels cluster 5 only: written ahead
    deferred.split(deferred.spikes(5)[:50])
    assert not ahead.state._pending and deferred.state._pending
    for _ in range(16):
        ids = ahead.state.cluster_ids
        if rng.random() < 0.5 and len(ids) > 2:
            pick = rng.choice(ids, 2, replace=False).tolist()
            assert ahead.merge(pick) == deferred.merge(pick)
        else:
            sp = ahead.spikes(int(rng.choice(ids)))
            sel = np.sort(rng.choice(sp, max(1, len(sp) // 3), replace=False))
            assert ahead.split(sel) == deferred.split(sel)
        if rng.random() < 0.3:
            ahead.undo()
            deferred.undo()
        assert np.array_equal(ahead.state.spike_clusters, deferred.state.spike_clusters)
    want = ahead.state.spike_clusters.copy()
    log = ahead.log_path
    ahead.close()
    deferred.close()
    with curalog.open(folder, log, readonly=True) as again:
        assert np.array_equal(again.state.spike_clusters, want)


class _Work:
    def __init__(self, fail: bool = False):
        self.fail, self.ran, self.undone = fail, False, False

    def run(self) -> None:
        self.ran = True
        if self.fail:
            raise ValueError("work failed")

    def undo(self) -> None:
        self.undone = True


def test_fsync_thread_reports_the_disk_error_after_undoing(tmp_path):
    thread = FsyncThread()
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    ok = _Work()
    thread.commit(fd, ok)
    assert ok.ran and not ok.undone
    os.close(fd)
    bad = _Work()
    with pytest.raises(OSError) as info:
        thread.commit(fd, bad)  # a closed descriptor: EBADF from the fsync
    assert info.value.errno == errno.EBADF and bad.ran and bad.undone
    failing = _Work(fail=True)
    fd = os.open(tmp_path / "f", os.O_WRONLY)
    with pytest.raises(ValueError, match="work failed"):
        thread.commit(fd, failing)
    assert failing.undone
    thread.commit(fd, _Work())  # still usable afterwards
    os.close(fd)
