"""End-to-end Pilot tests of the curation screen: real key presses on a synthetic dataset.

Each test drives the app with keys and then checks the log (the source of truth), the
table rows (updated as diffs, never rebuilt) and the files written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import curalog
from curalog.synth.generator import synthesize
from curalog_tui.app import CuralogApp, run_app
from curalog_tui.screens.history import HistoryScreen
from curalog_tui.screens.split import SplitScreen
from curalog_tui.session import open_session
from curalog_tui.testing import open_app, screen_text, settle

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tui") / "base"
    synthesize(out, n_spikes=20_000, n_templates=32, seed=1)
    return out


@pytest.fixture
def ds(base_dataset: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ds"
    shutil.copytree(base_dataset, dest)
    return dest


def make_app(folder: Path, **kwargs) -> CuralogApp:
    return open_app(folder, **kwargs)


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch if ch != " " else "space")


def row_ids(app: CuralogApp) -> list[int]:
    return [int(r.key.value) for r in app.table.ordered_rows]


# ---------------------------------------------------------------------- main screen
async def test_opens_with_every_cluster_and_fills_statistics(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        cur = app.cur
        assert app.table.row_count == cur.n_clusters == 32
        # default sort: n_spikes descending, like phy
        sizes = [cur.state.n_spikes_of(c) for c in row_ids(app)]
        assert sizes == sorted(sizes, reverse=True)
        assert set(app.model.stats) == set(int(c) for c in cur.cluster_ids)  # stats filled in
        top = row_ids(app)[0]
        assert app.best == top and app.sim_table.reference == top
        assert app.sim_table.row_count == 31 and app.similar == app.sim_table.order[0]
        text = screen_text(app)
        assert "ACG 0-25ms" in text and "CCG" in text and "seq 0" in text


async def test_merge_key_updates_only_changed_rows(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        table = app.table
        best, similar = app.best, app.similar
        bystander = next(c for c in row_ids(app) if c not in (best, similar))
        row_before = (
            table.rows[table.get_row_key(bystander)] if hasattr(table, "get_row_key") else None
        )
        data_before = table._data[next(k for k in table.rows if k.value == str(bystander))]
        rendered_before = table.cells_rendered
        table.clear = None  # a rebuild would call clear(): make it explode
        await pilot.press("g")
        await settle(pilot)
        cur = app.cur
        ev = cur.history[-1]
        assert ev.type == "merge" and sorted(ev.body["clusters"]) == sorted([best, similar])
        new = ev.body["new"]
        ids = row_ids(app)
        assert table.row_count == 31 and new in ids and best not in ids and similar not in ids
        key = next(k for k in table.rows if k.value == str(bystander))
        assert table._data[key] is data_before  # the unrelated row's data object survived
        assert app.best == new  # phy: select the merged cluster
        assert row_before is None or table.rows[key] is row_before
        assert app.model.has_stats(new)
        # only a screenful of cells at most was re-rendered, not the table
        assert table.cells_rendered - rendered_before < 40 * len(table.cols)


async def test_label_keys_change_group_cell_log_and_advance(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        first = app.best
        await pilot.press("3")  # noise
        await settle(pilot)
        cur = app.cur
        ev = cur.history[-1]
        assert ev.type == "label" and ev.body == {
            **ev.body,
            "clusters": [first],
            "field": "group",
            "value": "noise",
        }
        assert cur.group(first) == "noise"
        assert app.table.get_cell(str(first), "group").plain == "noise"
        assert app.best != first  # phy's "move": next best
        second = app.best
        await pilot.press("alt+g")  # phy's alt key works too
        await settle(pilot)
        assert cur.group(second) == "good" and cur.history[-1].body["value"] == "good"
        # wizard: up goes back to the good cluster; above it only the noise one is left,
        # and up still reaches it rather than doing nothing (issue 15)
        await pilot.press("up")
        await settle(pilot)
        assert app.best == second
        await pilot.press("up")
        await settle(pilot)
        assert app.best == first
        await pilot.press("down")
        await settle(pilot)
        assert app.best == second


async def test_undo_redo_keys(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        a, b = app.best, app.similar
        await pilot.press("g")
        await settle(pilot)
        new = app.best
        await pilot.press("ctrl+z")
        await settle(pilot)
        cur = app.cur
        assert cur.history[-1].type == "undo" and not cur.can_undo
        ids = row_ids(app)
        assert a in ids and b in ids and new not in ids and app.table.row_count == 32
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert cur.history[-1].type == "redo"
        ids = row_ids(app)
        assert new in ids and a not in ids and app.table.row_count == 31
        assert app.model.has_stats(new)


async def test_command_prompt_merge_select_label_sort(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        cur = app.cur
        await pilot.press("colon")
        await type_text(pilot, "merge 3 4")
        await pilot.press("enter")
        await settle(pilot)
        ev = cur.history[-1]
        assert ev.type == "merge" and ev.body["clusters"] == [3, 4]
        assert app.query_one("#prompt").display is False
        await pilot.press("colon")
        await type_text(pilot, "select 5")
        await pilot.press("enter")
        await settle(pilot)
        assert app.best == 5
        await pilot.press("colon")
        await type_text(pilot, "label mua")
        await pilot.press("enter")
        await settle(pilot)
        assert cur.group(5) == "mua"
        await pilot.press("colon")
        await type_text(pilot, "sort id asc")
        await pilot.press("enter")
        await settle(pilot)
        assert row_ids(app) == sorted(row_ids(app))
        await pilot.press("colon")
        await type_text(pilot, "merge 999 5")
        await pilot.press("enter")
        await settle(pilot)
        assert "999" in app.status.message.plain  # a one-line error, no crash
        assert cur.history[-1].type == "label"


async def test_filter_and_clear(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        cur = app.cur
        await pilot.press("slash")
        await type_text(pilot, "n_spikes > 500 and group == good")
        await pilot.press("enter")
        await settle(pilot)
        expected = {
            int(c)
            for c in cur.cluster_ids
            if cur.state.n_spikes_of(int(c)) > 500 and cur.group(int(c)) == "good"
        }
        assert set(row_ids(app)) == expected and 0 < len(expected) < 32
        await pilot.press("slash")
        await type_text(pilot, " and bogus > 1")
        await pilot.press("enter")
        await settle(pilot)
        assert "bogus" in app.status.message.plain and set(row_ids(app)) == expected
        await pilot.press("escape")
        await settle(pilot)
        assert app.table.row_count == 32


async def test_split_screen_commits_exactly_the_previewed_pieces(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        target = app.best
        await pilot.press("k")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SplitScreen)
        await pilot.press("up", "up")  # threshold: two bins above the median
        await settle(pilot)
        plan = screen.plan
        assert plan is not None and plan.valid and plan.rule == "amplitude_threshold"
        shown = screen.query_one("#split-pieces").render()
        assert plan.describe() in str(shown)
        await pilot.press("enter")
        await settle(pilot)
        cur = app.cur
        ev = cur.history[-1]
        assert ev.type == "split" and ev.body["deleted"] == [target]
        assert ev.body["meta"]["rule"] == "amplitude_threshold"
        assert ev.body["meta"]["threshold"] == pytest.approx(plan.params["threshold"])
        added = ev.body["added"]
        assert [cur.state.n_spikes_of(c) for c in added] == plan.sizes
        for piece, cid in enumerate(added):
            assert np.array_equal(cur.spikes(cid), plan.spike_ids[plan.labels == piece])
        amps = cur.dataset.amplitudes
        assert np.all(amps[cur.spikes(added[0])] < plan.params["threshold"])
        assert app.best == added[0] and added[0] in row_ids(app)


async def test_split_screen_other_rules_and_cancel(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        screen = app.screen
        await pilot.press("m")  # k-means on amplitudes + times
        await settle(pilot)
        assert (
            screen.plan is not None and screen.plan.rule == "kmeans" and screen.plan.n_pieces == 2
        )
        await pilot.press("plus")
        await settle(pilot)
        assert screen.plan.n_pieces == 3
        await pilot.press("r", "e")
        await type_text(pilot, "0 20")
        await pilot.press("enter")
        await settle(pilot)
        assert screen.plan.rule == "time_range" and screen.plan.params["t1"] == 20.0
        await pilot.press("t")
        assert screen.plan.rule == "original_templates" and not screen.plan.valid  # one template
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, SplitScreen) and app.cur.seq == 0


async def test_history_screen_preview_and_undo_back(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        cur = app.cur
        assert cur.seq == 3
        await pilot.press("H")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        table = screen.query_one("#events")
        assert table.row_count == 3
        await pilot.press("up", "up")  # to seq 1
        await settle(pilot)
        assert screen.selected_seq == 1
        with curalog.open(ds, readonly=True, upto=1) as past:
            assert screen.preview is not None and screen.preview.n_clusters == past.n_clusters == 31
        assert "31 clusters" in screen_text(app)
        await pilot.press("u")  # undo back to seq 1: undoes the label and the second merge
        await settle(pilot)
        assert [e.type for e in cur.history[-2:]] == ["undo", "undo"]
        assert cur.n_clusters == 31 and table.row_count == 5
        await pilot.press("escape")
        await settle(pilot)
        assert app.table.row_count == 31


async def test_export_key_writes_phy_files(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        cur = app.cur
        sc = np.load(ds / "spike_clusters.npy")
        assert np.array_equal(sc, cur.spike_clusters)
        assert (ds / "cluster_group.tsv").exists()
        assert "exported seq 1" in app.status.message.plain
        assert "up to date" in app.status.state_text.plain


async def test_second_app_on_the_same_log_is_read_only(ds):
    first = open_session(ds)
    try:
        app = make_app(ds)
        assert app.readonly_reason and "already open for writing" in app.readonly_reason
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            assert "READ-ONLY" in app.status.state_text.plain
            await pilot.press("g")
            await settle(pilot)
            assert "read-only" in app.status.message.plain and app.cur.seq == 0
            assert app.table.row_count == 32
    finally:
        first.cur.close()


async def test_80x24_renders_every_screen(ds):
    app = make_app(ds)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        lines = text.splitlines()
        assert len(lines) <= 24 and all(len(ln) <= 80 for ln in lines)
        assert "n_spikes" in text and "seq 0" in text and "merge" in text
        await pilot.press("d")  # the detail panel replaces the similarity table
        await settle(pilot)
        assert "ACG" in screen_text(app)
        for key, screen_type in (("k", SplitScreen), ("H", HistoryScreen)):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, screen_type)
            assert len(screen_text(app).splitlines()) <= 24
            await pilot.press("escape")
            await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert "merge" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_code == 0


def test_run_app_reports_a_bad_folder(tmp_path, capsys):
    assert run_app(tmp_path / "missing") == 2
    err = capsys.readouterr().err
    assert err.startswith("curalog: ") and len(err.strip().splitlines()) == 1


async def test_kmeans_on_pc_features_of_the_real_phy_folder(phy_template):
    """The real phy test folder: sparse pc_features with a spike subset; k-means on PCs."""
    app = make_app(phy_template)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        biggest = max((int(c) for c in app.cur.cluster_ids), key=app.cur.state.n_spikes_of)
        await type_text(pilot, f"select {biggest}")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SplitScreen) and screen.sources[0] == "pc"
        await pilot.press("m")
        await settle(pilot)
        plan = screen.plan
        assert plan is not None and plan.params["features"] == "pc" and plan.valid
        await pilot.press("enter")
        await settle(pilot)
        ev = app.cur.history[-1]
        assert (
            ev.type == "split"
            and ev.body["meta"]["rule"] == "kmeans"
            and ev.body["deleted"] == [biggest]
        )
        assert sorted(app.cur.state.n_spikes_of(c) for c in ev.body["added"]) == sorted(plan.sizes)


async def test_opening_in_the_background_and_failing_cleanly(ds, tmp_path):
    app = CuralogApp(opener=lambda: open_session(ds), owns_curation=True, cursor_blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.ready and app.table.row_count == 32
        assert "opening" not in screen_text(app)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "params.py").write_text("sample_rate = 30000.0\n")
    app = CuralogApp(opener=lambda: open_session(broken), owns_curation=True, cursor_blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
    assert app.return_code == 2 and app.fatal and "spike_times.npy" in app.fatal


async def test_marks_merge_and_labels_on_the_similarity_table(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        picked = []
        for _ in range(3):
            picked.append(app.best)
            await pilot.press("x", "down")  # down skips mua/noise (wizard)
        await settle(pilot)
        assert app.model.marked == set(picked)
        assert app.table.get_cell(str(picked[0]), "id").plain.startswith("●")
        await pilot.press("g")
        await settle(pilot)
        cur = app.cur
        assert cur.history[-1].body["clusters"] == sorted(picked) and not app.model.marked
        # labels follow the focused table: tab to the similarity table, label the similar one
        await pilot.press("tab")
        await settle(pilot)
        similar = app.sim_table.current
        await pilot.press("2")
        await settle(pilot)
        assert cur.history[-1].body["clusters"] == [similar] and cur.group(similar) == "mua"
        assert app.sim_table.current != similar  # moved on to the next similar cluster
        assert app.table.get_cell(str(similar), "group").plain == "mua"
