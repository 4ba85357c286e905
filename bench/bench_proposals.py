#!/usr/bin/env python3
"""Benchmark of the merge proposals (curalog/proposals.py): speed at 50 M spikes and quality
on realistic synthetic data, beside phy's similarity ranking.

Speed (``--speed``, one dataset, default 50 M spikes / 1,000 templates / 384 channels with
``drift=True``, built once in ``bench/data/``):

* open the folder (a scratch log) and compute every proposal with a cold engine (the one
  pass over all spikes, phy's similarity table, every top-k list, every pair's score);
* the same with a second engine (page cache warm);
* accept the best proposal ``--reps`` times: median time until the proposals are up to date
  again, with the engine's counters (pairs scored per merge, passes over the spikes);
* accept everything above the documented threshold (``DEFAULT_MIN_SCORE``), merges per
  second (scratch log without fsync).

Quality (``--quality``): :func:`curalog.analysis.evaluate.evaluate` on a set of realistic
synthetic datasets (``drift=True``, several seeds, sizes and probe lengths): clusters left
versus true units, impure merges, pair precision and recall at every threshold of a sweep,
and phy's top-1 hit rate on the same data. Prints Markdown tables (docs/PROPOSALS.md).

Usage::

    .venv/bin/python bench/bench_proposals.py                  # both
    .venv/bin/python bench/bench_proposals.py --speed --spikes 10000000
    .venv/bin/python bench/bench_proposals.py --quality --json out.json
    .venv/bin/python bench/bench_proposals.py --held-out       # seeds not used for tuning

The machine is shared and noisy: timings vary by tens of percent from run to run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from curalog.analysis.evaluate import evaluate  # noqa: E402
from curalog.analysis.proposals import DEFAULT_MIN_SCORE, ProposalEngine  # noqa: E402
from curalog.curation import open_curation  # noqa: E402
from curalog.synth.generator import synthesize  # noqa: E402

#: (name, n_spikes, n_templates, n_channels, seed) of the quality datasets
QUALITY_SETS = (
    ("d0", 5_000_000, 400, 96, 0),
    ("d1", 5_000_000, 400, 96, 1),
    ("d2", 5_000_000, 400, 96, 2),
    ("d3", 5_000_000, 400, 96, 3),
    ("e1", 20_000_000, 1000, 384, 10),
    ("e2", 10_000_000, 1000, 192, 11),
    ("e3", 3_000_000, 250, 96, 12),
    ("big", 50_000_000, 1000, 384, 0),
)
#: datasets generated after the parameters were set (``--held-out``)
HELD_OUT_SETS = (
    ("h20", 5_000_000, 400, 96, 20),
    ("h21", 5_000_000, 400, 96, 21),
    ("h22", 10_000_000, 600, 192, 22),
    ("h23", 10_000_000, 600, 192, 23),
    ("h24", 20_000_000, 1000, 384, 24),
)
THRESHOLDS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)


def drift_dataset(
    data_dir: Path, n_spikes: int, n_templates: int, n_channels: int, seed: int
) -> Path:
    path = data_dir / f"synth-drift-{n_spikes / 1e6:g}M-{n_templates}-{n_channels}ch-s{seed}"
    if not (path / "spike_times.npy").exists():
        if path.exists():
            shutil.rmtree(path)
        t = time.perf_counter()
        synthesize(path, n_spikes, n_templates, seed=seed, n_channels=n_channels, drift=True)
        print(f"  built {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
    return path


def speed(folder: Path, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"folder": folder.name}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cur = open_curation(folder, Path(tmp) / "a.log", sync=False)
        out["open_s"] = time.perf_counter() - t
        out["clusters"] = cur.n_clusters
        out["spikes"] = int(cur.dataset.n_spikes)
        try:
            t = time.perf_counter()
            eng = ProposalEngine(cur)
            props = eng.proposals()
            out["first_proposals_s"] = time.perf_counter() - t
            out["candidates"] = len(props)
            out["above_threshold"] = sum(p.score >= DEFAULT_MIN_SCORE for p in props)
            t = time.perf_counter()
            ProposalEngine((cur.dataset, cur.state)).proposals()
            out["warm_proposals_s"] = time.perf_counter() - t
            times, scored = [], []
            for _ in range(reps):
                best = eng.next()
                if best is None:
                    break
                eng.reset_counters()
                t = time.perf_counter()
                eng.accept(best)
                eng.proposals()
                times.append(time.perf_counter() - t)
                c = eng.counters
                assert c["full_passes"] == 0 and c["profiles_computed"] == 0
                scored.append(c["pairs_scored"])
            out["accept_update_ms_median"] = 1000 * statistics.median(times)
            out["accept_update_ms_max"] = 1000 * max(times)
            out["pairs_scored_per_merge_median"] = statistics.median(scored)
            out["pairs_scored_per_merge_max"] = max(scored)
        finally:
            cur.close()
        with open_curation(folder, Path(tmp) / "b.log", sync=False) as cur:
            eng = ProposalEngine(cur)
            eng.proposals()
            t = time.perf_counter()
            done = eng.accept_all(DEFAULT_MIN_SCORE)
            dt = time.perf_counter() - t
            out["accept_all_merges"] = len(done)
            out["accept_all_s"] = dt
            out["clusters_after"] = cur.n_clusters
    return out


def quality(
    data_dir: Path, sets: tuple[tuple[str, int, int, int, int], ...]
) -> list[dict[str, Any]]:
    rows = []
    for name, n, t, c, seed in sets:
        folder = drift_dataset(data_dir, n, t, c, seed)
        ev = evaluate(folder, thresholds=THRESHOLDS)
        d = ev.to_dict()
        d.pop("merges")
        d["name"] = name
        d["spec"] = {"n_spikes": n, "n_templates": t, "n_channels": c, "seed": seed}
        truth = json.loads((folder / "synth_truth.json").read_text())
        d["n_twins"] = len(truth["near_duplicates"])
        d["n_split_units"] = sum(len(u["templates"]) > 1 for u in truth["units"])
        d["max_pieces"] = max(len(u["templates"]) for u in truth["units"])
        rows.append(d)
        at = next(o for o in ev.outcomes if o.min_score == DEFAULT_MIN_SCORE)
        print(
            f"  {name}: {at.real_clusters} clusters for {at.n_units} units ({100 * at.excess:+.1f} %), "
            f"{at.impure_merges} impure merges at {DEFAULT_MIN_SCORE:g}; phy top-1 "
            f"{100 * ev.phy['top1_hit_rate']:.1f} %",
            flush=True,
        )
    return rows


def markdown(speed_row: dict[str, Any] | None, rows: list[dict[str, Any]]) -> str:
    out: list[str] = []
    if speed_row:
        s = speed_row
        out += [
            f"Speed ({s['spikes']:,} spikes, {s['clusters']} clusters, `{s['folder']}`):",
            "",
            "| step | time |",
            "|---|---|",
            f"| open the folder (scratch log) | {s['open_s']:.2f} s |",
            f"| every proposal, cold engine (one pass over all spikes + scoring {s['candidates']} candidate pairs) | {s['first_proposals_s']:.2f} s |",
            f"| every proposal, second engine (page cache warm) | {s['warm_proposals_s']:.2f} s |",
            f"| accept one proposal and update the proposals (median / max) | {s['accept_update_ms_median']:.1f} / {s['accept_update_ms_max']:.1f} ms |",
            f"| pairs scored per accepted merge (median / max) | {s['pairs_scored_per_merge_median']:g} / {s['pairs_scored_per_merge_max']} |",
            f"| accept all at {DEFAULT_MIN_SCORE:g}: {s['accept_all_merges']} merges, {s['clusters']} -> {s['clusters_after']} clusters | {s['accept_all_s']:.1f} s |",
            "",
        ]
    if rows:
        out += [
            f"Quality at the documented threshold {DEFAULT_MIN_SCORE:g} (greedy accept-all on a scratch log):",
            "",
            "| dataset | spikes | templates | channels | true units (split / twins / max pieces) | clusters left | excess | impure merges | pair precision | pair recall | phy top-1 hit rate | phy top-1 would mix |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            o = next(o for o in r["outcomes"] if o["min_score"] == DEFAULT_MIN_SCORE)
            sp = r["spec"]
            out.append(
                f"| {r['name']} (seed {sp['seed']}) | {sp['n_spikes'] / 1e6:g} M | {sp['n_templates']} | {sp['n_channels']} | "
                f"{r['n_units']} ({r['n_split_units']} / {r['n_twins']} / {r['max_pieces']}) | {o['real_clusters']} | "
                f"{100 * o['excess']:+.1f} % | {o['impure_merges']} | {o['pair_precision']:.3f} | {o['pair_recall']:.3f} | "
                f"{100 * r['phy']['top1_hit_rate']:.1f} % | {100 * r['phy']['top1_impure_rate']:.1f} % |"
            )
        out += [
            "",
            "Threshold sweep (excess clusters over true units / impure merges):",
            "",
            "| min score | " + " | ".join(r["name"] for r in rows) + " |",
            "|---|" + "---|" * len(rows),
        ]
        for i, thr in enumerate(THRESHOLDS):
            cells = []
            for r in rows:
                o = r["outcomes"][i]
                assert o["min_score"] == thr
                cells.append(f"{100 * o['excess']:+.0f} % / {o['impure_merges']}")
            out.append(f"| {thr:g} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--speed", action="store_true", help="only the speed part")
    ap.add_argument("--quality", action="store_true", help="only the quality part")
    ap.add_argument(
        "--held-out",
        action="store_true",
        help="the quality part on the held-out seeds (docs/PROPOSALS.md) instead",
    )
    ap.add_argument("--spikes", type=float, default=50e6)
    ap.add_argument("--templates", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=384)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = ap.parse_args()
    both = not args.speed and not args.quality and not args.held_out
    args.data_dir.mkdir(parents=True, exist_ok=True)
    speed_row = None
    rows: list[dict[str, Any]] = []
    if args.speed or both:
        folder = drift_dataset(args.data_dir, int(args.spikes), args.templates, args.channels, 0)
        print(f"speed on {folder.name}", flush=True)
        speed_row = speed(folder, args.reps)
    if args.quality or args.held_out or both:
        print("quality", flush=True)
        rows = quality(args.data_dir, HELD_OUT_SETS if args.held_out else QUALITY_SETS)
    print()
    print(markdown(speed_row, rows))
    if args.json:
        args.json.write_text(
            json.dumps({"speed": speed_row, "quality": rows}, indent=1, default=float)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
