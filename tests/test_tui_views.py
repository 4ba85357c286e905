"""Pilot tests of the spike views screen (``v``): real key presses on a synthetic dataset with
``pc_features`` and ``template_features``, polygons drawn from the keyboard (and the mouse),
splits checked against the log and an independent recomputation of the selection.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from curalog.analysis.features import Dim, FeatureSource, spikes_in_polygon, view_from_provenance
from curalog.synth.generator import synthesize
from curalog_tui.app import CuralogApp
from curalog_tui.screens import views as views_mod
from curalog_tui.screens.views import ViewsHelp, ViewsScreen
from curalog_tui.testing import open_app, screen_text, settle

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

#: A rectangle of 10 x 10 cells around the plot centre, drawn from the keyboard.
RECTANGLE = [
    ("shift+left", "shift+up"),
    ("shift+right", "shift+right"),
    ("shift+down", "shift+down"),
    ("shift+left", "shift+left"),
]
#: A rectangle along the edges of the plot (every shown spike inside).
EVERYTHING = [
    ("shift+left",) * 40 + ("shift+up",) * 20,
    ("shift+right",) * 80,
    ("shift+down",) * 40,
    ("shift+left",) * 80,
]


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("views") / "base"
    synthesize(out, n_spikes=20_000, n_templates=16, seed=5, n_channels=32, pc_features=True)
    return out


@pytest.fixture
def ds(base_dataset: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ds"
    shutil.copytree(base_dataset, dest)
    return dest


def make_app(folder: Path) -> CuralogApp:
    return open_app(folder)


def row_ids(app: CuralogApp) -> list[int]:
    return [int(r.key.value) for r in app.table.ordered_rows]


async def open_views(pilot) -> ViewsScreen:
    await pilot.press("v")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ViewsScreen)
    return screen


async def draw(pilot, path, *, close: bool = True) -> None:
    """Move the crosshair along ``path`` (key groups), adding a vertex after each group."""
    for keys in path:
        await pilot.press(*keys, "space")
    if close:
        await pilot.press("enter")
    await settle(pilot)


def expected_selection(cur, meta: dict, spikes_before: dict[int, np.ndarray]) -> np.ndarray:
    """The polygon's selection recomputed from the log's provenance with a fresh reader."""
    ps = meta["polygon_split"]
    spec = view_from_provenance(FeatureSource(cur.dataset), ps, lambda c: spikes_before[c])
    return spikes_in_polygon(spec, ps["polygon"], missing=ps["missing"])


# ---------------------------------------------------------------------- feature view
async def test_feature_view_opens_and_steps_channels_and_pcs(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        best = app.best
        screen = await open_views(pilot)
        spec = screen.spec
        assert spec is not None and spec.kind == "feature" and spec.cluster_ids == (best,)
        chans = spec.channels
        assert spec.x == Dim.pc(chans[0], 0) and spec.y == Dim.pc(chans[1], 0)  # phy's 0A,1A
        data = screen.data
        assert data is not None and len(data.layers[0]) == app.cur.state.n_spikes_of(best)
        assert data.background is not None and len(data.background) > 0
        text = screen_text(app)
        x_label, y_label = spec.labels()
        assert f"features {best}" in text and f"↑ {y_label}" in text and f"→ {x_label}" in text
        assert "⣿" in text or "⠿" in text  # braille dots
        await pilot.press("x")  # next channel on x
        await settle(pilot)
        assert screen.spec.x == Dim.pc(chans[1], 0)
        await pilot.press("X", "X")  # two back: wraps to the last channel
        await settle(pilot)
        assert screen.spec.x == Dim.pc(chans[-1], 0)
        await pilot.press("y")
        await settle(pilot)
        assert screen.spec.y == Dim.pc(chans[2], 0)
        await pilot.press("p", "P", "P")  # PC 2 on x, PC 3 on y
        await settle(pilot)
        assert screen.spec.x == Dim.pc(chans[-1], 1) and screen.spec.y == Dim.pc(chans[2], 2)
        assert f"→ {screen.spec.labels()[0]}" in screen_text(app)
        await pilot.press("w")
        await settle(pilot)
        assert screen.spec.x == Dim.pc(chans[2], 2) and screen.spec.y == Dim.pc(chans[-1], 1)
        assert screen.timings["compute"] and screen.timings["render"]
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, ViewsHelp) and "crosshair" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("escape")  # no polygon: back to the cluster table
        await settle(pilot)
        assert not isinstance(app.screen, ViewsScreen) and app.cur.seq == 0


async def test_v_is_in_the_footer_and_help(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert "v views" in screen_text(app).splitlines()[-1]
        await pilot.press("question_mark")
        await settle(pilot)
        assert "views" in screen_text(app)


# ---------------------------------------------------------------------- split by drawing
async def test_keyboard_polygon_preview_and_commit_one_split(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        cur = app.cur
        target = app.best
        bystander = next(c for c in row_ids(app) if c != target)
        data_before = app.table._data[next(k for k in app.table.rows if k.value == str(bystander))]
        spikes_before = {target: np.array(cur.spikes(target))}
        screen = await open_views(pilot)
        frame = screen.frame
        assert frame is not None
        centre = frame.cell_center(frame.left + frame.width // 2, frame.top + frame.height // 2)
        assert screen.cursor == pytest.approx(centre)
        await draw(pilot, RECTANGLE, close=False)
        assert len(screen.poly) == 4 and not screen.closed
        assert "◆" in screen_text(app) and "┼" in screen_text(app)
        # the vertices are the crosshair's cell centres, 5 cells per shift+arrow
        col, row = frame.left + frame.width // 2, frame.top + frame.height // 2
        assert screen.poly[0] == pytest.approx(frame.cell_center(col - 5, row - 5))
        assert screen.poly[2] == pytest.approx(frame.cell_center(col + 5, row + 5))
        await pilot.press("backspace")  # remove the last vertex, put it back
        assert len(screen.poly) == 3
        await pilot.press("space")
        await pilot.press("enter")  # close: preview
        await settle(pilot)
        p = screen.preview
        assert screen.closed and p is not None
        n_in = p.n_inside[target]
        assert 0 < n_in < len(spikes_before[target])
        assert f"inside: {n_in:,}" in screen_text(app)
        assert cur.seq == 0  # nothing written by the preview
        poly, axes = np.array(screen.poly), (screen.spec.x.to_dict(), screen.spec.y.to_dict())
        app.table.clear = None  # a rebuild of the table would call clear(): make it explode
        await pilot.press("enter")  # commit
        await settle(pilot)
        assert cur.seq == 1
        ev = cur.history[-1]
        assert ev.type == "split" and ev.body["deleted"] == [target]
        ps = ev.body["meta"]["polygon_split"]
        assert ps["view"] == "feature" and ps["clusters"] == [target] and ps["missing"] == "refuse"
        assert (ps["x"], ps["y"]) == axes and np.array_equal(np.array(ps["polygon"]), poly)
        expected = expected_selection(cur, ev.body["meta"], spikes_before)
        inside = int(cur.spike_clusters[expected[0]])
        assert np.array_equal(cur.spikes(inside), expected)  # exactly spikes_in_polygon's ids
        assert expected.shape[0] == n_in  # every spike has features here: preview == selection
        rest = [c for c in ev.body["added"] if c != inside]
        assert len(rest) == 1
        assert np.array_equal(cur.spikes(rest[0]), np.setdiff1d(spikes_before[target], expected))
        # the table was diffed (new rows in, old row out, other rows untouched)
        ids = row_ids(app)
        assert inside in ids and rest[0] in ids and target not in ids
        key = next(k for k in app.table.rows if k.value == str(bystander))
        assert app.table._data[key] is data_before
        assert app.best == inside
        # the view now shows the two new clusters, the polygon is gone
        assert screen.spec.cluster_ids == (inside, rest[0]) and not screen.poly
        assert f"-> {inside}" in app.status.message.plain


async def test_selection_uses_every_spike_not_the_displayed_ones(ds, monkeypatch):
    """Even when the view shows only half the points, the split takes every spike inside."""
    real = views_mod.compute_view

    def thinned(spec, **kwargs):
        data = real(spec, **kwargs)
        for layer in data.layers:
            keep = slice(None, None, 2)
            layer.spike_ids, layer.x, layer.y = layer.spike_ids[keep], layer.x[keep], layer.y[keep]
        return data

    monkeypatch.setattr(views_mod, "compute_view", thinned)
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        cur = app.cur
        target = app.best
        spikes_before = {target: np.array(cur.spikes(target))}
        screen = await open_views(pilot)
        await draw(pilot, RECTANGLE)
        shown = screen.preview.n_inside[target]
        await pilot.press("enter")
        await settle(pilot)
        ev = cur.history[-1]
        expected = expected_selection(cur, ev.body["meta"], spikes_before)
        inside = int(cur.spike_clusters[expected[0]])
        assert np.array_equal(cur.spikes(inside), expected)
        assert expected.shape[0] > shown  # about twice the displayed points inside


async def test_escape_cancels_the_polygon_then_closes(ds):
    app = make_app(ds)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = await open_views(pilot)
        await draw(pilot, RECTANGLE)
        assert screen.closed
        await pilot.press("escape")
        await settle(pilot)
        assert not screen.poly and not screen.closed and isinstance(app.screen, ViewsScreen)
        await pilot.press("enter")  # nothing to close: a message, no split
        assert "3 vertices" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ViewsScreen) and app.cur.seq == 0


async def test_mouse_clicks_add_vertices(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        cur = app.cur
        target = app.best
        spikes_before = {target: np.array(cur.spikes(target))}
        screen = await open_views(pilot)
        f = screen.frame
        cx, cy = f.left + f.width // 2, f.top + f.height // 2
        cells = [(cx - 8, cy - 6), (cx + 8, cy - 6), (cx + 8, cy + 6), (cx - 8, cy + 6)]
        for col, row in cells:
            assert await pilot.click("#views-plot", offset=(col, row))
        await settle(pilot)
        assert screen.poly == [pytest.approx(f.cell_center(c, r)) for c, r in cells]
        await pilot.press("enter", "enter")
        await settle(pilot)
        ev = cur.history[-1]
        assert ev.type == "split"
        expected = expected_selection(cur, ev.body["meta"], spikes_before)
        assert np.array_equal(cur.spikes(int(cur.spike_clusters[expected[0]])), expected)


async def test_undo_inside_the_view_follows_the_clusters(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        target = app.best
        screen = await open_views(pilot)
        await draw(pilot, RECTANGLE)
        await pilot.press("enter")
        await settle(pilot)
        assert app.cur.history[-1].type == "split" and target not in app.cur.state
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert app.cur.history[-1].type == "undo" and target in app.cur.state
        assert screen.spec.cluster_ids == (target,) and target in row_ids(app)


# ---------------------------------------------------------------------- other views
async def test_template_feature_amplitude_and_cluster_scatter(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        cur = app.cur
        best, similar = app.best, app.similar
        screen = await open_views(pilot)
        await pilot.press("t")
        await settle(pilot)
        spec = screen.spec
        assert spec.kind == "template_feature" and spec.cluster_ids == (best, similar)
        assert spec.x.kind == spec.y.kind == "template" and screen.data.background is None
        assert "template features" in screen_text(app)
        await pilot.press("a")
        await settle(pilot)
        spec = screen.spec
        assert spec.kind == "amplitude" and spec.x == Dim.time() and spec.y == Dim.amplitude()
        text = screen_text(app)
        assert "time (s)" in text and "count" in text and "█" in text  # histogram beside the plot
        # a split on the amplitude view (the + similar cluster too: one event over both)
        await pilot.press("s")
        await settle(pilot)
        assert screen.spec.cluster_ids == (best, similar)
        before = {c: np.array(cur.spikes(c)) for c in (best, similar)}
        await draw(pilot, RECTANGLE)
        await pilot.press("enter")
        await settle(pilot)
        ev = cur.history[-1]
        assert ev.type == "split" and ev.body["meta"]["polygon_split"]["view"] == "amplitude"
        assert sorted(ev.body["deleted"]) == sorted([best, similar])
        expected = expected_selection(cur, ev.body["meta"], before)
        assert np.array_equal(cur.spikes(int(cur.spike_clusters[expected[0]])), expected)
        # cluster scatter: every cluster, columns cycle, enter selects the nearest one
        await pilot.press("c")
        await settle(pilot)
        assert screen.mode == "clusters" and screen.frame is not None
        text = screen_text(app)
        assert "→ fr (Hz)" in text and "↑ depth" in text and "nearest: cluster" in text
        await pilot.press("x")
        await settle(pilot)
        assert screen.scatter_x == "depth"
        await pilot.press("y", "y")
        assert screen.scatter_y == "n_spikes"
        await pilot.press("shift+right", "shift+down")
        nearest = screen.nearest
        assert nearest is not None
        await pilot.press("enter")
        await settle(pilot)
        assert app.best == nearest and screen.base_ids == [nearest]
        await pilot.press("space")  # no drawing on the cluster scatter
        assert "spike view" in screen_text(app)


async def test_80x24_every_view_fits(ds):
    app = make_app(ds)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_views(pilot)
        for key in ("f", "t", "a", "c"):
            await pilot.press(key)
            await settle(pilot)
            lines = screen_text(app).splitlines()
            assert len(lines) <= 24 and all(len(ln) <= 80 for ln in lines)
            assert "┤" in screen_text(app)  # a plot with its y axis


# ---------------------------------------------------------------------- missing features
async def test_phy_template_subset_features_need_a_confirmation(phy_template):
    """The real phy folder with pc_features for every other spike only."""
    ids = np.load(phy_template / "pc_feature_spike_ids.npy")
    pc = np.load(phy_template / "pc_features.npy")
    keep = np.arange(0, pc.shape[0], 2)
    np.save(phy_template / "pc_features.npy", pc[keep])
    np.save(phy_template / "pc_feature_spike_ids.npy", ids[keep])
    app = make_app(phy_template)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        cur = app.cur
        biggest = max((int(c) for c in cur.cluster_ids), key=cur.state.n_spikes_of)
        assert app.table.select(biggest)
        await settle(pilot)
        before = {biggest: np.array(cur.spikes(biggest))}
        screen = await open_views(pilot)
        data = screen.data
        n_without = data.n_without[biggest]
        assert 0 < n_without < len(before[biggest])
        assert f"{n_without:,} of {biggest} without features" in screen_text(app)
        await draw(pilot, EVERYTHING)
        assert screen.preview.n_inside[biggest] == len(before[biggest]) - n_without
        await pilot.press("enter")  # not yet: the count is named and must be confirmed
        await settle(pilot)
        assert cur.seq == 0 and screen.confirm
        text = screen_text(app)
        assert f"{n_without:,} spikes have no features" in text and "remainder" in text
        await pilot.press("enter")
        await settle(pilot)
        ev = cur.history[-1]
        assert ev.type == "split" and ev.body["meta"]["polygon_split"]["missing"] == "outside"
        expected = expected_selection(cur, ev.body["meta"], before)
        inside = int(cur.spike_clusters[expected[0]])
        assert np.array_equal(cur.spikes(inside), expected)
        rest = [c for c in ev.body["added"] if c != inside]
        assert cur.state.n_spikes_of(rest[0]) == n_without  # the spikes without features


async def test_phy_template_without_pc_features_says_so(phy_template):
    (phy_template / "pc_features.npy").unlink()
    (phy_template / "template_features.npy").unlink()
    app = make_app(phy_template)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = await open_views(pilot)
        assert screen.error is not None and screen.spec is None
        text = screen_text(app)
        assert "no PC features" in text and "pc_features.npy is missing" in text
        await pilot.press("space", "x", "enter")  # nothing to draw on, nothing crashes
        await settle(pilot)
        assert app.cur.seq == 0
        await pilot.press("t")
        await settle(pilot)
        assert "template_features.npy is missing" in screen_text(app)
        await pilot.press("a")  # amplitudes are there
        await settle(pilot)
        assert screen.error is None and screen.spec.kind == "amplitude"
