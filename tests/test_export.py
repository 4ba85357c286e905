"""phy's output files: formats, atomicity, backups, and that phylib reads them."""

import os

import numpy as np
import pytest

import curalog
from curalog.io.phy import export_phy, export_status, format_cell

from conftest import write_folder


@pytest.fixture
def curated(tmp_path):
    d = write_folder(
        tmp_path / "d", [3, 3, 3, 4, 4, 4, 4, 8, 8], n_templates=9, groups={8: "noise"}
    )
    with curalog.open(d) as cur:
        new = cur.merge([3, 4])
        cur.label([new], group="good")
        cur.label([8], field="comment", value="edge")
    return d


def test_files_and_formats(curated, tmp_path):
    out = tmp_path / "out"
    with curalog.open(curated) as cur:
        res = export_phy(cur, out)
        assert export_status(cur) == "up to date"
    assert {p.name for p in res.files} >= {
        "spike_clusters.npy",
        "cluster_group.tsv",
        "cluster_comment.tsv",
        "cluster_info.tsv",
    }
    sc = np.load(out / "spike_clusters.npy")
    assert sc.dtype == np.int32 and sc.tolist() == [9] * 7 + [8, 8]
    assert (
        out / "cluster_group.tsv"
    ).read_bytes() == b"cluster_id\tgroup\r\n8\tnoise\r\n9\tgood\r\n"
    assert (out / "cluster_comment.tsv").read_bytes() == b"cluster_id\tcomment\r\n8\tedge\r\n"
    info = (out / "cluster_info.tsv").read_bytes().decode().split("\r\n")
    header = info[0].split("\t")
    assert header[0] == "cluster_id" and header[1:] == sorted(header[1:])
    rows = {r.split("\t")[0]: dict(zip(header, r.split("\t"), strict=True)) for r in info[1:] if r}
    assert rows["9"]["n_spikes"] == "7" and rows["9"]["group"] == "good"
    assert rows["8"]["comment"] == "edge" and rows["9"]["comment"] == ""
    assert format_cell(np.float32(20.1)) == "20.10000038" and format_cell(2000.0) == "2000.00000000"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_export_in_place_backs_up_unexplained_spike_clusters(curated):
    foreign = np.array([1, 1, 1, 1, 2, 2, 2, 2, 2], dtype=np.int32)
    np.save(curated / "spike_clusters.npy", foreign)  # e.g. an older phy session
    with curalog.open(curated) as cur:
        res = export_phy(cur)
        assert len(res.backups) >= 1
        backup = [b for b in res.backups if b.name.startswith("spike_clusters")][0]
        assert np.array_equal(np.load(backup), foreign)
        res2 = export_phy(cur)  # our own export is explained: no new backup
        assert not [b for b in res2.backups if b.name.startswith("spike_clusters")]
        cur.label([8], group="mua")
        assert export_status(cur).startswith("stale")


def test_export_failure_leaves_previous_files(curated, tmp_path, monkeypatch):
    out = tmp_path / "out"
    with curalog.open(curated) as cur:
        export_phy(cur, out)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        cur.merge([8, 9])

        def boom(fd):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", boom)
        with pytest.raises(curalog.CuralogError, match="export failed"):
            export_phy(cur, out)
        monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_phylib_reads_the_export(phy_template):
    pytest.importorskip("phylib")
    from phylib.io.model import load_model

    with curalog.open(phy_template) as cur:
        new = cur.merge([1, 2])
        cur.split(cur.spikes(new)[:4])
        cur.label(cur.cluster_ids[:3].tolist(), group="good")
        export_phy(cur)
        expected = cur.spike_clusters.copy()
        groups = {c: g for c, g in cur.groups().items() if g}
    model = load_model(phy_template / "params.py")
    try:
        assert np.array_equal(model.spike_clusters, expected)
        assert {int(k): v for k, v in model.metadata["group"].items()} == groups
    finally:
        model.close()


def test_template_columns_match_phylib(phy_template):
    """amp / ch / depth of cluster_info.tsv as phy's Template GUI derives them."""
    pytest.importorskip("phylib")
    from phylib.io.model import load_model

    from curalog.io.phy import phy_template_columns

    with curalog.open(phy_template, readonly=True) as cur:
        cols = phy_template_columns(cur)
    model = load_model(phy_template / "params.py")
    try:
        for c in (0, 3, 4, 8, 20, 40):
            t = model.get_template(c)
            best = int(t.channel_ids[0])
            assert cols[c]["ch"] == str(int(model.channel_mapping[best]))
            assert cols[c]["depth"] == pytest.approx(float(model.channel_positions[best, 1]))
            ptp = t.template.max(axis=0) - t.template.min(axis=0)
            assert cols[c]["amp"] == pytest.approx(float(ptp.max()), rel=1e-4)
    finally:
        model.close()


def test_created_files_are_readable_by_others(curated, tmp_path):
    """Logs and exports get the mode a normal file gets (0666 minus the umask), not 0600."""
    from curalog.atomic import FILE_MODE

    with curalog.open(curated) as cur:
        res = export_phy(cur, tmp_path / "out")
        log_mode = cur.log_path.stat().st_mode & 0o777
    assert log_mode == FILE_MODE
    for p in res.files:
        assert p.stat().st_mode & 0o777 == FILE_MODE
    assert FILE_MODE & 0o044  # group/others may read under the usual umask 022


def test_export_without_metrics_and_with_progress(tmp_path, capsys):
    """``--no-metrics`` keeps phy's columns and leaves the quality metrics out; with them,
    ``progress`` sees every cluster and everything is computed before a file is written."""
    from curalog.analysis.stats.quality import QUALITY_NAMES
    from curalog.cli import main
    from curalog.synth import synthesize

    d = tmp_path / "s"
    synthesize(d, n_spikes=4_000, n_templates=6, seed=1, n_channels=16)
    assert main(["export", str(d), "--out", str(tmp_path / "a"), "--no-metrics"]) == 0
    header = (tmp_path / "a" / "cluster_info.tsv").read_text().splitlines()[0].split("\t")
    assert {"cluster_id", "n_spikes", "group", "amp", "ch", "depth", "fr"} <= set(header)
    assert not set(QUALITY_NAMES) & set(header)
    calls: list[tuple[int, int]] = []
    with curalog.open(d, readonly=True) as cur:
        export_phy(cur, tmp_path / "b", progress=lambda done, total: calls.append((done, total)))
        n = cur.n_clusters
    header = (tmp_path / "b" / "cluster_info.tsv").read_text().splitlines()[0].split("\t")
    assert {"isolation_distance", "sliding_rp_violation", "firing_range"} <= set(header)
    assert calls[-1] == (n, n) and all(t == n for _, t in calls)


def test_export_refuses_a_missing_raw_file_and_writes_nothing(tmp_path, capsys):
    from curalog.cli import main
    from curalog.synth import synthesize

    d = tmp_path / "s"
    synthesize(d, n_spikes=2_000, n_templates=4, seed=1, n_channels=8)
    out = tmp_path / "o"
    assert main(["export", str(d), "--out", str(out), "--raw", str(tmp_path / "no.dat")]) == 2
    assert "no.dat" in capsys.readouterr().err
    assert not (out / "spike_clusters.npy").exists()
