"""Label propagation (phy's rule) and exact undo (where phy loses or leaks labels)."""

import numpy as np
import pytest

import curalog
from curalog.errors import InvalidActionError
from curalog.io.phy import export_phy

from conftest import write_folder


@pytest.fixture
def folder(tmp_path):
    # cluster 0: 3 spikes, 1: 2 spikes, 2: 4 spikes, 3: 5 spikes
    return write_folder(tmp_path / "d", [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3])


def test_merge_takes_unique_or_largest_parent_value(folder):
    with curalog.open(folder) as cur:
        cur.label([0], group="good")
        cur.label([1], group="mua")
        new = cur.merge([0, 1])  # good (3 spikes) beats mua (2 spikes)
        assert cur.group(new) == "good"
        new2 = cur.merge([2, 3])  # no values: nothing
        assert cur.group(new2) is None
        cur.label([new2], field="quality", value=3)
        merged = cur.merge([new, new2])  # group: only 'good' -> good; quality: only 3 -> 3
        assert cur.group(merged) == "good"
        assert cur.labels.get("quality", merged) == 3


def test_split_children_inherit(folder):
    with curalog.open(folder) as cur:
        cur.label([3], group="good")
        new = cur.split([9, 10])
        assert [cur.group(c) for c in new] == ["good", "good"]


def test_phy_bug_a_inherited_labels_survive_label_undo(folder):
    """phy: merge good+mua, merge, split, move child to noise, undo => children lose 'good'."""
    with curalog.open(folder) as cur:
        cur.label([0], group="good")
        cur.label([1], group="mua")
        a = cur.merge([0, 1])
        b = cur.merge([2, a])
        c1, c2 = cur.split(cur.spikes(b)[:2])
        assert cur.group(c1) == cur.group(c2) == "good"
        cur.label([c1], group="noise")
        cur.undo()
        assert cur.group(c1) == "good" and cur.group(c2) == "good"


def test_phy_bug_b_merge_undo_does_not_leak_labels(folder):
    with curalog.open(folder) as cur:
        cur.label([3], group="good")
        new = cur.merge([3, 2])
        assert cur.group(new) == "good"
        cur.undo()
        assert cur.group(2) is None and cur.group(3) == "good"
        cur.redo()
        assert cur.group(new) == "good"


def test_undo_restores_exact_previous_values_and_replay_agrees(folder):
    with curalog.open(folder) as cur:
        cur.label([0, 1], group="good")
        cur.label([1, 2], group="noise")
        cur.label([0], field="comment", value="drift?")
        cur.label([0], field="comment", value=None)
        cur.undo()
        assert cur.labels.get("comment", 0) == "drift?"
        cur.undo()
        assert cur.labels.get("comment", 0) is None
        cur.undo()
        assert (cur.group(0), cur.group(1), cur.group(2)) == ("good", "good", None)
        snapshot = cur.labels.snapshot()
    with curalog.open(folder, readonly=True) as again:
        assert again.labels.snapshot() == snapshot


def test_unsorted_clears_and_invalid_labels_are_refused(folder):
    with curalog.open(folder) as cur:
        cur.label([0], group="good")
        cur.label([0], group="unsorted")
        assert cur.group(0) is None
        n = cur.seq
        for kwargs in (
            {"group": "great"},
            {"field": "bad\tname", "value": 1},
            {"field": "x", "value": float("nan")},
        ):
            with pytest.raises(InvalidActionError):
                cur.label([0], **kwargs)
        with pytest.raises(InvalidActionError, match="unknown cluster"):
            cur.label([77], group="good")
        assert cur.seq == n  # nothing was logged


def test_sorter_columns_are_read_only_and_not_inherited(phy_template):
    (phy_template / "cluster_KSLabel.tsv").write_text("cluster_id\tKSLabel\n1\tgood\n2\tmua\n")
    with curalog.open(phy_template) as cur:
        with pytest.raises(InvalidActionError, match="sorter column"):
            cur.label([1], field="KSLabel", value="mua")
        new = cur.merge([1, 2])
        assert "KSLabel" not in cur.labels.fields
        assert cur.dataset.sorter_columns["KSLabel"] == {1: "good", 2: "mua"}
        assert new not in cur.dataset.sorter_columns["KSLabel"]


def test_base_groups_come_from_the_log_header_not_the_current_file(folder):
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tgood\n")
    with curalog.open(folder) as cur:
        cur.label([2], group="mua")
        export_phy(cur)  # rewrites cluster_group.tsv
    (folder / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n3\tnoise\n"
    )  # edited behind our back
    with curalog.open(folder, readonly=True) as cur:
        assert cur.group(0) == "good" and cur.group(2) == "mua" and cur.group(3) is None
    assert np.array_equal(curalog.replay(folder), np.load(folder / "spike_templates.npy"))


def test_free_fields_stay_labels_after_export(phy_template):
    """An exported cluster_comment.tsv must not turn 'comment' into a read-only sorter column."""
    with curalog.open(phy_template) as cur:
        cur.label([1], field="comment", value="noisy")
        export_phy(cur)
    assert (phy_template / "cluster_comment.tsv").exists()
    (phy_template / "cluster_KSLabel.tsv").write_text(
        "cluster_id\tKSLabel\n1\tgood\n"
    )  # appears later
    with curalog.open(phy_template) as cur:
        cur.label([1], field="comment", value="fine")  # still a label field
        assert cur.labels.get("comment", 1) == "fine"
        assert "KSLabel" not in cur.dataset.sorter_columns  # not there when curation started
