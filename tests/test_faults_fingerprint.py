"""A log replayed onto another dataset, or onto a dataset changed since: refused, nothing written."""

from __future__ import annotations

import numpy as np
import pytest

import curalog
from curalog.errors import FingerprintMismatchError

import faultlib


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


@pytest.fixture
def curated(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "a", 3000, 20, seed=1)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
        cur.split(np.arange(0, 3000, 5))
        cur.label(cur.cluster_ids[:2].tolist(), group="good")
    return folder, curalog.default_log_path(folder)


def _refused_everywhere(folder, log, *needles):
    before = faultlib.snapshot_files(folder)
    log_before = log.read_bytes()
    for kwargs in ({}, {"readonly": True}, {"readonly": True, "upto": 1}):
        with pytest.raises(FingerprintMismatchError) as info:
            curalog.open(folder, log, **kwargs)
        msg = str(info.value)
        assert "\n" not in msg and "refusing to replay" in msg
        for n in needles:
            assert n in msg, msg
    with pytest.raises(FingerprintMismatchError):
        curalog.replay(folder, log)
    assert log.read_bytes() == log_before
    assert faultlib.snapshot_files(folder) == before


def test_log_of_another_dataset_is_refused(curated, tmp_path):
    _, log = curated
    other = faultlib.make_dataset(tmp_path / "b", 3000, 20, seed=2)  # same sizes, other content
    _refused_everywhere(other, log, "spike_templates.npy content", "spike_times.npy content")


def test_rewritten_spike_templates_is_refused(curated):
    folder, log = curated
    t = np.load(folder / "spike_templates.npy")
    np.save(folder / "spike_templates.npy", np.roll(t, 1))  # same size, same ids, other order
    _refused_everywhere(folder, log, "spike_templates.npy content")


def test_rewritten_spike_times_is_refused(curated):
    folder, log = curated
    times = np.load(folder / "spike_times.npy")
    np.save(folder / "spike_times.npy", times + 1)
    _refused_everywhere(folder, log, "spike_times.npy content")


def test_dataset_with_more_spikes_is_refused(curated):
    folder, log = curated
    t = np.load(folder / "spike_templates.npy")
    times = np.load(folder / "spike_times.npy")
    np.save(folder / "spike_templates.npy", np.append(t, t[-1]))
    np.save(folder / "spike_times.npy", np.append(times, times[-1] + 1))
    _refused_everywhere(folder, log, "n_spikes 3000 != 3001")


def test_same_content_in_another_dtype_is_accepted(curated):
    """The fingerprint hashes normalised contents: int64 or (n, 1) rewrites of the same ids are fine."""
    folder, log = curated
    t = np.load(folder / "spike_templates.npy")
    np.save(folder / "spike_templates.npy", t.astype(np.uint64).reshape(-1, 1))
    with curalog.open(folder, log) as cur:
        assert cur.seq == 3


def test_cli_refuses_with_one_line_and_writes_nothing(curated, tmp_path):
    _, log = curated
    other = faultlib.make_dataset(tmp_path / "b", 3000, 20, seed=2)
    before = faultlib.snapshot_files(other)
    log_before = log.read_bytes()
    env = {"CURALOG_CACHE_DIR": str(tmp_path / "fp-cache")}
    res = faultlib.run_cli("merge", str(other), "--log", str(log), "3", "4", env=env)
    faultlib.assert_one_line_error(res, "written for another dataset")
    from curalog.cli.program import main

    assert main(["export", str(other), "--log", str(log)]) == 2
    assert faultlib.snapshot_files(other) == before
    assert log.read_bytes() == log_before


def test_real_phy_folder_rewritten_after_logging(tmp_path):
    try:
        folder = faultlib.copy_phy_template(tmp_path / "phy")
    except FileNotFoundError:
        pytest.skip("shared phy-template data not present")
    log = tmp_path / "phy.log"
    with curalog.open(folder, log) as cur:
        ids = cur.cluster_ids[:2].tolist()
        cur.merge(ids)
    t = np.load(folder / "spike_templates.npy")
    t2 = t.copy()
    t2[:10] = t[10:20]
    np.save(folder / "spike_templates.npy", t2)
    _refused_everywhere(folder, log, "spike_templates.npy content")
