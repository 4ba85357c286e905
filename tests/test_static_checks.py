"""The static checks CI runs (``examples/quickstart.py test``) hold on the tree: ruff's
formatting, and mypy on the modules ``[tool.mypy]`` in pyproject.toml names."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_covers_the_seams() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    seams = ("curalog/events", "curalog/replaying.py", "curalog/curation.py", "curalog/io")
    for seam in (*seams, "curalog/analysis/proposals/engine.py"):
        assert seam in config["files"]
    for f in config["files"]:
        assert (ROOT / f).exists(), f


def test_mypy_passes() -> None:
    pytest.importorskip("mypy")
    run = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_format_is_clean() -> None:
    pytest.importorskip("ruff")
    trees = ["curalog", "tui", "tests", "bench", "examples"]
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *trees],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
