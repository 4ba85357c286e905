"""Diff of two histories: contingency table, adjusted Rand index, classification, JSON, CLI."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import curalog.history.contingencies as contingency_tables
from curalog.cli.program import main
from curalog.curation import default_log_path, make_header, open_curation
from curalog.dataset import load_dataset
from curalog.history import (
    DIFF_SCHEMA,
    HistoryError,
    adjusted_rand_index,
    contingency,
    create_branch,
    diff_histories,
    outcome_diff,
)
from curalog.store.log import create_log

from conftest import write_folder

TEMPLATES = np.tile(np.arange(6), 5)  # spike i is in template i % 6; 5 spikes each


def brute_force_ari(a, b) -> float:
    """Pair counting over every pair of spikes (Hubert & Arabie 1985)."""
    a, b = list(a), list(b)
    n = len(a)
    both = only_a = only_b = neither = 0
    for i, j in itertools.combinations(range(n), 2):
        sa, sb = a[i] == a[j], b[i] == b[j]
        both += sa and sb
        only_a += sa and not sb
        only_b += sb and not sa
        neither += not sa and not sb
    pairs = both + only_a + only_b + neither
    if pairs == 0:
        return 1.0
    same_a, same_b = both + only_a, both + only_b
    expected = Fraction(same_a * same_b, pairs)
    maximum = Fraction(same_a + same_b, 2)
    if maximum == expected:
        return 1.0
    return float((both - expected) / (maximum - expected))


labelings = st.integers(min_value=0, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 5), min_size=n, max_size=n),
        st.lists(st.integers(0, 1000), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(labelings)
def test_ari_matches_pair_counting(pair) -> None:
    a, b = (np.asarray(x, dtype=np.int64) for x in pair)
    assert adjusted_rand_index(a, b) == pytest.approx(brute_force_ari(a, b), abs=1e-12)


def test_ari_matches_sklearn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for n, ka, kb in [(1, 1, 1), (2, 1, 2), (50, 3, 7), (500, 20, 20), (5000, 100, 3)]:
        a = rng.integers(0, ka, n)
        b = rng.integers(0, kb, n)
        assert adjusted_rand_index(a, b) == pytest.approx(
            sklearn_metrics.adjusted_rand_score(a, b), abs=1e-12
        )
    a = rng.integers(0, 30, 2000)
    b = np.where(rng.random(2000) < 0.9, a, rng.integers(0, 30, 2000))
    assert adjusted_rand_index(a, b) == pytest.approx(
        sklearn_metrics.adjusted_rand_score(a, b), abs=1e-12
    )


def test_ari_special_cases() -> None:
    assert adjusted_rand_index(np.zeros(0, int), np.zeros(0, int)) == 1.0
    assert adjusted_rand_index(np.zeros(5, int), np.zeros(5, int)) == 1.0
    assert adjusted_rand_index(np.arange(5), np.arange(5) + 10) == 1.0  # relabelled singletons
    assert adjusted_rand_index(np.zeros(4, int), np.arange(4)) == 0.0
    x = np.array([0, 0, 1, 1])
    assert adjusted_rand_index(x, np.array([7, 7, 3, 3])) == 1.0
    assert adjusted_rand_index(x, np.array([0, 1, 0, 1])) == pytest.approx(-0.5)


@pytest.mark.parametrize("mode", ["dense", "sparse", "large-ids"])
def test_contingency_paths_agree(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 50, 10_000).astype(np.int32)
    b = (a // 3 + rng.integers(0, 2, 10_000) * 100).astype(np.int32)
    if mode == "sparse":
        monkeypatch.setattr(contingency_tables, "DENSE_LIMIT", 0)
    if mode == "large-ids":
        monkeypatch.setattr(contingency_tables, "LUT_LIMIT", 10)
        a = a.astype(np.int64) * 1_000_000_007 % (2**31 - 1)
    t = contingency(a, b)
    keys, counts = np.unique(np.stack([a, b], 1), axis=0, return_counts=True)
    assert np.array_equal(np.stack([t.ids_a[t.rows], t.ids_b[t.cols]], 1), keys)
    assert np.array_equal(t.counts, counts)
    assert t.counts.sum() == 10_000
    assert np.array_equal(t.ids_a, np.unique(a)) and np.array_equal(
        t.sizes_b, np.unique(b, return_counts=True)[1]
    )


def test_contingency_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="spikes"):
        contingency(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="negative"):
        contingency(np.array([0, -1]), np.array([0, 0]))
    with pytest.raises(ValueError, match="integers"):
        contingency(np.array([0.5]), np.array([0]))


def test_outcome_diff_on_arrays() -> None:
    base = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4])
    a = np.array([9, 9, 9, 9, 9, 9, 2, 2, 5, 6, 4, 4])  # merged 0+1, split 3
    b = np.array([0, 0, 0, 1, 1, 1, 7, 7, 3, 3, 8, 8])  # renamed 2 -> 7 and 4 -> 8
    d = outcome_diff(
        a, b, base, {"group": {2: "good", 4: "mua"}}, {"group": {7: "noise", 8: "mua"}}
    )
    assert d.identical == [(2, 7, 2), (4, 8, 2)]
    assert [x.to_dict() for x in d.differences] == [
        {"kind": "merge", "by": "a", "a_clusters": [9], "b_clusters": [0, 1], "n_spikes": 6},
        {"kind": "split", "by": "a", "a_clusters": [5, 6], "b_clusters": [3], "n_spikes": 2},
    ]
    assert [x.to_dict() for x in d.label_disagreements] == [
        {"a_cluster": 2, "b_cluster": 7, "field": "group", "a": "good", "b": "noise"}
    ]
    assert d.agreement == pytest.approx(4 / 12)
    assert d.adjusted_rand_index == pytest.approx(brute_force_ari(a, b))
    assert not d.is_equal
    # Without a base, a one-to-many difference is reported as a merge by the coarse side.
    assert [x.kind for x in outcome_diff(a, b).differences] == ["merge", "merge"]
    # Swapping the sides swaps "by".
    assert [(x.kind, x.by) for x in outcome_diff(b, a, base).differences] == [
        ("merge", "b"),
        ("split", "b"),
    ]


# ---------------------------------------------------------------------- histories
@pytest.fixture
def ds(tmp_path: Path) -> Path:
    folder = write_folder(tmp_path / "ds", TEMPLATES, n_templates=6)
    # an empty main log (a session that writes nothing leaves no log behind)
    create_log(default_log_path(folder), make_header(load_dataset(folder), "base"))
    return folder


def _two_sides(ds: Path, a_actions, b_actions, *, at: int | None = None):
    """Run ``a_actions(cur)`` on branch a and ``b_actions(cur)`` on b, both forked from main."""
    create_branch(ds, "a", at=at)
    create_branch(ds, "b", at=at)
    for name, actions in (("a", a_actions), ("b", b_actions)):
        with open_curation(ds, default_log_path(ds, name), author=name) as cur:
            actions(cur)
    return diff_histories(ds, "a", "b")


def test_identical_histories(ds: Path) -> None:
    with open_curation(ds) as cur:
        cur.merge([0, 1])
        cur.label([2], group="good")
    create_branch(ds, "copy")
    d = diff_histories(ds, "main", "copy")
    assert d.same_root and d.common_prefix == 2
    assert d.only_a == [] and [e.type for e in d.only_b] == ["note"]
    o = d.outcome
    assert o.is_equal and o.agreement == 1.0 and o.adjusted_rand_index == 1.0
    assert o.to_dict() == {
        "n_spikes": 30,
        "n_clusters": {"a": 5, "b": 5},
        "agreement": 1.0,
        "adjusted_rand_index": 1.0,
        "identical": {"count": 5, "n_spikes": 30, "renamed": []},
        "merges": [],
        "splits": [],
        "other": [],
        "label_disagreements": [],
    }


def test_pure_merge_disagreement(ds: Path) -> None:
    d = _two_sides(ds, lambda c: c.merge([0, 1]), lambda c: None)
    assert d.common_prefix == 0
    assert [e.summary() for e in d.only_a][1:] == ["merge 0, 1 -> 6 (10 spikes)"]
    o = d.outcome.to_dict()
    assert o["merges"] == [
        {"kind": "merge", "by": "a", "a_clusters": [6], "b_clusters": [0, 1], "n_spikes": 10}
    ]
    assert o["splits"] == [] and o["other"] == [] and o["label_disagreements"] == []
    assert o["identical"] == {"count": 4, "n_spikes": 20, "renamed": []}
    assert o["agreement"] == pytest.approx(20 / 30)
    merged = TEMPLATES.copy()
    merged[merged < 2] = 6
    assert o["adjusted_rand_index"] == pytest.approx(brute_force_ari(merged, TEMPLATES))


def test_split_disagreement(ds: Path) -> None:
    spikes_of_2 = np.flatnonzero(TEMPLATES == 2)  # 2, 8, 14, 20, 26
    d = _two_sides(ds, lambda c: None, lambda c: c.split(spikes_of_2[:2]))
    o = d.outcome.to_dict()
    assert o["splits"] == [
        {"kind": "split", "by": "b", "a_clusters": [2], "b_clusters": [6, 7], "n_spikes": 5}
    ]
    assert o["merges"] == [] and o["other"] == []
    assert o["identical"]["count"] == 5 and o["agreement"] == pytest.approx(25 / 30)


def test_label_disagreement_and_renamed_identical_clusters(ds: Path) -> None:
    def side_a(c):
        c.merge([0, 1])  # 6
        c.merge([2, 3])  # 7
        c.label([6], group="good")
        c.label([4], field="comment", value="drift")

    def side_b(c):
        c.merge([2, 3])  # 6
        c.merge([0, 1])  # 7
        c.label([7], group="noise")
        c.label([5], group="mua")

    o = _two_sides(ds, side_a, side_b).outcome
    assert o.differences == []
    assert o.to_dict()["identical"] == {"count": 4, "n_spikes": 30, "renamed": [[6, 7], [7, 6]]}
    assert [x.to_dict() for x in o.label_disagreements] == [
        {"a_cluster": 4, "b_cluster": 4, "field": "comment", "a": "drift", "b": None},
        {"a_cluster": 5, "b_cluster": 5, "field": "group", "a": None, "b": "mua"},
        {"a_cluster": 6, "b_cluster": 7, "field": "group", "a": "good", "b": "noise"},
    ]
    assert o.agreement == 1.0 and o.adjusted_rand_index == 1.0 and not o.is_equal


def test_other_difference_and_compound_cases(ds: Path) -> None:
    o = _two_sides(ds, lambda c: c.merge([0, 1]), lambda c: c.merge([1, 2])).outcome
    assert [x.to_dict() for x in o.differences] == [
        {"kind": "other", "by": None, "a_clusters": [2, 6], "b_clusters": [0, 6], "n_spikes": 15}
    ]


def test_split_vs_merge_of_the_same_cluster_is_other(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ds2", TEMPLATES, n_templates=6)
    o = _two_sides(
        folder, lambda c: c.split(np.flatnonzero(TEMPLATES == 0)[:2]), lambda c: c.merge([0, 1])
    ).outcome
    assert [(x.kind, x.a_clusters, x.b_clusters) for x in o.differences] == [
        ("other", [1, 6, 7], [6])
    ]


def test_base_is_the_common_prefix_not_the_templates(ds: Path) -> None:
    """A merge of two halves split in the shared history is a merge, not a split."""
    with open_curation(ds) as cur:
        cur.split(np.flatnonzero(TEMPLATES == 0)[:2])  # 0 -> 6, 7 (shared)
    o = _two_sides(ds, lambda c: c.merge([6, 7]), lambda c: None).outcome
    assert [x.to_dict() for x in o.differences] == [
        {"kind": "merge", "by": "a", "a_clusters": [8], "b_clusters": [6, 7], "n_spikes": 5}
    ]
    # b changed nothing since the fork: same outcome as main
    o = diff_histories(ds, "b", "main").outcome
    assert o.is_equal


def test_independent_logs_have_no_common_prefix(ds: Path, tmp_path: Path) -> None:
    other_log = tmp_path / "elsewhere" / "carol.log"
    with open_curation(ds) as cur:
        cur.merge([0, 1])
    with open_curation(ds, other_log, author="carol") as cur:
        cur.merge([0, 1])
    d = diff_histories(ds, "main", str(other_log))
    assert not d.same_root and d.common_prefix == 0 and d.base_head == ""
    assert len(d.only_a) == 1 and len(d.only_b) == 1
    assert d.outcome.is_equal
    assert d.b.name == str(other_log)


def test_diff_errors(ds: Path, tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no branch 'nope'"):
        diff_histories(ds, "main", "nope")
    with pytest.raises(HistoryError, match="no such log file"):
        diff_histories(ds, "main", str(tmp_path / "missing.log"))
    other = write_folder(tmp_path / "other", np.tile(np.arange(6), 4), n_templates=6)
    with open_curation(other) as cur:
        cur.note("test", "a log for another dataset")  # an empty log is not kept
    with pytest.raises(HistoryError, match="another dataset"):
        diff_histories(ds, "main", str(default_log_path(other)))


def test_json_schema_is_stable(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_sides(
        ds,
        lambda c: (c.merge([0, 1]), c.label([2], group="good")),
        lambda c: c.label([2], group="mua"),
    )
    assert main(["diff", str(ds), "a", "b", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == DIFF_SCHEMA == "curalog-diff/1"
    assert set(doc) == {"schema", "dataset", "a", "b", "events", "outcome"}
    assert set(doc["a"]) == {"name", "log", "events", "head", "seq", "clusters", "damaged"}
    assert set(doc["events"]) == {"same_root", "common_prefix", "base_head", "only_a", "only_b"}
    assert set(doc["outcome"]) == {
        "n_spikes",
        "n_clusters",
        "agreement",
        "adjusted_rand_index",
        "identical",
        "merges",
        "splits",
        "other",
        "label_disagreements",
    }
    ev = doc["events"]["only_a"][1]
    assert set(ev) == {"seq", "type", "time", "author", "hash", "summary", "clusters"}
    assert ev["type"] == "merge" and ev["clusters"] == [0, 1, 6] and ev["author"] == "a"
    assert doc["outcome"]["label_disagreements"] == [
        {"a_cluster": 2, "b_cluster": 2, "field": "group", "a": "good", "b": "mua"}
    ]
    assert doc["a"]["name"] == "a" and doc["b"]["clusters"] == 6


def test_cli_diff_tables(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_sides(ds, lambda c: c.merge([0, 1]), lambda c: c.label([3], group="noise"))
    assert main(["diff", str(ds), "a", "b"]) == 0
    out = capsys.readouterr().out
    assert "merge by a" in out and "adjusted Rand index" in out and "events only in b" in out
    assert "label 3 group=noise" in out
    assert main(["diff", str(ds), "a", "zz"]) == 2
    assert "no branch 'zz'" in capsys.readouterr().err
