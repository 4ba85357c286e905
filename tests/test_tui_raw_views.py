"""The waveform (``w``) and trace (``T``) views and the probe panel: Pilot tests and text
snapshots at 80x24 and 200x60.

The snapshots use a small hand-made dataset (tests/rawlib.py: 16 channels on a two-column
probe, a file already high-pass filtered so the capture does not depend on float rounding);
the Pilot tests use a synthetic dataset with its filtered int16 recording. Regenerate the
snapshots after an intended change with::

    CURALOG_UPDATE_SNAPSHOTS=1 pytest tests/test_tui_raw_views.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rawlib import write_raw_folder

from curalog.synth.generator import synthesize
from curalog_tui.app import CuralogApp
from curalog_tui.screens.traces import TraceScreen
from curalog_tui.screens.waveforms import WaveformScreen
from curalog_tui.session import open_session
from curalog_tui.testing import open_app, screen_text, settle
from curalog_tui.widgets.rawplot import channel_grid, render_probe

from conftest import check_snapshot

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def synth_raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rawtui") / "synth"
    synthesize(out, 6_000, 12, seed=4, n_channels=32, recording=True)
    return out


@pytest.fixture
def ds(synth_raw: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ds"
    shutil.copytree(synth_raw, dest)
    return dest


def make_app(folder: Path, **kwargs) -> CuralogApp:
    return open_app(folder, **kwargs)


def hand_made(path: Path) -> Path:
    pos = np.column_stack([np.where(np.arange(16) % 2, 32.0, 0.0), 20.0 * (np.arange(16) // 2)])
    folder, _ = write_raw_folder(
        path,
        n_channels=16,
        n_channels_dat=16,
        n_templates=4,
        channel_map=list(range(16)),
        positions=pos,
        hp_filtered=True,
        clean=True,
        extra_params="uv_per_bit = 0.5\n",
        seed=7,
    )
    return folder


# ---------------------------------------------------------------------- waveform view
async def test_waveform_view_shows_the_selection_and_its_keys(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        best, similar = app.best, app.similar
        await pilot.press("w")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, WaveformScreen)
        assert screen.view_ids() == [best, similar]
        cur = app.cur
        np.testing.assert_array_equal(screen.channels, cur.best_channels(best))
        wf = screen.data[best]
        assert wf.n_spikes == min(100, cur.state.n_spikes_of(best))
        text = screen_text(app)
        assert f"{best} (" in text and f"{similar} (" in text and "µV" in text
        raw_label = str(int(cur.dataset.channel_map[screen.channels[0]]))
        assert raw_label in screen.plot.plain
        assert "●" in str(app.screen.query_one("#wf-probe").render())
        # m: means only, t: templates overlaid then alone, the drawing changes each time
        before = screen.plot.plain
        await pilot.press("m")
        assert screen.mean_only and screen.plot.plain != before
        await pilot.press("t")
        assert "templates overlaid" in screen_text(app)
        await pilot.press("t")
        alone = screen.plot.plain
        assert "templates alone" in screen_text(app) and alone != before
        # + / -: channels; ] / [: spikes; s: the similar cluster off
        n = len(screen.channels)
        await pilot.press("plus")
        await settle(pilot)
        assert len(screen.channels) == n + 2
        await pilot.press("minus", "minus")
        await settle(pilot)
        assert len(screen.channels) == n - 2
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert screen.n_spikes == 200
        assert screen.data[best].n_spikes == min(200, cur.state.n_spikes_of(best))
        await pilot.press("s")
        await settle(pilot)
        assert screen.view_ids() == [best]
        await pilot.press("escape")
        assert not isinstance(app.screen, WaveformScreen)


async def test_waveform_view_follows_a_merge(ds):
    app = make_app(ds)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        a, b = app.best, app.similar
        await pilot.press("g")  # merge best + similar
        await settle(pilot)
        new = app.best
        assert new not in (a, b)
        await pilot.press("w")
        await settle(pilot)
        screen = app.screen
        assert screen.view_ids()[0] == new
        wf = screen.data[new]
        assert wf.n_cluster_spikes == app.cur.state.n_spikes_of(new)
        assert np.isin(wf.spike_ids, app.cur.spikes(new)).all()


# ---------------------------------------------------------------------- trace view
async def test_trace_view_scrolls_zooms_and_names_spikes(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        best = app.best
        await pilot.press("T")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        cur = app.cur
        times = np.asarray(cur.dataset.spike_times)[cur.spikes(best)]
        # opens on the cluster's first spike, the cursor on it, named in the info line
        assert screen.start <= times[0] < screen.start + screen.window
        assert screen.cursor == times[0]
        hit = screen.spike_at_cursor()
        assert hit is not None and hit[1] == best
        assert f"of cluster {best}" in screen_text(app)
        # its best channel is among the channels shown, and its spikes are coloured there
        assert int(cur.best_channels(best)[0]) in screen.shown.tolist()
        mark = screen.marks[0]
        assert mark.rows.size and mark.starts.size
        assert times[0] - screen.start - 41 in mark.starts.tolist()  # 41 samples before it
        # n / p: next and previous spike of the cluster
        await pilot.press("n")
        await settle(pilot)
        assert screen.cursor == times[1]
        await pilot.press("p")
        await settle(pilot)
        assert screen.cursor == times[0]
        # zoom and scroll in time
        w = screen.window
        await pilot.press("minus")
        await settle(pilot)
        assert screen.window > w
        start = screen.start
        await pilot.press("right")
        await settle(pilot)
        assert screen.start == start + screen.window // 4 or screen.start > start
        # channels: more of them, and scrolling
        n = screen.shown.size
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert screen.shown.size < n
        fewer = screen.shown.size
        screen.first_row = 0
        await pilot.press("down")
        await settle(pilot)
        assert screen.first_row == fewer // 2 and screen.shown[0] == screen.order[fewer // 2]
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert screen.shown.size > fewer
        # the traces on screen are the recording's filtered traces
        rec = cur.recording
        expected = rec.traces(screen.start, screen.start + screen.window, screen.shown)
        from curalog_tui.screens.traces import BASELINE_SAMPLES

        base = np.median(expected[:: max(1, expected.shape[0] // BASELINE_SAMPLES)], axis=0)
        np.testing.assert_allclose(screen.traces, expected - base, rtol=0, atol=1e-3)
        await pilot.press("escape")
        assert not isinstance(app.screen, TraceScreen)


async def test_views_without_a_recording_say_so(ds):
    (ds / "raw.dat").unlink()
    app = make_app(ds)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, WaveformScreen)
        assert "raw.dat: raw recording missing" in screen_text(app)
        # the templates are still there to look at
        await pilot.press("t")
        assert screen.plot.plain.strip()
        await pilot.press("escape")
        await pilot.press("T")
        await settle(pilot)
        assert "raw.dat: raw recording missing" in app.screen.plot.plain
        await pilot.press("escape")
        # the rest of the UI is untouched
        await pilot.press("g")
        await settle(pilot)
        assert app.cur.seq == 1


# ---------------------------------------------------------------------- renderers
def test_channel_grid_places_channels_like_the_probe():
    pos = np.array([[0, 0], [32, 0], [0, 20], [32, 20], [16, 40]], dtype=float)
    cols, rows, n_cols, n_rows = channel_grid(pos)
    assert (n_cols, n_rows) == (2, 3)
    assert rows.tolist() == [2, 2, 1, 1, 0]  # the highest y on top
    assert cols.tolist() == [0, 1, 0, 1, 0]  # left to right within a row
    # a staggered probe (Neuropixels 1.0: x = 43, 11 then 59, 27) keeps its stagger
    np1 = np.array([[43, 20], [11, 20], [59, 40], [27, 40]], dtype=float)
    cols, rows, n_cols, _ = channel_grid(np1)
    assert n_cols == 2 and rows.tolist() == [1, 1, 0, 0]
    assert cols[1] < cols[0] and cols[3] < cols[2]  # 11 left of 43, 27 left of 59
    assert cols[3] - cols[1] == pytest.approx(16 / 48 / 3)  # the rows are 16 µm apart in x


def test_probe_panel_lights_best_channels():
    pos = np.column_stack([np.zeros(10), 10.0 * np.arange(10)])
    lines = render_probe(pos, [(np.array([0, 1]), "#ff0000")], 6, 10, span=(50.0, 90.0))
    text = [ln.plain for ln in lines]
    assert text[-1].count("●") == 1 and text[0].count("·") == 1  # y = 0 at the bottom
    assert sum(t.startswith("│") for t in text) == 5


# ---------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_snapshots(tmp_path, size):
    folder = hand_made(tmp_path / "hand")
    app = make_app(folder)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        check_snapshot(f"raw_waveforms_{size[0]}x{size[1]}", screen_text(app))
        await pilot.press("m", "t")
        await settle(pilot)
        check_snapshot(f"raw_waveforms_means_templates_{size[0]}x{size[1]}", screen_text(app))
        await pilot.press("escape", "T")
        await settle(pilot)
        check_snapshot(f"raw_traces_{size[0]}x{size[1]}", screen_text(app))


def test_raw_override_reaches_the_views(ds, tmp_path):
    moved = tmp_path / "elsewhere.dat"
    (ds / "raw.dat").rename(moved)
    session = open_session(ds, raw=moved)
    try:
        assert session.cur.recording is not None and session.cur.recording.paths == [moved]
    finally:
        session.cur.close()
    from curalog.cli.program import build_parser

    args = build_parser().parse_args(["tui", str(ds), "--raw", str(moved)])
    assert args.raw == [str(moved)]


async def test_raw_view_key_bars_fit_and_their_keys_click(ds):
    """The raw views' key bars (one Static, not a widget per key): whole words at 80x24 with
    ``? help`` always there, and a click on a key runs the screen's action."""
    from curalog_tui.screens.traces import TraceScreen
    from curalog_tui.widgets.keybar import KeyBar

    app = make_app(ds)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, WaveformScreen)
        bar = screen.query_one(KeyBar)
        text = str(bar.render())
        assert "? help" in text and len(text) <= 80
        assert all(f" {k.key} {k.what} " in text + " " for k in bar.shown)
        x = text.index(" m means")  # the click lands on "means"
        assert not screen.mean_only
        await pilot.click(KeyBar, offset=(x + 3, 0))
        await settle(pilot)
        assert screen.mean_only
        await pilot.press("T")
        await settle(pilot)
        assert isinstance(app.screen, TraceScreen)
        tbar = app.screen.query_one(KeyBar)
        assert "n next spike" in str(tbar.render())


