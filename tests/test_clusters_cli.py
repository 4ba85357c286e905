"""``curalog clusters``: every metric column, SpikeInterface's names in --json, the UI's
filter language, sorting, --upto, bad arguments, and the same columns in cluster_info.tsv."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from curalog.analysis.stats.quality import QUALITY_NAMES
from curalog.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from curalog.synth import synthesize

    out = tmp_path_factory.mktemp("cl") / "ds"
    synthesize(out, n_spikes=20_000, n_templates=10, seed=2, n_channels=24, pc_features=True)
    return out


def _json(capsys, *args) -> list[dict]:
    assert main(["clusters", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_rows_have_id_group_labels_and_spikeinterface_names(folder, tmp_path, capsys):
    log = tmp_path / "h.curalog"
    assert (
        main(["label", str(folder), "--log", str(log), "3", "--field", "note", "--value", "x"]) == 0
    )
    capsys.readouterr()
    rows = _json(capsys, folder, "--log", log)
    assert len(rows) == 10
    r = next(r for r in rows if r["id"] == 3)
    assert r["group"] in ("good", "mua", "noise", "unsorted") and r["note"] == "x"
    for name in (
        "num_spikes",
        "firing_rate",
        "presence_ratio",
        "isi_violations_ratio",
        *QUALITY_NAMES,
    ):
        assert name in r, name
    assert "n_spikes" not in r  # SpikeInterface's name only
    assert r["snr"] is None  # no recording: empty, not guessed
    iso = [x["isolation_distance"] for x in rows]
    assert sum(isinstance(v, float) and v > 0 for v in iso) >= 8  # None: no neighbour


def test_filter_sort_columns_and_upto(folder, tmp_path, capsys):
    log = tmp_path / "h.curalog"
    rows = _json(capsys, folder, "--log", log)
    big = sorted(rows, key=lambda r: -r["num_spikes"])[:2]
    assert (
        main(["merge", str(folder), "--log", str(log), str(big[0]["id"]), str(big[1]["id"])]) == 0
    )
    new = int(capsys.readouterr().out.split()[-1])
    after = _json(capsys, folder, "--log", log, "--filter", "num_spikes > 100 and group != noise")
    assert new in [r["id"] for r in after] and all(r["num_spikes"] > 100 for r in after)
    before = _json(capsys, folder, "--log", log, "--upto", 0)
    assert sorted(r["id"] for r in before) == sorted(r["id"] for r in rows)
    srt = _json(capsys, folder, "--log", log, "--sort=-isolation_distance", "--columns", "iso_d,n")
    vals = [r["isolation_distance"] for r in srt]
    finite = [v for v in vals if v is not None]
    assert finite == sorted(finite, reverse=True) and vals[: len(finite)] == finite
    assert set(srt[0]) == {"id", "isolation_distance", "num_spikes"}
    # short names work in filters too (the UI's)
    short = _json(capsys, folder, "--log", log, "--filter", "iso_d > 0 and fr > 0")
    assert {r["id"] for r in short} <= {r["id"] for r in after} | {r["id"] for r in rows}


def test_text_and_tsv(folder, tmp_path, capsys):
    log = tmp_path / "h.curalog"
    assert (
        main(["clusters", str(folder), "--log", str(log), "--tsv", "--columns", "id,snr,drift_ptp"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id\tsnr\tdrift_ptp" and len(lines) == 11
    assert lines[1].split("\t")[1] == ""  # empty snr
    assert main(["clusters", str(folder), "--log", str(log), "--columns", "id,iso_d"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0].split() == ["id", "iso_d"]
    assert "computing" not in out.out  # the progress bar is on stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--sort", "nope"], "--sort: unknown column 'nope'"),
        (["--columns", "id,nope"], "--columns: unknown column 'nope'"),
        (["--filter", "snr >"], "--filter:"),
        (["--upto", "5"], "--upto 5"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(folder, tmp_path, capsys, args, needle):
    assert main(["clusters", str(folder), "--log", str(tmp_path / "h.curalog"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_cluster_info_tsv_has_the_same_metric_columns(folder, tmp_path, capsys):
    log = tmp_path / "h.curalog"
    out = tmp_path / "exp"
    assert main(["export", str(folder), "--log", str(log), "--out", str(out)]) == 0
    capsys.readouterr()
    lines = (out / "cluster_info.tsv").read_bytes().decode().split("\r\n")
    header = lines[0].split("\t")
    for name in ("isolation_distance", "sliding_rp_violation", "drift_ptp", "snr", "silhouette"):
        assert name in header, name
    rows = _json(capsys, folder, "--log", log)
    by_id = {r["id"]: r for r in rows}
    col = header.index("isolation_distance")
    for line in lines[1:-1]:
        cells = line.split("\t")
        v = by_id[int(cells[0])]["isolation_distance"]
        assert (cells[col] == "" and v is None) or math.isclose(float(cells[col]), v, rel_tol=1e-7)
    assert np.isfinite([float(x.split("\t")[col]) for x in lines[1:-1] if x.split("\t")[col]]).all()


def test_autolabel_rules_read_the_quality_metrics(folder, tmp_path, capsys):
    log = tmp_path / "h.curalog"
    rule = "isolation_distance > 0 and nn_hit_rate >= 0 and not isnan(sliding_rp_violation) -> mua"
    assert main(["autolabel", str(folder), "--log", str(log), "--rule", rule, "--overwrite"]) == 0
    capsys.readouterr()
    rows = _json(capsys, folder, "--log", log)
    want = {
        r["id"]
        for r in rows
        if r["isolation_distance"] is not None and r["sliding_rp_violation"] is not None
    }
    assert want and {r["id"] for r in rows if r["group"] == "mua"} >= want
