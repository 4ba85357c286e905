"""Entry points: ``curalog serve`` wiring and a real-terminal smoke test of ``curalog tui``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import curalog
from curalog.synth.generator import synthesize
from curalog_tui import serve as serve_mod


def test_serve_command_runs_the_tui_on_the_folder(tmp_path):
    cmd = serve_mod.serve_command(tmp_path, tmp_path / "x.log")
    assert "-m curalog tui" in cmd and str(tmp_path.resolve()) in cmd and "--log" in cmd


def test_serve_without_textual_serve_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "textual_serve", None)
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert serve_mod.serve(tmp_path, None, host="127.0.0.1", port=8123) == 2
    err = capsys.readouterr().err
    assert "textual-serve" in err and "127.0.0.1:8123" in err and "pip install" in err


def test_serve_binds_localhost_and_explains_the_tunnel(tmp_path, monkeypatch, capsys):
    calls = {}

    class FakeServer:
        def __init__(self, command, host, port, title=None, **kwargs):
            calls.update(command=command, host=host, port=port, **kwargs)

        def serve(self):
            calls["served"] = True

    fake = type(sys)("textual_serve.server")
    fake.Server = FakeServer
    monkeypatch.setitem(sys.modules, "textual_serve.server", fake)
    assert serve_mod.serve(tmp_path) == 0
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8000 and calls["served"]
    # curalog's own page (no web fonts from the internet), textual-serve's statics
    assert Path(calls["templates_path"], "app_index.html").is_file()
    assert Path(calls["statics_path"], "fonts").is_dir()
    assert "ssh -L 8000:127.0.0.1:8000" in capsys.readouterr().out


def test_serve_refuses_a_missing_folder(tmp_path, capsys):
    assert serve_mod.serve(tmp_path / "nope") == 2
    assert "no such folder" in capsys.readouterr().err


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=False, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_real_terminal_smoke_merge_and_quit(tmp_path):
    """The real Linux driver over a pty: start, merge with `g`, quit with `q`."""
    ds = tmp_path / "ds"
    synthesize(ds, n_spikes=5_000, n_templates=12, seed=3)
    name = f"curalog-test-{int(time.time() * 1000) % 10**8}"
    cmd = f"{sys.executable} -m curalog tui {ds} --no-mouse"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", cmd], check=True
    )
    try:

        def wait_for(text: str, timeout: float = 60.0) -> str:
            end = time.monotonic() + timeout
            screen = ""
            while time.monotonic() < end:
                screen = _tmux("capture-pane", "-p", "-t", name)
                if re.search(text, screen):
                    return screen
                time.sleep(0.2)
            raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")

        wait_for("n_spikes")
        wait_for(r"\d\.\d{3}  ")  # similarity values: the similarity table filled in
        _tmux("send-keys", "-t", name, "g")
        wait_for("merged")
        _tmux("send-keys", "-t", name, "q")
        end = time.monotonic() + 20
        while time.monotonic() < end and name in _tmux("ls"):
            time.sleep(0.2)
        assert name not in _tmux("ls")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False, capture_output=True)
    with curalog.open(ds, readonly=True) as cur:
        assert [e.type for e in cur.history] == ["merge"]
    with curalog.open(ds) as cur:  # the writer lock was released when the process quit
        assert cur.seq == 1


def test_serve_passes_raw_to_every_tab(tmp_path, capsys):
    """``curalog serve DIR --raw F``: each tab's ``curalog tui`` gets ``--raw`` with the
    absolute path (a tab's process may start elsewhere); a missing file is one line, 2."""
    import shlex

    raw = tmp_path / "rec one.dat"
    raw.write_bytes(b"\0" * 16)
    argv = shlex.split(serve_mod.serve_command(tmp_path, None, [raw, raw]))
    assert argv[argv.index("tui") + 1] == str(tmp_path.resolve())
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--raw"] == [str(raw.resolve())] * 2
    assert serve_mod.serve(tmp_path, None, raw=[tmp_path / "missing.dat"]) == 2
    err = capsys.readouterr().err
    assert "missing.dat: no such file" in err and len(err.strip().splitlines()) == 1
