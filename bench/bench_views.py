"""Spike views in the running app: key press to repainted plot, and where the time goes.

Runs the real app headless (``App.run_test``) and delivers keys through the driver as a
terminal would. For each step it measures the time from the key to the first screen update
(compositor render) that shows the change, plus the work done off the UI thread (from
``ViewsScreen.timings``: ``compute`` = building the view and reading every spike's
coordinates + binning, in a worker; ``preview`` = polygon preview, worker; ``select`` =
exact selection over all spikes, worker) and on it (``render`` = composing the braille plot
from cached grids, UI thread).

Datasets:

* a synthetic folder with ``pc_features`` / ``template_features`` (``--spikes``, written to a
  temporary directory), whose biggest clusters are merged into one of >= ``--n-fg`` spikes
  (default 1 M) before the app starts: feature, template-feature and amplitude views of that
  cluster, crosshair moves, a channel step, a polygon preview and the split itself;
* with ``--folder50 DIR`` (e.g. ``bench/data/synth-50M-1000``, no feature files), the
  amplitude view of a merged >= 1 M-spike cluster over the 50 M-spike folder's background
  (the log goes to a temporary directory; the folder is not modified).

    .venv/bin/python bench/bench_views.py
    .venv/bin/python bench/bench_views.py --size 200x60 --folder50 bench/data/synth-50M-1000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events

import curalog
from curalog.synth.generator import synthesize
from curalog_tui.app import CuralogApp
from curalog_tui.screens.views import ViewsScreen
from curalog_tui.session import open_session
from curalog_tui.widgets.scatter import ScatterView


async def settle(pilot, timeout: float = 900.0) -> None:
    app = pilot.app
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause()
        if all(w.is_finished for w in app.workers):
            return
        await asyncio.sleep(0.02)


def merge_big(folder: Path, log: Path, n_fg: int) -> int:
    """Merge the biggest clusters until one holds >= n_fg spikes; returns its id."""
    with curalog.open(folder, log, author="bench") as cur:
        sizes = cur.state.sizes()
        order = sorted(sizes, key=lambda c: -sizes[c])
        ids, total = [], 0
        for c in order:
            ids.append(int(c))
            total += sizes[c]
            if total >= n_fg:
                break
        return int(cur.merge(ids)) if len(ids) > 1 else ids[0]


class Probe:
    """Timestamps of screen updates and of plot changes (with the screen state then)."""

    def __init__(self, app: CuralogApp):
        self.app = app
        self.displays: list[float] = []
        self.plots: list[tuple[float, Any]] = []
        original = app._display

        def spy(screen, renderable):
            self.displays.append(time.perf_counter())
            return original(screen, renderable)

        app._display = spy  # type: ignore[method-assign]
        set_lines = ScatterView.set_lines
        probe = self

        def recording(view, lines):
            set_lines(view, lines)
            if view.app is probe.app:
                scr = view.screen
                probe.plots.append((time.perf_counter(), scr))
                probe.check(scr)

        ScatterView.set_lines = recording  # type: ignore[method-assign]
        self._restore = set_lines
        self.want: Callable[[Any], bool] | None = None
        self.hit: float | None = None

    def close(self) -> None:
        ScatterView.set_lines = self._restore  # type: ignore[method-assign]

    def check(self, screen: Any) -> None:
        if self.want is not None and self.hit is None and self.want(screen):
            self.hit = time.perf_counter()

    async def press(
        self, key: str, want: Callable[[Any], bool] | None = None, timeout: float = 60.0
    ) -> float:
        """Deliver ``key``; wait for a plot update where ``want(screen)`` holds, then for the
        next screen update. Returns the latency in ms."""
        app = self.app
        self.want = want or (lambda s: True)
        self.hit = None
        n0 = len(self.displays)
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        t0 = time.perf_counter()
        app._driver.send_message(event)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.hit is not None and any(t > self.hit for t in self.displays[n0:]):
                break
            await asyncio.sleep(0.0005)
        else:
            raise RuntimeError(f"key {key!r}: no matching update within {timeout} s")
        shown = min(t for t in self.displays[n0:] if t > self.hit)
        self.want = None
        return (shown - t0) * 1e3


def summary(xs: list[float]) -> str:
    if not xs:
        return "-"
    s = sorted(xs)
    p90 = s[int(0.9 * (len(s) - 1))]
    return f"median {statistics.median(s):.1f} ms, p90 {p90:.1f}, max {s[-1]:.1f} (n={len(s)})"


async def bench_features(folder: Path, log: Path, cid: int, args: argparse.Namespace) -> None:
    app = CuralogApp(
        opener=lambda: open_session(folder, log), owns_curation=True, cursor_blink=False
    )
    w, h = (int(x) for x in args.size.split("x"))
    async with app.run_test(size=(w, h)) as pilot:
        await settle(pilot)
        probe = Probe(app)
        cur = app.cur
        assert app.table.select(cid)
        await settle(pilot)
        n = cur.state.n_spikes_of(cid)
        print(f"cluster {cid}: {n:,} spikes of {cur.dataset.n_spikes:,}; terminal {w}x{h}")
        ms = await probe.press("v", lambda s: isinstance(s, ViewsScreen) and s.data is not None)
        screen = app.screen
        assert isinstance(screen, ViewsScreen)
        print(
            f"v (feature view of {n:,} spikes + 20,000 background): {ms:.0f} ms key to plot; "
            f"worker {screen.timings['compute'][-1]:.0f} ms (coordinates of every spike + binning)"
        )
        cache = screen.cache
        h0, m0 = cache.hits, cache.misses
        r0 = len(screen.timings["render"])
        lat = []
        for i in range(args.repeats):
            lat.append(await probe.press("right" if i % 4 < 2 else "left"))
        renders = screen.timings["render"][r0:]
        print(
            f"crosshair move: key to screen {summary(lat)}; UI-thread render {summary(renders)}; "
            f"bin cache {cache.hits - h0} hits / {cache.misses - m0} misses"
        )
        old = screen.spec.x
        ms = await probe.press(
            "x",
            lambda s: (
                s.spec is not None
                and s.spec.x != old
                and s.data is not None
                and s.data.spec is s.spec
            ),
        )
        print(
            f"x (next channel): {ms:.0f} ms key to plot; worker {screen.timings['compute'][-1]:.0f} ms"
        )
        for keys in (
            ("shift+left", "shift+up"),
            ("shift+right", "shift+right"),
            ("shift+down", "shift+down"),
            ("shift+left", "shift+left"),
        ):
            for k in keys:
                await probe.press(k)
            await probe.press("space")
        ms = await probe.press("enter", lambda s: s.preview is not None)
        p = screen.preview
        print(
            f"enter (close polygon, preview {sum(p.n_inside.values()):,} inside): {ms:.0f} ms key to plot; "
            f"worker {screen.timings['preview'][-1]:.0f} ms"
        )
        seq = cur.seq
        table_at: list[float] = []
        app.on_table_changed = lambda: table_at.append(time.perf_counter())
        t_key = time.perf_counter()
        ms = await probe.press(
            "enter",
            lambda s: cur.seq > seq and s.data is not None and cid not in s.data.spec.cluster_ids,
        )
        shown = min(t for t in probe.displays if t > table_at[0])
        print(
            f"enter (split: exact selection over all {n:,} spikes, one event, table diffed, view of the "
            f"pieces): table updated {(shown - t_key) * 1e3:.0f} ms after the key, new plot {ms:.0f} ms; "
            f"selection worker {screen.timings['select'][-1]:.0f} ms; {app.status.message.plain}"
        )
        ms = await probe.press(
            "ctrl+z", lambda s: s.data is not None and cid in s.data.spec.cluster_ids
        )
        print(f"ctrl+z (undo, view follows): {ms:.0f} ms")
        ms = await probe.press(
            "t", lambda s: s.mode == "template_feature" and (s.data is not None or s.error)
        )
        print(
            f"t (template-feature view, {' + '.join(map(str, screen.spec.cluster_ids))}): {ms:.0f} ms; "
            f"worker {screen.timings['compute'][-1]:.0f} ms"
        )
        ms = await probe.press("a", lambda s: s.mode == "amplitude" and s.data is not None)
        print(
            f"a (amplitude view + histogram): {ms:.0f} ms; worker {screen.timings['compute'][-1]:.0f} ms"
        )
        r0 = len(screen.timings["render"])
        lat = [await probe.press("up" if i % 4 < 2 else "down") for i in range(args.repeats)]
        print(
            f"crosshair move (amplitude view): key to screen {summary(lat)}; "
            f"UI-thread render {summary(screen.timings['render'][r0:])}"
        )
        ms = await probe.press("c", lambda s: s.mode == "clusters")
        print(f"c (cluster scatter of {cur.n_clusters} clusters): {ms:.0f} ms")
        probe.close()


async def bench_amplitude_50m(folder: Path, log: Path, cid: int, args: argparse.Namespace) -> None:
    app = CuralogApp(
        opener=lambda: open_session(folder, log), owns_curation=True, cursor_blink=False
    )
    w, h = (int(x) for x in args.size.split("x"))
    async with app.run_test(size=(w, h)) as pilot:
        t0 = time.perf_counter()
        await settle(pilot)
        print(f"{folder.name}: opened and statistics filled in {time.perf_counter() - t0:.0f} s")
        probe = Probe(app)
        assert app.table.select(cid)
        await settle(pilot)
        n = app.cur.state.n_spikes_of(cid)
        ms = await probe.press(
            "v", lambda s: isinstance(s, ViewsScreen) and (s.error or s.data is not None)
        )
        screen = app.screen
        print(
            f"v on {app.cur.dataset.n_spikes:,} spikes: {ms:.0f} ms ({screen.error or 'feature view'})"
        )
        ms = await probe.press("a", lambda s: s.mode == "amplitude" and s.data is not None)
        print(
            f"a (amplitude view of {n:,} spikes over a 20,000-spike background of "
            f"{app.cur.dataset.n_spikes - n:,}): {ms:.0f} ms key to plot; "
            f"worker {screen.timings['compute'][-1]:.0f} ms"
        )
        r0 = len(screen.timings["render"])
        lat = [await probe.press("right" if i % 4 < 2 else "left") for i in range(args.repeats)]
        print(
            f"crosshair move: key to screen {summary(lat)}; UI-thread render "
            f"{summary(screen.timings['render'][r0:])}"
        )
        for keys in (
            ("shift+left", "shift+up"),
            ("shift+right", "shift+right"),
            ("shift+down", "shift+down"),
            ("shift+left", "shift+left"),
        ):
            for k in keys:
                await probe.press(k)
            await probe.press("space")
        ms = await probe.press("enter", lambda s: s.preview is not None)
        print(f"enter (preview): {ms:.0f} ms; worker {screen.timings['preview'][-1]:.0f} ms")
        seq = app.cur.seq
        ms = await probe.press(
            "enter",
            lambda s: (
                app.cur.seq > seq and s.data is not None and cid not in s.data.spec.cluster_ids
            ),
        )
        print(
            f"enter (split): {ms:.0f} ms key to new plot; selection worker "
            f"{screen.timings['select'][-1]:.0f} ms; {app.status.message.plain}"
        )
        probe.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--spikes", type=int, default=1_200_000)
    p.add_argument("--templates", type=int, default=24)
    p.add_argument("--n-fg", type=int, default=1_000_000, help="spikes of the merged cluster shown")
    p.add_argument("--size", default="160x45", help="terminal size WxH (default 160x45)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument(
        "--folder50", type=Path, help="also bench the amplitude view on this (50 M) folder"
    )
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="curalog-bench-views-"))
    try:
        folder = tmp / "ds"
        t0 = time.perf_counter()
        synthesize(
            folder, n_spikes=args.spikes, n_templates=args.templates, seed=3, pc_features=True
        )
        print(
            f"synthesized {args.spikes:,} spikes / {args.templates} templates with features in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        cid = merge_big(folder, tmp / "feat.log", args.n_fg)
        asyncio.run(bench_features(folder, tmp / "feat.log", cid, args))
        if args.folder50 is not None:
            cid = merge_big(args.folder50, tmp / "big.log", args.n_fg)
            asyncio.run(bench_amplitude_50m(args.folder50, tmp / "big.log", cid, args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
