"""The progress bars the commands show on stderr (``clusters``, ``export``, ``synth``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(
    label: str, total: int = 1, *, show: bool = True, percent: bool = False
) -> Iterator[Callable[[int, int], None]]:
    """A transient bar ``label ━━━ done/total elapsed`` (or ``NN%`` with ``percent``) on
    stderr, drawn only on a terminal (and when ``show``); yields the ``progress(done,
    total)`` callback to hand to the work. stdout keeps only the command's results."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    err = Console(stderr=True)
    count: ProgressColumn = (
        TextColumn("{task.percentage:>3.0f}%") if percent else MofNCompleteColumn()
    )
    with Progress(
        label,
        BarColumn(),
        count,
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not (show and err.is_terminal),
    ) as bar:
        task = bar.add_task(label, total=max(total, 1))
        yield lambda done, n: bar.update(task, completed=done, total=max(n, 1))
