"""The raw recording: waveforms of a 1 M-spike cluster and a 1 s trace window over 384 channels,
cold and warm page cache, beside phylib in the same run.

Dataset (written once to ``bench/data/raw-384``, ~2.3 GB): 384 channels on a Neuropixels-1.0
layout, int16, 30 kHz, 100 s, not high-pass filtered (white noise read from a bank; the
content does not change what a read costs). 40 dense templates (82 samples); templates 0-19
have 50,000 spikes each, merged by the benchmark's log into one 1,000,000-spike cluster;
templates 20-39 have 500 each.

Measured (medians; warm = the file's pages in the page cache; cold = the raw file's pages
dropped first with ``posix_fadvise(POSIX_FADV_DONTNEED)``, which touches this file only):

* ``Curation.waveforms`` of the 1 M-spike cluster (100 spikes over its lifetime, its 12 best
  channels, filtered), its result cache cleared each time;
* phylib: ``TemplateModel.get_waveforms`` for the same spikes and channels, then phy's own
  waveform filtering (median subtracted, order-3 150 Hz Butterworth forward-backward on each
  snippet, ``phy/apps/base.py``), i.e. what phy's WaveformView shows;
* the TUI, 200x60: key ``w`` (posted as the terminal driver posts it) to the waveform
  plot drawn by the compositor (the plot widget's lines of the read waveforms rendered);
* ``Recording.traces`` of a 1 s window over all 384 channels (filtered), and phylib's
  ``model.traces[a:b]`` plus phy's TraceView filter on the same window;
* the trace view with that window (1 s, 384 channels) at 200x60, request to the plot drawn;
* peak Python-allocated memory (``tracemalloc``) of one waveform read and one trace read,
  beside the window's own size and the file's.

    .venv/bin/python bench/bench_recording.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import curalog
from curalog.synth.model import channel_positions_np1

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "raw-384"
FS = 30_000.0
N_CH = 384
N_SAMPLES = 3_000_000  # 100 s
NS = 82
BIG_TEMPLATES = 20
BIG_EACH = 50_000
SMALL_TEMPLATES = 20
SMALL_EACH = 500


def build(folder: Path) -> None:
    """Write the benchmark folder (see the module docstring); skipped when complete."""
    if (folder / "raw.dat").exists() and (folder / "spike_times.npy").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pos = channel_positions_np1(N_CH)
    n_t = BIG_TEMPLATES + SMALL_TEMPLATES
    x = np.arange(NS) - NS // 2
    wave = -np.exp(-0.5 * (x / 3.0) ** 2) + 0.35 * np.exp(-0.5 * ((x - 8) / 6.0) ** 2)
    centres = rng.choice(N_CH, n_t, replace=False)
    templates = np.zeros((n_t, NS, N_CH), dtype=np.float32)
    for t, c in enumerate(centres):
        d = np.hypot(*(pos - pos[c]).T)
        foot = np.exp(-0.5 * (d / 25.0) ** 2) * (d < 100)
        templates[t] = (wave[:, None] * foot[None, :]).astype(np.float32)
    times, tpl = [], []
    for t in range(n_t):
        n = BIG_EACH if t < BIG_TEMPLATES else SMALL_EACH
        times.append(np.sort(rng.integers(NS, N_SAMPLES - NS, n)))
        tpl.append(np.full(n, t, dtype=np.int32))
    st = np.concatenate(times)
    order = np.argsort(st, kind="stable")
    np.save(folder / "spike_times.npy", st[order].astype(np.int64))
    np.save(folder / "spike_templates.npy", np.concatenate(tpl)[order])
    np.save(folder / "amplitudes.npy", np.ones(st.shape[0], dtype=np.float32))
    np.save(folder / "templates.npy", templates)
    np.save(folder / "channel_map.npy", np.arange(N_CH, dtype=np.int32))
    np.save(folder / "channel_positions.npy", pos)
    np.save(folder / "whitening_mat.npy", np.eye(N_CH))
    np.save(folder / "whitening_mat_inv.npy", np.eye(N_CH))
    (folder / "params.py").write_text(
        f"dat_path = 'raw.dat'\nn_channels_dat = {N_CH}\ndtype = 'int16'\noffset = 0\n"
        f"sample_rate = {FS}\nhp_filtered = False\nuv_per_bit = 0.195\n"
    )
    bank = (rng.standard_normal((1 << 17, N_CH)) * 50).astype("<i2")
    block = 1 << 15
    tmp = folder / ".raw.dat.partial"
    with open(tmp, "wb") as f:
        for start in range(0, N_SAMPLES, block):
            n = min(block, N_SAMPLES - start)
            off = int(rng.integers(0, bank.shape[0] - n))
            f.write(bank[off : off + n].tobytes())
    os.replace(tmp, folder / "raw.dat")


def drop_cache(path: Path, *maps: np.ndarray) -> None:
    """Evict the file's pages: unmap them from this process (``madvise(MADV_DONTNEED)`` on
    our memory maps; a page still mapped is not evicted), then ``posix_fadvise(DONTNEED)``."""
    from curalog.dataset import release_pages

    for m in maps:
        release_pages(m)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


#: Process CPU time of each measurement (all threads), by function: on a shared machine the
#: wall time includes waiting for a core, the CPU time is the work done.
CPU: dict[str, list[float]] = {}


def med(values: list[float]) -> float:
    return statistics.median(values) * 1000.0


def timed(fn, repeat: int, cold: Path | None = None, prepare=None, maps=lambda: ()) -> list[float]:
    out = []
    for i in range(repeat):
        if prepare is not None:
            prepare(i)
        if cold is not None:
            drop_cache(cold, *maps())
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        fn(i)
        out.append(time.perf_counter() - t)
        CPU.setdefault(fn.__name__ + ("_cold" if cold else ""), []).append(time.process_time() - c)
    return out


def peak_bytes(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


# ---------------------------------------------------------------------- phy's filter
def phy_filter(arr: np.ndarray, axis: int, sample_rate: float) -> np.ndarray:
    """phy's default raw-data filter (phy/apps/base.py RawDataFilter), as phy applies it."""
    from scipy.signal import butter, lfilter

    b, a = butter(3, 150.0 / sample_rate * 2.0, "high")
    arr = lfilter(b, a, arr, axis=axis)
    arr = np.flip(arr, axis=axis)
    arr = lfilter(b, a, arr, axis=axis)
    return np.flip(arr, axis=axis)


