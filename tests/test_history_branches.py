"""Branches: byte-identical prefixes, branch notes, listing, common prefix, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from curalog.cli.program import main
from curalog.curation import default_log_path, open_curation, replay
from curalog.errors import CuralogError, LogCorruptError
from curalog.history import (
    BRANCH_NOTE,
    HistoryError,
    branch_note,
    common_prefix,
    create_branch,
    list_branches,
    resolve_log,
    validate_branch_name,
)
from curalog.store.log import read_log

from conftest import snapshot_dir, write_folder


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    """Six clusters of five spikes (ids 0..5), interleaved in time."""
    return write_folder(tmp_path / "ds", np.tile(np.arange(6), 5), n_templates=6)


def _curate_main(folder: Path) -> None:
    with open_curation(folder, author="alice") as cur:
        cur.merge([0, 1])  # 6
        cur.label([2], group="good")
        cur.split(np.flatnonzero(cur.spike_clusters == 3)[:2])  # 7, 8
        cur.undo()
        cur.merge([4, 5])  # 9


def test_branch_is_a_byte_copy_of_the_parent_prefix_plus_a_note(ds: Path) -> None:
    _curate_main(ds)
    main_log = default_log_path(ds)
    info = create_branch(ds, "bob", at=3, author="bob")
    parent = read_log(main_log)
    child = read_log(info.path)
    raw_parent, raw_child = main_log.read_bytes(), info.path.read_bytes()
    assert raw_child[: parent.offsets[3]] == raw_parent[: parent.offsets[3]]
    assert child.header_hash == parent.header_hash
    assert [e.hash for e in child.events[:3]] == [e.hash for e in parent.events[:3]]
    assert len(child.events) == 4
    note = child.events[-1]
    assert note.type == "note" and note.body["kind"] == BRANCH_NOTE and note.author == "bob"
    assert note.prev == parent.events[2].hash
    data = branch_note(child.events)
    assert data is not None
    assert data["name"] == "bob"
    assert data["parent"] == {"name": "main", "seq": 3, "head": parent.events[2].hash.hex()}
    assert info.parent == data["parent"]
    assert common_prefix(parent, child) == 3
    assert common_prefix(child, parent) == 3
    # The branch replays to the parent's state at the fork.
    assert np.array_equal(replay(ds, info.path), replay(ds, main_log, upto=3))


def test_branch_defaults_to_the_head_and_continues_independently(ds: Path) -> None:
    _curate_main(ds)
    info = create_branch(ds, "x")
    assert info.parent is not None and info.parent["seq"] == 5
    with open_curation(ds, info.path, author="x") as cur:
        new = cur.merge([2, 6])
        assert new == 10  # the counter continues from the parent's (ids 7, 8 were burned)
    with open_curation(ds, author="alice") as cur:
        assert cur.merge([2, 3]) == 10  # both branches allocate 10 independently
    a, b = read_log(default_log_path(ds)), read_log(info.path)
    assert common_prefix(a, b) == 5
    assert b.corruption is None and len(b.events) == 7


def test_branch_at_zero_and_nested_branches(ds: Path) -> None:
    _curate_main(ds)
    b0 = create_branch(ds, "fresh", at=0)
    scan0 = read_log(b0.path)
    assert len(scan0.events) == 1 and common_prefix(scan0, read_log(default_log_path(ds))) == 0
    assert np.array_equal(replay(ds, b0.path), np.tile(np.arange(6), 5))
    create_branch(ds, "b1", at=2)
    with open_curation(ds, default_log_path(ds, "b1")) as cur:
        cur.merge([2, 3])
    b2 = create_branch(ds, "b2", from_branch="b1")
    s_main, s_b1, s_b2 = (read_log(default_log_path(ds, n)) for n in ("main", "b1", "b2"))
    assert common_prefix(s_b2, s_b1) == len(s_b1.events) == 4
    assert common_prefix(s_b2, s_main) == 2
    assert branch_note(s_b2.events)["parent"]["name"] == "b1"  # the last branch note is its own
    assert b2.parent == {"name": "b1", "seq": 4, "head": s_b1.events[-1].hash.hex()}


def test_list_branches(ds: Path) -> None:
    assert list_branches(ds) == []
    _curate_main(ds)
    create_branch(ds, "zed", at=1)
    create_branch(ds, "alpha", at=2)
    (ds / ".curalog" / "broken.log").write_bytes(b"not a curalog log at all, just text")
    infos = list_branches(ds)
    assert [b.name for b in infos] == ["main", "alpha", "broken", "zed"]
    main_info, alpha = infos[0], infos[1]
    assert main_info.parent is None and main_info.n_events == 5
    assert main_info.head == read_log(default_log_path(ds)).head_hash.hex()
    assert alpha.parent["seq"] == 2 and alpha.n_events == 3 and alpha.root == main_info.root
    assert infos[2].error and "bad magic" in infos[2].error
    assert json.loads(json.dumps([b.to_dict() for b in infos]))[1]["parent"]["name"] == "main"


def test_branch_creates_main_when_there_is_no_history(ds: Path) -> None:
    info = create_branch(ds, "first")
    assert default_log_path(ds).exists()
    assert info.parent is not None and info.parent["seq"] == 0


@pytest.mark.parametrize("name", ["", "a/b", "../x", "x.log", ".hidden", "a b", "-x", "x" * 101])
def test_invalid_branch_names(name: str) -> None:
    with pytest.raises(HistoryError):
        validate_branch_name(name)


def test_branch_errors_write_nothing(ds: Path) -> None:
    _curate_main(ds)
    before = snapshot_dir(ds)
    with pytest.raises(HistoryError, match="already exists"):
        create_branch(ds, "main")
    with pytest.raises(HistoryError, match="--at 9"):
        create_branch(ds, "x", at=9)
    with pytest.raises(HistoryError, match="--at -1"):
        create_branch(ds, "x", at=-1)
    with pytest.raises(HistoryError, match="no branch 'nope'"):
        create_branch(ds, "x", from_branch="nope")
    with pytest.raises(HistoryError, match="invalid branch name"):
        create_branch(ds, "a/b")
    assert snapshot_dir(ds) == before


def test_branch_from_a_log_of_another_dataset_is_refused(ds: Path, tmp_path: Path) -> None:
    other = write_folder(tmp_path / "other", np.tile(np.arange(6), 6), n_templates=6)
    with open_curation(other) as cur:
        cur.merge([0, 1])
    with pytest.raises(CuralogError, match="another dataset"):
        create_branch(ds, "x", from_branch=default_log_path(other))
    assert not default_log_path(ds, "x").exists()


def test_branch_file_is_portable(ds: Path, tmp_path: Path) -> None:
    """A branch copied elsewhere still replays and still shares its prefix with main."""
    _curate_main(ds)
    info = create_branch(ds, "bob", at=4)
    with open_curation(ds, info.path) as cur:
        cur.merge([2, 3])
    moved = tmp_path / "mail" / "bob-from-colleague.log"
    moved.parent.mkdir()
    shutil.copy(info.path, moved)
    assert resolve_log(ds, str(moved)) == moved
    assert common_prefix(read_log(moved), read_log(default_log_path(ds))) == 4
    with open_curation(ds, moved, readonly=True) as cur:
        assert cur.seq == 6 and 9 in cur.state  # ids 7, 8 were burned by the undone split


def test_branch_of_a_damaged_log_copies_its_valid_prefix(ds: Path) -> None:
    _curate_main(ds)
    path = default_log_path(ds)
    scan = read_log(path)
    raw = bytearray(path.read_bytes())
    raw[scan.offsets[3] + 20] ^= 0xFF  # damage record 4 of 5
    path.write_bytes(bytes(raw))
    info = create_branch(ds, "rescue", at=3)
    assert read_log(info.path).corruption is None
    with pytest.raises(HistoryError, match="--at 5"):
        create_branch(ds, "rescue2", at=5)
    with pytest.raises(LogCorruptError):
        open_curation(ds)  # the damaged main itself stays refused for writing


def test_cli_branch_and_branches(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _curate_main(ds)
    assert main(["branch", str(ds), "bob", "--at", "2", "--author", "bob"]) == 0
    assert "created branch bob from main at #2" in capsys.readouterr().out
    assert main(["branch", str(ds), "carol", "--from", "bob"]) == 0
    capsys.readouterr()
    assert main(["branches", str(ds), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in listed] == ["main", "bob", "carol"]
    assert listed[2]["parent"]["name"] == "bob" and listed[2]["parent"]["seq"] == 3
    assert main(["branches", str(ds)]) == 0
    out = capsys.readouterr().out
    assert "bob" in out and "main #2" in out
    assert main(["branch", str(ds), "bob"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["branches", str(ds), "--log", "x.log"]) == 2
