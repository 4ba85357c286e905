#!/usr/bin/env python3
"""Core benchmark: curalog's state updates beside phy's ``Clustering`` in the same run.

For each dataset size (default 10 M and 50 M spikes, 1,000 templates) this script:

* builds the synthetic dataset once (``bench/data/``, reused afterwards);
* times merge, split, undo and redo on curalog's cluster state and through the whole
  Curation API (which adds the log append + fsync), and the same calls on phy's
  ``Clustering`` (phy 2.1, when installed), reporting medians and the ratio;
* times opening the folder and replaying a 10,000-event log to a ready state, and the
  peak memory of that (a fresh subprocess, ``ru_maxrss``), against the docs/DESIGN.md target
  of 2 x the bytes of spike_times + spike_templates.

Usage::

    python bench/bench_core.py                 # 10 M and 50 M
    python bench/bench_core.py --sizes 1e6     # quick check
    python bench/bench_core.py --no-phy

The machine is shared and noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import curalog  # noqa: E402
from curalog.clustering import ClusterState  # noqa: E402
from curalog.synth.generator import synthesize  # noqa: E402

N_TEMPLATES = 1000
REPS = 21


def dataset(n_spikes: int, data_dir: Path) -> Path:
    path = data_dir / f"synth-{n_spikes // 1_000_000}M-{N_TEMPLATES}"
    if not (path / "spike_templates.npy").exists():
        if path.exists():
            shutil.rmtree(path)
        t = time.perf_counter()
        synthesize(path, n_spikes=n_spikes, n_templates=N_TEMPLATES, seed=1, n_channels=96)
        print(f"  built {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
    return path


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def pick_ops(
    state_sizes: dict[int, int], rng: np.random.Generator, n: int
) -> list[tuple[int, int]]:
    """Pairs of typical (median-sized) clusters to merge."""
    ids = np.array(sorted(state_sizes, key=lambda c: state_sizes[c]))
    mid = ids[len(ids) // 4 : 3 * len(ids) // 4]
    pairs = []
    for _ in range(n):
        a, b = rng.choice(mid, 2, replace=False)
        pairs.append((int(a), int(b)))
    return pairs


def bench_state(spike_templates: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """merge / split / undo / redo on curalog's ClusterState.

    Each timing includes reading ``state.spike_clusters`` afterwards, which forces the
    deferred writes: the array is as up to date as phy's after each call.
    """
    t = time.perf_counter()
    state = ClusterState(spike_templates)
    build = time.perf_counter() - t
    times: dict[str, list[float]] = {"merge": [], "split": [], "undo": [], "redo": []}
    used: set[int] = set()
    for _ in range(REPS):
        sizes = {c: n for c, n in state.sizes().items() if c not in used}
        a, b = pick_ops(sizes, rng, 1)[0]
        used.update((a, b))
        t = time.perf_counter()
        change = state.resolve_merge([a, b])
        state.apply(change)
        _ = state.spike_clusters
        times["merge"].append(time.perf_counter() - t)
        c = change.added_ids[0]
        spikes = state.spikes(c)
        sel = spikes[: len(spikes) // 3]
        t = time.perf_counter()
        sp = state.resolve_split(sel)
        state.apply(sp)
        _ = state.spike_clusters
        times["split"].append(time.perf_counter() - t)
        t = time.perf_counter()
        state.revert(sp)
        _ = state.spike_clusters
        times["undo"].append(time.perf_counter() - t)
        t = time.perf_counter()
        state.apply(sp)
        _ = state.spike_clusters
        times["redo"].append(time.perf_counter() - t)
    out = {k: median_ms(v) for k, v in times.items()}
    out["build"] = build * 1000
    return out


def bench_api(
    folder: Path, rng: np.random.Generator, log: Path, sync: bool = True
) -> dict[str, float]:
    """The same actions through Curation: validate, append (+ fsync when ``sync``), apply."""
    times: dict[str, list[float]] = {"merge": [], "split": [], "undo": [], "redo": []}
    with curalog.open(folder, log, sync=sync) as cur:
        used: set[int] = set()
        for _ in range(REPS):
            sizes = {c: n for c, n in cur.state.sizes().items() if c not in used}
            a, b = pick_ops(sizes, rng, 1)[0]
            used.update((a, b))
            t = time.perf_counter()
            new = cur.merge([a, b])
            _ = cur.spike_clusters
            times["merge"].append(time.perf_counter() - t)
            sel = cur.spikes(new)[: cur.state.n_spikes_of(new) // 3]
            t = time.perf_counter()
            cur.split(sel)
            _ = cur.spike_clusters
            times["split"].append(time.perf_counter() - t)
            t = time.perf_counter()
            cur.undo()
            _ = cur.spike_clusters
            times["undo"].append(time.perf_counter() - t)
            t = time.perf_counter()
            cur.redo()
            _ = cur.spike_clusters
            times["redo"].append(time.perf_counter() - t)
    return {k: median_ms(v) for k, v in times.items()}


def bench_phy(spike_templates: np.ndarray, rng: np.random.Generator) -> dict[str, float] | None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from phy.cluster.clustering import Clustering
    except Exception:
        return None
    sc = spike_templates.astype(np.int32).copy()
    t = time.perf_counter()
    c = Clustering(sc)
    build = time.perf_counter() - t
    times: dict[str, list[float]] = {"merge": [], "split": [], "undo": [], "redo": []}
    used: set[int] = set()
    reps = max(5, REPS // 3)
    for _ in range(reps):
        sizes = {int(k): len(v) for k, v in c.spikes_per_cluster.items() if int(k) not in used}
        a, b = pick_ops(sizes, rng, 1)[0]
        used.update((a, b))
        t = time.perf_counter()
        up = c.merge([a, b])
        times["merge"].append(time.perf_counter() - t)
        new = up.added[0]
        spikes = c.spikes_per_cluster[new]
        sel = spikes[: len(spikes) // 3]
        t = time.perf_counter()
        c.split(sel)
        times["split"].append(time.perf_counter() - t)
        t = time.perf_counter()
        c.undo()
        times["undo"].append(time.perf_counter() - t)
        t = time.perf_counter()
        c.redo()
        times["redo"].append(time.perf_counter() - t)
    out = {k: median_ms(v) for k, v in times.items()}
    out["build"] = build * 1000
    return out


def write_long_log(folder: Path, log: Path, n_events: int, seed: int = 3) -> None:
    """A realistic 10,000-event history: labels, merges of similar-sized pieces, splits, undo/redo."""
    rng = np.random.default_rng(seed)
    with curalog.open(folder, log, sync=False) as cur:
        while cur.seq < n_events:
            r = rng.random()
            ids = cur.cluster_ids
            if r < 0.55:
                cur.label(
                    [int(rng.choice(ids))],
                    group=str(rng.choice(["good", "mua", "noise", "unsorted"])),
                )
            elif r < 0.60:
                cur.label([int(rng.choice(ids))], field="note", value=f"n{int(rng.integers(100))}")
            elif r < 0.75 and len(ids) > 50:
                sizes = cur.state.sizes()
                small = sorted(sizes, key=sizes.get)[: max(2, len(sizes) // 2)]
                a, b = rng.choice(small, 2, replace=False)
                cur.merge([int(a), int(b)])
            elif r < 0.85:
                c = int(rng.choice(ids))
                sp = cur.spikes(c)
                if len(sp) > 10:
                    start = int(rng.integers(0, len(sp) // 2))
                    cur.split(sp[start : start + len(sp) // 3])
            elif r < 0.95:
                cur.undo()
            else:
                cur.redo()


def replay_child(folder: str, log: str) -> None:
    """One fresh process: open + replay (from the snapshot when there is a usable one),
    then close (which writes the snapshot when it is due)."""
    c0 = time.process_time()
    t = time.perf_counter()
    cur = curalog.open(folder, log, readonly=True)
    n = cur.seq
    clusters = cur.n_clusters
    elapsed = time.perf_counter() - t
    cpu = time.process_time() - c0
    status = cur._cache.status if cur._cache is not None else "off"  # noqa: SLF001
    peak = peak_rss()
    t = time.perf_counter()
    cur.close()
    close_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "cpu": cpu,
                "peak_bytes": peak,
                "events": n,
                "clusters": clusters,
                "snapshot": status,
                "close_s": close_s,
            }
        )
    )


def peak_rss() -> int:
    """This process's peak resident memory (bytes): ``VmHWM``, which a fresh ``exec`` starts
    from zero. (``ru_maxrss`` is not used: Linux carries it across ``exec``, so a child
    started by a big parent reports at least the parent's size at ``fork``.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(folder: Path, log: Path, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--replay-child", str(folder), str(log)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict]) -> dict[str, float]:
    secs = [r["seconds"] for r in runs]
    return {
        "median_s": statistics.median(secs),
        "min_s": min(secs),
        "max_s": max(secs),
        "cpu_s": statistics.median(r["cpu"] for r in runs),
        "peak_bytes": statistics.median(r["peak_bytes"] for r in runs),
        "max_peak_bytes": max(r["peak_bytes"] for r in runs),
        "runs": len(runs),
        "events": runs[0]["events"],
        "status": runs[0]["snapshot"],
    }


def bench_replay(folder: Path, log: Path, repeats: int = 5) -> dict[str, dict]:
    """Fresh processes: ``repeats`` cold replays (snapshots off), one that builds the
    snapshot (a cold replay, then the write on close), ``repeats`` opens from it."""
    snap = Path(str(log) + ".snapshot")
    snap.unlink(missing_ok=True)
    cold = [_child(folder, log, {"CURALOG_SNAPSHOT": "0"}) for _ in range(repeats)]
    build = _child(folder, log, {})
    warm = [_child(folder, log, {}) for _ in range(repeats)]
    return {
        "cold": _summary(cold),
        "warm": _summary(warm),
        "build_close_s": build["close_s"],
        "snapshot_bytes": snap.stat().st_size if snap.exists() else 0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", nargs="+", type=float, default=[10e6, 50e6], help="spike counts")
    ap.add_argument("--events", type=int, default=10_000, help="events in the replay log")
    ap.add_argument("--no-phy", action="store_true")
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per replay figure")
    ap.add_argument("--replay-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replay_child:
        replay_child(*args.replay_child)
        return 0
    args.data.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        n = int(size)
        print(f"== {n:,} spikes", flush=True)
        folder = dataset(n, args.data)
        ds = curalog.load_dataset(folder)
        base_bytes = ds.spike_times.nbytes + ds.spike_templates.nbytes
        rng = np.random.default_rng(0)
        st = bench_state(ds.spike_templates, rng)
        with tempfile.TemporaryDirectory() as tmp:
            api = bench_api(folder, np.random.default_rng(0), Path(tmp) / "api.log")
            api_nosync = bench_api(
                folder, np.random.default_rng(0), Path(tmp) / "api-nosync.log", sync=False
            )
            log = Path(tmp) / "long.log"
            t = time.perf_counter()
            write_long_log(folder, log, args.events)
            print(
                f"  wrote a {args.events}-event log in {time.perf_counter() - t:.1f} s", flush=True
            )
            rp = bench_replay(folder, log, args.repeats)
        phy = None if args.no_phy else bench_phy(ds.spike_templates, np.random.default_rng(0))
        rows.append(
            {
                "n": n,
                "state": st,
                "api": api,
                "api_nosync": api_nosync,
                "phy": phy,
                "replay": rp,
                "base_bytes": base_bytes,
            }
        )
        print(json.dumps(rows[-1], indent=None), flush=True)
    print()
    print(render(rows))
    return 0


def render(rows: list[dict]) -> str:
    lines = [
        "| spikes | operation | curalog state (ms) | curalog API, no fsync (ms) | curalog API incl. fsync (ms) | phy Clustering (ms) | phy / state | phy / API incl. fsync |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for op in ("merge", "split", "undo", "redo"):
            phy = r["phy"][op] if r["phy"] else None
            st, ns, api = r["state"][op], r["api_nosync"][op], r["api"][op]
            cells = [f"{r['n'] / 1e6:.0f} M", op, f"{st:.2f}", f"{ns:.2f}", f"{api:.2f}"]
            cells += [f"{phy:.1f}", f"{phy / st:.0f}x", f"{phy / api:.0f}x"] if phy else ["n/a"] * 3
            lines.append("| " + " | ".join(cells) + " |")
        phy_build = f"{r['phy']['build'] / 1000:.2f} s" if r["phy"] else "n/a"
        lines.append(
            f"| {r['n'] / 1e6:.0f} M | build index / phy start | {r['state']['build']:.0f} | | | {phy_build} | | |"
        )
    lines.append("")
    lines.append(
        "| spikes | open + replay of a log | events | median (min-max) of fresh processes | CPU | peak memory (max) | 2 x (spike_times + spike_templates) |"
    )
    lines.append("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        rp = r["replay"]
        for name, label in (
            ("cold", "replay from the sorter's output (no snapshot)"),
            ("warm", "from the snapshot"),
        ):
            x = rp[name]
            lines.append(
                f"| {r['n'] / 1e6:.0f} M | {label} | {x['events']} | {x['median_s']:.2f} s "
                f"({x['min_s']:.2f}-{x['max_s']:.2f}, n={x['runs']}) | {x['cpu_s']:.2f} s | "
                f"{x['peak_bytes'] / 2**20:.0f} MiB ({x['max_peak_bytes'] / 2**20:.0f}) | "
                f"{2 * r['base_bytes'] / 2**20:.0f} MiB |"
            )
        lines.append(
            f"| {r['n'] / 1e6:.0f} M | writing the snapshot (on close) | | {rp['build_close_s']:.2f} s | | "
            f"{rp['snapshot_bytes'] / 2**20:.0f} MiB file | |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
