"""The terminal UI's share of the kernel warm-up (see :mod:`curalog.warmup`).

At its first launch the UI compiles the library's kernels and its own plot kernels before
opening the folder, saying so on the opening screen, so that the first merge or view
does not stall on numba's compiler.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from curalog import warmup

TUI_MODULES = ("curalog_tui.braille",)


def _plots(folder: Path) -> None:
    import numba

    from curalog_tui import braille

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=5_000).astype(dtype)
        y = rng.normal(size=5_000).astype(dtype)
        layers = [
            braille.ScatterLayer(x, y, "#ff0000", name="a"),
            braille.ScatterLayer(y, x, "#888888", background=True, name="b"),
        ]
        plot = braille.render_scatter(layers, 60, 20, title="warm-up")
        braille.side_histogram(layers, plot, 12)
        # the parallel binning kernel runs above millions of points: compile it on a few
        out = np.zeros(8 * 40, dtype=np.int64)
        n_threads = numba.get_num_threads()
        braille._bin_parallel(x, y, -3.0, 10.0, -3.0, 10.0, 8, 40, n_threads, out)  # noqa: SLF001


TUI_STEPS = (("terminal plots", _plots),)


def warm_up_first_run(say: Callable[[str], None]) -> None:
    """Compile what a session needs if this installation never did; ``say`` shows progress."""
    groups = [
        ("core", warmup.STEPS, warmup.KERNEL_MODULES),
        ("tui", TUI_STEPS, TUI_MODULES),
    ]
    todo = [g for g in groups if warmup.needed(g[0], g[2])]
    if not todo:
        return
    total = sum(len(steps) for _, steps, _ in todo)
    base = 0
    for group, steps, modules in todo:

        def progress(label: str, done: int, n: int, _base: int = base) -> None:
            if done < n:
                say(
                    "first launch: compiling curalog's numerical kernels for this machine "
                    f"(once; `curalog warmup` does it at install)\n{_base + done + 1}/{total} {label}…"
                )

        warmup.warm_up(progress, steps=steps, group=group, modules=modules)
        base += len(steps)
