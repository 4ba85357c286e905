"""``curalog serve DIR``: the same terminal UI in a web browser, via textual-serve.

textual-serve starts one app process per browser tab and has no authentication of its
own: curalog adds it (:mod:`curalog_tui.serve_auth`: a secret token in the URL printed at
start, Host and Origin checks). It binds 127.0.0.1 and refuses another address unless
``--allow-remote`` is given; reach it from your laptop with an SSH tunnel::

    ssh -L 8000:127.0.0.1:8000 user@server     # then open the printed http://127.0.0.1:8000/?token=...

A second tab opens the log read-only (the writer lock is held by the first one).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

INSTALL_HINT = "pip install textual-serve  (a dependency of curalog: reinstall curalog)"


def serve_command(
    dir: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    raw: list[str | os.PathLike[str]] | None = None,
) -> str:
    """The shell command textual-serve runs for each browser tab (absolute paths: the
    tab's process may start in another directory)."""
    parts = [sys.executable, "-m", "curalog", "tui", str(Path(dir).resolve())]
    if log is not None:
        parts += ["--log", str(Path(log).resolve())]
    for path in raw or ():
        parts += ["--raw", str(Path(path).resolve())]
    return shlex.join(parts)


def serve(
    dir: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_remote: bool = False,
    raw: list[str | os.PathLike[str]] | None = None,
) -> int:
    """Serve the UI of ``dir`` at ``http://host:port/?token=...``; returns the exit status.
    ``raw``: the recording's file(s), overriding params.py's ``dat_path`` (``--raw``)."""
    from .serve_auth import guard_for, is_loopback, make_server_class, new_token

    if not Path(dir).is_dir():
        print(f"curalog: {dir}: no such folder", file=sys.stderr)
        return 2
    for path in raw or ():
        if not Path(path).is_file():
            print(f"curalog: --raw {path}: no such file", file=sys.stderr)
            return 2
    if not is_loopback(host) and not allow_remote:
        print(
            f"curalog: error: --host {host} is reachable from other machines; serve on 127.0.0.1 "
            "and use an SSH tunnel, or pass --allow-remote",
            file=sys.stderr,
        )
        return 2
    try:
        Server = make_server_class()
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
    token = new_token()
    url = f"http://{host}:{port}/?token={token}"
    print(
        f"curalog: serving {Path(dir).resolve()} at {url} (one app per browser tab; Ctrl+C stops)"
    )
    if is_loopback(host):
        print(
            f"curalog: local only; from another machine use an SSH tunnel: ssh -L {port}:127.0.0.1:{port} <this host>"
        )
    else:
        print(
            "curalog: WARNING: serving to other machines over plain HTTP: the token in the URL is "
            "the only protection; anyone who sees it can curate",
            file=sys.stderr,
        )
    from .web_assets import server_kwargs  # the page and its fonts served locally

    server = Server(
        serve_command(dir, log, raw),
        guard=guard_for(host, token, allow_remote=allow_remote),
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
