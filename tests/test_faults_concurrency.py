"""Two writers on one log (processes and threads): one wins, the other is refused by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

import curalog
from curalog.errors import LogError, LogLockedError

import faultlib

HOLDER = (
    "import sys, curalog\n"
    "cur = curalog.open(sys.argv[1], author='holder@lab')\n"
    "cur.merge([1, 2])\n"
    "print('open', flush=True)\n"
    "sys.stdin.read()\n"
    "cur.close()\n"
)


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


@pytest.fixture
def holder(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open", (
        proc.stderr.read() if proc.stderr else ""
    )
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_second_process_is_refused_naming_the_holder(holder):
    folder, proc = holder
    log = curalog.default_log_path(folder)
    before = log.read_bytes()
    with pytest.raises(LogLockedError) as info:
        curalog.open(folder)
    msg = str(info.value)
    assert "already open for writing by" in msg and f"pid {proc.pid}" in msg
    res = faultlib.run_cli("merge", str(folder), "3", "4")
    faultlib.assert_one_line_error(res, "already open for writing by", f"pid {proc.pid}")
    assert log.read_bytes() == before
    with curalog.open(folder, readonly=True) as cur:  # readers need no lock
        assert cur.seq == 1
    # the holder dies without closing: the kernel releases the flock, the stale text is ignored
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with curalog.open(folder) as cur:
        assert cur.seq == 1
        cur.merge([3, 4])


def _race(folder, n: int) -> list[str]:
    barrier = threading.Barrier(n)
    results: list[str] = []
    opened = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            cur = curalog.open(folder)
        except LogError as exc:
            with lock:
                results.append(type(exc).__name__)
            return
        with lock:
            results.append("ok")
            opened.append(cur)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for cur in opened:
        cur.close()
    return sorted(results)


def test_threads_on_a_fresh_dataset_one_wins(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    assert _race(folder, 4) == ["LogLockedError"] * 3 + ["ok"]


def test_threads_on_an_existing_log_one_wins(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
    for _ in range(5):
        assert _race(folder, 6) == ["LogLockedError"] * 5 + ["ok"]
    with curalog.open(folder) as cur:
        with pytest.raises(LogLockedError, match=f"pid {os.getpid()}"):
            curalog.open(folder)
        assert cur.seq == 1


def test_stale_creation_temp_file_does_not_block_a_new_log(tmp_path):
    """Regression (D7): the creation temp file was '.<log>.<pid>.tmp', per process not per call."""
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = curalog.default_log_path(folder)
    log.parent.mkdir()
    (log.parent / f".{log.name}.{os.getpid()}.tmp").write_bytes(b"CURALOG\0 half")
    with curalog.open(folder) as cur:
        cur.merge([1, 2])


def test_two_first_writers_on_a_fresh_dataset(tmp_path, monkeypatch):
    """Regression (D7): the loser of a creation race got 'already exists', not LogLockedError."""
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    import curalog.curation as cc

    real = cc.create_log
    both_checked = threading.Barrier(2)
    first_done = threading.Event()
    order = []
    order_lock = threading.Lock()

    def create_log(path, header):  # both writers have seen "no log"; one creates it first
        both_checked.wait()
        with order_lock:
            first = not order
            order.append(1)
        if not first:
            first_done.wait(30)
        try:
            return real(path, header)
        finally:
            first_done.set()

    monkeypatch.setattr(cc, "create_log", create_log)
    assert _race(folder, 2) == ["LogLockedError", "ok"]
