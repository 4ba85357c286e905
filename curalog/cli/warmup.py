"""``curalog warmup``: compile the numerical kernels once, ahead of the first session.

Run it after installing (or upgrading) curalog so that the first merge in the terminal UI
does not wait for numba's compiler; the terminal UI otherwise does the same at its first
launch, with a progress message. See :mod:`curalog.warmup`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from curalog.errors import CuralogError


class WarmupError(CuralogError):
    """A warm-up step failed (the kernels it covers compile on first use instead)."""


def cmd_warmup(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from curalog import warmup

    groups: list[tuple[str, Any, tuple[str, ...]]] = [("core", warmup.STEPS, warmup.KERNEL_MODULES)]
    from curalog.cli.ui import ui_warmup_steps

    ui = ui_warmup_steps()
    if ui is not None:
        groups.append(("tui", ui[0], ui[1]))
    todo = [g for g in groups if args.force or warmup.needed(g[0], g[2])]
    if not todo:
        print("curalog: kernels already compiled for this installation", file=sys.stderr)
        return 0
    total = sum(len(steps) for _, steps, _ in todo)
    errors: list[tuple[str, str]] = []
    seconds = 0.0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("compiling", total=total)
        base = 0
        for group, steps, modules in todo:

            def cb(label: str, done: int, n: int, _base: int = base) -> None:
                progress.update(task, completed=_base + done, description=f"compiling: {label}")

            report = warmup.warm_up(cb, steps=steps, group=group, modules=modules)
            errors += report.errors
            seconds += report.seconds
            base += len(steps)
    if errors:
        label, why = errors[0]
        raise WarmupError(f"warm-up step '{label}' failed: {why}")
    print(f"curalog: kernels compiled and cached in {seconds:.1f} s", file=sys.stderr)
    return 0


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add(
        "warmup",
        cmd_warmup,
        "compile the numerical kernels once (run after installing; the UI otherwise does it "
        "at its first launch)",
        dataset=False,
    )
    p.add_argument("--force", action="store_true", help="compile again even if done before")
