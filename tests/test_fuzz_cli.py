"""The command line on hostile input, in real subprocesses: one line on stderr, exit status 2,
no traceback, nothing written. Also the serve command's network exposure."""

from __future__ import annotations

import shlex
import subprocess
import sys
import types

import numpy as np
import pytest

import curalog

import faultlib


@pytest.fixture
def env(tmp_path):
    return {"CURALOG_CACHE_DIR": str(tmp_path / "fp-cache")}


@pytest.fixture
def curated(tmp_path, monkeypatch, env):
    monkeypatch.setenv("CURALOG_CACHE_DIR", env["CURALOG_CACHE_DIR"])
    folder = faultlib.make_dataset(tmp_path / "ds", 3000, 20)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
    return folder


def test_hostile_inputs_get_one_line_and_exit_2(curated, tmp_path, env, capsys):
    folder = curated
    ctx = faultlib.FuzzContext(tmp_path / "fz")
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(b"\x00\x01not a log" * 50)
    newer = tmp_path / "newer.log"
    faultlib.craft_log(newer, ctx.header, [("regroup", {})])
    newer_fmt = tmp_path / "newer-format.log"
    faultlib.craft_log(newer_fmt, ctx.header, [], fmt=7)
    broken = tmp_path / "broken"
    faultlib.build_dataset(
        broken,
        {
            "n": 30,
            "times": "ok",
            "templates": "ok",
            "length_delta": 0,
            "templates_rows": 3,
            "amplitudes": "ok",
            "params": faultlib.PARAMS,
            "npy_damage": None,
            "cluster_group": None,
            "extra_tsv": None,
            "channel_map": None,
        },
    )
    trunc = tmp_path / "trunc"
    faultlib.make_dataset(trunc, 100, 5)
    (trunc / "spike_times.npy").write_bytes((trunc / "spike_times.npy").read_bytes()[:90])
    np.save(tmp_path / "oob.npy", np.array([1, 2, 99_999]))
    (tmp_path / "text.npy").write_text("not numpy")
    subprocess_cases = [  # a real interpreter, stderr and exit status
        (("info", str(tmp_path / "nowhere")), "no such folder"),
        (("merge", str(trunc), "1", "2"), "spike_times.npy"),
        (("log", str(folder), "--log", str(garbage)), "not a curalog log"),
        (("merge", str(folder), "999", "1000"), "unknown cluster"),
    ]
    inprocess_cases = [  # the same main(), without paying an interpreter start each
        (("merge", str(broken), "0", "1"), "out of range"),
        (("log", str(ctx.folder), "--log", str(newer)), "unknown event type 'regroup'"),
        (("info", str(ctx.folder), "--log", str(newer_fmt)), "newer"),
        (("split", str(folder), "--spikes", str(tmp_path / "oob.npy")), "out of range"),
        (("split", str(folder), "--spikes", str(tmp_path / "text.npy")), "--spikes"),
        (("replay", str(folder), "--upto", "99", "--out", str(tmp_path / "r.npy")), "--upto 99"),
    ]
    before = faultlib.snapshot_files(folder)
    results = faultlib.run_cli_many([c for c, _ in subprocess_cases], env=env)
    for (args, needle), res in zip(subprocess_cases, results, strict=True):
        try:
            faultlib.assert_one_line_error(res, needle)
        except AssertionError as exc:
            raise AssertionError(f"curalog {' '.join(args)}: {exc}") from None
    for args, needle in inprocess_cases:
        faultlib.assert_one_line_error(_main(args, capsys), needle)
    assert faultlib.snapshot_files(folder) == before
    assert not (tmp_path / "r.npy").exists()


def _main(args, capsys) -> subprocess.CompletedProcess[str]:
    from curalog.cli.program import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


