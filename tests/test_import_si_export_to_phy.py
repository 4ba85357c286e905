"""Interoperability on real formats: a folder written by SpikeInterface's export_to_phy opens,
curates and exports in curalog; phylib's TemplateModel reads curalog's export and sees the
same clusters and groups; phy's import path and the SpikeInterface file round-trip on it.

Skipped unless spikeinterface (and phylib for the model check) are installed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from curalog.curation import default_log_path, open_curation
from curalog.dataset import load_dataset
from curalog.history import create_branch, diff_histories
from curalog.io.phy import export_phy
from curalog.io.phy_import import import_phy
from curalog.io.spikeinterface import export_curation, import_spikeinterface

pytestmark = pytest.mark.interop
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="module")
def si_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    si = pytest.importorskip("spikeinterface.core", reason="spikeinterface is not installed")
    exporters = pytest.importorskip("spikeinterface.exporters")
    rec, gt = si.generate_ground_truth_recording(
        durations=[10.0], sampling_frequency=30_000.0, num_channels=8, num_units=6, seed=3
    )
    an = si.create_sorting_analyzer(sorting=gt, recording=rec, format="memory", sparse=True)
    an.compute("random_spikes", method="uniform", max_spikes_per_unit=100, seed=0)
    an.compute("templates")
    an.compute("template_similarity")
    out = tmp_path_factory.mktemp("si") / "phy"
    exporters.export_to_phy(
        an,
        output_folder=out,
        compute_pc_features=False,
        compute_amplitudes=True,
        copy_binary=False,
        remove_if_exists=True,
        verbose=False,
    )
    return out


@pytest.fixture
def folder(si_folder: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "phy"
    shutil.copytree(si_folder, dest)
    return dest


def test_export_to_phy_folder_opens_curates_and_exports(folder: Path) -> None:
    ds = load_dataset(folder)
    assert ds.n_templates == 6 and "si_unit_id" in ds.sorter_columns
    with open_curation(folder, author="t") as cur:
        assert cur.n_clusters == 6 and all(
            g is None for g in cur.groups().values()
        )  # SI writes 'unsorted'
        new = cur.merge([0, 1])
        parts = cur.split(cur.spikes(2)[::2])
        cur.label([new], group="good")
        cur.label([parts[0]], group="noise")
        export_phy(cur)
        sc = cur.spike_clusters.copy()
        groups = {c: g for c, g in cur.groups().items() if g is not None}
    model_mod = pytest.importorskip("phylib.io.model")
    model = model_mod.load_model(folder / "params.py")
    try:
        assert np.array_equal(model.spike_clusters, sc)
        assert sorted(model.cluster_ids.tolist()) == sorted(np.unique(sc).tolist())
        assert {
            int(c): g for c, g in model.metadata.get("group", {}).items() if g != "unsorted"
        } == groups
    finally:
        model.close()


def test_phy_import_and_si_round_trip_on_export_to_phy_folder(folder: Path, tmp_path: Path) -> None:
    # A curator edits spike_clusters.npy outside curalog (e.g. in phy): 3 + 4 -> 6.
    sc = np.load(folder / "spike_clusters.npy").reshape(-1).astype(np.int32)
    sc[np.isin(sc, [3, 4])] = 6
    np.save(folder / "spike_clusters.npy", sc)
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\r\n6\tgood\r\n")
    res = import_phy(folder)
    assert res.n_structural == 1 and res.n_labels == 1
    with open_curation(folder, readonly=True) as cur:
        assert np.array_equal(cur.spike_clusters, sc) and cur.group(6) == "good"
        export_curation(cur, tmp_path / "cur.json")
    create_branch(folder, "si", at=0)
    import_spikeinterface(folder, tmp_path / "cur.json", log=default_log_path(folder, "si"))
    assert diff_histories(folder, "main", "si").outcome.is_equal
