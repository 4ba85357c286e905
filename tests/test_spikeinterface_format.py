"""SpikeInterface curation format v2: export structure, SpikeInterface's own validator and
apply_curation (when installed), import of files written by others, round trips, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from curalog.cli.program import main
from curalog.curation import default_log_path, open_curation
from curalog.errors import CuralogError
from curalog.history import create_branch, diff_histories
from curalog.io.phy_import import CurationImportError
from curalog.io.spikeinterface import (
    build_curation,
    export_curation,
    import_spikeinterface,
    read_curation,
)

from conftest import snapshot_dir, write_folder

N_T = 15
RNG = np.random.default_rng(11)
TEMPLATES = RNG.integers(0, N_T, 1500)
TIMES = np.cumsum(RNG.integers(1, 60, 1500))


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "ds", TEMPLATES, spike_times=TIMES, n_templates=N_T)


def of(cur, c: int) -> np.ndarray:
    return np.asarray(cur.spikes(c))


def merges_only(cur) -> None:
    cur.merge([3, 5])  # 15
    cur.label([2], group="good")
    cur.label([4], group="noise")


def splits_only(cur) -> None:
    cur.split(of(cur, 6)[::3])  # 15, 16
    cur.split(of(cur, 7)[:5], None)  # 17, 18
    cur.label([9], group="mua")


def everything(cur) -> None:
    cur.merge([0, 1])  # 15
    cur.split(of(cur, 15)[::2])  # merged then split: 16, 17
    cur.split(of(cur, 8))  # whole cluster: renamed 8 -> 18
    cur.split(np.r_[of(cur, 9)[:4], of(cur, 10)[:4]])  # lasso over two units: 19, 20, 21
    cur.merge([11, 12, 13])  # 22
    cur.label([16, 22], group="good")
    cur.label([3], group="mua")
    cur.label([22], field="comment", value="clean")
    cur.label([3], field="comment", value="drifts")
    cur.label([4], field="score", value=0.5)  # numeric: not exported


def nothing(cur) -> None:
    pass


CASES: dict[str, Callable] = {
    "merges": merges_only,
    "splits": splits_only,
    "everything": everything,
    "nothing": nothing,
}


def curate(ds: Path, case: str):
    with open_curation(ds, author="test") as cur:
        CASES[case](cur)


def test_export_structure_simple(ds: Path, tmp_path: Path) -> None:
    curate(ds, "merges")
    with open_curation(ds, readonly=True) as cur:
        doc = build_curation(cur)
    assert isinstance(doc, dict)
    assert doc["format_version"] == "2" and doc["unit_ids"] == list(range(N_T))
    assert doc["merges"] == [{"unit_ids": [3, 5], "new_unit_id": 15}]
    assert doc["splits"] == [] and doc["removed"] == []
    assert doc["label_definitions"]["quality"] == {
        "label_options": ["good", "mua", "noise"],
        "exclusive": True,
    }
    assert doc["manual_labels"] == [
        {"unit_id": 2, "labels": {"quality": ["good"]}},
        {"unit_id": 4, "labels": {"quality": ["noise"]}},
    ]
    assert doc["curalog"]["seq"] == 3


def test_export_structure_splits(ds: Path) -> None:
    curate(ds, "splits")
    with open_curation(ds, readonly=True) as cur:
        doc = build_curation(cur)
        spikes6 = np.flatnonzero(TEMPLATES == 6)
    assert isinstance(doc, dict) and doc["merges"] == []
    s6 = next(s for s in doc["splits"] if s["unit_id"] == 6)
    # the bigger child (16: 2 of every 3 spikes) is left implicit as the last id
    assert s6["mode"] == "indices" and s6["new_unit_ids"] == [15, 16]
    assert s6["indices"] == [list(range(0, spikes6.shape[0], 3))]
    assert doc["manual_labels"] == [{"unit_id": 9, "labels": {"quality": ["mua"]}}]


def test_export_structure_chained(ds: Path) -> None:
    curate(ds, "everything")
    with open_curation(ds, readonly=True) as cur:
        doc = build_curation(cur)
        final = sorted(cur.cluster_ids.tolist())
    assert isinstance(doc, list) and len(doc) == 3
    s1, s2, s3 = doc
    assert {tuple(m["unit_ids"]) for m in s1["merges"]} == {(0, 1), (9, 10), (11, 12, 13)}
    assert {m["new_unit_id"] for m in s1["merges"] if m["unit_ids"] == [11, 12, 13]} == {22}
    assert [s["unit_id"] for s in s1["splits"]] == [8]  # the rename: split in two temporary parts
    assert [s["unit_id"] for s in s2["splits"]] != [] and [
        m["new_unit_id"] for m in s2["merges"]
    ] == [18]
    assert s3["unit_ids"] == final and not s3["merges"] and not s3["splits"]
    labels = {m["unit_id"]: m["labels"] for m in s3["manual_labels"]}
    assert labels[22] == {"quality": ["good"], "comment": ["clean"]} and labels[3] == {
        "quality": ["mua"],
        "comment": ["drifts"],
    }
    assert s3["label_definitions"]["comment"] == {
        "label_options": ["clean", "drifts"],
        "exclusive": True,
    }
    assert doc[0]["curalog"]["fields_not_exported"] == ["score"]
    # every temporary id is above every real one
    temps = {m["new_unit_id"] for m in s1["merges"]} - set(final)
    assert temps and min(temps) > max(final)


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_through_the_file(ds: Path, tmp_path: Path, case: str) -> None:
    curate(ds, case)
    out = tmp_path / "curation.json"
    with open_curation(ds, readonly=True) as cur:
        assert export_curation(cur, out) == out
    read_curation(out)  # our own validator accepts it
    create_branch(ds, "si", at=0)
    res = import_spikeinterface(ds, out, log=default_log_path(ds, "si"))
    assert res.id_map == {}
    d = diff_histories(ds, "main", "si")
    assert d.outcome.differences == [] and all(
        a == b for a, b, _ in d.outcome.identical
    )  # ids included
    assert [(x.field, x.a_value) for x in d.outcome.label_disagreements] == (
        [("score", 0.5)] if case == "everything" else []
    )


@pytest.mark.parametrize("case", list(CASES))
def test_spikeinterface_validates_and_applies_our_export(
    ds: Path, tmp_path: Path, case: str
) -> None:
    si = pytest.importorskip("spikeinterface.core", reason="spikeinterface is not installed")
    si_cur = pytest.importorskip("spikeinterface.curation")
    model = pytest.importorskip("spikeinterface.curation.curation_model")
    curate(ds, case)
    out = tmp_path / "curation.json"
    with open_curation(ds, readonly=True) as cur:
        export_curation(cur, out)
        sc = cur.spike_clusters.copy()
        groups = cur.groups()
    doc = json.loads(out.read_text())
    steps = doc if isinstance(doc, list) else [doc]
    for step in steps:
        si_cur.validate_curation_dict(step)
    if len(steps) > 1:
        model.SequentialCuration(curation_steps=steps)
    sorting = si.NumpySorting.from_samples_and_labels([TIMES], [TEMPLATES], 30_000.0)
    curated = si_cur.apply_curation(sorting, doc)
    assert sorted(int(u) for u in curated.unit_ids) == sorted(np.unique(sc).tolist())
    for u in curated.unit_ids:
        assert np.array_equal(np.sort(curated.get_unit_spike_train(u)), TIMES[sc == int(u)]), u
    if any(g is not None for g in groups.values()):
        quality = dict(
            zip((int(u) for u in curated.unit_ids), curated.get_property("quality"), strict=True)
        )
        for c, g in groups.items():
            if g is not None:
                assert quality[c] == g


# ---------------------------------------------------------------------- files written by others
def write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "in.json"
    p.write_text(json.dumps(doc))
    return p


def test_import_v1_file(ds: Path, tmp_path: Path) -> None:
    doc = {
        "format_version": "1",
        "unit_ids": list(range(N_T)),
        "label_definitions": {
            "quality": {"label_options": ["good", "noise", "MUA"], "exclusive": True},
            "tags": {"label_options": ["burst", "drift"], "exclusive": False},
        },
        "manual_labels": [
            {"unit_id": 2, "quality": ["MUA"]},
            {"unit_id": 6, "tags": ["drift", "burst"]},
        ],
        "merge_unit_groups": [[3, 4], [7, 8, 9]],
        "removed_units": [10],
    }
    res = import_spikeinterface(ds, write(tmp_path, doc))
    with open_curation(ds, readonly=True) as cur:
        assert cur.group(2) == "mua" and cur.labels.get("tags", 6) == "burst,drift"
        assert cur.group(10) == "noise" and 10 in cur.state  # removal: kept, labelled noise
        assert 3 not in cur.state and np.array_equal(
            cur.spikes(15), np.flatnonzero(np.isin(TEMPLATES, [3, 4]))
        )
        assert np.array_equal(cur.spikes(16), np.flatnonzero(np.isin(TEMPLATES, [7, 8, 9])))
    assert res.n_structural == 2 and res.n_labels == 3


def test_import_v2_variants_and_string_ids(ds: Path, tmp_path: Path) -> None:
    n4 = int(np.sum(TEMPLATES == 4))
    labels = (np.arange(n4) % 2).tolist()
    steps = [
        {
            "format_version": "2",
            "unit_ids": [str(u) for u in range(N_T)],
            "merges": {"40": ["1", "2"]},
            "splits": [
                {"unit_id": "4", "mode": "labels", "labels": labels, "new_unit_ids": ["4a", "4b"]}
            ],
        },
        {
            "format_version": "2",
            "unit_ids": [u for u in range(N_T) if u not in (1, 2, 4)] + [40, "4a", "4b"],
            "label_definitions": {
                "quality": {"label_options": ["good", "noise"], "exclusive": True}
            },
            "manual_labels": [{"unit_id": "4a", "labels": {"quality": ["good"]}}],
            "merges": [{"unit_ids": ["4b", 40], "new_unit_id": None}],
        },
    ]
    res = import_spikeinterface(ds, write(tmp_path, steps))
    with open_curation(ds, readonly=True) as cur:
        a, b = res.id_map["4a"], res.id_map["4b"]
        assert cur.group(a) == "good"
        spikes4 = np.flatnonzero(TEMPLATES == 4)
        assert np.array_equal(cur.spikes(a), spikes4[::2])
        assert b not in cur.state  # merged in step 2
        assert 40 not in cur.state
        new = int(cur.spike_clusters[spikes4[1]])
        assert np.array_equal(
            cur.spikes(new),
            np.sort(np.r_[spikes4[1::2], np.flatnonzero(np.isin(TEMPLATES, [1, 2]))]),
        )


def test_import_sortingview_v0(ds: Path, tmp_path: Path) -> None:
    doc = {
        "labelsByUnit": {str(u): ["accept"] for u in range(N_T)},
        "mergeGroups": [[5, 6]],
        "unit_ids": list(range(N_T)),
    }
    res = import_spikeinterface(ds, write(tmp_path, doc))
    with open_curation(ds, readonly=True) as cur:
        assert cur.labels.get("all_labels", 0) == "accept" and 15 in cur.state
    assert res.n_structural == 1


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format_version": "3", "unit_ids": []}, "format_version '3' is not supported"),
        ({"format_version": "2"}, "unit_ids"),
        (
            {"format_version": "2", "unit_ids": [1, 2, 3], "merges": [[1, 2], [2, 3]]},
            "unit 2 is in two merges",
        ),
        ({"format_version": "2", "unit_ids": [1, 2, 3], "merges": [[1]]}, "at least two units"),
        (
            {"format_version": "2", "unit_ids": [1, 2], "merges": [[1, 2]], "removed": [1]},
            "both removed and merged",
        ),
        (
            {
                "format_version": "2",
                "unit_ids": [1, 2],
                "splits": [{"unit_id": 1, "indices": [[0, 0]]}],
            },
            "duplicate indices",
        ),
        (
            {
                "format_version": "2",
                "unit_ids": [1, 2],
                "manual_labels": [{"unit_id": 1, "labels": {"q": ["x"]}}],
            },
            "missing from label_definitions",
        ),
        (
            {
                "format_version": "2",
                "unit_ids": [1, 2],
                "splits": [{"unit_id": 1, "indices": [[0]], "new_unit_ids": [2, 9]}],
            },
            "already a unit",
        ),
    ],
)
def test_invalid_files_are_refused_before_anything_is_written(
    ds: Path, tmp_path: Path, doc, message: str
) -> None:
    before = snapshot_dir(ds)
    with pytest.raises(CurationImportError, match=message):
        import_spikeinterface(ds, write(tmp_path, doc))
    assert snapshot_dir(ds) == before  # not even the log was created


def test_state_errors_leave_the_log_untouched(ds: Path, tmp_path: Path) -> None:
    with open_curation(ds) as cur:
        cur.merge([0, 1])
    before = snapshot_dir(ds)
    stale = {"format_version": "2", "unit_ids": list(range(N_T)), "merges": [[2, 3]]}
    with pytest.raises(CurationImportError, match="do not match the curation's 14 clusters"):
        import_spikeinterface(ds, write(tmp_path, stale))
    with pytest.raises(CurationImportError, match="branch started at 0"):
        import_spikeinterface(ds, write(tmp_path, stale))
    live = [u for u in range(2, N_T)] + [15]
    out_of_range = {
        "format_version": "2",
        "unit_ids": live,
        "merges": [[2, 3]],
        "splits": [{"unit_id": 5, "indices": [[0, 1, 99999]]}],
    }
    with pytest.raises(CurationImportError, match="index out of range"):
        import_spikeinterface(ds, write(tmp_path, out_of_range))
    assert files(ds) == files_before(before)  # the merge of step 1 was only rehearsed
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CurationImportError, match="not a readable JSON"):
        import_spikeinterface(ds, bad)


def files_before(snapshot: dict) -> dict:
    """Sizes and contents (lock files are re-stamped by every writer: skipped)."""
    return {k: (v[0], v[2]) for k, v in snapshot.items() if not k.endswith(".lock")}


def files(folder: Path) -> dict:
    return files_before(snapshot_dir(folder))


def test_one_spike_rename_is_refused(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "tiny", [0, 0, 1, 2, 2], n_templates=3)
    with open_curation(folder) as cur:
        cur.split([2])  # the only spike of 1: renamed 1 -> 3
        with pytest.raises(CuralogError, match="renamed"):
            build_curation(cur)


def test_cli_export_and_import(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curate(ds, "everything")
    out = tmp_path / "cur.json"
    assert main(["export", str(ds), "--format", "spikeinterface", "--out", str(out)]) == 0
    assert json.loads(out.read_text())[0]["format_version"] == "2"
    create_branch(ds, "si", at=0)
    capsys.readouterr()
    assert (
        main(
            [
                "import",
                str(ds),
                "--log",
                str(default_log_path(ds, "si")),
                "--from-spikeinterface",
                str(out),
            ]
        )
        == 0
    )
    assert "from " in capsys.readouterr().out
    assert main(["import", str(ds), "--from-spikeinterface", str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err
