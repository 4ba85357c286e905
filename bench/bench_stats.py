"""Benchmark of curalog's incremental statistics (docs/DESIGN.md "Performance targets").

Builds a Kilosort-like spike train in memory (no files): ``--n-spikes`` spikes over
``--duration`` seconds at 30 kHz, ``--n-clusters`` templates, two of which hold exactly
``--big`` spikes each (the "merged pair of 500 k-spike clusters"), the others log-normal
shares of the rest; amplitudes, dense templates (384 channels would be realistic, 32 are
used: templates only feed the best-channel columns) and a similar_templates matrix.

Prints median wall times (``--repeat`` runs) for:

* ACG of one 500 k-spike cluster (our numba kernel) and phylib's ``correlograms`` on the same
  spikes (the anchor, when phylib is importable), with the ratio;
* stats refresh after merging the two 500 k clusters: composed from cached parents
  (``on_update`` + ``get`` + similarity list) and from scratch (parents not cached), beside
  phylib computing the merged cluster's ACG;
* time to the first screen (statistics of the 50 largest clusters) and the full table for
  every cluster, with 1 and ``--threads`` threads;
* numba compile time with a cold and with a warm on-disk cache (subprocesses with their own
  ``NUMBA_CACHE_DIR``).

Usage::

    .venv/bin/python bench/bench_stats.py                      # 10 M spikes, 1,000 clusters
    .venv/bin/python bench/bench_stats.py --n-spikes 50000000  # docs/DESIGN.md's 50 M
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curalog.analysis.stats import StatsEngine  # noqa: E402
from curalog.analysis.stats.correlograms import autocorrelogram, make_bins  # noqa: E402
from curalog.clustering import ClusterState, Update  # noqa: E402


class MemoryDataset:
    """The Dataset attributes the statistics read, built in memory."""

    def __init__(self, n_spikes: int, n_clusters: int, big: int, duration: float, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.sample_rate = 30_000.0
        total = int(duration * self.sample_rate)
        times = np.sort(rng.integers(0, total, n_spikes, dtype=np.int64))
        labels = np.empty(n_spikes, dtype=np.int32)
        perm = rng.permutation(n_spikes)
        labels[perm[:big]] = 0
        labels[perm[big : 2 * big]] = 1
        rest = perm[2 * big :]
        w = rng.lognormal(0.0, 1.0, n_clusters - 2)
        labels[rest] = 2 + rng.choice(n_clusters - 2, size=rest.shape[0], p=w / w.sum()).astype(
            np.int32
        )
        self.spike_times = times
        self.spike_templates = labels
        self.n_templates = n_clusters
        self.amplitudes = rng.gamma(6.0, 3.0, n_spikes).astype(np.float32)
        n_ch, ns = 32, 61
        t = np.zeros((n_clusters, ns, n_ch), dtype=np.float32)
        wave = -np.exp(-0.5 * ((np.arange(ns) - 20) / 3.0) ** 2) + 0.4 * np.exp(
            -0.5 * ((np.arange(ns) - 30) / 6.0) ** 2
        )
        centre = rng.integers(0, n_ch, n_clusters)
        for c in range(n_clusters):
            t[c] = (
                wave[:, None] * np.exp(-0.5 * ((np.arange(n_ch) - centre[c]) / 2.0) ** 2)[None, :]
            )
        self.templates = t
        self.template_channels = None
        self.channel_map = np.arange(n_ch)
        self.channel_positions = np.column_stack(
            [np.tile([0.0, 32.0], n_ch // 2), 20.0 * (np.arange(n_ch) // 2)]
        )
        self.channel_shanks = np.zeros(n_ch, dtype=np.int64)
        s = rng.random((n_clusters, n_clusters)).astype(np.float32)
        self.similar_templates = (s + s.T) / 2
        self.sorter_columns: dict = {}
        self.duration = float(times[-1]) / self.sample_rate

    @property
    def n_spikes(self) -> int:
        return int(self.spike_times.shape[0])

    def optional_array(self, name: str):
        return None


def median_time(fn, repeat: int, setup=None) -> float:
    out = []
    for _ in range(repeat):
        arg = setup() if setup is not None else None
        t0 = time.perf_counter()
        fn(arg) if setup is not None else fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def merge_update(change) -> Update:
    return Update(
        kind=change.kind,
        added=tuple(change.added_ids),
        deleted=tuple(change.deleted_ids),
        descendants=change.descendants,
        largest_old=change.largest_old,
    )


_COMPILE_SNIPPET = r"""
import time, numpy as np
t0 = time.perf_counter()
from curalog.clustering import ClusterState
from curalog.analysis.stats import StatsEngine
t1 = time.perf_counter()
class D:
    sample_rate = 10000.0; n_templates = 3; duration = 100.0
    spike_times = np.arange(0, 1000000, 1000, dtype=np.int64)
    spike_templates = (np.arange(1000) % 3).astype(np.int32)
    amplitudes = np.linspace(1, 2, 1000)
    templates = np.random.default_rng(0).normal(size=(3, 10, 4)).astype(np.float32)
    template_channels = None; channel_map = np.arange(4)
    channel_positions = np.column_stack([np.zeros(4), np.arange(4.0)])
    channel_shanks = np.zeros(4, dtype=np.int64); similar_templates = None; sorter_columns = {}
    def optional_array(self, name): return None
