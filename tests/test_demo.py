"""The quick-start demo runs end to end and its checks hold."""

import numpy as np

import curalog
from curalog.cli.demo import run_demo
from curalog.cli.program import main


def test_demo_end_to_end(tmp_path, capsys):
    folder = tmp_path / "demo"
    assert run_demo(folder, n_spikes=120_000, n_templates=40, seed=3) == 0
    out = capsys.readouterr().out
    assert "== live state == exported spike_clusters.npy: True" in out
    assert "0 clusters mixing true units" in out
    with curalog.open(folder, readonly=True) as cur:
        assert cur.seq > 5
        assert np.array_equal(np.load(folder / "spike_clusters.npy"), cur.spike_clusters)
    # running it again does not touch the existing history
    assert run_demo(folder, n_spikes=120_000, n_templates=40, seed=3) == 0
    assert "already has a curation history" in capsys.readouterr().out


def test_synth_command(tmp_path, capsys):
    assert (
        main(["synth", str(tmp_path / "s"), "--spikes", "5000", "--templates", "10", "--seed", "2"])
        == 0
    )
    assert "5,000 spikes" in capsys.readouterr().out
    assert curalog.load_dataset(tmp_path / "s").n_spikes == 5000
    assert main(["synth", str(tmp_path / "s"), "--spikes", "5000"]) == 2  # refuses to overwrite
