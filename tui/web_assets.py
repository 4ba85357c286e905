"""What ``curalog serve`` hands textual-serve so that the page loads nothing from the internet.

textual-serve's own page asks Google Fonts for Roboto Mono, which an offline lab server (or a
browser behind a strict proxy) cannot reach: the terminal then measures its cells with a
fallback font and block glyphs come out misaligned. curalog serves its copy of the page
(``web/app_index.html``: the same page with ``@font-face`` rules pointing at the Roboto Mono
files that textual-serve ships in its ``static/fonts``), and textual-serve's static folder as
is (xterm.js, its CSS, the fonts, the background image).

:func:`external_urls` lists what a page would fetch from elsewhere (used by the tests and the
browser check in ``bench/serve_screenshot.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

WEB = Path(__file__).resolve().parent / "web"


def textual_serve_static() -> Path:
    """textual-serve's static folder (xterm.js, css, fonts, images)."""
    import textual_serve

    return Path(textual_serve.__file__).resolve().parent / "static"


def server_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``textual_serve.server.Server``: curalog's page, local statics."""
    return {"templates_path": str(WEB), "statics_path": str(textual_serve_static())}


_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"'{}]+)["']|url\(\s*["']?([^"')]+)["']?\s*\)""")


def external_urls(html: str, local_prefix: str = "") -> list[str]:
    """``http(s)://`` or protocol-relative URLs referenced by ``html`` (links, scripts,
    ``url(...)``), except those under ``local_prefix`` (the server's own address)."""
    out = []
    for m in _URL.finditer(html):
        url = (m.group(1) or m.group(2) or "").strip()
        remote = url.startswith(("http://", "https://", "//"))
        if remote and not (local_prefix and url.startswith(local_prefix)):
            out.append(url)
    return out