st = ClusterState(D.spike_templates)
e = StatsEngine(D(), st)
for c in (0, 1, 2): e.get(c); e.sim_row(c)
ch = st.resolve_merge([0, 1]); st.apply(ch)
from curalog.clustering import Update
e.on_update(Update(kind='merge', added=(3,), deleted=(0, 1), descendants=((0, 3), (1, 3))))
e.get(3); e.similar(3)
print(f"{t1 - t0:.3f} {time.perf_counter() - t1:.3f}")
"""


def compile_times() -> tuple[float, float, float, float]:
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(root))
        out = []
        for _ in range(2):
            r = subprocess.run(
                [sys.executable, "-c", _COMPILE_SNIPPET],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            imp, first = (float(x) for x in r.stdout.split())
            out += [imp, first]
    return out[0], out[1], out[2], out[3]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-spikes", type=int, default=10_000_000)
    ap.add_argument("--n-clusters", type=int, default=1000)
    ap.add_argument("--big", type=int, default=500_000)
    ap.add_argument("--duration", type=float, default=3600.0, help="seconds")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument(
        "--refresh-only", action="store_true", help="stop after the merged-pair refresh"
    )
    ap.add_argument(
        "--without-quality",
        action="store_true",
        help="leave out the SpikeInterface quality columns (issue 14) to time the rest alone",
    )
    args = ap.parse_args(argv)
    if args.without_quality:
        from curalog.analysis.stats import metrics

        metrics.compute_quality = lambda *a, **k: ({}, None)  # type: ignore[assignment]
        print("# quality columns left out (--without-quality)", flush=True)

    rows: list[tuple[str, float, str, str]] = []  # (what, seconds, anchor, target)

    if not args.skip_compile:
        imp_c, cold, imp_w, warm = compile_times()
        rows.append(("numba compile+first call, cold cache", cold, "", ""))
        rows.append(("numba first call, warm cache", warm, "", ""))
        rows.append(("import curalog.analysis.stats (warm)", imp_w, "", ""))

    t0 = time.perf_counter()
    ds = MemoryDataset(args.n_spikes, args.n_clusters, args.big, args.duration)
    print(
        f"# dataset: {ds.n_spikes:,} spikes, {args.n_clusters} clusters, {ds.duration:.0f} s, "
        f"built in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    state = ClusterState(ds.spike_templates)
    bins = make_bins(ds.sample_rate)
    sp0 = state.spikes(0)
    autocorrelogram(ds.spike_times, sp0, bins)  # compile / warm

    try:
        from phylib.stats.ccg import correlograms as phy_correlograms
    except Exception:  # phylib is an optional anchor
        phy_correlograms = None

    t_acg = median_time(lambda: autocorrelogram(ds.spike_times, sp0, bins), args.repeat)
    anchor = ""
    if phy_correlograms is not None:
        # times in samples with sample_rate=1, so that phylib's int64(t * fs) cannot round
        times0 = ds.spike_times[sp0].astype(np.float64)
        zeros = np.zeros(sp0.shape[0], dtype=np.int64)
        kw = dict(
            cluster_ids=[0],
            sample_rate=1.0,
            bin_size=float(bins.bin_samples),
            window_size=float(bins.n_bins * bins.bin_samples),
        )
        ref = phy_correlograms(times0, zeros, **kw)
        assert np.array_equal(ref[0, 0], autocorrelogram(ds.spike_times, sp0, bins)), (
            "phylib disagrees"
        )
        t_phy = median_time(lambda: phy_correlograms(times0, zeros, **kw), max(1, args.repeat // 2))
        anchor = f"phylib {t_phy * 1e3:.1f} ms (x{t_phy / t_acg:.0f})"
    rows.append((f"ACG of a {args.big:,}-spike cluster", t_acg, anchor, ""))

    # ---- merged-pair refresh, composed from cached parents
    engine = StatsEngine(ds, state)
    engine.get(0)
    engine.get(1)
    engine.sim_row(0)
    engine.sim_row(1)
    new_ids: list[int] = []

    def do_merge(_=None) -> int:
        ch = state.resolve_merge([0, 1])
        state.apply(ch)
        return ch

    def refresh(eng: StatsEngine, ch) -> None:
        upd = merge_update(ch)
        eng.on_update(upd)
        new = upd.added[0]
        eng.get(new)
        eng.similar(new, limit=100)
        new_ids.append(new)

    def composed_setup():
        engine._ccg.clear()  # the pair's CCG must be computed again each time  # noqa: SLF001
        return do_merge()

    def undo_last(ch) -> None:
        state.revert(ch)

    times = []
    cpus = []
    for _ in range(args.repeat):
        ch = composed_setup()
        t, c = time.perf_counter(), time.thread_time()
        refresh(engine, ch)
        times.append(time.perf_counter() - t)
        cpus.append(time.thread_time() - c)
        assert engine.get(ch.added_ids[0]).how == "composed"
        undo_last(ch)
    t_comp = statistics.median(times)
    print(
        f"# composed refresh: wall {' '.join(f'{x * 1e3:.0f}' for x in times)} ms; "
        f"CPU {' '.join(f'{x * 1e3:.0f}' for x in cpus)} ms (median {statistics.median(cpus) * 1e3:.1f})",
        flush=True,
    )

    times = []
    for _ in range(args.repeat):
        fresh = StatsEngine(ds, state)
        fresh.sim_row(0)  # the similarity matrix is loaded once per session, not per action
        ch = do_merge()
        t = time.perf_counter()
        refresh(fresh, ch)
        times.append(time.perf_counter() - t)
        assert fresh.get(ch.added_ids[0]).how == "computed"
        undo_last(ch)
    t_scratch = statistics.median(times)
    anchor = ""
    if phy_correlograms is not None:
        merged = np.sort(np.concatenate([state.spikes(0), state.spikes(1)]))
        tm = ds.spike_times[merged].astype(np.float64)
        z = np.zeros(merged.shape[0], dtype=np.int64)
        t_phy = median_time(lambda: phy_correlograms(tm, z, **kw), max(1, args.repeat // 2))
        c0 = time.thread_time()
        phy_correlograms(tm, z, **kw)
        anchor = (
            f"phylib ACG alone {t_phy * 1e3:.0f} ms (CPU {(time.thread_time() - c0) * 1e3:.0f} ms; "
            f"x{t_phy / t_comp:.1f})"
        )
    rows.append(("merged-pair refresh, composed (stats+ACG+similar)", t_comp, anchor, "<= 50 ms"))
    rows.append(("merged-pair refresh, from scratch", t_scratch, "", "<= 50 ms"))

    # ---- first screen and full table
    sizes = state.sizes()
    largest = sorted(sizes, key=lambda c: -sizes[c])[:50]
    for n_threads in [] if args.refresh_only else sorted({1, args.threads}):
        fresh = StatsEngine(ds, state)
        t = time.perf_counter()
        fresh.compute_all(largest, n_threads=n_threads)
        rows.append(
            (
                f"first screen (50 largest clusters), {n_threads} thread(s)",
                time.perf_counter() - t,
                "",
                "",
            )
        )
        t = time.perf_counter()
        fresh.table_rows(n_threads=n_threads)
        rows.append(
            (
                f"full table, all {state.n_clusters} clusters (rest), {n_threads} thread(s)",
                time.perf_counter() - t,
                "",
                "",
            )
        )
        fresh2 = StatsEngine(ds, state)
        t = time.perf_counter()
        fresh2.table_rows(n_threads=n_threads)
        rows.append(
            (f"full table from empty cache, {n_threads} thread(s)", time.perf_counter() - t, "", "")
        )

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'median':>10}  {'target':>9}  anchor")
    for what, sec, anc, target in rows:
        print(f"{what:<{width}}  {sec * 1e3:>8.1f} ms  {target:>9}  {anc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
