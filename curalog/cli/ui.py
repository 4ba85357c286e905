"""``curalog tui`` and ``curalog serve``: the entry points of the terminal UI.

The only module of :mod:`curalog` that imports :mod:`curalog_tui` (checked by
``tests/test_architecture.py``); it does so when the command runs, so that every other
command starts without loading Textual, and a missing UI (or textual-serve, for ``serve``)
is one line on stderr with status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from curalog.cli.waveforms import add_raw_argument
from curalog.errors import CuralogError


class UIUnavailableError(CuralogError):
    """The terminal UI (or, for ``serve``, textual-serve) is not installed."""


def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from curalog_tui.app import run_app
    except ImportError as exc:
        raise UIUnavailableError(f"the terminal UI is not installed ({exc})") from None
    return run_app(args.dir, args.log, author=args.author, mouse=not args.no_mouse, raw=args.raw)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from curalog_tui.serve import serve
    except ImportError as exc:
        raise UIUnavailableError(
            f"curalog serve needs the terminal UI and textual-serve (dependencies of curalog: pip install curalog) ({exc})"
        ) from None
    return serve(
        args.dir,
        args.log,
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        raw=args.raw,
    )


def ui_warmup_steps() -> tuple[Any, tuple[str, ...]] | None:
    """The terminal UI's warm-up steps and kernel modules (``curalog warmup``), if installed."""
    try:
        from curalog_tui.warmup import TUI_MODULES, TUI_STEPS
    except ImportError:
        return None
    return TUI_STEPS, TUI_MODULES


def register(add: Callable[..., Any]) -> None:
    """Add the ``tui`` and ``serve`` subcommands to curalog's parser."""
    p = add("tui", cmd_tui, "curate in the terminal (works over SSH)", author=True)
    p.add_argument(
        "--no-mouse", action="store_true", help="do not capture the mouse (slow links, copy/paste)"
    )
    add_raw_argument(p)

    p = add(
        "serve",
        cmd_serve,
        "serve the terminal UI to a browser (binds 127.0.0.1; use an SSH tunnel)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: local only)"
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve on a non-loopback --host (the secret token in the printed URL is then "
        "the only protection; prefer an SSH tunnel)",
    )
    add_raw_argument(p)


__all__ = ["UIUnavailableError", "cmd_serve", "cmd_tui", "register"]
