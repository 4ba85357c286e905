#!/usr/bin/env python3
"""Quick start on a machine with only python3: a virtual environment, then demo or tests.

    python3 examples/quickstart.py demo      # generate a demo sorting and curate it
    python3 examples/quickstart.py test      # ruff, ruff format, mypy, then the whole suite (what CI runs)

Both create ``.venv/`` beside pyproject.toml on first use and install curalog into it in
editable mode (``test`` adds the test tools and the phy/SpikeInterface reference
implementations used by the interoperability tests; ``--no-interop`` skips those). The
environment is reused while pyproject.toml is unchanged. Extra arguments are passed on to
``curalog demo`` or to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("CURALOG_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _run(cmd: list[str], **kw) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], **kw)


def ensure_env(extras: str) -> None:
    """Create the venv and install ``.[extras]`` unless the same install is already there."""
    stamp = VENV / f".curalog-{extras.replace(',', '-') or 'base'}"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
        _run([PY, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    target = f".[{extras}]" if extras else "."
    if _run([PY, "-m", "pip", "install", "-q", "-e", target], cwd=ROOT) != 0:
        raise SystemExit(f"quickstart: installing {target} failed")
    stamp.write_text(want)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # phy's Qt imports headless
    if what == "demo":
        ensure_env("")
        return _run([BIN / "curalog", "demo", *rest], cwd=Path.cwd())
    interop = "--no-interop" not in rest
    rest = [a for a in rest if a != "--no-interop"]
    if interop:
        try:
            ensure_env("test,interop")
        except SystemExit as exc:
            print(
                f"{exc}; running without the interop references (their tests will skip)", flush=True
            )
            ensure_env("test")
    else:
        ensure_env("test")
    trees = ["curalog", "tui", "tests", "bench", "examples"]
    checks = [
        ("ruff found problems", [PY, "-m", "ruff", "check", *trees]),
        ("ruff format would change files", [PY, "-m", "ruff", "format", "--check", *trees]),
        ("mypy found problems", [PY, "-m", "mypy"]),  # the modules [tool.mypy] names
    ]
    for what, cmd in checks:
        code = _run(cmd, cwd=ROOT)
        if code != 0:
            print(f"quickstart: {what}", flush=True)
            return code
    return _run([PY, "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
