"""Import from phy: replay reproduces phy's spike_clusters (ids included) and groups exactly.

The curated states are produced by phy's own ``Clustering`` and ``ClusterMeta`` (with the
Supervisor's label propagation) and saved the way phy saves them; those tests skip when phy
is not installed. The id-cycle and error tests need no phy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from curalog.cli.program import main
from curalog.curation import default_log_path, open_curation
from curalog.errors import DatasetError, LogLockedError
from curalog.io.phy import export_phy
from curalog.io.phy_import import import_phy, reproduce_assignment
from curalog.store.log import read_log

from conftest import snapshot_dir, write_folder

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _phy():
    clustering = pytest.importorskip(
        "phy.cluster.clustering", reason="phy is not installed", exc_type=ImportError
    )
    utils = pytest.importorskip("phy.cluster._utils", exc_type=ImportError)
    misc = pytest.importorskip("phylib.utils._misc")
    return clustering.Clustering, utils.create_cluster_meta, misc._write_tsv_simple


def phy_session(
    folder: Path, actions: Callable, *, start_groups: dict[int, str] | None = None
) -> np.ndarray:
    """Curate ``folder`` with phy's engine as the Template GUI would, then save like phy."""
    Clustering, create_cluster_meta, write_tsv = _phy()
    sc_path = folder / "spike_clusters.npy"
    start = (
        np.load(sc_path).reshape(-1)
        if sc_path.exists()
        else np.load(folder / "spike_templates.npy").reshape(-1)
    )
    clustering = Clustering(start.astype(np.int64).copy())
    groups = start_groups
    if groups is None and (folder / "cluster_group.tsv").exists():
        from curalog.dataset import read_metadata_tsv

        groups = {
            int(k): v
            for k, v in read_metadata_tsv(folder / "cluster_group.tsv").get("group", {}).items()
        }
    meta = create_cluster_meta(groups or {})

    def do(up):
        if up is not None and up.added:
            meta.set_from_descendants(up.descendants, largest_old_cluster=up.largest_old_cluster)
        return up

    actions(clustering, meta, do)
    final = clustering.spike_clusters.astype(np.int32)
    np.save(sc_path, final)  # phy: model.save_spike_clusters
    live = {int(c): meta.get("group", c) for c in clustering.cluster_ids}
    write_tsv(
        folder / "cluster_group.tsv", "group", {c: v for c, v in live.items() if v is not None}
    )
    return final


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    templates = rng.integers(0, 20, 3000)
    return write_folder(
        tmp_path / "synth",
        templates,
        n_templates=20,
        groups={c: ("good" if c % 3 else "mua") for c in range(20)},
    )


def session_1(c, meta, do) -> None:
    do(c.merge([3, 5]))  # 20
    do(c.merge([20, 7]))  # 21
    do(c.split(np.flatnonzero(np.isin(c.spike_clusters, [1, 2]))[::3]))  # lasso over two clusters
    do(
        c.split(
            np.flatnonzero(c.spike_clusters == 9), np.arange(np.sum(c.spike_clusters == 9)) % 3 * 2
        )
    )
    do(c.merge([0, 4]))
    c.undo()  # phy: the merge is undone, its id is burned
    do(c.merge([10, 11, 12]))
    meta.set("group", [21], "good")
    meta.set("group", [4, 6], "noise")
    meta.set("group", [13], "mua")


def assert_matches_folder(folder: Path, log: Path | None = None) -> None:
    from curalog.dataset import read_metadata_tsv

    phy_sc = np.load(folder / "spike_clusters.npy").reshape(-1)
    groups = read_metadata_tsv(folder / "cluster_group.tsv").get("group", {})
    with open_curation(folder, log, readonly=True) as cur:
        assert np.array_equal(cur.spike_clusters, phy_sc)
        assert {c: g for c, g in cur.groups().items() if g is not None} == {
            int(c): g for c, g in groups.items() if g != "unsorted" and int(c) in cur.state
        }


def test_import_reproduces_a_phy_session(synth: Path, tmp_path: Path) -> None:
    phy_sc = phy_session(synth, session_1)
    assert not np.array_equal(phy_sc, np.load(synth / "spike_templates.npy"))
    res = import_phy(synth, author="importer")
    # one assign per connected group: {3,5,7}->21, {1,2}->lasso, 9->split, {10,11,12}
    assert res.n_structural == 4 and res.n_labels >= 1 and res.warnings == []
    assert {e.type for e in res.events} == {"assign", "label"}
    assert all(e.body["meta"]["source"] == "phy" for e in res.events if e.type == "assign")
    assert_matches_folder(synth)
    # export -> the same files phy wrote
    with open_curation(synth, readonly=True) as cur:
        out = export_phy(cur, tmp_path / "out")
    assert (tmp_path / "out" / "spike_clusters.npy").read_bytes() == (
        synth / "spike_clusters.npy"
    ).read_bytes()
    assert (tmp_path / "out" / "cluster_group.tsv").read_bytes() == (
        synth / "cluster_group.tsv"
    ).read_bytes()
    assert out.files


