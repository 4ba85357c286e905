"""Tests of curalog.analysis.evaluate: proposals measured against the synthetic ground truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curalog.analysis.evaluate import Truth, TruthError, _Tracker, evaluate, load_truth, phy_top1
from curalog.analysis.proposals import DEFAULT_MIN_SCORE, ProposalEngine
from curalog.curation import open_curation
from curalog.synth.generator import synthesize


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "ks"
    synthesize(out, 600_000, 120, seed=5, n_channels=64, drift=True)
    return out


def test_done_means_on_realistic_data(ds: Path) -> None:
    ev = evaluate(ds, thresholds=(0.6, DEFAULT_MIN_SCORE))
    assert [o.min_score for o in ev.outcomes] == [0.6, DEFAULT_MIN_SCORE]
    at = ev.outcomes[-1]
    assert at.impure_merges == 0 and at.impure_clusters == 0 and at.pair_precision == 1.0
    assert at.excess <= 0.10 and at.pair_recall > 0.9
    assert ev.best() is not None and ev.best().min_score >= DEFAULT_MIN_SCORE
    high = ev.outcomes[0]
    assert high.merges < at.merges and high.real_clusters > at.real_clusters
    assert len(ev.merges) == at.merges and not any(m["impure"] for m in ev.merges)
    assert not (ds / ".curalog").exists()  # only a scratch log was written
    uot = np.asarray(json.loads((ds / "synth_truth.json").read_text())["unit_of_template"])
    assert at.n_units == ev.n_units == len(set(uot[uot >= 0].tolist()))


def test_phy_top1_is_phys_ranking(ds: Path, tmp_path: Path) -> None:
    truth = load_truth(ds / "synth_truth.json")
    with open_curation(ds, tmp_path / "x.log", sync=False) as cur:
        eng = ProposalEngine(cur)
        counts = np.bincount(np.asarray(cur.dataset.spike_templates), minlength=120)
        got = phy_top1(eng, truth, counts)
        src = truth.source_of_template
        per_unit = Counter(int(s) for s in src if s >= 0)
        hits = split = 0
        for c in cur.cluster_ids:
            c = int(c)
            if src[c] < 0:
                continue
            top = eng.stats.similar(c, limit=1)[0][0]  # phy's rule, as the stats engine ranks
            if per_unit[int(src[c])] >= 2:
                split += 1
                hits += int(src[top] == src[c])
    assert got["split_clusters"] == split and got["top1_hit_rate"] == pytest.approx(hits / split)


def test_tracker_measures() -> None:
    truth = Truth(np.array([0, 0, 1, -1, -1, 1]))  # templates 3 and 4: two noise sources
    tr = _Tracker(truth, np.array([10, 5, 7, 3, 2, 4]))
    o = tr.outcome(0.5)
    assert (o.clusters, o.real_clusters, o.n_units, o.excess) == (6, 4, 2, 1.0)
    assert (o.pair_precision, o.pair_recall) == (1.0, 0.0)
    assert not tr.merge([0, 1], 6)
    assert not tr.merge([2, 5], 7)
    o = tr.outcome(0.4)
    assert (o.real_clusters, o.excess, o.pair_recall, o.impure_merges) == (2, 0.0, 1.0, 0)
    assert tr.merge([3, 4], 8)  # two noise sources are different sources
    assert tr.merge([6, 7], 9)
    o = tr.outcome(0.3)
    assert (o.impure_merges, o.impure_clusters, o.real_clusters) == (2, 2, 1)
    assert o.pair_precision == pytest.approx(2 / (6 + 1)) and o.pair_recall == 1.0


def test_truth_errors(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="no such file"):
        load_truth(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"units": []}')
    with pytest.raises(TruthError, match="unit_of_template"):
        load_truth(bad)
    short = tmp_path / "short.json"
    short.write_text('{"unit_of_template": [0, 1]}')
    folder = tmp_path / "ks"
    synthesize(folder, 5_000, 8, seed=1, n_channels=16)
    with pytest.raises(TruthError, match="covers 2 templates"):
        evaluate(folder, short)


# ---------------------------------------------------------------- ground-truth tables (real runs)
REPO = Path(__file__).resolve().parents[1]
#: ../shared/data beside the repository (a worktree sits one level deeper: ../../shared/data)
KS4_TRAIN = next(
    (
        p / "ks4-drift-train"
        for p in (REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data")
        if (p / "ks4-drift-train" / "gt_match_counts.tsv").exists()
    ),
    None,
)


def _write_gt(folder: Path, counts: list[list[float]], sizes: list[int], cols=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cols = list(range(len(sizes))) if cols is None else cols
    lines = ["\t" + "\t".join(str(c) for c in cols)]
    lines += [f"{g}\t" + "\t".join(str(v) for v in row) for g, row in enumerate(counts)]
    (folder / "gt_match_counts.tsv").write_text("\n".join(lines) + "\n")
    (folder / "gt_sorted_sizes.tsv").write_text(
        "\t0\n" + "".join(f"{c}\t{s}\n" for c, s in zip(cols, sizes, strict=True))
    )
    return folder


def test_ground_truth_tables_piece_rule(tmp_path: Path) -> None:
    # sorted 0: 90 of 100 from unit 1 (piece); 1: 79 of 100 from unit 0 (not a piece, < 80 %);
    # 2: exactly 80 % from unit 0 (piece); 3: no spike matched (noise)
    gt = _write_gt(tmp_path / "gt", [[5, 79, 40, 0], [90, 10, 10, 0]], [100, 100, 50, 7])
    for where in (gt, gt / "gt_match_counts.tsv"):
        truth = load_truth(where)
        assert truth.unit_of_template.tolist() == [1, -1, 0, -1]
        assert truth.info["pieces"] == 2 and truth.info["not_pieces"] == [1, 3]
    # column ids are the sorter's template ids, not positions; missing ids are nobody's
    gt2 = _write_gt(tmp_path / "gt2", [[0, 30], [50, 0]], [50, 30], cols=[4, 1])
    assert load_truth(gt2).unit_of_template.tolist() == [-1, 0, -1, -1, 1]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "gt_sorted_sizes.tsv").unlink(), "gt_sorted_sizes.tsv: no such file"),
        (lambda d: (d / "gt_match_counts.tsv").write_text("\t0\n0\tx\n"), "not a number"),
        (lambda d: (d / "gt_match_counts.tsv").write_text("\t0\t1\n0\t1\n"), "line 2 has 2 fields"),
        (
            lambda d: (d / "gt_sorted_sizes.tsv").write_text("\t0\n0\t5\n"),
            "no size for sorted unit 1",
        ),
        (lambda d: (d / "gt_match_counts.tsv").write_text("\ta\n0\t1\n"), "integer unit ids"),
    ],
)
def test_ground_truth_tables_errors(tmp_path: Path, mutate: Any, message: str) -> None:
    gt = _write_gt(tmp_path / "gt", [[5, 1]], [5, 1])
    mutate(gt)
    with pytest.raises(TruthError, match=message):
        load_truth(gt)


@pytest.mark.skipif(
    KS4_TRAIN is None, reason="../shared/data/ks4-drift-train is not beside the repository"
)
def test_ks4_training_folder_truth() -> None:
    assert KS4_TRAIN is not None
    truth = load_truth(KS4_TRAIN)  # the README's numbers
    info = truth.info
    assert (info["sorted_units"], info["pieces"], info["units_with_pieces"]) == (73, 68, 24)
    assert info["split_units"] == 14 and len(info["not_pieces"]) == 5
    ev = evaluate(KS4_TRAIN, thresholds=(0.9, DEFAULT_MIN_SCORE))  # the folder's own gt_*.tsv
    assert (
        ev.truth["pieces"] == 68 and ev.outcomes[0].real_clusters >= ev.outcomes[-1].real_clusters
    )
    before = sum(1 for u in truth.unit_of_template if u >= 0)
    assert ev.n_units == 24 and before == 68
    o = ev.outcomes[-1]
    assert sum(o.clusters_per_unit.values()) == o.real_clusters
    assert set(o.clusters_per_unit) == {int(u) for u in truth.unit_of_template if u >= 0}
