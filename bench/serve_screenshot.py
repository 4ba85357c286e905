"""Headless-Chromium check of ``curalog serve``: what the browser draws, and what it fetches.

    python bench/serve_screenshot.py [DIR] [--out shots/] [--keys c]

Starts ``curalog serve`` on a free port (on DIR, or a small synthetic folder), opens the page
in headless Chromium driven over the DevTools protocol (aiohttp's websocket client, a
dependency of textual-serve), waits for the cluster table, takes a screenshot of the main
screen and one after each key of ``--keys`` (default ``c``: the correlogram matrix, tall
stacks of full blocks), and reports:

* every URL the page requested that is not the server itself (must be none: no web fonts
  from the internet);
* **merged rows**: in the main screenshot, the share of vertical runs of the sparkline
  colour taller than one terminal row (the row height comes from the page's own resize
  message and the terminal's size): the one-line sparklines of consecutive table rows drawn
  touching, which reads as one striped block (must be none);
* whether the sparkline colour came through (runs of it are found in the picture).

Exit status 0 when every check passes, 1 when one fails, 77 when Chromium (or Pillow, used
to read the PNG) is not installed. ``apt-get install -y chromium`` installs it on Debian;
``pytest -m browser tests/test_tui_browser.py`` runs the same check as a test (skipped
without Chromium). Nothing here is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SKIP = 77
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def served_url(proc: subprocess.Popen, timeout: float) -> str:
    """The page URL ``curalog serve`` prints (``http://127.0.0.1:PORT/?token=...``), or the
    bare address for a curalog serve without a token."""
    import re
    import select

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"(http://\S+)", line)
            if m:
                return m.group(1)
    raise RuntimeError("curalog serve printed no URL")


@dataclass
class Shot:
    name: str
    png: bytes
    merged: float = 0.0  # share of sparkline runs taller than a cell (rows drawn touching)
    runs: int = 0  # vertical runs of sparkline colour found (0: the colours did not come through)


@dataclass
class Report:
    requests: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    shots: list[Shot] = field(default_factory=list)
    rows: int = 0  # terminal rows the page asked for (its resize message)
    cell_h: float = 0.0  # CSS pixels per terminal row

    @property
    def ok(self) -> bool:
        main = [s for s in self.shots if s.name == "main"]
        return (
            not self.external
            and self.cell_h > 0
            and all(s.runs > 0 and s.merged <= 0.01 for s in main)
        )


# ---------------------------------------------------------------------- the picture
def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def merged_share(
    png: bytes, colour: str, cell_h: float, tolerance: int = 24, left: float = 0.55
) -> tuple[float, int]:
    """``(share, runs)``: of the vertical runs of pixels of the sparkline ``colour`` in the
    ``left`` part of the picture (the cluster table: one-line sparklines; the detail panel's
    multi-row bar charts on the right are meant to stack), the share taller than 0.9 of a
    row, i.e. the sparklines of two table rows drawn touching (one striped block)."""
    import io

    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    img = img[:, : int(img.shape[1] * left)]
    mask = np.abs(img - np.array(_rgb(colour), dtype=np.int16)).max(axis=2) <= tolerance
    m = np.vstack([np.zeros((1, mask.shape[1]), bool), mask, np.zeros((1, mask.shape[1]), bool)])
    d = np.diff(m.astype(np.int8), axis=0)
    starts = np.argwhere(d == 1)
    ends = np.argwhere(d == -1)
    order_s = np.lexsort((starts[:, 0], starts[:, 1]))
    order_e = np.lexsort((ends[:, 0], ends[:, 1]))
    lengths = ends[order_e, 0] - starts[order_s, 0]
    runs = lengths[lengths >= 2]  # ignore antialiasing specks
    if runs.size == 0:
        return 0.0, 0
    return float((runs > 0.9 * cell_h).mean()), int(runs.size)


# ---------------------------------------------------------------------- the browser
async def drive(
    url: str, chromium: str, keys: str, size: tuple[int, int], settle_s: float
) -> Report:
    import aiohttp

    port = free_port()
    profile = tempfile.mkdtemp(prefix="curalog-chromium-")
    proc = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    report = Report()
    try:
        if not wait_port(port, 30):
            raise RuntimeError("Chromium did not open its DevTools port")
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    pages = [t for t in await r.json() if t.get("type") == "page"]
                if pages:
                    break
                await asyncio.sleep(0.2)
            ws_url = pages[0]["webSocketDebuggerUrl"]
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                counter = 0
                pending: dict[int, asyncio.Future] = {}

                async def reader() -> None:
                    async for msg in ws:
                        data = json.loads(msg.data)
                        if "id" in data and data["id"] in pending:
                            pending.pop(data["id"]).set_result(data)
                        elif data.get("method") == "Network.requestWillBeSent":
                            report.requests.append(data["params"]["request"]["url"])
                        elif data.get("method") == "Network.webSocketFrameSent":
                            payload = data["params"]["response"].get("payloadData", "")
                            if payload.startswith('["resize"'):
                                report.rows = int(json.loads(payload)[1]["height"])

                task = asyncio.create_task(reader())

                async def call(method: str, **params) -> dict:
                    nonlocal counter
                    counter += 1
                    fut = asyncio.get_running_loop().create_future()
                    pending[counter] = fut
                    await ws.send_str(
                        json.dumps({"id": counter, "method": method, "params": params})
                    )
                    return await asyncio.wait_for(fut, 60)

                async def evaluate(expr: str):
                    got = await call("Runtime.evaluate", expression=expr, returnByValue=True)
                    return got.get("result", {}).get("result", {}).get("value")

                async def shot(name: str) -> None:
                    got = await call("Page.captureScreenshot", format="png")
                    report.shots.append(Shot(name, base64.b64decode(got["result"]["data"])))

                await call("Network.enable")
                await call("Page.enable")
                await call("Page.navigate", url=url)
                end = time.monotonic() + 60
                while time.monotonic() < end:  # the app's first bytes reached the terminal
                    if await evaluate("document.body.classList.contains('-first-byte')"):
                        break
                    await asyncio.sleep(0.25)
                # the dataset opened and the statistics came in: sparklines on screen
                from curalog_tui.plots import BAR_STYLE

                end = time.monotonic() + max(30.0, 5 * settle_s)
                while time.monotonic() < end:
                    await asyncio.sleep(1.0)
                    got = await call("Page.captureScreenshot", format="png")
                    png = base64.b64decode(got["result"]["data"])
                    if merged_share(png, BAR_STYLE, 1e9)[1] > 50:
                        break
                await asyncio.sleep(settle_s / 3)
                height = await evaluate(
                    "document.querySelector('.xterm-screen').getBoundingClientRect().height"
                )
                if report.rows and height:
                    report.cell_h = float(height) / report.rows
                await shot("main")
                for kind in ("mousePressed", "mouseReleased"):  # focus the terminal
                    await call(
                        "Input.dispatchMouseEvent", type=kind, x=5, y=5, button="left", clickCount=1
                    )
                for key in keys:
                    for kind in ("keyDown", "keyUp"):
                        await call(
                            "Input.dispatchKeyEvent",
                            type=kind,
                            key=key,
                            text=key if kind == "keyDown" else "",
                            unmodifiedText=key if kind == "keyDown" else "",
                        )
                    await asyncio.sleep(settle_s / 2)
                    await shot(f"key_{key}")
                task.cancel()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)
    host = url.split("/")[2]
    report.external = [
        u for u in report.requests if not u.startswith(("data:", "about:")) and host not in u
    ]
    return report


def check(
    folder: Path | None = None,
    *,
    out: Path | None = None,
    keys: str = "c",
    size: tuple[int, int] = (1600, 1000),
    settle_s: float = 6.0,
    chromium: str | None = None,
) -> Report | None:
    """Run the whole check; None when Chromium or Pillow is missing."""
    chromium = chromium or find_chromium()
    try:
        import PIL  # noqa: F401
    except ImportError:
        return None
    if chromium is None:
        return None
    from curalog_tui.plots import BAR_STYLE

    tmp = None
    if folder is None:
        from curalog.synth.generator import synthesize

        tmp = Path(tempfile.mkdtemp(prefix="curalog-serve-"))
        folder = tmp / "ds"
        synthesize(folder, n_spikes=30_000, n_templates=16, seed=3)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "curalog", "serve", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        url = served_url(server, 60)  # with the session's token
        if not wait_port(port, 60):
            raise RuntimeError("curalog serve did not start")
        report = asyncio.run(drive(url, chromium, keys, size, settle_s))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for s in report.shots:
        s.merged, s.runs = merged_share(s.png, BAR_STYLE, report.cell_h or 1e9)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"serve_{s.name}.png").write_bytes(s.png)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "dir", nargs="?", type=Path, help="dataset folder (default: a small synthetic one)"
    )
    ap.add_argument("--out", type=Path, default=Path("bench/out"), help="where the PNGs go")
    ap.add_argument("--keys", default="c", help="keys to press, one screenshot after each")
    ap.add_argument("--settle", type=float, default=6.0, help="seconds to wait for the app")
    args = ap.parse_args(argv)
    report = check(args.dir, out=args.out, keys=args.keys, settle_s=args.settle)
    if report is None:
        print("serve_screenshot: skipped (no Chromium or no Pillow; apt-get install -y chromium)")
        return SKIP
    print(f"requests: {len(report.requests)}, to other hosts: {len(report.external)}")
    for u in report.external:
        print(f"  EXTERNAL {u}")
    print(f"terminal rows {report.rows}, {report.cell_h:.1f} px per row")
    for s in report.shots:
        print(f"{s.name}: sparkline runs {s.runs:,}, taller than a row {s.merged:.1%}")
    print("OK" if report.ok else "FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
