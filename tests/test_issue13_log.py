"""Issue 13, the log: aliases meet one lock, lost records are visible, fsck and repair keep
what is intact, side files never follow planted links, stale temp files are removed.

Each test failed before its fix (see RELIABILITY.md, "Defects found", E1-E14).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import curalog
from curalog.cli import main
from curalog.errors import LogCorruptError, LogError, LogLockedError
from curalog.io.phy import export_phy
from curalog.store import log as logmod
from curalog.store.log import read_log

import faultlib

LEGACY_LOG = Path(__file__).parent / "data" / "format1-curalog-0.1.log"
LEGACY_DIGEST = "b1880f1f8bb655c011f6"  # state_digest after its 8 events, by curalog 0.1
LEGACY_HEAD = "c88b85e718c87588667c268164be8aaa7ada8fd26ccefc61c070adfa867e3632"


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


def read_state(path):
    return logmod.read_state(path)


def inspect_log(path):
    from curalog.store.repair import inspect_log

    return inspect_log(path)


def read_salvage(path):
    from curalog.store.repair import read_salvage

    return read_salvage(path)


def _log_with(folder: Path, n_merges: int = 4) -> Path:
    with curalog.open(folder) as cur:
        for k in range(n_merges):
            cur.merge([2 * k + 1, 2 * k + 2])
    return curalog.default_log_path(folder)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------------- 1. aliases
@pytest.mark.parametrize("alias", ["symlink", "hardlink"])
def test_a_second_writer_through_an_alias_is_refused(tmp_path, alias):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 1)
    link = tmp_path / "link.log"
    if alias == "symlink":
        link.symlink_to(log)
    else:
        os.link(log, link)
    with curalog.open(folder, log) as cur:
        with pytest.raises(LogLockedError, match="already open for writing"):
            curalog.open(folder, link)
        cur.merge([5, 6])
    with curalog.open(folder, link) as cur:  # free again: the alias works
        assert cur.seq == 2
        cur.merge([7, 8])
    assert len(read_log(log).events) == 3


def test_alias_writer_in_another_process_is_refused(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 1)
    link = tmp_path / "link.log"
    link.symlink_to(log)
    with curalog.open(folder, log):
        res = faultlib.run_cli("merge", str(folder), "3", "4", "--log", str(link))
    faultlib.assert_one_line_error(res, "already open for writing")
    assert len(read_log(log).events) == 1


# ---------------------------------------------------------------------- 3. lost records
def test_a_cut_at_a_record_boundary_is_detected(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 4)
    scan = read_log(log)
    log.write_bytes(log.read_bytes()[: scan.offsets[2]])  # events 3 and 4 gone, cleanly
    cut = read_log(log)
    assert cut.lost and "2 recorded event(s) missing" in cut.lost
    assert not cut.torn
    code, out, _ = _run(capsys, "fsck", str(folder))
    assert code == 1 and "missing at the end" in out
    with pytest.raises(LogCorruptError, match="missing at the end"):
        curalog.open(folder)  # never appended to (its seqs would be reused)
    with curalog.open(folder, readonly=True) as cur:
        assert cur.corruption and cur.seq == 2
    code, out, _ = _run(capsys, "fsck", str(folder), "--repair")
    assert code == 0 and "accepted as lost" in out
    with curalog.open(folder) as cur:  # accepted: writable again
        assert cur.seq == 2


def test_tail_state_never_claims_more_than_the_log(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
        state = read_state(cur.log_path)
        assert state is not None and state.n_events == 1
        assert state.head == cur.head_hash.hex()
    # a state of another log (same name, re-created) is ignored
    log = curalog.default_log_path(folder)
    lock = log.with_name("main.log.lock")
    saved = lock.read_bytes()
    log.unlink()
    with curalog.open(folder) as cur:
        cur.merge([3, 4])
    lock.write_bytes(saved)
    assert read_log(log).lost is None


def test_torn_tail_recovery_prints_one_line_naming_the_side_file(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 2)
    data = log.read_bytes()
    last = read_log(log).offsets[-1]
    log.write_bytes(data + data[last:-7])  # an interrupted third append
    code, _, err = _run(capsys, "label", str(folder), "7", "--group", "good")
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("curalog: recovered: "), err
    side = Path(lines[0].split("kept in ")[1].rstrip(")"))
    assert side.exists() and side.read_bytes() == data[last:-7]
    assert [e.seq for e in read_log(log).events] == [1, 2, 3]


def test_the_tui_shows_the_recovery(tmp_path):
    pytest.importorskip("textual")
    import asyncio

    from curalog_tui.app import CuralogApp
    from curalog_tui.session import open_session

    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 2)
    data = log.read_bytes()
    log.write_bytes(data + data[read_log(log).offsets[-1] : -7])

    async def run() -> list[str]:
        session = open_session(folder)
        app = CuralogApp(session.cur, owns_curation=True, cursor_blink=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            return [str(n.message) for n in app._notifications]

    shown = asyncio.run(run())
    assert any("incomplete last record" in m and ".torn-" in m for m in shown), shown


# ---------------------------------------------------------------------- 4. fsck on a torn tail
def test_fsck_checks_the_replay_of_the_prefix_even_with_a_torn_tail(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = tmp_path / "crafted.log"
    body = {"clusters": [1, 2], "new": 999, "n_spikes": 10}  # resolves to id 20, not 999
    data = faultlib.craft_log(None, faultlib.header_for(folder), [("merge", body)])
    first = faultlib.prefix_counts(data)[0]
    log.write_bytes(data + data[first:-5])  # plus a torn tail (a partial copy of a frame)
    code, out, _ = _run(capsys, "fsck", str(folder), "--log", str(log))
    assert code == 1
    assert "torn last record" in out and "replay FAILED" in out


# ---------------------------------------------------------------------- 5. repair
def _flip(log: Path, pos: int) -> bytes:
    buf = bytearray(log.read_bytes())
    buf[pos] ^= 0x40
    log.write_bytes(bytes(buf))
    return bytes(buf)


def test_repair_sets_every_later_intact_record_aside_with_its_reason(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 5)
    offsets = read_log(log).offsets
    damaged = _flip(log, offsets[1] + 40)  # inside record 2 of 5
    ins = inspect_log(log)
    assert [r.seq for r in ins.intact_after] == [3, 4, 5]
    code, out, _ = _run(capsys, "fsck", str(folder))
    assert code == 1 and "3 intact record(s) follow the damage (events 3-5)" in out
    code, out, _ = _run(capsys, "fsck", str(folder), "--repair")
    assert code == 0
    line = [ln for ln in out.splitlines() if ln.startswith("repaired:")]
    assert len(line) == 1 and "kept 1 events" in line[0] and "3 intact later record(s)" in line[0]
    side = Path(line[0].split(" are in ")[1])
    items = read_salvage(side)
    assert items[0]["kind"] == "curalog-salvage" and items[0]["cut_at"] == offsets[1]
    records = [i for i in items if i["kind"] == "record"]
    assert [r["seq"] for r in records] == [3, 4, 5]
    assert all("after the damage" in r["reason"] for r in records)
    assert items[-1]["kind"] == "raw" and items[-1]["data"] == damaged[offsets[1] :]
    assert len(read_log(log).events) == 1
    with curalog.open(folder) as cur:  # writable again, at the valid prefix
        assert cur.seq == 1


def test_a_flipped_header_checksum_is_recoverable(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 3)
    before = read_log(log)
    _flip(log, 15)  # the header CRC field (bytes 14-17)
    with pytest.raises(LogError):
        read_log(log)
    code, out, _ = _run(capsys, "fsck", str(folder))
    assert code == 1 and "DAMAGED header" in out and "3 intact records follow" in out
    code, out, _ = _run(capsys, "fsck", str(folder), "--repair")
    assert code == 0 and "the header was intact" in out
    after = read_log(log)
    assert after.head_hash == before.head_hash and len(after.events) == 3


def test_a_damaged_header_payload_is_rebuilt_from_the_dataset(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 3)
    with curalog.open(folder, readonly=True) as cur:
        want = faultlib.state_digest(cur)
    data = log.read_bytes()
    pos = data.index(b"curalog-log")
    _flip(log, pos + 3)  # inside the header payload: its checksum and record 1's link fail
    code, out, _ = _run(capsys, "fsck", str(folder))
    assert code == 1 and "DAMAGED header" in out
    code, out, _ = _run(capsys, "fsck", str(folder), "--repair")
    assert code == 0 and "rebuilt from the dataset, 3 intact events re-chained" in out
    with curalog.open(folder) as cur:
        assert cur.seq == 3 and faultlib.state_digest(cur) == want
    assert list(log.parent.glob("main.log.salvage-*-header"))


# ---------------------------------------------------------------------- 8. planted symlinks
def test_a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 1)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    lock = log.with_name("main.log.lock")
    lock.unlink()
    lock.symlink_to(victim)
    with pytest.raises(LogError, match="cannot use it as the lock file"):
        curalog.open(folder)
    assert victim.read_text() == "keep me"


def test_side_files_never_open_a_planted_name(tmp_path, monkeypatch):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 2)
    data = log.read_bytes()
    last = read_log(log).offsets[-1]
    log.write_bytes(data + data[last:-7])
    monkeypatch.setattr(logmod.time, "strftime", lambda *a: "T")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    planted = log.with_name(f"main.log.torn-T-{os.getpid()}")
    planted.symlink_to(victim)
    with curalog.open(folder) as cur:
        assert cur.seq == 2
        assert any(f"{planted}-2" in w for w in cur.warnings), cur.warnings
    assert victim.read_text() == "keep me" and planted.is_symlink()


# ---------------------------------------------------------------------- 12. exit statuses
def test_log_on_a_damaged_log_says_so_and_exits_1(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 3)
    _flip(log, read_log(log).offsets[1] + 30)
    code, out, err = _run(capsys, "log", str(folder))
    assert code == 1
    assert len(out.strip().splitlines()) == 1  # the valid event
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "damaged" in lines[0] and "fsck" in lines[0]
    code, _, _ = _run(capsys, "info", str(folder))
    assert code == 1


def test_fsck_exit_status_is_one_scheme(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 2)
    assert _run(capsys, "fsck", str(folder))[0] == 0
    good = log.read_bytes()
    _flip(log, 20)  # header payload
    assert _run(capsys, "fsck", str(folder))[0] == 1
    log.write_bytes(good)
    _flip(log, read_log(log).offsets[1] + 30)  # a record
    assert _run(capsys, "fsck", str(folder))[0] == 1
    assert _run(capsys, "fsck", str(folder), "--log", str(tmp_path / "none.log"))[0] == 2


# ---------------------------------------------------------------------- 13. stale temp files
def test_temp_files_of_dead_writers_are_removed_on_open(tmp_path):
    from curalog.atomic import _host_tag

    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 1)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = [
        log.parent / f".exports.json.{_host_tag()}-{dead_pid}.ab12cd34.tmp",
        folder / f".spike_clusters.npy.{_host_tag()}-{dead_pid}.zz99yy88.tmp",
    ]
    live = folder / f".cluster_group.tsv.{_host_tag()}-{os.getpid()}.qq11ww22.tmp"
    other_host = folder / f".cluster_info.tsv.000000-{dead_pid}.qq11ww22.tmp"
    for p in [*stale, live, other_host]:
        p.write_bytes(b"partial")
    with curalog.open(folder) as cur:
        removed = [w for w in cur.warnings if "temp file left by a killed writer" in w]
    assert not any(p.exists() for p in stale)
    assert live.exists() and other_host.exists()
    assert len(removed) == 2


def test_export_removes_stale_temp_files_in_its_target(tmp_path):
    from curalog.atomic import _host_tag

    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    _log_with(folder, 1)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = out / f".spike_clusters.npy.{_host_tag()}-{int(dead.stdout)}.ab12cd34.tmp"
    stale.write_bytes(b"partial")
    with curalog.open(folder, readonly=True) as cur:
        export_phy(cur, out)
    assert not stale.exists()


# ---------------------------------------------------------------------- backward compatibility
def test_a_log_written_by_curalog_0_1_still_opens(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "small", 500, 8, 3)
    log = curalog.default_log_path(folder)
    log.parent.mkdir()
    shutil.copy(LEGACY_LOG, log)
    assert read_state(log) is None  # 0.1 left no tail state
    assert _run(capsys, "fsck", str(folder))[0] == 0
    with curalog.open(folder) as cur:
        assert cur.seq == 8 and cur.head_hash.hex() == LEGACY_HEAD
        assert faultlib.state_digest(cur) == LEGACY_DIGEST
        cur.label(cur.cluster_ids[:1].tolist(), group="noise")
    scan = read_log(log)
    assert len(scan.events) == 9 and scan.events[7].hash.hex() == LEGACY_HEAD
    assert read_state(log).n_events == 9


def test_a_damaged_format_field_is_damage_not_a_newer_version(tmp_path, capsys):
    """Found by the campaign: a flipped bit in the u16 format field (outside the header
    checksum) read as "log format 33 is newer than this curalog"; fsck said 2, repair refused."""
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = _log_with(folder, 2)
    before = read_log(log).head_hash
    buf = bytearray(log.read_bytes())
    buf[8] ^= 0x20  # format 1 -> 33
    log.write_bytes(bytes(buf))
    with pytest.raises(LogCorruptError, match="disagrees with the header"):
        read_log(log)
    assert _run(capsys, "fsck", str(folder))[0] == 1
    code, out, _ = _run(capsys, "fsck", str(folder), "--repair")
    assert code == 0 and "format field damaged" in out
    assert read_log(log).head_hash == before


def test_repair_never_turns_a_file_that_is_not_a_log_into_one(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    other = tmp_path / "notes.txt"
    other.write_text("my notes, not a log\n" * 20)
    code, out, _ = _run(capsys, "fsck", str(folder), "--log", str(other))
    assert code == 1 and "nothing to recover" in out
    code, _, err = _run(capsys, "fsck", str(folder), "--log", str(other), "--repair")
    assert code == 2 and "not a curalog log" in err
    assert other.read_text() == "my notes, not a log\n" * 20
