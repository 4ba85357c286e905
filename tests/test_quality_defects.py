"""The two defects of issue 14: sorter columns replacing computed metrics, and the
recording's length taken as the last spike time."""

from __future__ import annotations

import math

import numpy as np

from curalog import open_curation
from curalog.analysis.autolabel import autolabel_decisions
from curalog.analysis.stats.engine import StatsEngine
from curalog.analysis.stats.metrics import sorter_row
from curalog.analysis.stats.timebase import recording_timebase

from conftest import write_folder

FS = 1000.0


def _folder(tmp_path, last_s: float = 59.998, with_raw_s: float | None = None):
    rng = np.random.default_rng(0)
    n = 3000
    times = np.arange(n, dtype=np.int64) * 19  # 19 ms apart: no refractory violation
    times[-1] = int(round(last_s * FS))
    tmpl = rng.integers(0, 12, n)
    path = write_folder(tmp_path / "f", tmpl, spike_times=times, sample_rate=FS)
    lines = ["cluster_id\tisi_violations_ratio"] + [f"{c}\t9.0" for c in range(12)]
    (path / "cluster_isi_violations_ratio.tsv").write_text("\n".join(lines) + "\n")
    lines = ["cluster_id\tKSLabel"] + [f"{c}\tgood" for c in range(12)]
    (path / "cluster_KSLabel.tsv").write_text("\n".join(lines) + "\n")
    if with_raw_s is not None:  # params.py: raw.dat, 4 channels of int16
        np.zeros((int(with_raw_s * FS), 4), dtype=np.int16).tofile(path / "raw.dat")
    return path


def test_sorter_column_never_replaces_a_computed_metric(tmp_path):
    path = _folder(tmp_path)
    with open_curation(path, readonly=True) as cur:
        eng = StatsEngine(cur.dataset, cur.state)
        rows = eng.table_rows()
    assert len(rows) == 12
    for r in rows:
        assert r["sorter.isi_violations_ratio"] == 9.0
        assert r["isi_violations_ratio"] == 0.0
        assert r["KSLabel"] == "good" and r["sorter.KSLabel"] == "good"
    # the rule that matched 12 of 12 clusters (issue 14) now reads curalog's value
    assert autolabel_decisions(rows, ["isi_violations_ratio > 5 -> mua"]) == []
    hits = autolabel_decisions(rows, ["sorter.isi_violations_ratio > 5 -> mua"])
    assert len(hits) == 12


def test_sorter_row_rule():
    out = sorter_row({"KSLabel": "mua", "firing_rate": 3.0}, {"firing_rate": 1.0})
    assert out == {"sorter.KSLabel": "mua", "KSLabel": "mua", "sorter.firing_rate": 3.0}


def test_duration_without_raw_is_last_spike_plus_one_second(tmp_path):
    path = _folder(tmp_path)
    with open_curation(path, readonly=True) as cur:
        tb = recording_timebase(cur.dataset)
        last = int(cur.dataset.spike_times[-1])
        assert tb.source == "last spike + 1 s"
        assert tb.total_samples == int((last / FS + 1.0) * FS)
        eng = StatsEngine(cur.dataset, cur.state)
        rows = eng.table_rows()
        assert eng.ctx.total_samples == tb.total_samples
    # 59.998 s of spikes: with the last spike as duration there was no 60 s bin (NaN)
    assert all(r["presence_ratio"] == 1.0 for r in rows)
    n = sum(r["n_spikes"] for r in rows)
    assert math.isclose(sum(r["firing_rate"] for r in rows), n / (tb.total_samples / FS))


def test_duration_from_the_raw_file(tmp_path):
    path = _folder(tmp_path, last_s=59.998, with_raw_s=75.0)
    with open_curation(path, readonly=True) as cur:
        tb = recording_timebase(cur.dataset)
        assert tb.source == "raw file" and tb.total_samples == 75_000
        eng = StatsEngine(cur.dataset, cur.state)
        rows = eng.table_rows()
    assert eng.ctx.duration == 75.0
    # one full 60 s bin; the 15 s tail is dropped as SpikeInterface does
    assert all(r["presence_ratio"] == 1.0 for r in rows)
    r = rows[0]
    assert math.isclose(r["firing_rate"], r["n_spikes"] / 75.0)