HOSTILE = {
    "label record without clusters (D3)": ("log", [("label", {"field": "group", "value": "good"})]),
    "header base_groups = 5 (D2)": ("header", {"base_groups": 5}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_logs_get_one_line(tmp_path, monkeypatch, env, capsys, name):
    monkeypatch.setenv("CURALOG_CACHE_DIR", env["CURALOG_CACHE_DIR"])
    kind, content = HOSTILE[name]
    ctx = faultlib.FuzzContext(tmp_path / "fz")
    log = tmp_path / "hostile.log"
    if kind == "log":
        faultlib.craft_log(log, ctx.header, content)
    else:
        faultlib.craft_log(log, {**ctx.header, **content}, [])
    faultlib.assert_one_line_error(_main(("info", str(ctx.folder), "--log", str(log)), capsys))


def test_params_folder_gets_one_line(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 100, 5)
    (folder / "params.py").unlink()
    (folder / "params.py").mkdir()
    faultlib.assert_one_line_error(_main(("info", str(folder)), capsys), "params.py")


# ---------------------------------------------------------------------- serve
def _serve_module():
    try:
        from curalog_tui import serve
    except ImportError:
        pytest.skip("curalog_tui.serve is not present")
    return serve


def test_serve_binds_localhost_by_default_and_says_so(tmp_path, monkeypatch, capsys):
    serve = _serve_module()
    from curalog.cli.program import build_parser, main

    args = build_parser().parse_args(["serve", str(tmp_path)])
    assert args.host == "127.0.0.1"
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "127.0.0.1" in help_text and "ssh" in help_text.lower()
    seen = {}

    class FakeServer:  # no socket is opened
        def __init__(self, command, host, port, title=None, **kw):
            seen.update(command=command, host=host, port=port)

        def serve(self):
            seen["served"] = True

    fake = types.ModuleType("textual_serve.server")
    fake.Server = FakeServer
    stub = types.ModuleType("textual_serve")  # (web_assets locates its static folder)
    stub.__file__ = str(tmp_path / "textual_serve" / "__init__.py")
    monkeypatch.setitem(sys.modules, "textual_serve", stub)
    monkeypatch.setitem(sys.modules, "textual_serve.server", fake)
    folder = faultlib.make_dataset(tmp_path / "ds; rm -rf ~", 50, 3)
    assert main(["serve", str(folder)]) == 0
    out = capsys.readouterr().out
    assert seen["host"] == "127.0.0.1" and seen["served"]
    assert "ssh -L" in out
    argv = shlex.split(seen["command"])  # a hostile folder name stays one argument
    assert argv[-1] == str(folder.resolve()) and argv[-2] == "tui"
    assert serve.serve_command(folder, tmp_path / "a b.log").endswith(
        shlex.quote(str((tmp_path / "a b.log").resolve()))
    )


def test_serve_on_another_host_is_refused_unless_allowed_then_warns(tmp_path, monkeypatch, capsys):
    _serve_module()
    from curalog.cli.program import main

    class FakeServer:
        def __init__(self, *a, **kw):
            pass

        def serve(self):
            pass

    fake = types.ModuleType("textual_serve.server")
    fake.Server = FakeServer
    stub = types.ModuleType("textual_serve")  # (web_assets locates its static folder)
    stub.__file__ = str(tmp_path / "textual_serve" / "__init__.py")
    monkeypatch.setitem(sys.modules, "textual_serve", stub)
    monkeypatch.setitem(sys.modules, "textual_serve.server", fake)
    folder = faultlib.make_dataset(tmp_path / "ds", 50, 3)
    assert main(["serve", str(folder), "--host", "0.0.0.0"]) == 2  # issue 13: refused
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-remote" in err[0]
    assert main(["serve", str(folder), "--host", "0.0.0.0", "--allow-remote"]) == 0
    assert "the token in the URL is the only protection" in capsys.readouterr().err


def test_refused_first_action_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))
    folder = faultlib.make_dataset(tmp_path / "ds", 100, 5)
    before = faultlib.snapshot_files(folder)
    faultlib.assert_one_line_error(
        _main(("merge", str(folder), "999", "1000"), capsys), "unknown cluster"
    )
    assert faultlib.snapshot_files(folder) == before
    assert not (folder / ".curalog").exists()


def test_invalid_group_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))
    folder = faultlib.make_dataset(tmp_path / "ds", 100, 5)
    try:
        res = _main(("label", str(folder), "3", "--group", "excellent"), capsys)
    except SystemExit as exc:  # argparse exits from inside main()
        err = capsys.readouterr().err
        res = subprocess.CompletedProcess([], exc.code, "", err)
    faultlib.assert_one_line_error(res, "excellent")
