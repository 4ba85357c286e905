"""Regression tests of the curator's screen (issue 15, bugs 1-8), each through Textual's pilot.

Every test here failed before its fix: it drives the app with real key presses and checks
what the screen shows, the cursor, or the log.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_tui_snapshots import write_dataset

from curalog_tui.app import CuralogApp
from curalog_tui.screens.split import SplitScreen
from curalog_tui.testing import open_app, screen_text, settle

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def make_app(folder: Path) -> CuralogApp:
    return open_app(folder)


def message(app: CuralogApp) -> str:
    return app.status.message.plain


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """12 clusters; n_spikes grows with the id (11 is the largest), 2 and 7 are mua."""
    return write_dataset(tmp_path / "small")


def marker_line(text: str) -> int:
    lines = [i for i, ln in enumerate(text.splitlines()) if re.search(r"\d ▶", ln)]
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------------- bug 1
@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_split_up_down_move_the_threshold_and_the_marker_follows(small, size):
    app = make_app(small)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SplitScreen) and screen.rule == "amplitude"
        _, edges = screen.hist
        step = float(edges[1] - edges[0])
        before, line_before = screen.threshold, marker_line(screen_text(app))
        await pilot.press("up")
        await settle(pilot)
        assert screen.threshold == pytest.approx(before + step)
        line_up = marker_line(screen_text(app))
        assert line_up == line_before - 1  # higher amplitudes are drawn higher up
        await pilot.press("down", "down")
        await settle(pilot)
        assert screen.threshold == pytest.approx(before - step)
        assert marker_line(screen_text(app)) == line_before + 1


# ---------------------------------------------------------------------- bug 2
async def test_kmeans_without_pcs_does_not_cut_a_clean_unit_in_time(small):
    app = make_app(small)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        cid = app.table.current
        await pilot.press("k", "m")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SplitScreen) and screen.plan is not None
        plan = screen.plan
        ds = app.cur.dataset
        times = ds.spike_times[plan.spike_ids] / ds.sample_rate
        assert plan.n_pieces == 2 and np.asarray(app.cur.spikes(cid)).shape == times.shape
        for piece in range(2):
            t = times[plan.labels == piece]
            # a time cut gives each piece about half of the recording; amplitude pieces span it
            assert t.max() - t.min() > 0.8 * ds.duration


async def test_split_keys_that_cannot_act_say_why(small):
    app = make_app(small)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("k", "m")
        await settle(pilot)
        await pilot.press("f")  # no pc_features.npy here: nothing to cycle to
        await settle(pilot)
        assert "pc_features.npy" in screen_text(app)
        await pilot.press("t", "up")  # templates rule: no threshold to move
        await settle(pilot)
        assert "threshold" in screen_text(app).split("\n", 3)[-1].lower()
        await pilot.press("plus")  # k only means something for k-means
        await settle(pilot)
        assert "k-means" in screen_text(app)


# ---------------------------------------------------------------------- bug 3
@pytest.fixture
def masked(small: Path) -> Path:
    (small / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n"
        + "".join(
            f"{t}\t{ {11: 'noise', 10: 'mua', 1: 'noise', 0: 'mua'}.get(t, 'good') }\n"
            for t in range(12)
        )
    )
    return small


async def test_home_end_reach_masked_rows_and_up_leaves_the_first_good_row(masked):
    app = make_app(masked)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        table = app.table
        assert table.order[0] == 11 and table.order[-1] == 0
        assert table.current == 9  # opens on the first navigable (good/unsorted) cluster
        await pilot.press("up")  # nothing good above: go to the mua row anyway
        await settle(pilot)
        assert table.current == 10
        await pilot.press("end")
        await settle(pilot)
        assert table.current == 0
        await pilot.press("home")
        await settle(pilot)
        assert table.current == 11
        await pilot.press("down")  # from a masked row, down goes to the next good one
        await settle(pilot)
        assert table.current == 9


# ---------------------------------------------------------------------- bug 4
async def test_undo_redo_say_what_and_put_the_cursor_back(small):
    app = make_app(small)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        a, b = sorted((app.best, app.similar))
        await pilot.press("g")
        await settle(pilot)
        new = app.cur.history[-1].body["new"]
        await pilot.press("down")
        await settle(pilot)
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert f"undid merge {a}, {b} -> {new}" in message(app)
        assert app.table.current in (a, b)
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert f"redid merge {a}, {b} -> {new}" in message(app)
        assert app.table.current == new
        # a label: undo names it and goes back to the labelled cluster (phy)
        labelled = app.table.current
        await pilot.press("3")
        await settle(pilot)
        assert app.table.current != labelled
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert f"undid label {labelled} noise" in message(app)
        assert app.table.current == labelled
        assert "seq" not in message(app).split("(")[0]


# ---------------------------------------------------------------------- bug 5
async def test_filter_error_quotes_what_the_user_typed(small):
    app = make_app(small)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"isi", "space", "greater_than_sign", "enter")
        await settle(pilot)
        msg = message(app)
        assert "'isi >'" in msg and "(isi" not in msg and "isi >)" not in msg, msg
        assert "end of filter" in msg and "rule" not in msg


# ---------------------------------------------------------------------- bug 6
async def test_one_amplitude_scale_per_name_with_units(small):
    app = make_app(small)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(pilot)
        cid = app.table.current
        amps = np.asarray(app.cur.dataset.amplitudes[np.asarray(app.cur.spikes(cid))])
        median, top = float(np.median(amps)), float(amps.max())
        header = screen_text(app).splitlines()[0]
        assert "amp[t]" in header and "amp[au]" in header  # template units, amplitudes.npy
        row = app.model.row(cid)
        assert row["amplitude_median_npy"] == pytest.approx(median, rel=1e-6)
        assert row["spk_amp"] == row["amplitude_median_npy"]
        assert (
            f"{median:.1f}"
            in app.table.get_row(str(cid))[[c.key for c in app.table.cols].index("spk_amp")].plain
        )
        detail = screen_text(app)
        assert f"spike amplitude (a.u.) 0-{top:.3g}" in detail
        await pilot.press("k")
        await settle(pilot)
        split = screen_text(app)
        assert "spike amplitude (a.u.)" in split
        assert app.screen.threshold == pytest.approx(median)
        await pilot.press("escape", "v", "a")
        await settle(pilot)
        view = app.screen
        assert view.data.y_range[0] == 0.0
        assert view.data.y_range[1] == pytest.approx(top, rel=0.05)
        assert "a.u." in screen_text(app)


# ---------------------------------------------------------------------- bug 7
async def test_amplitude_view_time_axis_starts_at_zero(small):
    app = make_app(small)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("v", "a")
        await settle(pilot)
        view = app.screen
        assert view.data.x_range[0] == 0.0
        assert view.data.x_range[1] == pytest.approx(app.cur.dataset.duration, rel=0.01)
        assert not re.search(r"-\d+(\.\d+)? ?s\b", screen_text(app))


# ---------------------------------------------------------------------- bug 8
async def test_template_feature_view_with_degenerate_index_says_why(phy_template):
    app = make_app(phy_template)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("v", "t")
        await settle(pilot)
        text = screen_text(app)
        assert "template_feature_ind" in text, text


async def test_raw_amplitude_in_microvolts_with_a_recording(tmp_path):
    """With a raw recording and its gain (synth: int16 at 0.195 µV per bit), the table has an
    ``amp[µV]`` column and the detail panel the same value: the peak-to-peak, on the best
    channel, of the mean filtered waveform (1 ms before, 2 ms after) of the hash-chosen
    spikes SpikeInterface's snr uses (recomputed here from curalog.recording)."""
    from curalog.recording import open_recording
    from curalog.synth.generator import synthesize
    from curalog.synth.recording import write_recording

    folder = tmp_path / "raw"
    synthesize(folder, n_spikes=6_000, n_templates=8, seed=2, n_channels=32)
    write_recording(folder)  # int16 at 0.195 µV per bit
    params = (folder / "params.py").read_text()
    if "uv_per_bit" not in params:
        (folder / "params.py").write_text(params + "uv_per_bit = 0.195\n")
    app = make_app(folder)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(pilot)
        cid = app.table.current
        rec = open_recording(app.cur.dataset)
        assert rec is not None and rec.uv_per_unit == pytest.approx(0.195)
        best = app.stats.get(cid).best_channel
        spikes = np.asarray(app.cur.spikes(cid))
        used = app.stats.engine.ctx.quality.recording_metrics.spikes_used(spikes)
        fs = rec.sample_rate
        snips = rec.snippets(
            app.cur.dataset.spike_times[used], np.array([best]), int(fs / 1000), int(2 * fs / 1000)
        )
        mean = snips.astype(np.float64).mean(axis=0)[:, 0]
        expected = (mean.max() - mean.min()) * rec.uv_per_unit
        assert 20 < expected < 2000  # a plausible unit in µV
        text = screen_text(app)
        assert f"amp[µV] {expected:.0f}" in text  # the detail panel
        assert "amp[µV]" in [c.label for c in app.table.cols]  # the table's header
        cell = app.table.model.cell(cid, next(c for c in app.table.cols if c.key == "raw_amp"))
        assert cell.plain == f"{expected:.0f}"


async def test_no_microvolt_column_without_a_known_gain(tmp_path):
    """An int16 recording without ``uv_per_bit``: the gain is unknown, so no ``amp[µV]``
    column (never a guessed scale); without any recording neither."""
    from curalog.synth.generator import synthesize
    from curalog.synth.recording import write_recording

    folder = tmp_path / "nogain"
    synthesize(folder, n_spikes=3_000, n_templates=5, seed=3, n_channels=16)
    write_recording(folder)
    params = folder / "params.py"
    params.write_text(
        "\n".join(x for x in params.read_text().splitlines() if "uv_per_bit" not in x) + "\n"
    )
    app = make_app(folder)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(pilot)
        assert app.cur.recording is not None and app.cur.recording.uv_per_unit is None
        assert "raw_amp" not in [c.key for c in app.table.cols]
        assert "amp[µV]" not in screen_text(app)
