"""Loading real and messy Kilosort/phy folders; clear errors naming the file."""

import numpy as np
import pytest

import curalog
from curalog.dataset import load_dataset, read_metadata_tsv, read_params
from curalog.errors import DatasetError

from conftest import snapshot_dir, write_folder


def test_real_phy_test_folder(phy_template):
    before = snapshot_dir(phy_template)
    ds = load_dataset(phy_template)
    assert ds.n_spikes == 314 and ds.n_templates == 64
    assert ds.spike_times.dtype == np.int64 and ds.spike_times.ndim == 1
    assert ds.spike_templates.dtype == np.int32
    assert ds.sample_rate == 25000.0
    assert ds.amplitudes.shape == (314,)
    assert ds.templates.shape == (64, 82, 32)
    assert ds.template_channels.shape == (64, 32)  # sparse (template_ind.npy)
    assert ds.channel_map.shape == (32,) and ds.channel_positions.shape == (32, 2)
    assert ds.channel_shanks.shape == (32,)
    assert ds.similar_templates.shape == (64, 64)
    assert ds.base_groups == {4: "good"}
    ds.fingerprint  # noqa: B018
    assert snapshot_dir(phy_template) == before  # nothing written into the dataset


def test_legacy_shapes_unsigned_and_float_ids(tmp_path):
    d = write_folder(tmp_path / "d", [0, 1, 1, 2])
    np.save(d / "spike_times.npy", np.array([[1], [5], [9], [9]], dtype=np.uint64))
    np.save(d / "spike_templates.npy", np.array([[0], [1], [1], [2]], dtype=np.uint32))
    ds = load_dataset(d)
    assert ds.spike_times.tolist() == [1, 5, 9, 9] and ds.spike_templates.tolist() == [0, 1, 1, 2]
    np.save(d / "spike_templates.npy", np.array([0.0, 1.0, 1.0, 2.0]))
    assert load_dataset(d).spike_templates.tolist() == [0, 1, 1, 2]


def test_templates_ind_arange_is_dense_and_spikeinterface_folder(tmp_path):
    d = write_folder(tmp_path / "d", [0, 1, 1, 2], n_templates=3)
    np.save(d / "templates_ind.npy", np.tile(np.arange(4), (3, 1)))
    assert load_dataset(d).template_channels is None  # Kilosort's trivial file: dense
    (d / "templates_ind.npy").unlink()
    np.save(d / "template_ind.npy", np.array([[0, 1, 2, -1]] * 3, dtype=np.int64))
    assert load_dataset(d).template_channels[0].tolist() == [0, 1, 2, -1]
    (d / "cluster_si_unit_ids.tsv").write_text("cluster_id\tsi_unit_id\n0\tunit-a\n1\t7\n")
    (d / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n0\tunsorted\n1\tunsorted\n2\tunsorted\n"
    )
    ds = load_dataset(d)
    assert ds.sorter_columns["si_unit_id"] == {0: "unit-a", 1: 7}
    with curalog.open(d) as cur:
        assert cur.group(0) is None  # 'unsorted' = no value


def test_kilosort4_extras_are_accepted(tmp_path):
    d = write_folder(tmp_path / "d", [0, 1, 1, 2])
    np.save(d / "spike_detection_templates.npy", np.array([0, 1, 1, 2]))
    np.save(
        d / "kept_spikes.npy", np.ones(7, dtype=bool)
    )  # length != n_spikes: not used, not validated
    (d / "params.py").write_text(
        "dat_path = ['a.bin', 'b.bin']\nsample_rate = 30000.0\nn_channels_dat = 4\ndtype='int16'\n"
    )
    assert load_dataset(d).n_spikes == 4


def test_params_is_not_executed(tmp_path):
    p = tmp_path / "params.py"
    p.write_text(
        "import os\nos.system('touch pwned')\nsample_rate = 20000\ndat_path = os.path.join('a', 'b')\n"
    )
    params = read_params(p)
    assert params == {"sample_rate": 20000}
    assert not (tmp_path / "pwned").exists()


def test_metadata_tsv_rules(tmp_path):
    p = tmp_path / "cluster_x.csv"
    p.write_text("cluster_id,ContamPct,KSLabel\r\n0,5.2,good\r\n1,,mua\r\n2,3,\r\n")
    assert read_metadata_tsv(p) == {"ContamPct": {0: 5.2, 2: 3}, "KSLabel": {0: "good", 1: "mua"}}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: (d / "spike_times.npy").unlink(), "spike_times.npy: missing"),
        (lambda d: (d / "params.py").unlink(), "params.py: missing"),
        (lambda d: (d / "params.py").write_text("dat_path='x'\n"), "no sample_rate"),
        (lambda d: (d / "params.py").write_text("sample_rate = (\n"), "not valid Python"),
        (lambda d: np.save(d / "spike_times.npy", np.array([5, 3, 9, 10])), "must be sorted"),
        (
            lambda d: np.save(d / "spike_templates.npy", np.array([0, 1, 2])),
            "spike_templates.npy: 3 spikes",
        ),
        (lambda d: np.save(d / "spike_templates.npy", np.array([0, -1, 2, 2])), "negative ids"),
        (
            lambda d: np.save(d / "spike_templates.npy", np.array([0.5, 1, 2, 2])),
            "not whole numbers",
        ),
        (lambda d: np.save(d / "spike_templates.npy", np.array([0, 1, 2, 7])), "out of range"),
        (
            lambda d: (d / "spike_templates.npy").write_bytes(b"\x93NUMPY garbage"),
            "spike_templates.npy",
        ),
        (lambda d: (d / "spike_times.npy").write_bytes(b""), "spike_times.npy"),
    ],
)
def test_bad_folders_give_one_clear_error(tmp_path, mutate, message):
    d = write_folder(tmp_path / "d", [0, 1, 2, 2], n_templates=3)
    mutate(d)
    before = snapshot_dir(d)
    with pytest.raises(DatasetError, match=message):
        curalog.open(d)
    assert snapshot_dir(d) == before
    assert not (d / ".curalog").exists()


def test_optional_file_errors_name_the_file(tmp_path):
    d = write_folder(tmp_path / "d", [0, 1, 2, 2], n_templates=3)
    np.save(d / "amplitudes.npy", np.ones(3))
    with pytest.raises(DatasetError, match="amplitudes.npy: 3 rows but 4 spikes"):
        _ = load_dataset(d).amplitudes
    np.save(d / "similar_templates.npy", np.ones((2, 2)))
    with pytest.raises(DatasetError, match="similar_templates.npy"):
        _ = load_dataset(d).similar_templates
