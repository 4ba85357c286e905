"""Combining branches: disjoint work equals one history; conflicts are listed, never guessed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curalog.cli.program import main
from curalog.curation import default_log_path, open_curation
from curalog.history import (
    COMBINE_NOTE,
    HistoryError,
    branch_note,
    combine,
    common_prefix,
    create_branch,
    diff_histories,
)
from curalog.store.log import read_log

from conftest import snapshot_dir, write_folder

N_T = 12
TEMPLATES = np.tile(np.arange(N_T), 10)


def spikes_of(t: int) -> np.ndarray:
    return np.flatnonzero(t == TEMPLATES)


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    folder = write_folder(tmp_path / "ds", TEMPLATES, n_templates=N_T)
    with open_curation(folder, author="lead") as cur:
        cur.merge([0, 1])  # 12, shared by both branches
    create_branch(folder, "a")
    create_branch(folder, "b")
    return folder


def on(ds: Path, name: str):
    return open_curation(ds, default_log_path(ds, name), author=name)


def a_work(cur) -> None:
    cur.merge([2, 3])  # 13
    cur.label([12], group="good")
    cur.split(spikes_of(4)[:3])  # 14, 15
    cur.undo()  # ids 14, 15 are burned
    cur.label([5], group="mua")


def b_work(cur) -> None:
    new = cur.split(spikes_of(6)[:4])  # 13, 14 in b
    merged = cur.merge([new[0], 7])  # 15: depends on an id new in b
    cur.label([merged], group="noise")
    cur.merge([8, 9])  # 16
    cur.undo()
    cur.redo()
    cur.label([10], field="comment", value="double-check")
    cur.label([11], group="good")
    cur.undo()  # not effective: dropped


def b_effective(cur) -> None:
    """B's effective actions, as one curator would do them after A's."""
    new = cur.split(spikes_of(6)[:4])
    merged = cur.merge([new[0], 7])
    cur.label([merged], group="noise")
    cur.merge([8, 9])
    cur.label([10], field="comment", value="double-check")


def test_disjoint_branches_combine_to_one_history(ds: Path, tmp_path: Path) -> None:
    with on(ds, "a") as cur:
        a_work(cur)
    with on(ds, "b") as cur:
        b_work(cur)
    res = combine(ds, "a", "b", "ab", author="lead")
    assert res.conflicts == [] and res.already_in_a == []
    assert [b for b, _ in res.applied] == [3, 4, 5, 6, 9]  # b's seqs (2 is b's branch note)
    # The same curation in one history: A's events, then B's effective actions.
    one = tmp_path / "one.log"
    with open_curation(ds, one) as cur:
        cur.merge([0, 1])
        a_work(cur)
        b_effective(cur)
        expected_sc = cur.spike_clusters.copy()
        expected_labels = cur.labels.snapshot()
        expected_counter = cur.state.counter
    with open_curation(ds, res.path, readonly=True) as cur:
        assert np.array_equal(cur.spike_clusters, expected_sc)  # ids included
        assert cur.labels.snapshot() == expected_labels
        assert cur.state.counter == expected_counter
        assert cur.group(18) == "noise" and cur.labels.get("comment", 10) == "double-check"
    assert res.id_map == {13: 16, 14: 17, 15: 18, 16: 19}
    assert diff_histories(ds, "ab", str(one)).outcome.is_equal


def test_combined_branch_log_structure(ds: Path) -> None:
    with on(ds, "a") as cur:
        a_work(cur)
    with on(ds, "b") as cur:
        b_work(cur)
    res = combine(ds, "a", "b", "ab")
    scan_a, scan_ab = read_log(default_log_path(ds, "a")), read_log(res.path)
    assert scan_ab.corruption is None and not scan_ab.torn
    assert common_prefix(scan_a, scan_ab) == len(scan_a.events)
    assert common_prefix(read_log(default_log_path(ds, "b")), scan_ab) == 1  # the shared merge
    last = scan_ab.events[-1]
    assert last.type == "note" and last.body["kind"] == COMBINE_NOTE
    assert last.body["data"]["applied"] == [list(p) for p in res.applied]
    note = branch_note(scan_ab.events)
    assert note["name"] == "ab" and note["parent"]["name"] == "a" and note["combine"]["from"] == "b"
    assert res.head == scan_ab.head_hash.hex()
    applied = [e for e in scan_ab.events if e.body.get("meta", {}).get("combined_from") == "b"]
    assert [e.body["meta"]["b_seq"] for e in applied] == [3, 4, 6]
    assert sorted(p.name for p in (ds / ".curalog").iterdir() if "ab" in p.name) == ["ab.log"]


def test_conflicts_are_listed_not_guessed(ds: Path) -> None:
    with on(ds, "a") as cur:
        cur.merge([2, 3])  # 13
        cur.label([5], group="good")
        cur.label([9], group="mua")
    with on(ds, "b") as cur:
        new = cur.split(spikes_of(2)[:2])  # seq 3: A merged 2 away -> conflict
        cur.merge([new[0], 4])  # seq 4: depends on the conflicting split
        cur.label([5], group="noise")  # seq 5: A said good
        cur.label([6, 9], group="mua")  # seq 6: 6 applies, 9 already mua in A
        cur.merge([7, 8])  # seq 7: untouched by A -> applied
        cur.label([new[1], 10], group="good")  # seq 8: partially conflicting
    res = combine(ds, "a", "b", "ab")
    by_seq = {c.seq: c for c in res.conflicts}
    assert sorted(by_seq) == [3, 4, 5, 8]
    assert "cluster 2 was changed by a #3" in by_seq[3].reason
    assert by_seq[3].clusters == [2]
    assert "comes from conflicting #3" in by_seq[4].reason
    assert "group of 5: a has 'good', b changed None to 'noise'" in by_seq[5].reason
    assert by_seq[8].clusters == [14]  # b's remainder of 2, from the conflicting split
    assert [b for b, _ in res.applied] == [6, 7, 8]  # 8: cluster 10 only
    with open_curation(ds, res.path, readonly=True) as cur:
        assert cur.group(5) == "good" and cur.group(6) == "mua" and cur.group(9) == "mua"
        assert cur.group(10) == "good"
        assert 13 in cur.state and sorted(cur.spikes(13)) == sorted(
            np.r_[spikes_of(2), spikes_of(3)]
        )
        merged = int(cur.spike_clusters[spikes_of(7)[0]])
        assert np.array_equal(cur.spikes(merged), np.sort(np.r_[spikes_of(7), spikes_of(8)]))
        assert 4 in cur.state  # the dependent merge was not applied
    note = read_log(res.path).events[-1]
    assert note.body["data"]["conflicts"] == [3, 4, 5, 8]


def test_same_change_on_both_sides_maps_ids(ds: Path) -> None:
    with on(ds, "a") as cur:
        cur.merge([10, 11])  # 13
        cur.merge([2, 3])  # 14
    with on(ds, "b") as cur:
        cur.merge([2, 3])  # 13 in b: the same clusters as a's 14
        cur.label([13], group="good")
        cur.merge([13, 4])  # 14 in b
    res = combine(ds, "a", "b", "ab")
    assert res.conflicts == [] and res.already_in_a == [3]
    assert res.id_map == {13: 14, 14: 15}
    with open_curation(ds, res.path, readonly=True) as cur:
        assert cur.group(15) == "good"  # inherited from the label b put on its (= a's) merge
        assert np.array_equal(
            cur.spikes(15), np.sort(np.r_[spikes_of(2), spikes_of(3), spikes_of(4)])
        )


def test_undo_of_shared_history_is_a_conflict(ds: Path) -> None:
    with on(ds, "b") as cur:
        cur.undo()  # undoes the shared merge 0 + 1 -> 12 (seq 3 in b)
        cur.label([0], group="good")
        cur.merge([4, 5])
    res = combine(ds, "a", "b", "ab")
    assert [(c.seq, c.type) for c in res.conflicts] == [(3, "undo"), (4, "label")]
    assert "undoes #1 of the common history" in res.conflicts[0].reason
    assert "cluster 0 does not exist" in res.conflicts[1].reason
    assert [b for b, _ in res.applied] == [5]


def test_combine_logs_started_separately(ds: Path, tmp_path: Path) -> None:
    carol = tmp_path / "carol.log"
    with open_curation(ds, carol, author="carol") as cur:
        cur.merge([4, 5])
        cur.label([6], group="good")
    res = combine(ds, "main", str(carol), "merged")
    assert res.base_seq == 0 and res.conflicts == [] and len(res.applied) == 2
    with open_curation(ds, res.path, readonly=True) as cur:
        assert 12 in cur.state and cur.group(6) == "good"
        assert np.array_equal(cur.spikes(13), np.sort(np.r_[spikes_of(4), spikes_of(5)]))


def test_combine_errors_write_nothing(ds: Path) -> None:
    before = snapshot_dir(ds)
    with pytest.raises(HistoryError, match="already exists"):
        combine(ds, "a", "b", "main")
    with pytest.raises(HistoryError, match="invalid branch name"):
        combine(ds, "a", "b", "x/y")
    with pytest.raises(HistoryError, match="no branch 'zz'"):
        combine(ds, "a", "zz", "c")
    path = default_log_path(ds, "b")
    with on(ds, "b") as cur:
        cur.merge([2, 3])
        cur.merge([4, 5])
    raw = bytearray(path.read_bytes())
    raw[read_log(path).offsets[2] + 20] ^= 0xFF
    path.write_bytes(bytes(raw))
    before = snapshot_dir(ds)
    with pytest.raises(HistoryError, match="damaged"):
        combine(ds, "a", "b", "c")
    assert snapshot_dir(ds) == before


def test_cli_combine(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with on(ds, "a") as cur:
        cur.merge([2, 3])
    with on(ds, "b") as cur:
        cur.merge([4, 5])
    assert main(["combine", str(ds), "a", "b", "--into", "ab", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (
        doc["branch"] == "ab" and doc["conflicts"] == [] and doc["applied"] == [[3, 5]]
    )  # a: merge, note, merge; ab: + note
    with on(ds, "b") as cur:
        cur.label([2], group="noise")
    assert main(["combine", str(ds), "a", "b", "--into", "ab2"]) == 1
    out = capsys.readouterr().out
    assert "conflicts" in out and "cluster 2 was changed by a #3" in out
    assert main(["combine", str(ds), "a", "b", "--into", "ab2"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_assign_events_are_rebased_with_fresh_ids(ds: Path) -> None:
    """B's imported (assign) events carry absolute ids: they are remapped to fresh ones."""
    from curalog.io.phy_import import reproduce_assignment

    with on(ds, "a") as cur:
        cur.merge([2, 3])  # 13
        cur.merge([4, 5])  # 14
    with on(ds, "b") as cur:
        target = cur.spike_clusters.copy()
        target[np.isin(target, [6, 7])] = 40
        sp = spikes_of(8)
        target[sp[:3]] = 41
        target[sp[3:]] = 42
        reproduce_assignment(cur, target)  # two assign events: 6+7 -> 40, 8 -> 41/42
        cur.label([41], group="good")
    res = combine(ds, "a", "b", "ab")
    assert res.conflicts == [] and res.id_map == {40: 15, 41: 16, 42: 17}
    with open_curation(ds, res.path, readonly=True) as cur:
        assert np.array_equal(cur.spikes(15), np.sort(np.r_[spikes_of(6), spikes_of(7)]))
        assert np.array_equal(cur.spikes(16), spikes_of(8)[:3]) and cur.group(16) == "good"
        assert 40 not in cur.state and cur.state.counter == 18
