"""Fuzzing the dataset loader: malformed .npy files, wrong dtypes and shapes, NaN amplitudes,
mismatched lengths, out-of-range template ids, params.py and TSV garbage.

Every case goes through everything a session reads (faultlib.touch_dataset: load, lazy files,
fingerprint, open + merge, statistics, export) and must end cleanly or in a one-line
CuralogError.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import example, given

import curalog
from curalog.errors import DatasetError

import faultlib


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


@faultlib.fuzz_settings(150)
@given(spec=faultlib.dataset_specs(wide=False))
def test_loader_on_broken_folders(spec):
    faultlib.fuzz_dataset(spec)


_OK = {
    "n": 30,
    "times": "ok",
    "templates": "ok",
    "length_delta": 0,
    "templates_rows": None,
    "amplitudes": "ok",
    "params": faultlib.PARAMS,
    "npy_damage": None,
    "cluster_group": None,
    "extra_tsv": None,
    "channel_map": None,
}


def _spec(**kw):
    return {**_OK, **kw}


@example(spec=_spec(params="DIR"))
@faultlib.fuzz_settings(150, report_multiple_bugs=False)
@given(spec=faultlib.dataset_specs(wide=True))
def test_loader_on_broken_folders_wide(spec):
    faultlib.fuzz_dataset(spec)


DEFECTS = {
    "params.py is a folder": (
        _spec(params="DIR"),
        "read_params: catch OSError (IsADirectoryError) -> DatasetError",
    ),
    "sample_rate = 10**400": (
        _spec(params="sample_rate = 1" + "0" * 400 + "\n"),
        "load_dataset: float(sr) raises OverflowError; catch it with TypeError/ValueError",
    ),
    "params.py parser overflow": (
        _spec(params="x = " + "-" * 20000 + "1\nsample_rate = 1\n"),
        "read_params: ast.parse raises MemoryError/RecursionError on deep nesting; catch both",
    ),
    ".npy header with an open bracket": (
        _spec(npy_damage=("header", "spike_templates.npy", "{'descr': '<i4', 'shape': ((")),
        "_load_npy: np.load raises tokenize.TokenError; catch Exception from np.load -> DatasetError",
    ),
    ".npy declaring 8 TiB": (
        _spec(
            npy_damage=(
                "header",
                "channel_map.npy",
                "{'descr': '<i8', 'fortran_order': False, 'shape': (1099511627776,), }",
            )
        ),
        "_load_npy(mmap=False) lets np.load allocate the declared shape (MemoryError); check header size vs file size",
    ),
    "cluster_group.tsv id 'inf'": (
        _spec(cluster_group="cluster_id\tgroup\ninf\tgood\n"),
        "read_metadata_tsv: int(float('inf')) raises OverflowError; catch it",
    ),
    "cluster_group.tsv 200 kB cell": (
        _spec(cluster_group="cluster_id\tgroup\n1\t" + "x" * 200_000 + "\n"),
        "read_metadata_tsv: csv.Error (field larger than field limit); catch -> DatasetError",
    ),
}


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_loader_defect(name, request):
    spec, fix = DEFECTS[name]
    # Each was a defect (the fix is in the table); now a regression test.
    faultlib.fuzz_dataset(spec)


def test_loader_memory_is_bounded_by_the_file(tmp_path):
    folder = faultlib.build_dataset(
        tmp_path / "ds",
        _spec(
            npy_damage=(
                "header",
                "channel_map.npy",
                "{'descr': '<i8', 'fortran_order': False, 'shape': (134217728,), }",
            )
        ),
    )
    ds = curalog.load_dataset(folder)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError):
            _ = ds.channel_map
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, (
        f"{peak / 2**20:.0f} MiB allocated for a {len((folder / 'channel_map.npy').read_bytes())}-byte file"
    )


CLEAN_ERRORS = {
    "mismatched lengths": (_spec(length_delta=-1), "spike_templates.npy"),
    "unsorted times": (_spec(times="unsorted"), "spike_times.npy"),
    "negative template ids": (_spec(templates="negative"), "spike_templates.npy"),
    "NaN template ids": (_spec(templates="float_nan"), "spike_templates.npy"),
    "complex template ids": (_spec(templates="complex"), "spike_templates.npy"),
    "template id beyond templates.npy": (_spec(templates_rows=2), "spike_templates.npy"),
    "amplitudes of the wrong length": (_spec(amplitudes="short"), "amplitudes.npy"),
    "truncated spike_times": (
        _spec(npy_damage=("truncate", "spike_times.npy", 100)),
        "spike_times.npy",
    ),
    "garbage spike_templates": (
        _spec(npy_damage=("garbage", "spike_templates.npy", b"\x93NUMPY garbage")),
        "spike_templates.npy",
    ),
    "no sample_rate": (_spec(params="dat_path = 'x'\n"), "params.py"),
    "sample_rate NaN": (_spec(params="sample_rate = float('nan')\n"), "params.py"),
}


@pytest.mark.parametrize("name", sorted(CLEAN_ERRORS))
def test_bad_folder_error_names_the_file(tmp_path, name):
    spec, filename = CLEAN_ERRORS[name]
    folder = faultlib.build_dataset(tmp_path / "ds", spec)
    before = faultlib.snapshot_files(folder)
    with pytest.raises(curalog.CuralogError) as info:
        faultlib.touch_dataset(folder, tmp_path)
    assert filename in str(info.value) and "\n" not in str(info.value)
    assert faultlib.snapshot_files(folder) == before


@pytest.mark.parametrize("amplitudes", ["nan", "inf"])
def test_nan_amplitudes_do_not_break_a_session(tmp_path, amplitudes):
    folder = faultlib.build_dataset(tmp_path / "ds", _spec(n=400, amplitudes=amplitudes))
    assert faultlib.outcome(faultlib.touch_dataset, folder, tmp_path) == "ok"
    assert np.load(tmp_path / "export" / "spike_clusters.npy").shape == (400,)
