"""Exports never lose a file curalog did not write, and never feed back into the dataset."""

from __future__ import annotations

import contextlib
import hashlib
import json

import numpy as np
import pytest

import curalog
import curalog.io.phy as phy_io
from curalog.io.phy import export_phy

import faultlib


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unexplained_spike_clusters_is_backed_up_before_export(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 3000, 10)
    edited = np.load(folder / "spike_templates.npy")
    edited[:100] = 3  # as if phy had saved a curation curalog knows nothing about
    np.save(folder / "spike_clusters.npy", edited)
    digest = _sha(folder / "spike_clusters.npy")
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
        res = export_phy(cur)
    assert [_sha(p) for p in res.backups if p.suffix == ".npy"] == [digest]


def test_backups_in_the_same_second_never_overwrite_each_other(tmp_path, monkeypatch):
    folder = faultlib.make_dataset(tmp_path / "ds", 3000, 10)
    edited = np.load(folder / "spike_templates.npy")
    edited[:100] = 3
    np.save(folder / "spike_clusters.npy", edited)
    phy_edit = _sha(folder / "spike_clusters.npy")
    monkeypatch.setattr(
        phy_io.time, "strftime", lambda fmt, *a: "20250101T000000"
    )  # one and the same second
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
        export_phy(cur)
        # killed after spike_clusters.npy was replaced, before exports.json was written:
        (cur.log_path.parent / phy_io.EXPORT_RECORD).unlink()
        cur.merge([3, 4])
        export_phy(cur)
    kept = {_sha(p) for p in (folder / ".curalog" / "backup").iterdir()}
    assert phy_edit in kept, "the phy-edited spike_clusters.npy was lost"


def test_export_own_label_files_do_not_become_sorter_columns(tmp_path):
    """Regression (D12): exported cluster_<field>.tsv files were read back as sorter columns."""
    folder = faultlib.make_dataset(tmp_path / "ds", 600, 6, 1)
    with curalog.open(folder) as cur:
        cur.label([3], field="quality", value=1)
        export_phy(cur)
    with curalog.open(folder) as cur:
        cur.label([3], field="quality", value=2)
        export_phy(cur)
    info = (folder / "cluster_info.tsv").read_bytes().decode().split("\r\n")
    header = info[0].split("\t")
    row3 = next(r.split("\t") for r in info[1:] if r.startswith("3\t"))
    assert row3[header.index("quality")] == "2"


def test_export_record_is_valid_json_after_every_export(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 3000, 10)
    with curalog.open(folder) as cur:
        for k in range(3):
            cur.merge(cur.cluster_ids[:2].tolist())
            export_phy(cur, tmp_path / f"out{k}")
            rec = json.loads((cur.log_path.parent / phy_io.EXPORT_RECORD).read_text())
            assert rec["last"]["seq"] == cur.seq


def test_two_atomic_writes_of_one_file_in_one_process_never_mix(tmp_path):
    from curalog.atomic import write_atomic

    target = tmp_path / "spike_clusters.npy"

    def outer(f):
        f.write(b"A" * 1000)
        f.flush()  # a large np.save reaches the file before it ends
        try:
            write_atomic(target, lambda g: g.write(b"B" * 500))  # a second writer, meanwhile
        finally:
            f.write(b"A" * 1000)

    with contextlib.suppress(
        OSError
    ):  # one of the two may fail; the file must stay one complete version
        write_atomic(target, outer)
    assert target.read_bytes() in (b"A" * 2000, b"B" * 500)
