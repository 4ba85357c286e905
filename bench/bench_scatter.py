"""Benchmark of the spike views: braille rendering and per-spike coordinates (issue 7).

Prints median wall times (``--repeat`` runs, after one warm-up run that also compiles the
numba kernels) for:

* **renderer** - a 1 M-point cluster over a 20 k-point background, whole block rendered to
  ``rich.Text`` lines (binning + cell composition + text), at two terminal sizes; the target
  is <= 50 ms without subsampling;
* **50 M background** - binning 50 M points (float32, in memory) once, then rendering the
  1 M-point cluster over the cached background grid (:class:`BinCache`), and the amplitude
  view's real background (``spike_times`` x ``amplitudes.npy`` of a 50 M-spike folder,
  memory-mapped) when ``--folder50`` exists;
* **views** - on a synthetic folder with ``pc_features`` (written to a temporary directory,
  ``--view-spikes`` spikes), a merged cluster of >= ``--n-fg`` spikes: ``compute_view``
  (coordinates of every spike + background subsample), ``render_scatter``, and
  ``spikes_in_polygon`` for the feature, template-feature and amplitude views.

Usage::

    .venv/bin/python bench/bench_scatter.py
    .venv/bin/python bench/bench_scatter.py --skip-views --n-bg 10000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curalog import load_dataset  # noqa: E402
from curalog.analysis.features import (  # noqa: E402
    FeatureSource,
    amplitude_view,
    compute_view,
    feature_view,
    spikes_in_polygon,
    template_feature_view,
)
from curalog_tui.braille import (  # noqa: E402
    BACKGROUND_COLOR,
    CLUSTER_COLORS,
    BinCache,
    ScatterLayer,
    bin_points,
    layout_frame,
    render_scatter,
    view_layers,
)


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time in ms of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def row(name: str, ms: float, note: str = "") -> None:
    print(f"  {name:<58} {ms:9.1f} ms  {note}")


def bench_renderer(args: argparse.Namespace) -> None:
    print(f"renderer ({args.n_fg:,}-point cluster, 20,000 background points)")
    rng = np.random.default_rng(0)
    x = rng.normal(size=args.n_fg)
    y = 0.6 * x + 0.8 * rng.normal(size=args.n_fg)
    bx = 2.0 * rng.normal(size=20_000)
    by = 2.0 * rng.normal(size=20_000)
    layers = [
        ScatterLayer(bx, by, BACKGROUND_COLOR, background=True),
        ScatterLayer(x, y, CLUSTER_COLORS[0]),
    ]
    for w, h in ((120, 40), (args.width, args.height)):
        ms = timed(
            lambda w=w, h=h: render_scatter(layers, w, h, title="c", x_label="x", y_label="y"),
            args.repeat,
        )
        row(f"render_scatter {w}x{h} (auto range, every point)", ms, "target <= 50 ms")
    frame = layout_frame(args.width, args.height, (-5, 5), (-5, 5))
    row(
        f"  of which bin_points of the cluster ({frame.nx}x{frame.ny} dots)",
        timed(lambda: bin_points(x, y, frame), args.repeat),
    )


def bench_background(args: argparse.Namespace) -> None:
    n = args.n_bg
    print(f"background of {n:,} points (float32 in memory), cluster of {args.n_fg:,}")
    rng = np.random.default_rng(1)
    bx = 2.0 * rng.standard_normal(n, dtype=np.float32)
    by = 2.0 * rng.standard_normal(n, dtype=np.float32)
    x = rng.normal(size=args.n_fg)
    y = rng.normal(size=args.n_fg)
    rng_xy = ((-8.0, 8.0), (-8.0, 8.0))
    frame = layout_frame(args.width, args.height, *rng_xy)
    bin_points(bx[:1000], by[:1000], frame)  # compile
    t = time.perf_counter()
    bin_points(bx, by, frame)
    row("bin_points of the whole background (once per frame)", (time.perf_counter() - t) * 1e3)
    cache = BinCache()
    bg = ScatterLayer(bx, by, BACKGROUND_COLOR, background=True, cache_key="bg")
    fg = ScatterLayer(x, y, CLUSTER_COLORS[0])
    render_scatter(
        [bg, fg], args.width, args.height, x_range=rng_xy[0], y_range=rng_xy[1], cache=cache
    )
    ms = timed(
        lambda: render_scatter(
            [bg, fg], args.width, args.height, x_range=rng_xy[0], y_range=rng_xy[1], cache=cache
        ),
        args.repeat,
    )
    row(f"render {args.width}x{args.height}: cluster + cached background", ms, "target <= 50 ms")
    del bx, by

    folder = Path(args.folder50)
    if not (folder / "spike_times.npy").exists():
        print(f"  ({folder} absent: amplitude background of a real folder skipped)")
        return
    ds = load_dataset(folder)
    times = ds.spike_times  # int64 samples, memory-mapped: bin in samples, no conversion
    amps = ds.amplitudes
    n_all = times.shape[0]
    t1 = float(times[-1])
    a_hi = float(np.percentile(np.asarray(amps[:: max(1, n_all // 100_000)]), 99.9)) * 1.1
    frame_s = layout_frame(args.width, args.height, (0.0, t1), (0.0, a_hi))
    t = time.perf_counter()
    counts = bin_points(times, amps, frame_s)
    row(
        f"amplitude view: bin all {n_all:,} spikes (times x amplitudes, mmap)",
        (time.perf_counter() - t) * 1e3,
        "cached per frame",
    )
    sr = ds.sample_rate
    pre = ScatterLayer(None, None, BACKGROUND_COLOR, background=True, counts=counts)
    sizes = np.bincount(ds.spike_templates)
    big = int(sizes.argmax())
    spikes = np.flatnonzero(np.asarray(ds.spike_templates) == big)
    fx = np.asarray(times[spikes], dtype=np.float64) / sr
    fy = np.asarray(amps[spikes], dtype=np.float64)
    fgl = ScatterLayer(fx, fy, CLUSTER_COLORS[0])
    ms = timed(
        lambda: render_scatter(
            [pre, fgl], args.width, args.height, x_range=(0.0, t1 / sr), y_range=(0.0, a_hi)
        ),
        args.repeat,
    )
    row(f"amplitude view render: cluster {big} ({spikes.shape[0]:,}) + 50 M grid", ms)


def bench_views(args: argparse.Namespace) -> None:
    from curalog.clustering import ClusterState
    from curalog.synth.generator import synthesize

    with tempfile.TemporaryDirectory(prefix="curalog-bench-scatter-") as tmp:
        out = Path(tmp) / "ks"
        t = time.perf_counter()
        synthesize(out, n_spikes=args.view_spikes, n_templates=40, seed=0, pc_features=True)
        print(
            f"views (synthetic folder, {args.view_spikes:,} spikes with pc_features, written in "
            f"{time.perf_counter() - t:.1f} s)"
        )
        ds = load_dataset(out)
        state = ClusterState(ds.spike_templates)
        src = FeatureSource(ds)
        sizes = state.sizes()
        order = sorted(sizes, key=lambda c: -sizes[c])
        members, total = [], 0
        for c in order:
            members.append(c)
            total += sizes[c]
            if total >= args.n_fg:
                break
        # a merged cluster: the union of the largest templates (as after a few merges)
        big = np.sort(np.concatenate([state.spikes(c) for c in members]))
        other = order[len(members)]
        print(
            f"  cluster of {big.shape[0]:,} spikes ({len(members)} templates), "
            f"second cluster {sizes[other]:,}"
        )
        specs = {
            "feature": feature_view(src, [(-1, big)]),
            "template-feature": template_feature_view(
                src, [(-1, big), (other, state.spikes(other))]
            ),
            "amplitude": amplitude_view(src, [(-1, big)]),
        }
        for name, spec in specs.items():
            bg = name != "template-feature"
            ms = timed(lambda spec=spec, bg=bg: compute_view(spec, background=bg), args.repeat)
            row(f"{name}: compute_view (every spike + background)", ms)
            data = compute_view(spec, background=bg)
            layers = view_layers(data)
            ms = timed(
                lambda layers=layers, data=data: render_scatter(
                    layers, args.width, args.height, x_range=data.x_range, y_range=data.y_range
                ),
                args.repeat,
            )
            row(f"{name}: render_scatter {args.width}x{args.height}", ms, "target <= 50 ms")
            (x0, x1), (y0, y1) = data.x_range, data.y_range
            poly = [(x0, y0), ((x0 + x1) / 2, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x0, y1)]
            n_in = spikes_in_polygon(spec, poly).shape[0]
            ms = timed(lambda spec=spec, poly=poly: spikes_in_polygon(spec, poly), args.repeat)
            row(f"{name}: spikes_in_polygon (all spikes)", ms, f"{n_in:,} inside")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-fg", type=int, default=1_000_000, help="spikes of the plotted cluster")
    p.add_argument("--n-bg", type=int, default=50_000_000, help="background points")
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--height", type=int, default=60)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument(
        "--view-spikes",
        type=int,
        default=2_500_000,
        help="spikes of the synthetic folder for the view benchmarks",
    )
    p.add_argument("--folder50", default=str(ROOT / "bench" / "data" / "synth-50M-1000"))
    p.add_argument("--skip-views", action="store_true")
    p.add_argument("--skip-background", action="store_true")
    args = p.parse_args(argv)
    bench_renderer(args)
    if not args.skip_background:
        bench_background(args)
    if not args.skip_views:
        bench_views(args)


if __name__ == "__main__":
    main()
