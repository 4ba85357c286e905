"""Helpers for driving the app headless (tests, benchmarks, text captures for the docs)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from textual.app import App

if TYPE_CHECKING:
    from curalog_tui.app import CuralogApp


def open_app(
    folder: str | os.PathLike[str],
    *,
    author: str | None = None,
    raw: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
    **app_kwargs: Any,
) -> CuralogApp:
    """The app on ``folder`` as ``curalog tui`` opens it (read-only when the log is held), for
    headless runs: the app owns the curation and the cursor does not blink (stable captures).
    ``author`` and ``raw`` go to :func:`~curalog_tui.session.open_session`, the rest to the app.
    """
    from curalog_tui.app import CuralogApp
    from curalog_tui.session import open_session

    session = open_session(folder, author=author, raw=raw)
    return CuralogApp(
        session.cur,
        readonly_reason=session.readonly_reason,
        owns_curation=True,
        cursor_blink=False,
        **app_kwargs,
    )


async def settle(pilot: Any, timeout: float = 60.0) -> None:
    """Wait until every worker (thread workers included) has finished and the app is idle.

    ``pilot.pause()`` alone does not wait for thread workers, and
    ``app.workers.wait_for_complete()`` raises when an exclusive worker was cancelled
    (which the app does on purpose when the selection moves on).
    """
    app: App = pilot.app
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause()
        if all(w.is_finished for w in app.workers):
            await pilot.pause()
            if all(w.is_finished for w in app.workers):
                return
        await asyncio.sleep(0.01)
    busy = [w.description or w.name for w in app.workers if not w.is_finished]
    raise TimeoutError(f"workers still running after {timeout} s: {busy}")


def screen_text(app: App, *, mask: bool = True) -> str:
    """The current screen as plain text (what a terminal would show, without colours).

    With ``mask``, log hashes and wall-clock times are replaced by placeholders so the
    capture is stable across runs.
    """
    width, _ = app.size
    console = Console(
        record=True,
        width=width,
        file=open("/dev/null", "w"),  # noqa: SIM115
        color_system=None,
        legacy_windows=False,
    )
    console.print(app.screen._compositor.render_update(full=True))
    text = console.export_text(styles=False)
    console.file.close()
    lines = [ln.rstrip() for ln in text.splitlines()]
    out = "\n".join(lines).rstrip() + "\n"
    if mask:
        # a log hash, or the placeholder shown before the first event creates the log
        out = re.sub(r"#(?:[0-9a-f]{8}|-{8})", "#xxxxxxxx", out)
        out = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "YYYY-MM-DD hh:mm:ss", out)
    return out
