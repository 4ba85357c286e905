"""80x24 as a first-class layout, the correlogram and ISI views, and their snapshots.

Pilot tests: what a curator sees at 80x24 (rows shown, the selection in words, whole words,
scrollbars that are not data, each key once in the help) and the correlogram screen's keys;
then text snapshots of the main screen, the split screen and the new views at 80x24 and
200x60 (``tests/tui_snapshots/screen_*.txt``; ``CURALOG_UPDATE_SNAPSHOTS=1`` rewrites them).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_tui_snapshots import write_dataset

from curalog.analysis.stats.correlograms import autocorrelogram, cross_correlogram
from curalog.synth.generator import synthesize
from curalog_tui.app import CuralogApp
from curalog_tui.screens.correlograms import CorrelogramScreen
from curalog_tui.screens.help import HelpScreen
from curalog_tui.testing import open_app, screen_text, settle
from curalog_tui.widgets.keybar import MAIN_KEYS, fit_keys

from conftest import check_snapshot as check

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

BLOCK_GLYPHS = set("▁▂▃▄▅▆▇█▉▊▋▌▍▎▏")


def make_app(folder: Path) -> CuralogApp:
    return open_app(folder, author="snapshot")


@pytest.fixture(scope="module")
def base_synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layout") / "base"
    synthesize(out, n_spikes=20_000, n_templates=32, seed=1)
    return out


@pytest.fixture
def synth(base_synth: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ds"
    shutil.copytree(base_synth, dest)
    return dest


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "small")


# ---------------------------------------------------------------------- 80x24
async def test_80x24_rows_selection_words_and_scrollbars(synth):
    app = make_app(synth)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        lines = screen_text(app).splitlines()
        ids = {str(c) for c in app.table.order}
        rows = [ln for ln in lines[1:] if ln.split() and ln.split()[0].lstrip("●") in ids]
        assert len(rows) >= 12 + 6  # 12 cluster rows and 6 similar rows
        status, keys = lines[-3], lines[-1]
        cid = app.table.current
        assert f"▶ {cid} " in status  # the selection, in words
        assert "…" not in status and "…" not in keys
        assert (
            keys.split() == " ".join(f"{k.key} {k.what}" for k in fit_keys(MAIN_KEYS, 80)).split()
        )
        assert "? help" in keys and "q quit" in keys
        # no scrollbar glyph beside the data: the last column holds only line characters
        assert not {ln[79] for ln in lines if len(ln) >= 80} & BLOCK_GLYPHS
        await pilot.press("down")
        await settle(pilot)
        assert f"▶ {app.table.current} " in screen_text(app).splitlines()[-3]


async def test_unsorted_is_spelled_out_in_both_tables(synth):
    app = make_app(synth)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("4")  # label unsorted: the cursor moves on
        await settle(pilot)
        await pilot.press("up")
        await settle(pilot)
        text = screen_text(app)
        assert "unsorted" in text
        assert not re.search(r"\bunsor(?!ted)", text)


async def test_help_lists_every_key_once(small):
    app = make_app(small)
    async with app.run_test(size=(100, 60)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        body = text.split("Keys", 1)[1].split("Commands", 1)[0]
        keys = []
        for ln in body.splitlines():
            cell = ln.strip(" █│┃").split("  ")[0].strip()
            if cell:
                keys += [k.strip() for k in re.split(r",| / ", cell) if k.strip()]
        dup = {k for k in keys if keys.count(k) > 1}
        assert not dup, dup
        for k in ("x", "escape", "s", "d", "c", "i"):
            assert k in keys


# ---------------------------------------------------------------------- correlograms
async def test_correlogram_matrix_keys_and_values(synth):
    app = make_app(synth)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        a = app.table.current
        await pilot.press("x", "down", "x", "down", "x")  # three marked clusters
        await settle(pilot)
        marked = sorted(app.model.marked)
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CorrelogramScreen)
        ids = screen.result.cluster_ids
        assert ids[0] == app.table.current and sorted(ids) == sorted(set(marked) | {a})
        assert screen.result.counts.shape == (3, 3, 51)  # phy's 1 ms / 50 ms: 51 bins
        cur = app.cur
        bins = screen.result.bins
        st = cur.dataset.spike_times
        s0, s1 = (np.asarray(cur.spikes(c)) for c in ids[:2])
        np.testing.assert_array_equal(screen.result.counts[0, 0], autocorrelogram(st, s0, bins))
        np.testing.assert_array_equal(
            screen.result.counts[0, 1], cross_correlogram(st, s0, s1, bins, symmetrize=True)
        )
        assert "bin 1 ms · window ±25 ms" in screen_text(app)
        await pilot.press("B", "W")  # bin 2 ms, window 100 ms
        await settle(pilot)
        assert screen.result.counts.shape == (3, 3, 51)
        assert "bin 2 ms · window ±50 ms" in screen_text(app)
        await pilot.press("b", "b")
        await settle(pilot)
        assert screen.result.bin_ms == pytest.approx(0.5)
        await pilot.press("0")
        await settle(pilot)
        assert (screen.result.bin_ms, screen.result.window_ms) == (1.0, 50.0)
        text = screen_text(app)
        assert "┄" in text  # the firing-rate baseline
        await pilot.press("i")  # the ISI view of the same clusters
        await settle(pilot)
        assert screen.mode == "isi" and "ISIs < 2 ms" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, CorrelogramScreen)


async def test_correlograms_of_a_merged_cluster_are_composed(synth):
    app = make_app(synth)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        a, b = app.best, app.similar
        await pilot.press("c")  # cursor + similar
        await settle(pilot)
        matrix = app.correlograms()
        assert set(app.screen.result.cluster_ids) == {a, b}
        await pilot.press("escape", "g")  # merge them
        await settle(pilot)
        new = app.cur.history[-1].body["new"]
        computed = matrix.computed
        await pilot.press("c")
        await settle(pilot)
        res = app.screen.result
        assert res.cluster_ids[0] == new
        assert matrix.composed >= 1  # the merged ACG came from the parents' halves
        spikes = np.asarray(app.cur.spikes(new))
        np.testing.assert_array_equal(
            res.counts[0, 0], autocorrelogram(app.cur.dataset.spike_times, spikes, res.bins)
        )
        # no kernel call for the merged cluster's own ACG: at most one ACG and one CCG pair
        # per other cluster shown
        assert matrix.computed - computed <= 2 * (len(res.cluster_ids) - 1)


# ---------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_snapshot_main_split_correlograms_isi(small, size):
    app = make_app(small)
    w, h = size
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        check(f"screen_main_{w}x{h}", screen_text(app))
        await pilot.press("k")
        await settle(pilot)
        check(f"screen_split_{w}x{h}", screen_text(app))
        await pilot.press("escape", "x", "down", "x", "down", "x", "c")
        await settle(pilot)
        check(f"screen_correlograms_{w}x{h}", screen_text(app))
        await pilot.press("i")
        await settle(pilot)
        check(f"screen_isi_{w}x{h}", screen_text(app))
