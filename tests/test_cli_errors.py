"""docs/DESIGN.md "Errors": every bad input gets one line, exit status 2, and nothing written."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import curalog
from curalog.cli.program import main

from conftest import snapshot_dir, write_folder


@pytest.fixture
def folder(tmp_path):
    d = write_folder(tmp_path / "d", [3, 3, 3, 4, 4, 4, 4, 8, 8], n_templates=9)
    with curalog.open(d) as cur:  # a log with one event, so "nothing written" is meaningful
        cur.merge([3, 4])
    return d


def run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code, err, needle):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("curalog: error:") and needle in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["merge", "{d}", "3"], "at least two"),
        (["merge", "{d}", "8", "77"], "unknown cluster 77"),
        (["merge", "{d}", "8", "x"], "not a cluster id"),
        (["label", "{d}", "8", "--field", "q"], "--value"),
        (["label", "{d}", "77", "--group", "good"], "unknown cluster 77"),
        (["label", "{d}", "8", "--field", "bad\tname", "--value", "1"], "not allowed"),
        (["split", "{d}", "--spikes", "{d}/nothere.npy"], "no such file"),
        (["split", "{d}", "--spikes", "{t}/empty.npy"], "empty spike selection"),
        (["split", "{d}", "--spikes", "{t}/oob.npy"], "out of range"),
        (["split", "{d}", "--spikes", "{t}/dup.npy"], "more than once"),
        (["split", "{d}", "--spikes", "{t}/ok.npy", "--labels", "{t}/short.npy"], "labels for"),
        (["replay", "{d}", "--upto", "5", "--out", "{t}/r.npy"], "only 1 events"),
        (["info", "{t}/nothing"], "no such folder"),
    ],
)
def test_bad_arguments(folder, tmp_path, capsys, argv, needle):
    np.save(tmp_path / "empty.npy", np.array([], dtype=np.int64))
    np.save(tmp_path / "oob.npy", np.array([1, 9]))
    np.save(tmp_path / "dup.npy", np.array([1, 1]))
    np.save(tmp_path / "ok.npy", np.array([1, 2]))
    np.save(tmp_path / "short.npy", np.array([1]))
    before = snapshot_dir(folder)
    argv = [a.format(d=folder, t=tmp_path) for a in argv]
    code, err = run(argv, capsys)
    assert_one_line_error(code, err, needle)
    after = snapshot_dir(folder)
    after.pop(".curalog/main.log.lock", None)
    before.pop(".curalog/main.log.lock", None)
    assert after == before
    assert not (tmp_path / "r.npy").exists()


def test_log_from_another_dataset_is_refused(folder, tmp_path, capsys):
    other = write_folder(tmp_path / "other", [3, 3, 3, 4, 4, 4, 4, 8, 1], n_templates=9)
    before = snapshot_dir(other)
    code, err = run(
        ["merge", str(other), "3", "4", "--log", str(folder / ".curalog/main.log")], capsys
    )
    assert_one_line_error(code, err, "spike_templates.npy content")
    assert snapshot_dir(other) == before


def test_dataset_changed_after_logging_is_refused(folder, capsys):
    np.save(folder / "spike_templates.npy", np.array([3, 3, 3, 4, 4, 4, 8, 8, 8], dtype=np.int32))
    code, err = run(["info", str(folder)], capsys)
    assert_one_line_error(code, err, "dataset changed")


def test_locked_log_names_the_holder(folder, capsys):
    with curalog.open(folder, author="alice@lab"):
        log_before = (folder / ".curalog/main.log").read_bytes()
        code, err = run(["merge", str(folder), "8", "9"], capsys)
        assert_one_line_error(code, err, "already open for writing")
        assert (folder / ".curalog/main.log").read_bytes() == log_before


def test_readonly_dataset_folder_with_log_elsewhere(folder, tmp_path, capsys):
    ro = tmp_path / "ro"
    shutil.copytree(folder, ro, ignore=shutil.ignore_patterns(".curalog"))
    for p in [*ro.iterdir(), ro]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        code, _ = run(
            ["merge", str(ro), "3", "4", "--log", str(tmp_path / "elsewhere.log")], capsys
        )
        assert code == 0
        assert np.array_equal(
            curalog.replay(ro, tmp_path / "elsewhere.log"), curalog.replay(folder)
        )
    finally:
        ro.chmod(0o755)


def test_subprocess_error_is_one_line(folder):
    out = subprocess.run(
        [sys.executable, "-m", "curalog", "merge", str(folder), "8", "123"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "curalog: error: merge: unknown cluster 123"