def test_import_twice_appends_nothing(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    phy_session(synth, session_1)
    assert main(["import", str(synth), "--from-phy"]) == 0
    assert "appended events #1-" in capsys.readouterr().out
    before = default_log_path(synth).read_bytes()
    assert main(["import", str(synth), "--from-phy"]) == 0
    assert "already matches phy; nothing appended" in capsys.readouterr().out
    assert default_log_path(synth).read_bytes() == before


def test_phy_changes_after_curalog_append_only_the_difference(synth: Path) -> None:
    with open_curation(synth, author="curalog-user") as cur:
        cur.merge([1, 2])  # 20
        cur.split(np.flatnonzero(cur.spike_clusters == 8)[:10])  # 21, 22
        cur.label([20], group="good")
        export_phy(cur)  # curalog writes spike_clusters.npy for phy
        counter = cur.state.counter
    n_before = len(read_log(default_log_path(synth)).events)
    prefix = default_log_path(synth).read_bytes()

    def later(c, meta, do):
        assert c.new_cluster_id() == counter  # phy continues from the exported ids
        do(c.merge([20, 6]))
        do(c.split(np.flatnonzero(c.spike_clusters == 13)[5:40]))
        meta.set("group", [22], "noise")

    phy_session(synth, later)
    res = import_phy(synth)
    assert res.n_structural == 2 and res.n_labels == 1
    assert default_log_path(synth).read_bytes().startswith(prefix)
    assert [e.seq for e in res.events] == list(range(n_before + 1, n_before + 4))
    assert_matches_folder(synth)


def test_phy_template_real_folder(phy_template: Path, tmp_path: Path) -> None:
    def session(c, meta, do):
        ids = c.cluster_ids
        do(c.merge(ids[:3].tolist()))
        biggest = int(ids[np.argmax([np.sum(c.spike_clusters == x) for x in ids])])
        do(c.split(np.flatnonzero(c.spike_clusters == biggest)[::2]))
        meta.set("group", [int(c.cluster_ids[-1])], "good")
        meta.set("group", [int(c.cluster_ids[0])], "noise")

    phy_session(phy_template, session)
    res = import_phy(phy_template)
    assert res.n_structural == 2
    assert_matches_folder(phy_template)
    with open_curation(phy_template, readonly=True) as cur:
        export_phy(cur, tmp_path / "out")
    assert np.array_equal(
        np.load(tmp_path / "out" / "spike_clusters.npy"),
        np.load(phy_template / "spike_clusters.npy"),
    )
    assert (tmp_path / "out" / "cluster_group.tsv").read_bytes() == (
        phy_template / "cluster_group.tsv"
    ).read_bytes()


def test_unsorted_and_custom_groups(synth: Path) -> None:
    def session(c, meta, do):
        do(c.merge([1, 2]))
        meta.set("group", [20], "unsorted")  # phy writes the literal 'unsorted'
        meta.set("group", [4], "maybe")  # ':l group maybe' in phy

    phy_session(synth, session)
    res = import_phy(synth)
    assert any("'maybe'" in w and "not imported" in w for w in res.warnings)
    with open_curation(synth, readonly=True) as cur:
        assert np.array_equal(cur.spike_clusters, np.load(synth / "spike_clusters.npy"))
        assert cur.group(20) is None and cur.group(4) is None  # 4 was 'good' from the sorter
        assert cur.group(3) == "mua" and cur.group(5) == "good"


# ---------------------------------------------------------------------- no phy needed
@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "small", [3, 3, 3, 4, 4, 4, 4, 8, 8, 5, 5], n_templates=9)


def test_swapped_and_reused_ids_need_a_temporary_step(small: Path) -> None:
    target = np.array([4, 4, 4, 3, 3, 3, 3, 8, 8, 5, 5])  # clusters 3 and 4 swap ids
    with open_curation(small) as cur:
        res = reproduce_assignment(cur, target, meta={"source": "test"})
        assert np.array_equal(cur.spike_clusters, target)
        assert res.n_structural == 3  # one move to a temporary id, then two assigns
        assert any(e.body["meta"].get("step", "").startswith("temporary") for e in res.events)
        # a target that takes a live id of a cluster that changes
        target2 = np.array([4, 4, 4, 4, 4, 4, 4, 8, 8, 5, 5])
        reproduce_assignment(cur, target2)
        assert np.array_equal(cur.spike_clusters, target2)
    with open_curation(small, readonly=True) as cur:
        assert np.array_equal(cur.spike_clusters, target2)  # and the log replays to it


def test_errors_leave_the_folder_untouched(small: Path) -> None:
    before = snapshot_dir(small)
    with pytest.raises(DatasetError, match="spike_clusters.npy: missing"):
        import_phy(small)
    np.save(small / "spike_clusters.npy", np.zeros(5, np.int32))
    before = snapshot_dir(small)
    with pytest.raises(DatasetError, match="5 rows but 11 spikes"):
        import_phy(small)
    assert snapshot_dir(small) == before
    assert main(["import", str(small), "--from-phy"]) == 2


def test_missing_group_file_keeps_labels(small: Path) -> None:
    np.save(small / "spike_clusters.npy", np.array([9, 9, 9, 9, 9, 9, 9, 8, 8, 5, 5], np.int32))
    with open_curation(small) as cur:
        cur.label([8], group="good")
    res = import_phy(small)
    assert res.n_structural == 1 and res.n_labels == 0
    assert any("cluster_group.tsv: missing" in w for w in res.warnings)
    with open_curation(small, readonly=True) as cur:
        assert cur.group(8) == "good" and 9 in cur.state


def test_locked_log_is_refused(small: Path) -> None:
    np.save(small / "spike_clusters.npy", np.array([9, 9, 9, 9, 9, 9, 9, 8, 8, 5, 5], np.int32))
    with open_curation(small), pytest.raises(LogLockedError):
        import_phy(small)
    assert not default_log_path(small).exists()  # the holder wrote nothing; its empty log is gone
