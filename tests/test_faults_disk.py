"""Disk full and I/O errors: the action is refused with a clear message, the log is unchanged.

Two injections: a ``write`` wrapper that fails with ENOSPC (or EIO) after writing part of the
frame (runs everywhere), and a real 256 KiB tmpfs filled to the last byte (root on Linux
only; skipped cleanly otherwise).
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import curalog
from curalog.errors import CuralogError, LogError
from curalog.io.phy import export_phy

import faultlib


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


@pytest.fixture
def tmpfs(tmp_path):
    try:
        with faultlib.small_tmpfs(tmp_path / "tmpfs", "256k") as mnt:
            yield mnt
    except faultlib.TmpfsUnavailable as exc:
        pytest.skip(f"no small tmpfs here: {exc}")


def _session(tmp_path, n_spikes=3000):
    folder = faultlib.make_dataset(tmp_path / "ds", n_spikes, 30)
    cur = curalog.open(folder)
    cur.merge([1, 2])
    cur.label([3], group="good")
    return folder, cur


def _failing_write(real, cut: int, err: int = errno.ENOSPC):
    calls = {"n": 0}

    def write(fd, data):
        calls["n"] += 1
        if calls["n"] == 1 and cut:
            real(fd, bytes(data)[:cut])
        raise OSError(err, os.strerror(err))

    return write


@pytest.mark.parametrize("cut", [0, 1, 8, 11, 12, 13, 100, -1])
@pytest.mark.parametrize("action", ["merge", "split", "label", "undo"])
def test_enospc_in_write_refuses_the_action_and_keeps_the_log(tmp_path, monkeypatch, cut, action):
    folder, cur = _session(tmp_path)
    log = cur.log_path
    before = log.read_bytes()
    digest, seq = faultlib.state_digest(cur), cur.seq
    spikes = np.arange(0, 3000, 2)

    def act():
        if action == "merge":
            return cur.merge([4, 5])
        if action == "split":
            return cur.split(spikes)
        if action == "label":
            return cur.label([6], group="mua")
        return cur.undo()

    with monkeypatch.context() as m:
        m.setattr(os, "write", _failing_write(os.write, cut if cut >= 0 else 10**9))
        with pytest.raises(LogError) as info:
            act()
    msg = str(info.value)
    assert "No space left on device" in msg and "\n" not in msg
    assert log.read_bytes() == before
    assert (cur.seq, faultlib.state_digest(cur)) == (seq, digest)
    act()  # space is back: the same action now succeeds
    want = faultlib.state_digest(cur)
    cur.close()
    with curalog.open(folder) as again:
        assert again.seq == seq + 1 and faultlib.state_digest(again) == want


def test_eio_in_fsync_rolls_back(tmp_path, monkeypatch):
    folder, cur = _session(tmp_path)
    before = cur.log_path.read_bytes()

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", fsync)
        with pytest.raises(LogError, match="Input/output error"):
            cur.merge([4, 5])
    assert cur.log_path.read_bytes() == before
    cur.close()


def test_failed_rollback_never_hides_a_later_acknowledged_event(tmp_path, monkeypatch):
    folder, cur = _session(tmp_path)

    def ftruncate(fd, n):
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "write", _failing_write(os.write, 7))
        m.setattr(os, "ftruncate", ftruncate)
        with pytest.raises(LogError):
            cur.merge([4, 5])
    try:
        new = cur.merge([6, 7])  # acknowledged...
    except LogError:
        new = None  # ...or refused until the log is reopened: both keep the promise
    cur.close()
    with curalog.open(folder) as again:  # ...must survive a reopen
        if new is not None:
            assert new in again.cluster_ids


# ---------------------------------------------------------------------- real full disk (tmpfs)
def test_full_tmpfs_refuses_a_big_split_and_keeps_the_log(tmp_path, tmpfs):
    folder = faultlib.make_dataset(tmp_path / "ds", 200_000, 50)
    log = tmpfs / "main.log"
    rng = np.random.default_rng(1)
    with curalog.open(folder, log) as cur:
        cur.merge([1, 2])
        faultlib.fill_disk(tmpfs / "filler")
        before, digest = log.read_bytes(), faultlib.state_digest(cur)
        sel = np.sort(rng.choice(200_000, 100_000, replace=False))
        with pytest.raises(LogError, match="No space left on device"):
            cur.split(sel)
        assert log.read_bytes() == before
        assert faultlib.state_digest(cur) == digest
        (tmpfs / "filler").unlink()
        cur.split(sel)
        want = faultlib.state_digest(cur)
    with curalog.open(folder, log) as cur:
        assert cur.seq == 2 and faultlib.state_digest(cur) == want


def test_full_tmpfs_log_creation_is_refused_cleanly(tmp_path, tmpfs):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    faultlib.fill_disk(tmpfs / "filler")
    log = tmpfs / "new.log"
    with pytest.raises(LogError, match="No space left on device"):
        curalog.open(folder, log)
    assert not log.exists()
    assert not [p for p in tmpfs.iterdir() if p.name.endswith(".tmp")]


def test_full_tmpfs_cli_prints_one_line(tmp_path, tmpfs):
    folder = faultlib.make_dataset(tmp_path / "ds", 200_000, 50)
    log = tmpfs / "main.log"
    with curalog.open(folder, log) as cur:
        cur.merge([1, 2])
    rng = np.random.default_rng(2)  # random: a record far larger than the page slack left
    np.save(tmp_path / "sel.npy", np.sort(rng.choice(200_000, 100_000, replace=False)))
    faultlib.fill_disk(tmpfs / "filler")
    before = log.read_bytes()
    res = faultlib.run_cli(
        "split",
        str(folder),
        "--log",
        str(log),
        "--spikes",
        str(tmp_path / "sel.npy"),
        env={"CURALOG_CACHE_DIR": str(tmp_path / "fp-cache")},
    )
    faultlib.assert_one_line_error(res, "No space left on device")
    assert log.read_bytes() == before


def test_full_tmpfs_export_keeps_the_previous_files(tmp_path, tmpfs):
    folder = faultlib.make_dataset(tmp_path / "ds", 30_000, 30)
    out = tmpfs / "export"
    with curalog.open(folder, tmp_path / "x.log") as cur:
        cur.merge([1, 2])
        export_phy(cur, out)
        previous = faultlib.snapshot_files(out)
        faultlib.fill_disk(tmpfs / "filler")
        cur.merge([3, 4])
        with pytest.raises(CuralogError, match="No space left on device") as info:
            export_phy(cur, out)
        assert "\n" not in str(info.value)
    assert faultlib.snapshot_files(out) == previous
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_full_tmpfs_with_a_torn_tail_is_refused_cleanly(tmp_path, tmpfs):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = tmpfs / "main.log"
    with curalog.open(folder, log) as cur:
        cur.merge([1, 2])
        cur.merge([3, 4])
    data = log.read_bytes()
    last = curalog.store.log.read_log(log).offsets[-1]
    torn = data + data[last:-10]  # an interrupted third append: a torn last record
    log.write_bytes(torn)
    faultlib.fill_disk(tmpfs / "filler")
    with pytest.raises(LogError, match="No space left on device"):
        curalog.open(folder, log)
    assert log.read_bytes() == torn
    assert not [p for p in tmpfs.iterdir() if ".torn-" in p.name and p.stat().st_size == 0]
