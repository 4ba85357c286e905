"""Text captures of the terminal UI for the README and docs (no colours: plain text).

    .venv/bin/python examples/captures.py DEMO_DIR OUT_DIR [--size 80x24]

``DEMO_DIR`` is a folder written by ``curalog demo`` (it has a raw recording). Writes
``main.txt`` (the cluster table on opening), ``waveforms.txt`` (``w`` on cluster 24 and its
similar cluster) and ``traces.txt`` (``T`` from there, then ``n``: the cluster's next
spike), each exactly as the headless app draws them at that size. The demo's curation log is
copied first and the captures run on the copy, so the folder is never changed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path


async def capture(folder: Path, log: Path, out: Path, size: tuple[int, int], cluster: int) -> None:
    import curalog
    from curalog_tui.app import CuralogApp
    from curalog_tui.testing import screen_text, settle

    cur = curalog.open(folder, log, author="captures")
    app = CuralogApp(cur, owns_curation=True, cursor_blink=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, 120)
        (out / "main.txt").write_text(screen_text(app))
        if cluster in cur.state:
            app.select_cluster(cluster)
            await settle(pilot, 120)
        await pilot.press("w")
        await settle(pilot, 120)
        (out / "waveforms.txt").write_text(screen_text(app))
        await pilot.press("T")
        await settle(pilot, 120)
        await pilot.press("n")
        await settle(pilot, 120)
        (out / "traces.txt").write_text(screen_text(app))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", default="80x24")
    ap.add_argument("--cluster", type=int, default=24)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "main.log"
        src = args.demo / ".curalog" / "main.log"
        if src.exists():
            shutil.copy(src, log)
        asyncio.run(capture(args.demo, log, args.out, (w, h), args.cluster))
    print(f"wrote {args.out}/main.txt, waveforms.txt, traces.txt at {w}x{h}")


if __name__ == "__main__":
    main()
