"""The served page in a real browser: headless Chromium draws ``curalog serve``.

Runs ``bench/serve_screenshot.py``'s check: the page requests nothing from another host
(no web fonts from the internet), the sparkline colour comes through, and the one-line
sparklines of consecutive table rows do not touch (no striped blocks). Skipped when
Chromium (``apt-get install -y chromium``) or Pillow is not installed::

    pytest -m browser tests/test_tui_browser.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_screenshot.py"


def _module():
    spec = importlib.util.spec_from_file_location("serve_screenshot", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("serve_screenshot", mod)  # dataclasses look their module up
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.browser
def test_served_page_in_headless_chromium(tmp_path):
    pytest.importorskip("textual_serve")
    pytest.importorskip("PIL")
    mod = _module()
    if mod.find_chromium() is None:
        pytest.skip("no Chromium (apt-get install -y chromium)")
    report = mod.check(out=tmp_path, keys="c")
    assert report is not None
    assert report.external == [], report.external
    assert report.rows > 0 and report.cell_h > 0
    main = next(s for s in report.shots if s.name == "main")
    assert main.runs > 50  # the sparklines are there, in their colour
    assert main.merged <= 0.01, f"{main.merged:.1%} of sparkline runs span two rows"
    assert (tmp_path / "serve_main.png").stat().st_size > 10_000
    assert (tmp_path / "serve_key_c.png").is_file()
