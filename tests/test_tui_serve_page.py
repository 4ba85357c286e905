"""``curalog serve`` serves everything itself: no web font or script from the internet.

The page template is rendered as textual-serve renders it and checked for remote URLs; a
real ``curalog serve`` is started on a free port and its page, script and fonts fetched
over HTTP. textual-serve is a default dependency (``pip install curalog`` then
``curalog serve`` works).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from curalog.synth.generator import synthesize
from curalog_tui.web_assets import WEB, external_urls, server_kwargs, textual_serve_static

REPO = Path(__file__).resolve().parents[1]


def test_textual_serve_is_a_default_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(d.replace(" ", "").startswith("textual-serve") for d in project["dependencies"])
    assert (
        "web/*.html"
        in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
            "package-data"
        ]["curalog_tui"]
    )


def test_page_template_loads_nothing_remote():
    jinja2 = pytest.importorskip("jinja2")
    html = (
        jinja2.Environment(loader=jinja2.FileSystemLoader(WEB))
        .get_template("app_index.html")
        .render(
            config={"static": {"url": "http://127.0.0.1:8000/static/"}},
            application={"name": "curalog"},
            app_websocket_url="ws://127.0.0.1:8000/ws",
            font_size=16,
            ping_url="",
        )
    )
    assert external_urls(html, "http://127.0.0.1:8000") == []
    assert "fonts/RobotoMono-VariableFont_wght.ttf" in html
    # textual-serve's own page would fetch Google Fonts: the check does see remote URLs
    theirs = (textual_serve_static().parent / "templates" / "app_index.html").read_text()
    assert any("fonts.googleapis.com" in u for u in external_urls(theirs))
    for name in ("js/textual.js", "css/xterm.css", "fonts/RobotoMono-VariableFont_wght.ttf"):
        assert (Path(server_kwargs()["statics_path"]) / name).is_file()


def served_url(proc: subprocess.Popen, timeout: float) -> str:
    """The page URL (with its token) that ``curalog serve`` prints on its first line."""
    import re
    import select

    end = time.monotonic() + timeout
    buf = ""
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            buf += line
            m = re.search(r"(http://\S+)", line)
            if m:
                return m.group(1)
    pytest.fail(f"curalog serve printed no URL: {buf!r}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - localhost only
        return r.status, r.read()


def test_a_real_server_serves_page_script_and_fonts_itself(tmp_path):
    pytest.importorskip("textual_serve")
    synthesize(tmp_path / "ds", n_spikes=2_000, n_templates=8, seed=0)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "curalog", "serve", str(tmp_path / "ds"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        url = served_url(proc, 60)  # with the session's token (curalog serve's guard)
        deadline = time.monotonic() + 60
        while True:
            try:
                status, page = _get(url)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("curalog serve did not answer")
                time.sleep(0.2)
        html = page.decode()
        assert status == 200 and external_urls(html, base) == []
        for name in ("js/textual.js", "css/xterm.css", "fonts/RobotoMono-VariableFont_wght.ttf"):
            status, body = _get(f"{base}/static/{name}")
            assert status == 200 and len(body) > 1000
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
