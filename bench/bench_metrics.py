"""Benchmark of the quality metrics (issue 14) beside SpikeInterface's, in the same run.

Data: a synthetic Kilosort folder (``curalog.synth.synthesize``, ``--n-spikes`` spikes,
``--n-templates`` templates, ``pc_features.npy``), written once into ``--folder``. No raw
recording, so ``snr`` / ``amplitude_median`` are empty on both sides (and skipped by
SpikeInterface: they need one).

Measured:

1. **full table**: every metric of every cluster from a cold engine (``curalog clusters``'s
   work: phy's columns, correlograms, the spike-train, amplitude, drift, template and PC
   metrics), 2 threads and 1;
2. **merge refresh**: two clusters of about ``--big`` spikes each (built by merging
   templates), their rows computed, then merged: the time from the merge's update to the
   new cluster's full row (core statistics, ACG, similarity list, every quality metric incl.
   the PC ones and silhouette), median of ``--repeat`` merges (each undone before the next;
   every merge gets a new id, so nothing is reused from the previous one);
3. **SpikeInterface**: ``compute_quality_metrics`` on ``read_kilosort_as_analyzer`` of the
   same folder with ``amplitudes.npy`` as ``spike_amplitudes`` (presence, ISI, RP,
   sliding RP, firing range, amplitude CV / cutoff / median, noise cutoff, firing rate), on
   ``--si-units`` units (``select_units``; all when 0), scaled by units to the full table;
   plus SpikeInterface's PC metric functions (``mahalanobis_metrics``, ``d_prime_metric``,
   ``nearest_neighbors_metrics``, ``simplified_silhouette_score``: what its
   ``compute_quality_metrics`` runs per unit) on the very point sets curalog uses, for
   ``--si-pc-units`` units, scaled per unit; and, separately reported, its
   ``template_metrics`` extension for the template columns of curalog's table (the same
   100 units, scaled). (SpikeInterface computes its own PCs from a
   recording's waveforms, which a folder without recording does not allow; on the same
   points its formulas are the comparison that isolates the metric cost.)

Usage::

    .venv/bin/python bench/bench_metrics.py                 # 10 M spikes, 1,000 templates
    .venv/bin/python bench/bench_metrics.py --n-spikes 1000000 --n-templates 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curalog import open_curation  # noqa: E402
from curalog.analysis.stats import StatsEngine  # noqa: E402
from curalog.analysis.stats.table import cluster_rows  # noqa: E402


def make_folder(path: Path, n_spikes: int, n_templates: int) -> None:
    if (path / "pc_features.npy").exists():
        return
    from curalog.synth import synthesize

    t = time.perf_counter()
    synthesize(path, n_spikes=n_spikes, n_templates=n_templates, seed=1, pc_features=True)
    print(f"wrote {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def build_big_pair(cur, big: int) -> tuple[int, int]:
    """Two clusters of >= ``big`` spikes each: merges of the largest templates, alternating."""
    sizes = cur.state.sizes()
    order = sorted(sizes, key=lambda c: -sizes[c])
    groups: list[list[int]] = [[], []]
    totals = [0, 0]
    for c in order:
        k = 0 if totals[0] <= totals[1] else 1
        if totals[k] >= big:
            k = 1 - k
            if totals[k] >= big:
                break
        groups[k].append(c)
        totals[k] += sizes[c]
    ids = []
    for g in groups:
        ids.append(cur.merge(g) if len(g) > 1 else g[0])
    return ids[0], ids[1]


def bench_full_table(folder: Path, log: Path, threads: int) -> tuple[float, int, dict]:
    with open_curation(folder, log, readonly=True) as cur:
        eng = StatsEngine(cur.dataset, cur.state)
        t = time.perf_counter()
        rows = cluster_rows(cur, eng, n_threads=threads)
        dt = time.perf_counter() - t
        return dt, len(rows), eng.counters


def bench_merge(folder: Path, log: Path, big: int, repeat: int) -> tuple[list[float], int, int]:
    with open_curation(folder, log) as cur:
        a, b = build_big_pair(cur, big)
        eng = StatsEngine(cur.dataset, cur.state)
        cur.subscribe(eng.on_update)
        na, nb = cur.state.n_spikes_of(a), cur.state.n_spikes_of(b)
        for c in cur.cluster_ids.tolist():  # the table is on screen: every row known
            eng.row(c)
        eng.similar(a)
        times = []
        holder: list[float] = []
        cur.subscribe(lambda upd: holder.append(time.perf_counter()))
        for _ in range(repeat):
            eng._ccg.clear()  # the pair's CCG is computed again each time  # noqa: SLF001
            new = cur.merge([a, b])
            t0 = holder[-1]
            eng.get(new)
            eng.row(new)
            eng.similar(new, limit=100)
            times.append(time.perf_counter() - t0)
            assert eng.get(new).how == "composed"
            cur.undo()
        return times, na, nb


def bench_si(folder: Path, n_units: int) -> tuple[float, float, int, int]:
    import spikeinterface.full as si
    from spikeinterface.extractors import read_kilosort_as_analyzer
    from spikeinterface.postprocessing import ComputeSpikeAmplitudes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        an = read_kilosort_as_analyzer(folder)
        t_load = time.perf_counter() - t0
        amps = np.load(folder / "amplitudes.npy").reshape(-1)
        clusters = np.load(folder / "spike_templates.npy").reshape(-1)
        where = an.sorting.get_spike_vector_to_indices()[0]
        order = np.argsort(clusters, kind="stable")
        bounds = np.searchsorted(clusters[order], an.sorting.unit_ids)
        bounds = np.append(bounds, clusters.shape[0])
        data = np.zeros(amps.shape[0])
        for i, u in enumerate(an.sorting.unit_ids):
            data[where[u]] = amps[order[bounds[i] : bounds[i + 1]]]
        ext = ComputeSpikeAmplitudes(an)
        ext.data = {"amplitudes": data}
        ext.params = {}
        ext.run_info = {"run_completed": True}
        an.extensions["spike_amplitudes"] = ext
        units = (
            an.unit_ids
            if n_units <= 0
            else an.unit_ids[:: max(1, len(an.unit_ids) // n_units)][:n_units]
        )
        sub = an if len(units) == len(an.unit_ids) else an.select_units(units)
        names = [
            "presence_ratio",
            "isi_violation",
            "rp_violation",
            "sliding_rp_violation",
            "firing_range",
            "amplitude_cv",
            "amplitude_cutoff",
            "amplitude_median",
            "noise_cutoff",
            "firing_rate",
            "num_spikes",
        ]
        t = time.perf_counter()
        si.compute_quality_metrics(sub, metric_names=names, skip_pc_metrics=True)
        dt = time.perf_counter() - t
        # the template columns of curalog's table, as SpikeInterface computes them (its
        # template_metrics extension: not part of compute_quality_metrics)
        t = time.perf_counter()
        sub.compute(
            "template_metrics",
            metric_names=["peak_to_trough_duration", "half_width", "repolarization_slope"],
            include_multi_channel_metrics=False,
        )
        dt_templates = time.perf_counter() - t
    print(f"SpikeInterface: analyzer from the folder in {t_load:.1f} s", file=sys.stderr)
    return dt, dt_templates, len(units), len(an.unit_ids)


def bench_si_pc(folder: Path, log: Path, n_units: int) -> tuple[float, float, int]:
    """SpikeInterface's PC functions vs curalog's on the same point sets (per unit)."""
    from spikeinterface.metrics.quality.pca_metrics import (
        d_prime_metric,
        mahalanobis_metrics,
        nearest_neighbors_metrics,
        simplified_silhouette_score,
    )

    from curalog.analysis.stats.quality_pc import (
        d_prime,
        mahalanobis,
        nn_rates,
        simplified_silhouette,
    )

    with open_curation(folder, log, readonly=True) as cur:
        eng = StatsEngine(cur.dataset, cur.state)
        pcs = eng.ctx.quality.pcs
        ids = cur.cluster_ids.tolist()[:: max(1, cur.n_clusters // n_units)][:n_units]
        t_si = t_ours = 0.0
        done = 0
        for cid in ids:
            pc = eng.quality(cid)[1]
            if pc is None or pc.other_spikes.shape[0] < 10:
                continue
            x = pcs.gather(pc.self_spikes, pc.channels)
            y = pcs.gather(pc.other_spikes, pc.channels)
            lab = np.asarray(cur.state.clusters_of(pc.other_spikes))
            allp = np.concatenate([x, y])
            alll = np.concatenate([np.full(x.shape[0], cid), lab])
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mahalanobis_metrics(allp, alll, cid)
                d_prime_metric(allp, alll, cid)
                nearest_neighbors_metrics(allp, alll, cid, 10_000, 5)
                simplified_silhouette_score(allp, alll, cid)
            t_si += time.perf_counter() - t
            t = time.perf_counter()
            mahalanobis(x, y)
            d_prime(x, y)
            nn_rates(x, y)
            simplified_silhouette(x, y, lab)
            t_ours += time.perf_counter() - t
            done += 1
    return t_si / max(done, 1), t_ours / max(done, 1), done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-spikes", type=int, default=10_000_000)
    ap.add_argument("--n-templates", type=int, default=1000)
    ap.add_argument("--big", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--si-units", type=int, default=100, help="0: all units")
    ap.add_argument("--si-pc-units", type=int, default=40)
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args()
    folder = args.folder or Path(tempfile.gettempdir()) / f"curalog-bench-metrics-{args.n_spikes}"
    make_folder(folder, args.n_spikes, args.n_templates)
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-"))

    # warm the numba caches and imports (compile time is bench_stats.py's subject)
    small = work / "warm"
    from curalog.synth import synthesize

    synthesize(small, n_spikes=5000, n_templates=8, seed=0, pc_features=True)
    bench_full_table(small, work / "warm.log", 1)

    rows = []
    t2, n_clusters, counters = bench_full_table(folder, work / "a.log", 2)
    rows.append((f"full table, {n_clusters} clusters, every metric, 2 threads", t2))
    t1, _, _ = bench_full_table(folder, work / "b.log", 1)
    rows.append((f"full table, {n_clusters} clusters, every metric, 1 thread", t1))
    times, na, nb = bench_merge(folder, work / "m.log", args.big, args.repeat)
    t_merge = statistics.median(times)
    rows.append(
        (f"merge refresh {na:,} + {nb:,} spikes, every metric (median of {len(times)})", t_merge)
    )

    si_line = "SpikeInterface not importable"
    try:
        t_si, t_tm, n_si, n_all = bench_si(folder, args.si_units)
        si_pc, our_pc, n_pc = bench_si_pc(folder, work / "a.log", args.si_pc_units)
        si_full = t_si * n_all / n_si + si_pc * n_all
        si_same = si_full + t_tm * n_all / n_si
        si_line = (
            f"SpikeInterface compute_quality_metrics (no PC) on {n_si} of {n_all} units: "
            f"{t_si:.2f} s -> {t_si * n_all / n_si:.1f} s for all; its PC functions "
            f"{si_pc * 1e3:.1f} ms/unit (curalog's {our_pc * 1e3:.1f} ms/unit on the same "
            f"points, {n_pc} units) -> {si_pc * n_all:.1f} s for all; "
            f"total {si_full:.1f} s = {si_full / t2:.1f}x curalog's 2-thread table, "
            f"{si_full / t1:.1f}x its 1-thread table. With its template_metrics extension "
            f"for the table's template columns ({t_tm:.2f} s on {n_si} units -> "
            f"{t_tm * n_all / n_si:.1f} s): {si_same:.1f} s = {si_same / t2:.1f}x / "
            f"{si_same / t1:.1f}x"
        )
    except ImportError:
        pass
    print(f"\n{args.n_spikes:,} spikes, {args.n_templates} templates ({folder})")
    for name, t in rows:
        print(f"  {name:<72} {t * 1e3 if t < 1 else t:>9.1f} {'ms' if t < 1 else 's'}")
    print(f"  merge refreshes (ms): {', '.join(f'{x * 1e3:.0f}' for x in times)}")
    print(f"  {si_line}")
    print(f"  counters of the 2-thread table: {counters}")


if __name__ == "__main__":
    main()