# ---------------------------------------------------------------------- the TUI
async def tui_times(folder: Path, log: Path, big: int, repeat: int, size: tuple[int, int]):
    from textual import events

    from curalog_tui.app import CuralogApp
    from curalog_tui.screens import TraceScreen, WaveformScreen
    from curalog_tui.testing import settle

    cur = curalog.open(folder, log, author="bench")
    app = CuralogApp(cur, owns_curation=True, cursor_blink=False)
    wf_cold, wf_warm, tr_cold, tr_warm = [], [], [], []
    raw = folder / "raw.dat"
    async with app.run_test(size=size) as pilot:
        await settle(pilot, 600)
        app.select_cluster(big)
        await settle(pilot, 600)
        for i in range(2 * repeat):
            cold = i % 2 == 0
            cur.__dict__.get("_waveform_cache", {}).clear()
            if cold:
                drop_cache(raw, *cur.recording._maps)
            t, c = time.perf_counter(), time.process_time()
            # the key as the terminal driver delivers it (Pilot.press would also wait for
            # the app to go idle, in 20 ms steps); done when the compositor has drawn the
            # plot of the waveforms read for it
            app.post_message(events.Key("w", "w"))
            screen = app.screen
            while not (
                isinstance(screen, WaveformScreen)
                and screen.timings
                and screen.plot.rendered == screen.plot.paints
            ):
                await asyncio.sleep(0.001)
                screen = app.screen
            (wf_cold if cold else wf_warm).append(time.perf_counter() - t)
            CPU.setdefault("tui_w" + ("_cold" if cold else ""), []).append(time.process_time() - c)
            await pilot.press("escape")
            await settle(pilot)
        for i in range(2 * repeat):
            cold = i % 2 == 0
            screen = TraceScreen(app, [big])
            await app.push_screen(screen)
            await settle(pilot)
            screen.window = int(FS)
            screen.n_rows = N_CH
            screen.start = int(FS) * (5 + 7 * i)
            screen.timings.clear()
            if cold:
                drop_cache(raw, *cur.recording._maps)
            t, c = time.perf_counter(), time.process_time()
            screen.request()
            while not (screen.timings and screen.plot.rendered == screen.plot.paints):
                await asyncio.sleep(0.001)
            (tr_cold if cold else tr_warm).append(time.perf_counter() - t)
            CPU.setdefault("tui_T" + ("_cold" if cold else ""), []).append(time.process_time() - c)
            assert screen.shown.size == N_CH and screen.traces.shape == (int(FS), N_CH)
            await pilot.press("escape")
            await settle(pilot)
    return wf_cold, wf_warm, tr_cold, tr_warm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", default="200x60")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    build(DATA)
    raw = DATA / "raw.dat"
    log = DATA / "bench.log"
    log.unlink(missing_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    with curalog.open(DATA, log, author="bench") as cur:
        big = cur.merge(list(range(BIG_TEMPLATES)))
    cur = curalog.open(DATA, log, readonly=True)
    assert cur.state.n_spikes_of(big) == BIG_TEMPLATES * BIG_EACH
    rec = cur.recording
    assert rec is not None, cur.recording_error
    cur.waveforms(big)  # compile the kernels, load the geometry

    def ours_wf(i: int) -> None:
        cur.__dict__.get("_waveform_cache", {}).clear()
        cur.waveforms(big)

    wf = cur.waveforms(big)
    ids, chans = wf.spike_ids, wf.channels
    print(
        f"1 M-spike cluster {big}: {wf.n_spikes} spikes x {wf.before + wf.after} samples x "
        f"{len(chans)} channels; file {raw.stat().st_size / 1e9:.2f} GB",
        file=sys.stderr,
    )

    from phylib.io.model import load_model

    model = load_model(DATA / "params.py")

    def fresh_model(i: int) -> None:  # phylib's maps of the file, unmapped: a new model
        nonlocal model
        model.close()
        model = load_model(DATA / "params.py")

    def phy_wf(i: int) -> None:
        data = model.get_waveforms(ids, chans)
        data = data - np.median(data, axis=1)[:, np.newaxis, :]
        phy_filter(data, 1, FS)

    ours_w = timed(ours_wf, args.repeat)
    ours_wc = timed(ours_wf, args.repeat, cold=raw, maps=lambda: rec._maps)
    phy_w = timed(phy_wf, args.repeat)
    phy_wc = timed(phy_wf, args.repeat, cold=raw, prepare=fresh_model, maps=lambda: ())
    rows.append(
        (
            "waveforms, 1 M-spike cluster (100 spikes, 12 ch)",
            f"{med(ours_w):.1f} / {med(ours_wc):.1f}",
            f"{med(phy_w):.1f} / {med(phy_wc):.1f}",
            f"{med(phy_w) / med(ours_w):.2f}x / {med(phy_wc) / med(ours_wc):.2f}x",
        )
    )

    window = int(FS)

    def ours_tr(i: int) -> None:
        s = int(FS) * (3 + 9 * i) % (N_SAMPLES - window)
        rec.traces(s, s + window)

    def phy_tr(i: int) -> None:
        s = int(FS) * (3 + 9 * i) % (N_SAMPLES - window)
        phy_filter(np.asarray(model.traces[s : s + window]), 0, FS)

    ours_tr(0)
    ours_t = timed(ours_tr, args.repeat)
    ours_tc = timed(ours_tr, args.repeat, cold=raw, maps=lambda: rec._maps)
    phy_t = timed(phy_tr, args.repeat)
    phy_tc = timed(phy_tr, args.repeat, cold=raw, prepare=fresh_model, maps=lambda: ())
    rows.append(
        (
            "1 s trace window, 384 ch, filtered",
            f"{med(ours_t):.1f} / {med(ours_tc):.1f}",
            f"{med(phy_t):.1f} / {med(phy_tc):.1f}",
            f"{med(phy_t) / med(ours_t):.2f}x / {med(phy_tc) / med(ours_tc):.2f}x",
        )
    )
    model.close()

    mem_wf = peak_bytes(lambda: ours_wf(0))
    mem_tr = peak_bytes(lambda: ours_tr(1))
    cur.close()

    wf_c, wf_w, tr_c, tr_w = asyncio.run(
        tui_times(DATA, log, big, max(2, args.repeat // 2), size)  # type: ignore[arg-type]
    )
    rows.append(
        (
            f"TUI: key w to waveform plot, {args.size}",
            f"{med(wf_w):.1f} / {med(wf_c):.1f}",
            "-",
            "-",
        )
    )
    rows.append(
        (
            f"TUI: trace view 1 s x 384 ch, request to plot, {args.size}",
            f"{med(tr_w):.1f} / {med(tr_c):.1f}",
            "-",
            "-",
        )
    )

    print("\nprocess CPU ms, median (warm / cold):")
    for name in ("ours_wf", "phy_wf", "ours_tr", "phy_tr", "tui_w", "tui_T"):
        if name in CPU:
            print(f"  {name}: {med(CPU[name]):.1f} / {med(CPU.get(name + '_cold', [0.0])):.1f}")
    print(f"load average: {os.getloadavg()}")
    print("\n| what | curalog ms (warm / cold) | phylib + phy's filter ms (warm / cold) | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")
    win_bytes = window * N_CH * 4
    print(
        f"\npeak allocated: waveforms {mem_wf / 1e6:.1f} MB; 1 s x 384 trace {mem_tr / 1e6:.1f} MB "
        f"(the float32 window itself: {win_bytes / 1e6:.1f} MB; file "
        f"{raw.stat().st_size / 1e9:.2f} GB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
