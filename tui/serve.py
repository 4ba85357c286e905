"""``curalog serve DIR``: the same terminal UI in a web browser, via textual-serve.

textual-serve starts one app process per browser tab and has no authentication, so it
binds 127.0.0.1 by default; reach it from your laptop with an SSH tunnel::

    ssh -L 8000:127.0.0.1:8000 user@server     # then open http://127.0.0.1:8000

A second tab opens the log read-only (the writer lock is held by the first one).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

INSTALL_HINT = "pip install textual-serve  (a dependency of curalog: reinstall curalog)"


def serve_command(dir: str | os.PathLike[str], log: str | os.PathLike[str] | None = None) -> str:
    """The shell command textual-serve runs for each browser tab."""
    parts = [sys.executable, "-m", "curalog", "tui", str(Path(dir).resolve())]
    if log is not None:
        parts += ["--log", str(Path(log).resolve())]
    return shlex.join(parts)


def serve(
    dir: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> int:
    """Serve the UI of ``dir`` at ``http://host:port``; returns the exit status."""
    if not Path(dir).is_dir():
        print(f"curalog: {dir}: no such folder", file=sys.stderr)
        return 2
    try:
        from textual_serve.server import Server
    except ImportError:
        print(
            f"curalog serve needs textual-serve, which is not installed: {INSTALL_HINT}",
            file=sys.stderr,
        )
        print(
            f"(it would bind http://{host}:{port}; `curalog tui {dir}` works in any terminal, also over SSH)",
            file=sys.stderr,
        )
        return 2
    url = f"http://{host}:{port}"
    print(
        f"curalog: serving {Path(dir).resolve()} at {url} (one app per browser tab; Ctrl+C stops)"
    )
    if host in ("127.0.0.1", "localhost", "::1"):
        print(
            f"curalog: local only; from another machine use an SSH tunnel: ssh -L {port}:127.0.0.1:{port} <this host>"
        )
    else:
        print(
            "curalog: WARNING: textual-serve has no authentication; anyone who can reach this address can curate",
            file=sys.stderr,
        )
    from .web_assets import server_kwargs  # the page and its fonts served locally

    server = Server(
        serve_command(dir, log),
        host=host,
        port=port,
        title=f"curalog {Path(dir).name}",
        **server_kwargs(),
    )
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"curalog: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
