"""``curalog demo``: a synthetic sorting, a scripted curation, checks, an export.

The script does what a curator does in phy's wizard, through the same public API the
terminal UI uses: walk clusters from the largest down, look at the most similar cluster,
merge when the templates say they are one unit, label, make a split and take it back
(undo / redo), then export. At the end it checks that replaying the log gives the same
``spike_clusters`` and compares the result with the generator's ground truth.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from curalog.analysis.stats.engine import StatsEngine
from curalog.curation import default_log_path, open_curation, replay
from curalog.io.phy import export_phy
from curalog.synth.generator import synthesize

MERGE_SIMILARITY = 0.9


def _synthesize(folder: Path, n_spikes: int, n_templates: int, seed: int, con: Console) -> None:
    from rich.progress import Progress

    with Progress(console=con, transient=True) as progress:
        task = progress.add_task(f"writing {n_spikes:,} spikes", total=1)
        info = synthesize(
            folder,
            n_spikes=n_spikes,
            n_templates=n_templates,
            seed=seed,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            recording=None,  # the raw file, when it is small enough (1 GiB)
            recording_progress=lambda done, total: progress.update(
                task, description="writing the raw recording", completed=done, total=total
            ),
        )
    con.print(
        f"wrote a synthetic Kilosort folder: {info.n_spikes:,} spikes, {info.n_templates} templates, "
        f"{info.n_units} true units, {info.duration:.0f} s  ->  {folder}"
    )
    if info.recording is not None:
        con.print(
            f"with its raw recording {info.recording.name} ({info.recording_bytes / 1e9:.2f} GB)"
        )


def _command_name() -> str:
    """``curalog`` when it is on PATH, else the path of the one in this environment."""
    import shutil
    import sys

    if shutil.which("curalog"):
        return "curalog"
    candidate = Path(sys.executable).parent / "curalog"
    return str(candidate) if candidate.exists() else "curalog"


def _truth(folder: Path) -> np.ndarray | None:
    try:
        return np.asarray(json.loads((folder / "synth_truth.json").read_text())["unit_of_template"])
    except (OSError, ValueError, KeyError):
        return None


def _refractory_dip(engine: StatsEngine, cur, a: int, b: int) -> bool:
    """True when the cross-correlogram is (nearly) empty within +-2 ms: the two clusters
    never fire together inside a refractory period, as two pieces of one neuron."""
    ccg = engine.ccg(a, b)
    lags = engine.bins.lags_ms()
    centre = np.abs(lags) <= 1.0  # the bins covering -2 ms .. +2 ms (floor-based lags)
    bin_s = float(lags[1] - lags[0]) / 1000.0
    expected = (
        cur.state.n_spikes_of(a)
        * cur.state.n_spikes_of(b)
        * bin_s
        * int(centre.sum())
        / cur.dataset.duration
    )
    return float(ccg[centre].sum()) <= 0.2 * expected


def _show_waveforms(folder: Path, con: Console, exe: str) -> None:
    """The raw waveforms of the largest cluster, from the recording (the waveform view's data)."""
    with open_curation(folder, readonly=True) as cur:
        if cur.recording is None:
            con.print(f"\nno raw recording ({cur.recording_error})")
            return
        sizes = cur.state.sizes()
        big = max(sizes, key=lambda c: (sizes[c], -c))
        wf = cur.waveforms(big)
        amps = wf.amplitudes_uv if wf.amplitudes_uv is not None else wf.amplitudes
        unit = "µV" if wf.amplitudes_uv is not None else "file units"
        con.print(
            f"\nraw waveforms of cluster {big}: {wf.n_spikes} of {wf.n_cluster_spikes:,} spikes "
            f"on channels {', '.join(str(int(c)) for c in wf.channel_ids[:6])}, ...; "
            f"peak-to-peak {float(np.median(amps)):.0f} {unit} (median) on channel "
            f"{int(wf.channel_ids[0])}.  See them: {exe} tui {folder}, then w (waveforms) "
            "and T (traces)"
        )


def run_demo(folder: Path, *, n_spikes: int = 75_000, n_templates: int = 80, seed: int = 0) -> int:
    con = Console(highlight=False, soft_wrap=True)
    folder = Path(folder)
    if not (folder / "spike_times.npy").exists():
        _synthesize(folder, n_spikes, n_templates, seed, con)
    log = default_log_path(folder)
    with open_curation(folder, readonly=True) as cur:
        if cur.events:
            con.print(
                f"{folder} already has a curation history ({cur.seq} events): "
                f"see `curalog log {folder}` or open `curalog tui {folder}`."
            )
            return 0

    timings: dict[str, list[float]] = {}

    def timed(name: str, fn, *args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        timings.setdefault(name, []).append(time.perf_counter() - t)
        return out

    with open_curation(folder, author="curalog-demo") as cur:
        engine = StatsEngine(cur.dataset, cur.state)
        cur.subscribe(engine.on_update)
        con.print(f"\n[bold]curating[/bold] {cur.n_clusters} clusters (log: {log})")
        # 1. The wizard: largest cluster first, merge its best match while the templates are
        #    alike and the cross-correlogram shows a shared refractory period.
        merges = 0
        done: set[int] = set()
        while True:
            sizes = cur.state.sizes()
            todo = [c for c in sorted(sizes, key=lambda c: (-sizes[c], c)) if c not in done]
            if not todo:
                break
            c = todo[0]
            best = engine.similar(c, limit=1)
            if (
                best
                and best[0][1] >= MERGE_SIMILARITY
                and _refractory_dip(engine, cur, c, best[0][0])
            ):
                new = timed(
                    "merge",
                    cur.merge,
                    [c, best[0][0]],
                    meta={"source": "demo", "similarity": round(best[0][1], 4)},
                )
                merges += 1
                con.print(f"  merge {c} + {best[0][0]} (similarity {best[0][1]:.3f}) -> {new}")
            else:
                done.add(c)
        # 2. Labels from the statistics: tiny amplitudes are noise, many refractory
        #    violations are multi-unit activity, the rest is good.
        rows = {r["id"]: r for r in engine.table_rows(list(cur.cluster_ids))}
        amps = np.array([r.get("template_amplitude") or 0.0 for r in rows.values()])
        noise_cut = 0.35 * float(np.median(amps)) if amps.size else 0.0
        groups: dict[str, list[int]] = {"noise": [], "mua": [], "good": []}
        for cid, r in rows.items():
            if (r.get("template_amplitude") or 0.0) < noise_cut:
                groups["noise"].append(cid)
            elif (r.get("isi_violations_ratio") or 0.0) > 0.5:
                groups["mua"].append(cid)
            else:
                groups["good"].append(cid)
        for group, ids in groups.items():
            if ids:
                timed("label", cur.label, ids, group=group, reason="demo rule")
        con.print("  labels: " + ", ".join(f"{len(v)} {k}" for k, v in groups.items()))
        # 3. A split of the largest good cluster at its median amplitude, undone and redone.
        big = max(groups["good"] or list(cur.cluster_ids), key=cur.state.n_spikes_of)
        spikes = cur.spikes(big)
        amp = cur.dataset.amplitudes
        sel = (
            spikes[np.asarray(amp[spikes]) < np.median(amp[spikes])]
            if amp is not None
            else spikes[::2]
        )
        pieces = timed(
            "split", cur.split, sel, meta={"source": "demo", "rule": "amplitude < median"}
        )
        con.print(f"  split {big} at its median amplitude -> {pieces}")
        timed("undo", cur.undo)
        con.print(f"  undo  -> {big} is back ({cur.state.n_spikes_of(big):,} spikes)")
        timed("redo", cur.redo)
        con.print(f"  redo  -> {pieces} again (same ids)")
        timed("undo", cur.undo)
        state = cur.spike_clusters.copy()
        res = timed("export", lambda: export_phy(cur))
        seq, n_clusters = cur.seq, cur.n_clusters
        final_groups = Counter(g or "unsorted" for g in cur.groups().values())
        history = cur.history

    # Checks: replay of the log equals the live state, and phy's file equals both.
    replayed = replay(folder)
    exported = np.load(folder / "spike_clusters.npy")
    ok = np.array_equal(replayed, state) and np.array_equal(exported, state)
    con.print(
        f"\nreplay of {seq} events == live state == exported spike_clusters.npy: "
        f"[{'green' if ok else 'red'}]{ok}[/]"
    )
    con.print(f"exported to {res.out}: " + ", ".join(p.name for p in res.files))

    table = Table(title="history (last 8 events)", show_lines=False)
    for col in ("seq", "author", "event"):
        table.add_column(col)
    for e in history[-8:]:
        table.add_row(str(e.seq), e.author, e.summary())
    con.print(table)

    times = Table(title="time per action (median, incl. log append + fsync)")
    times.add_column("action")
    times.add_column("n", justify="right")
    times.add_column("ms", justify="right")
    for name, ts in timings.items():
        times.add_row(name, str(len(ts)), f"{1000 * float(np.median(ts)):.2f}")
    con.print(times)

    truth = _truth(folder)
    if truth is not None:
        ds_templates = np.load(folder / "spike_templates.npy", mmap_mode="r").reshape(-1)
        units = truth[np.asarray(ds_templates)]
        impure = 0
        for c in np.unique(state):
            u = np.unique(units[state == c])
            impure += int(len(u) > 1)
        n_units = int(len(np.unique(truth[truth >= 0])))
        con.print(
            f"ground truth: {n_units} true units; after {merges} merges {n_clusters} clusters "
            f"({dict(final_groups)}), {impure} clusters mixing true units"
        )
    exe = _command_name()
    _show_waveforms(folder, con, exe)
    con.print(
        f"\nnext: [bold]{exe} tui {folder}[/bold]   (or: {exe} log {folder}, {exe} info {folder})"
    )
    return 0 if ok else 1
