"""A real install: build the wheel, install it into a fresh virtual environment with its
dependencies, and run ``curalog demo`` and a headless start of the terminal UI there.

The editable install of the quick start hides packaging mistakes (a sub-package or a
``.tcss`` left out of the wheel); this test sees what a curator's ``pip install curalog``
gets. It runs outside the repository (a copy of the build inputs, a scratch working
folder), so nothing can be imported from the source tree by accident. pip's cache makes the
install take seconds here; the durations are printed (``pytest -s``) and named on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("curalog", "tui")  # the folders the wheel is built from (tui/ -> curalog_tui)

#: Run by the fresh environment's python: open the demo folder in the app, headless, and
#: visit every screen (each a module of curalog_tui.screens, each drawing with widgets and
#: the app's stylesheet). Prints one JSON line of what it saw.
HEADLESS = textwrap.dedent(
    """
    import asyncio, json, sys, time

    import curalog, curalog_tui
    from curalog_tui.app import CuralogApp
    from curalog_tui.screens import (
        HelpScreen, HistoryScreen, ProposalsScreen, SplitScreen, ViewsScreen,
    )
    from curalog_tui.session import open_session
    from curalog_tui.testing import screen_text, settle

    folder = sys.argv[1]

    async def main():
        app = CuralogApp(opener=lambda: open_session(folder), owns_curation=True)
        seen = {}
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 300  # a fresh install compiles its kernels first
            while not (app.ready and app.live and app.table.row_count):
                if time.monotonic() > deadline:
                    raise SystemExit("the app did not show the cluster table within 300 s")
                await pilot.pause(0.05)
            await settle(pilot)
            seen["rows"] = app.table.row_count
            seen["n_clusters"] = app.cur.n_clusters
            seen["main"] = screen_text(app)
            for key, kind in (("v", ViewsScreen), ("m", ProposalsScreen), ("H", HistoryScreen),
                              ("k", SplitScreen), ("question_mark", HelpScreen)):
                await pilot.press(key)
                await settle(pilot)
                seen[kind.__name__] = isinstance(app.screen, kind)
                await pilot.press("escape")
                await settle(pilot)
            seen["stylesheets"] = sorted(str(k[0]) for k in app.stylesheet.source)
            await pilot.press("q")
        seen["files"] = [curalog.__file__, curalog_tui.__file__]
        from curalog_tui.web_assets import WEB, server_kwargs  # curalog serve's local page
        seen["serve_page"] = (WEB / "app_index.html").is_file() and bool(server_kwargs())
        print(json.dumps(seen))

    asyncio.run(main())
    """
)


def _run(cmd: list[str | Path], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    out = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {out.returncode}\n"
        f"--- stdout\n{out.stdout[-4000:]}\n--- stderr\n{out.stderr[-4000:]}"
    )
    return out


def test_wheel_installs_and_runs_demo_and_tui(tmp_path):
    timings: dict[str, float] = {}
    # the build inputs: every top-level file (pyproject.toml, setup.py, README.md, ...) and
    # the two package folders, without caches
    src = tmp_path / "src"
    src.mkdir()
    for p in ROOT.iterdir():
        if p.is_file() and not p.name.startswith("."):
            shutil.copy2(p, src / p.name)
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    work = tmp_path / "work"  # cwd of everything run in the new environment
    work.mkdir()

    t = time.perf_counter()
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", src],
        cwd=work,
        timeout=600,
    )
    timings["pip wheel"] = time.perf_counter() - t
    wheels = sorted((tmp_path / "dist").glob("curalog-*.whl"))
    assert len(wheels) == 1, wheels

    t = time.perf_counter()
    env_dir = tmp_path / "venv"
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    except (OSError, subprocess.CalledProcessError) as exc:  # e.g. no ensurepip on this python
        pytest.skip(f"cannot create a virtual environment with pip here: {exc}")
    timings["venv"] = time.perf_counter() - t
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bin_dir / "python"

    t = time.perf_counter()
    _run([py, "-m", "pip", "install", "-q", wheels[0]], cwd=work, timeout=1200)
    timings["pip install (with dependencies)"] = time.perf_counter() - t

    t = time.perf_counter()
    demo = work / "demo"
    out = _run(
        [bin_dir / "curalog", "demo", demo, "--spikes", "20000", "--templates", "12"],
        cwd=work,
        timeout=600,
    )
    timings["curalog demo"] = time.perf_counter() - t
    assert "exported spike_clusters.npy: True" in " ".join(out.stdout.split()), out.stdout
    assert (demo / ".curalog" / "main.log").is_file() and (demo / "spike_clusters.npy").is_file()

    t = time.perf_counter()
    out = _run([py, "-c", HEADLESS, demo], cwd=work, timeout=600)
    timings["headless tui"] = time.perf_counter() - t
    seen = json.loads(out.stdout.strip().splitlines()[-1])

    print("wheel install test, seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    # the installed copies ran, not the source tree
    site = (env_dir / "lib").resolve()
    for f in seen["files"]:
        assert Path(f).resolve().is_relative_to(site), f"{f} is not the installed package"
    assert seen["rows"] == seen["n_clusters"] > 0, seen
    assert "n_spikes" in seen["main"] and "ready:" in seen["main"], seen["main"]
    for screen in ("ViewsScreen", "ProposalsScreen", "HistoryScreen", "SplitScreen", "HelpScreen"):
        assert seen[screen], f"{screen} did not open from the installed package: {seen}"
    assert any(s.endswith("app.tcss") for s in seen["stylesheets"]), seen["stylesheets"]
    assert seen["serve_page"], "curalog serve's page or textual-serve is not in the install"
