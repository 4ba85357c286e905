"""Terminal UI latency: key press to repainted screen for merge and label, and first paint.

Runs the real app headless (``App.run_test``) on a synthetic Kilosort folder and measures,
for each key press, the time from posting the key to the first screen update
(compositor render) that follows the table change. The headless driver renders the same
frames as a terminal would; it only skips writing the bytes to a tty.

    python bench/bench_tui.py                       # 1,000 templates, 3 M spikes
    python bench/bench_tui.py --spikes 50000000     # time to first paint at 50 M spikes

Measures merge (``g``), label (``1``/``2``) and a cursor move (``down``/``up``: the similar
table, detail panel and status line follow). Prints one line per measurement and a summary
(median, p90, max); docs/DESIGN.md's target is <= 100 ms key press to repainted screen with
1,000 clusters.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textual import events

from curalog.synth.generator import synthesize
from curalog_tui.app import CuralogApp
from curalog_tui.session import open_session


async def settle(pilot, timeout: float = 600.0) -> None:
    app = pilot.app
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause()
        if all(w.is_finished for w in app.workers):
            return
        await asyncio.sleep(0.02)


async def measure(folder: Path, log: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    def opener():
        if args.warmup:  # as `curalog tui` does at a first launch
            from curalog_tui.warmup import warm_up_first_run

            t0 = time.perf_counter()
            warm_up_first_run(lambda text: None)
            print(f"first-launch warm-up: {time.perf_counter() - t0:.1f} s", flush=True)
        return open_session(folder, log)

    app = CuralogApp(opener=opener, owns_curation=True, cursor_blink=False)
    displays: list[float] = []
    cpu_at: dict[float, float] = {}  # wall time of a screen update -> main-thread CPU time
    original = app._display

    def spy(screen, renderable):  # record every compositor update
        now = time.perf_counter()
        displays.append(now)
        cpu_at[now] = time.thread_time()
        return original(screen, renderable)

    app._display = spy  # type: ignore[method-assign]
    changed: list[float] = []
    app.on_table_changed = lambda: changed.append(time.perf_counter())
    results: dict[str, list[float]] = {
        "merge": [],
        "label": [],
        "move": [],
        "merge cpu": [],
        "label cpu": [],
        "move cpu": [],
    }
    w, h = (int(x) for x in args.size.split("x"))
    t_app = time.perf_counter()
    async with app.run_test(size=(w, h)) as pilot:
        while not (app.ready and app.query("#clusters") and app.table.row_count):
            await asyncio.sleep(0.005)
        t_ready = time.perf_counter()
        await pilot.pause()
        first_paint = displays[0] - t_app
        table_paint = min(t for t in displays if t >= t_ready) - t_app
        print(
            f"app start to first paint: {first_paint * 1e3:.0f} ms (the 'opening' screen); "
            f"to the cluster table on screen: {table_paint * 1e3:.0f} ms (load + replay + first rows) "
            f"({app.cur.n_clusters} clusters, {app.cur.dataset.n_spikes:,} spikes)"
        )
        t_stats = time.perf_counter()
        await settle(pilot)
        print(
            f"statistics of all clusters filled in the background: {time.perf_counter() - t_stats:.1f} s"
        )
        t_warm = time.perf_counter()
        while app.table._warm_timer is not None and time.perf_counter() - t_warm < 60:
            await asyncio.sleep(0.1)
        print(f"off-screen rows pre-rendered in idle time: {time.perf_counter() - t_warm:.1f} s")
        if args.first_paint_only:
            return results

        async def press(key: str) -> tuple[float, float]:
            changed.clear()
            displays.clear()
            event = events.Key(key, key if len(key) == 1 else None)
            event.set_sender(app)
            t0, c0 = time.perf_counter(), time.thread_time()
            app._driver.send_message(event)  # as the terminal driver delivers a key
            end = time.monotonic() + 5
            while time.monotonic() < end:
                if changed and any(t > changed[0] for t in displays):
                    break
                await asyncio.sleep(0.0005)
            if not changed:
                raise RuntimeError(f"key {key!r} changed nothing: {app.status.message.plain}")
            shown = min(t for t in displays if t > changed[0])
            return shown - t0, cpu_at[shown] - c0

        async def press_move(key: str) -> tuple[float, float]:
            """A cursor move: key to the first screen update showing the new row."""
            before = app.table.current
            displays.clear()
            event = events.Key(key, None)
            event.set_sender(app)
            t0, c0 = time.perf_counter(), time.thread_time()
            app._driver.send_message(event)
            end = time.monotonic() + 5
            moved_at = None
            while time.monotonic() < end:
                if moved_at is None and app.table.current != before:
                    moved_at = time.perf_counter()
                if moved_at is not None and any(t >= moved_at for t in displays):
                    break
                await asyncio.sleep(0.0005)
            if moved_at is None:
                raise RuntimeError(f"key {key!r} did not move the cursor")
            shown = min(t for t in displays if t >= moved_at)
            return shown - t0, cpu_at[shown] - c0

        for i in range(args.repeats):
            dt, cpu = await press_move("down")
            results["move"].append(dt)
            results["move cpu"].append(cpu)
            print(f"move  {i + 1:2d}: {dt * 1e3:6.1f} ms wall, {cpu * 1e3:5.1f} ms UI-thread CPU")
            await settle(pilot)
            for name, key in (("merge", "g"), ("label", "2" if i % 2 else "1")):
                dt, cpu = await press(key)
                results[name].append(dt)
                results[name + " cpu"].append(cpu)
                print(
                    f"{name} {i + 1:2d}: {dt * 1e3:6.1f} ms wall, {cpu * 1e3:5.1f} ms UI-thread CPU "
                    f"({app.status.message.plain})"
                )
                await settle(pilot)
    return results


def first_launch(argv: list[str]) -> int:
    import os
    import subprocess

    rest = [a for a in argv if a != "--first-launch"]
    for warm in (False, True):
        with tempfile.TemporaryDirectory(prefix="curalog-first-launch-") as caches:
            env = dict(
                os.environ,
                NUMBA_CACHE_DIR=str(Path(caches) / "numba"),
                CURALOG_CACHE_DIR=str(Path(caches) / "curalog"),
            )
            cmd = [sys.executable, __file__, *rest, *(["--warmup"] if warm else [])]
            print(f"== first launch {'with' if warm else 'without'} the warm-up", flush=True)
            subprocess.run(cmd, env=env, check=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--spikes", type=int, default=3_000_000)
    p.add_argument("--templates", type=int, default=1000)
    p.add_argument("--size", default="200x50", help="terminal size WxH (default 200x50)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument(
        "--folder",
        type=Path,
        help="reuse this dataset folder (read only: the bench log goes to a temp dir)",
    )
    p.add_argument("--first-paint-only", action="store_true")
    p.add_argument(
        "--warmup",
        action="store_true",
        help="compile the kernels first if this installation never did (as `curalog tui`)",
    )
    p.add_argument(
        "--first-launch",
        action="store_true",
        help="run twice in fresh processes with empty numba and curalog caches, as a first "
        "launch after install: without and with the warm-up; compare the first merges",
    )
    args = p.parse_args(argv)
    if args.first_launch:
        return first_launch(sys.argv[1:] if argv is None else argv)
    tmp = Path(tempfile.mkdtemp(prefix="curalog-bench-tui-"))
    if args.folder is not None and (args.folder / "spike_times.npy").exists():
        folder = args.folder
    else:
        folder = args.folder or tmp / "ds"
        t0 = time.perf_counter()
        synthesize(folder, n_spikes=args.spikes, n_templates=args.templates, seed=1)
        print(
            f"synthesized {args.spikes:,} spikes / {args.templates} templates in {time.perf_counter() - t0:.1f} s"
        )
    try:
        results = asyncio.run(measure(folder, tmp / "bench.log", args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, xs in results.items():
        if xs:
            xs_ms = sorted(x * 1e3 for x in xs)
            p90 = xs_ms[int(0.9 * (len(xs_ms) - 1))]
            print(
                f"{name}: median {statistics.median(xs_ms):.1f} ms, p90 {p90:.1f} ms, max {xs_ms[-1]:.1f} ms "
                f"(n={len(xs_ms)})"
            )
    print("target (docs/DESIGN.md): key press to repainted screen <= 100 ms with 1,000 clusters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
