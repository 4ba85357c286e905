"""The progress bar the metric-computing commands show on stderr (``clusters``, ``export``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def metrics_progress(
    label: str, total: int, *, show: bool = True
) -> Iterator[Callable[[int, int], None]]:
    """A transient bar ``label ━━━ done/total elapsed`` on stderr, drawn only on a terminal
    (and when ``show``); yields the ``progress(done, total)`` callback to hand to the work."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    err = Console(stderr=True)
    with Progress(
        label,
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not (show and err.is_terminal),
    ) as bar:
        task = bar.add_task("metrics", total=total)
        yield lambda done, n: bar.update(task, completed=done, total=n)