async def test_main_key_bar_click_runs_the_app_action(ds):
    """A click on the main screen's ``? help`` runs the app's action (the bar's clicks were
    no-ops: ``run_action`` is a coroutine and was not awaited)."""
    from curalog_tui.widgets.keybar import KeyBar

    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        main_screen = app.screen
        bar = main_screen.query_one(KeyBar)
        text = str(bar.render())
        x = text.index(" ? help")
        await pilot.click(KeyBar, offset=(x + 3, 0))
        await settle(pilot)
        assert app.screen is not main_screen  # the help screen is up
        assert "help" in type(app.screen).__name__.lower()


@pytest.mark.parametrize("which", ["waveforms", "traces"])
def test_raw_view_key_bars_show_exactly_the_screens_shown_bindings(which):
    """The raw views' key bars are built from their screens' BINDINGS (a bar is one Static,
    which Textual's Footer is not): every shown binding, in order, with its first key, words
    and action, then the app's quit; keys hidden from the footer stay out."""
    from curalog_tui.widgets import bar_keys

    screen = WaveformScreen if which == "waveforms" else TraceScreen
    bar = bar_keys(screen.BINDINGS, screen.BAR_PRIORITY, quit_priority=9)
    assert [b.action for b in screen.BINDINGS if b.show] == [k.action for k in bar][:-1]
    assert (bar[-1].key, bar[-1].action) == ("q", "app.quit")
    shown = [f"{k.key} {k.what}" for k in bar]
    if which == "waveforms":
        assert shown == [
            "esc back", "m means", "t templates", "+ +ch", "- -ch", "] +spikes",
            "[ -spikes", "s +similar", "T traces", "? help", "q quit",
        ]  # fmt: skip
    else:
        assert shown == [
            "esc back", "+ zoom in", "- zoom out", "] +ch", "[ -ch", "n next spike",
            "p prev spike", "? help", "q quit",
        ]  # fmt: skip
    assert [k.priority for k in bar if k.action == "help"] == [-1]  # always on the bar
