"""Pilot tests of the merge-proposal review queue (``m``): real key presses on realistic
synthetic data (drifting units split into pieces), the log checked after every key.

Also: the evidence renderer (pure) and text snapshots of the screen at 80x24 and 160x45
(``tests/tui_snapshots/proposals_*.txt``; regenerate with ``CURALOG_UPDATE_SNAPSHOTS=1``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import curalog
from curalog.analysis.proposals import DEFAULT_MIN_SCORE, PROPOSAL_NOTE_KIND, ProposalEngine
from curalog.analysis.stats import StatsEngine
from curalog.synth.generator import synthesize
from curalog_tui.app import CuralogApp
from curalog_tui.screens.proposals import ProposalsScreen, ReviewHelp
from curalog_tui.session import open_session
from curalog_tui.testing import open_app, screen_text, settle
from curalog_tui.widgets.evidence import EvidenceData, layout_heights, render_evidence

from conftest import check_snapshot as check

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def drift_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proposals") / "d"
    synthesize(out, n_spikes=200_000, n_templates=40, seed=3, drift=True)
    return out


@pytest.fixture
def ds(drift_dataset: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "d"
    shutil.copytree(drift_dataset, dest)
    return dest


def make_app(folder: Path, **kwargs) -> CuralogApp:
    return open_app(folder, author="test", **kwargs)


def row_ids(app: CuralogApp) -> list[int]:
    return [int(r.key.value) for r in app.table.ordered_rows]


async def open_queue(pilot) -> ProposalsScreen:
    await settle(pilot)
    await pilot.press("m")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ProposalsScreen)
    return screen


def log_bytes(folder: Path) -> bytes:
    path = folder / ".curalog" / "main.log"
    return path.read_bytes() if path.exists() else b""


# ---------------------------------------------------------------------- the queue
async def test_accept_reject_undo_with_the_log_checked_after_each_key(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_queue(pilot)
        cur = app.cur
        first = screen.current
        assert first is not None and first.score >= DEFAULT_MIN_SCORE
        assert screen.evidence is not None and screen.evidence.proposal.pair == first.pair
        text = screen_text(app)
        assert f"merge {first.a} + {first.b}" in text and "CCG" in text and "templates" in text
        assert "depth over time" in text and "spike amplitude (a.u.)" in text
        n_rows = app.table.row_count
        n_events = len(cur.history)

        # a: accept -> a merge event with the proposal as provenance; the table is diffed
        await pilot.press("a")
        await settle(pilot)
        ev = cur.history[-1]
        assert len(cur.history) == n_events + 1
        assert ev.type == "merge" and sorted(ev.body["clusters"]) == [first.a, first.b]
        prov = ev.body["meta"]["proposal"]
        assert (
            prov["clusters"] == [first.a, first.b]
            and prov["engine"] == "curalog.analysis.proposals"
        )
        assert (
            prov["score"] == pytest.approx(first.score, abs=1e-4) and prov["reason"] == first.reason
        )
        new = int(ev.body["new"])
        ids = row_ids(app)
        assert app.table.row_count == n_rows - 1
        assert new in ids and first.a not in ids and first.b not in ids
        second = screen.current
        assert second is not None and second.pair != first.pair
        assert second.a in cur.state and second.b in cur.state
        assert screen.counts["accepted"] == 1

        # r: reject -> a note event; nothing else changes; the pair leaves the queue
        await pilot.press("r")
        await settle(pilot)
        ev = cur.history[-1]
        assert len(cur.history) == n_events + 2
        assert ev.type == "note" and ev.body["kind"] == PROPOSAL_NOTE_KIND
        assert ev.body["data"]["decision"] == "reject"
        assert ev.body["data"]["clusters"] == [second.a, second.b]
        assert app.table.row_count == n_rows - 1
        assert screen.current is not None and screen.current.pair != second.pair
        assert all(p.pair != second.pair for p in screen.state.queue)
        assert screen.review.engine.is_rejected(second.a, second.b)

        # ctrl+z: undo the reject -> an unreject note; the pair is shown again
        await pilot.press("ctrl+z")
        await settle(pilot)
        ev = cur.history[-1]
        assert len(cur.history) == n_events + 3
        assert ev.type == "note" and ev.body["data"] == {
            "decision": "unreject",
            "clusters": [second.a, second.b],
        }
        assert screen.current is not None and screen.current.pair == second.pair
        assert not screen.review.engine.is_rejected(second.a, second.b)

        # ctrl+z: undo the accept -> an undo event through the app; the clusters are back
        merge_seq = cur.history[-3].seq
        await pilot.press("ctrl+z")
        await settle(pilot)
        ev = cur.history[-1]
        assert len(cur.history) == n_events + 4
        assert ev.type == "undo" and ev.body["target"] == merge_seq and ev.body["kind"] == "merge"
        ids = row_ids(app)
        assert app.table.row_count == n_rows
        assert first.a in ids and first.b in ids and new not in ids
        assert first.a in cur.state and first.b in cur.state and new not in cur.state
        assert screen.current is not None and screen.current.pair == first.pair  # shown again
        assert screen.counts == {"accepted": 0, "rejected": 0, "skipped": 0}

        # ctrl+z with no decision of this screen left: the app's undo (of the undo: nothing)
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert len(cur.history) == n_events + 4


async def test_skip_writes_nothing_and_S_brings_it_back(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_queue(pilot)
        before = log_bytes(ds)
        n_events = len(app.cur.history)
        first = screen.current
        await pilot.press("s")
        await settle(pilot)
        second = screen.current
        assert second is not None and second.pair != first.pair
        await pilot.press("s")
        await settle(pilot)
        assert screen.current is not None and screen.current.pair not in (first.pair, second.pair)
        assert len(app.cur.history) == n_events and log_bytes(ds) == before
        assert screen.skipped == {first.pair, second.pair} and screen.state.n_skipped == 2
        assert "2 skipped" in screen_text(app)
        await pilot.press("S")
        await settle(pilot)
        assert screen.current.pair == first.pair and not screen.skipped
        assert len(app.cur.history) == n_events and log_bytes(ds) == before


async def test_rejected_pair_is_not_proposed_after_a_restart(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_queue(pilot)
        rejected = screen.current.pair
        await pilot.press("r")
        await settle(pilot)
        assert app.cur.history[-1].type == "note"
        await pilot.press("q")  # q: back to the table, not quit
        await settle(pilot)
        assert not isinstance(app.screen, ProposalsScreen) and app.is_running
    app2 = make_app(ds)
    async with app2.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        assert len(app2.cur.history) == 1
        screen = await open_queue(pilot)
        assert screen.current is not None and screen.current.pair != rejected
        assert all(p.pair != rejected for p in screen.state.queue + screen.state.below)
        assert screen.review.engine.is_rejected(*rejected)
        # threshold 0: every candidate is listed, still not the rejected pair
        for _ in range(5):
            await pilot.press("minus")
        await settle(pilot)
        assert screen.threshold == 0.0
        assert all(p.pair != rejected for p in screen.state.queue)


async def test_threshold_keys_and_back_selects_the_merged_cluster(ds):
    app = make_app(ds)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_queue(pilot)
        n = len(screen.state.queue)
        await pilot.press("plus")
        await settle(pilot)
        assert screen.threshold == pytest.approx(DEFAULT_MIN_SCORE + 0.05)
        assert all(p.score >= screen.threshold for p in screen.state.queue)
        assert len(screen.state.queue) <= n
        await pilot.press("minus", "minus")
        await settle(pilot)
        assert screen.threshold == pytest.approx(DEFAULT_MIN_SCORE - 0.05)
        assert len(screen.state.queue) >= n
        p = screen.current
        await pilot.press("g")  # g accepts too (the main screen's merge key)
        await settle(pilot)
        new = int(app.cur.history[-1].body["new"])
        assert app.cur.history[-1].type == "merge" and sorted(
            app.cur.history[-1].body["clusters"]
        ) == [p.a, p.b]
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ProposalsScreen)
        assert app.table.current == new and app.best == new


async def test_main_screen_merge_then_reopen_queue_sees_it(ds):
    """The engine lives with the app: a merge on the main screen reaches it (through the
    update queue) and the reopened queue shows no dead cluster."""
    app = make_app(ds)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_queue(pilot)
        p = screen.current
        review = screen.review
        await pilot.press("escape")
        await settle(pilot)
        app.action_merge([p.a, p.b])  # as ':merge A B' does
        await settle(pilot)
        new = int(app.cur.history[-1].body["new"])
        screen = await open_queue(pilot)
        assert screen.review is review  # one engine per app: no second pass over the spikes
        live = set(int(c) for c in app.cur.cluster_ids)
        assert all(q.a in live and q.b in live for q in screen.state.queue + screen.state.below)
        assert all(q.pair != p.pair for q in screen.state.queue)
        assert review.engine.counters["full_passes"] <= 1
        assert new in live


async def test_read_only_session_refuses_decisions(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        ro = open_session(ds)  # the log is locked by the first app: read-only
        assert ro.readonly_reason
        app2 = CuralogApp(
            ro.cur, readonly_reason=ro.readonly_reason, owns_curation=True, cursor_blink=False
        )
        before = log_bytes(ds)
        async with app2.run_test(size=(120, 40)) as pilot2:
            screen = await open_queue(pilot2)
            p = screen.current
            assert p is not None  # browsing works
            for key in ("a", "r"):
                await pilot2.press(key)
                await settle(pilot2)
                assert screen.current.pair == p.pair
            assert screen.counts["accepted"] == screen.counts["rejected"] == 0
            assert "read-only" in screen.message.plain or "read" in screen.message.plain.lower()
        assert log_bytes(ds) == before


async def test_help_lists_the_keys_and_main_help_has_m(ds):
    app = make_app(ds)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert re.search(r"█ m\s+queue\s", screen_text(app))
        await pilot.press("escape")
        await open_queue(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, ReviewHelp)
        text = screen_text(app)
        assert "accept" in text and "reject" in text and "skip" in text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ProposalsScreen)


# ---------------------------------------------------------------------- evidence (pure)
def test_evidence_fills_the_area_exactly_at_any_size(drift_dataset, tmp_path):
    cur = curalog.open(drift_dataset, tmp_path / "x.log")
    try:
        stats = StatsEngine(cur.dataset, cur.state)
        cur.subscribe(stats.on_update)
        engine = ProposalEngine(cur, stats)
        props = engine.proposals(0.0)
        assert props
        for p in props:  # the overlay channels come from both clusters, whatever they are
            ev = engine.evidence(p)
            assert 1 <= ev.channels.shape[0] <= 8
            assert (
                ev.template_a.shape
                == ev.template_b.shape
                == (ev.template_a.shape[0], ev.channels.shape[0])
            )
        data = EvidenceData(engine.evidence(props[0]), [])
        for w, h in ((40, 12), (59, 20), (78, 17), (121, 40), (200, 60)):
            lines = render_evidence(data, w, h, duration=float(cur.dataset.duration))
            assert len(lines) == h
            assert all(line.cell_len == w for line in lines), (w, h)
            text = "\n".join(line.plain for line in lines)
            assert "CCG" in text and f"ACG {props[0].a}" in text
    finally:
        cur.close()


def test_layout_heights_fit():
    for stacked in (False, True):
        smallest = layout_heights(0, stacked=stacked)
        minimum = smallest.total + (smallest.time + 1 if stacked else 0)
        for h in range(0, 80):
            got = layout_heights(h, stacked=stacked)
            extra = got.time + 1 if stacked else 0
            assert got.total + extra <= max(h, minimum)  # below the minimum, lines are cut
            assert got.ccg >= 2 and got.time >= 2 and got.template >= 2


# ---------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_snapshot_proposals(ds, size):
    app = make_app(ds)
    w, h = size
    async with app.run_test(size=size) as pilot:
        await open_queue(pilot)
        check(f"proposals_{w}x{h}", screen_text(app))
        await pilot.press("a")
        await settle(pilot)
        check(f"proposals_after_accept_{w}x{h}", screen_text(app))


async def test_no_proposal_left_message(ds):
    """Above every score: the screen says so, and accept has nothing to accept."""
    app = make_app(ds)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_queue(pilot)
        for _ in range(20):
            await pilot.press("plus")
        await settle(pilot)
        assert screen.threshold == 1.0 and screen.current is None
        n_events = len(app.cur.history)
        await pilot.press("a")
        await settle(pilot)
        assert "no proposal" in screen.message.plain and len(app.cur.history) == n_events
        text = screen_text(app)
        assert "No merge proposal" in text and "no proposal left" in text
