"""``synth --drift`` against the real Kilosort 4 drift run (../shared/data/ks4-drift-train):
the statistics of how the sorter split the neurons (piece counts, sizes, similarities, time
courses, per-spike position scatter) must stay close to what the real run shows, so that the
synthetic tests of the merge proposals keep guarding what the real data showed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curalog.analysis.evaluate import default_truth, load_truth
from curalog.synth.generator import synthesize

REPO = Path(__file__).resolve().parents[1]
KS4_TRAIN = next(
    (
        p / "ks4-drift-train"
        for p in (REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data")
        if (p / "ks4-drift-train" / "gt_match_counts.tsv").exists()
    ),
    None,
)


def split_statistics(folder: Path) -> dict[str, Any]:
    """How a sorting split its true units (truth: synth_truth.json or the gt_*.tsv tables)."""
    uot = load_truth(default_truth(folder)).unit_of_template
    times = np.load(folder / "spike_times.npy").reshape(-1)
    tpl = np.load(folder / "spike_templates.npy").reshape(-1).astype(np.int64)
    sim = np.load(folder / "similar_templates.npy").astype(np.float64)
    n = np.bincount(tpl, minlength=uot.shape[0])
    uot = np.pad(uot, (0, max(0, n.shape[0] - uot.shape[0])), constant_values=-1)
    live = [int(t) for t in np.flatnonzero(n > 0)]
    pieces = Counter(int(uot[t]) for t in live if uot[t] >= 0)
    split = [k for k in pieces.values() if k > 1]
    spikes_of = Counter()
    for t in live:
        if uot[t] >= 0:
            spikes_of[int(uot[t])] += int(n[t])
    of_split = [t for t in live if uot[t] >= 0 and pieces[int(uot[t])] > 1]
    share = [n[t] / spikes_of[int(uot[t])] for t in of_split]
    s = sim[np.ix_(live, live)].copy()
    np.fill_diagonal(s, -np.inf)
    index = {t: i for i, t in enumerate(live)}
    top, hit = [], []
    for t in of_split:
        j = int(np.argmax(s[index[t]]))
        top.append(s[index[t], j])
        hit.append(uot[live[j]] == uot[t])
    pairs = [(a, b) for a in of_split for b in of_split if a < b and uot[a] == uot[b]]
    pair_sim = [max(sim[a, b], sim[b, a]) for a, b in pairs]
    bins = np.minimum(times * 128 // (times.max() + 1), 127)
    course = np.zeros((n.shape[0], 128))
    np.add.at(course, (tpl, bins), 1.0)
    course /= np.maximum(course.sum(axis=1, keepdims=True), 1.0)
    overlap = [np.minimum(course[a], course[b]).sum() for a, b in pairs]
    out = {
        "split_share": len(split) / len(pieces),
        "pieces_median": float(np.median(split)),
        "piece_share_median": float(np.median(share)),
        "top1_similarity_median": float(np.median(top)),
        "top1_hit_rate": float(np.mean(hit)),
        "pair_similarity_median": float(np.median(pair_sim)),
        "pair_overlap_median": float(np.median(overlap)),
    }
    pos_file = folder / "spike_positions.npy"
    if pos_file.exists():  # per-spike scatter around each piece's mean in 1/128 of the run
        pos = np.load(pos_file).astype(np.float64)
        sds = []
        for t in of_split:
            m = tpl == t
            key = bins[m]
            p = pos[m]
            mean = np.zeros((128, 2))
            cnt = np.bincount(key, minlength=128).astype(np.float64)
            np.add.at(mean, key, p)
            mean /= np.maximum(cnt, 1.0)[:, None]
            sds.append(float(np.sqrt(((p - mean[key]) ** 2).sum(axis=1).mean() / 2.0)))
        out["position_sd_median"] = float(np.median(sds))
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = []
    for seed in (41, 42):
        folder = tmp_path_factory.mktemp("real") / f"s{seed}"
        synthesize(folder, 500_000, 100, seed=seed, n_channels=64, drift=True)
        out.append(split_statistics(folder))
    return out


#: (statistic, tolerance): |synthetic - real| <= tolerance, or a ratio within [1/t, t] for "x"
TOLERANCES = {
    "split_share": 0.2,
    "pieces_median": "x2.5",
    "piece_share_median": "x2",
    "top1_similarity_median": 0.03,
    "top1_hit_rate": 0.08,
    "pair_similarity_median": 0.05,
    "pair_overlap_median": 0.1,
    "position_sd_median": "x2",
}


@pytest.mark.skipif(
    KS4_TRAIN is None, reason="../shared/data/ks4-drift-train is not beside the repository"
)
def test_synthetic_drift_splits_like_the_real_kilosort4_run(
    synthetic: list[dict[str, Any]],
) -> None:
    assert KS4_TRAIN is not None
    real = split_statistics(KS4_TRAIN)
    # the real run, as measured (README: 14 of 24 units split, 58 pieces)
    assert real["split_share"] == pytest.approx(14 / 24)
    assert real["top1_hit_rate"] == pytest.approx(53 / 58)
    for stats in synthetic:
        for key, tol in TOLERANCES.items():
            got, want = stats[key], real[key]
            if isinstance(tol, str):
                r = float(tol[1:])
                assert want / r <= got <= want * r, (key, got, want)
            else:
                assert abs(got - want) <= tol, (key, got, want)
