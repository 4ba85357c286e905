"""The kernel warm-up: runs every step, records itself, is keyed by the kernels' sources."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from curalog import warmup
from curalog.cli.program import main as cli_main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_every_step_runs_and_the_marker_is_written(cache):
    assert warmup.needed()
    seen = []
    report = warmup.warm_up(lambda label, done, total: seen.append((label, done, total)))
    assert report.errors == []
    assert [label for label, _ in report.steps] == [label for label, _ in warmup.STEPS]
    assert seen[-1] == ("done", len(warmup.STEPS), len(warmup.STEPS))
    assert not warmup.needed()
    assert warmup.marker_path().exists()


def test_a_failing_step_is_reported_and_leaves_the_warmup_due(cache):
    def broken(folder: Path) -> None:
        raise RuntimeError("no luck")

    report = warmup.warm_up(steps=[("broken", broken)], group="test")
    assert report.errors and report.errors[0][0] == "broken"
    assert "RuntimeError: no luck" in report.errors[0][1]
    assert warmup.needed("test")


def test_editing_a_kernel_module_makes_the_warmup_due_again(cache, tmp_path, monkeypatch):
    mod = tmp_path / "mods" / "fake_kernels.py"
    mod.parent.mkdir()
    mod.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(mod.parent))
    warmup.warm_up(steps=[("nothing", lambda folder: None)], group="g", modules=["fake_kernels"])
    assert not warmup.needed("g", ["fake_kernels"])
    mod.write_text("X = 22\n")  # another size (and time): numba would recompile its kernels
    assert warmup.needed("g", ["fake_kernels"])
    sys.modules.pop("fake_kernels", None)


def test_tiny_folder_has_kilosort_dtypes(tmp_path):
    import curalog

    folder = warmup.write_tiny_folder(tmp_path / "ds", amplitude_dtype="float64")
    ds = curalog.load_dataset(folder)
    assert ds.spike_times.dtype == np.int64 and ds.spike_templates.dtype == np.int32
    assert ds.amplitudes.dtype == np.float64
    assert np.load(folder / "pc_features.npy").dtype == np.float32


def test_cli_warmup_then_nothing_to_do(cache, capsys):
    assert cli_main(["warmup"]) == 0
    assert "compiled and cached" in capsys.readouterr().err
    assert cli_main(["warmup"]) == 0
    assert "already compiled" in capsys.readouterr().err
