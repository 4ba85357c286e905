"""The merge-proposal review queue (``m``): one proposal at a time, its evidence, single keys.

The screen shows the best pending proposal of :class:`curalog.analysis.proposals.ProposalEngine`
(pair, score, the one-line reason, the score's factors), its evidence (cross-correlogram
and both autocorrelograms, amplitude and depth over time of both clusters, both templates
overlaid on the best channels: :mod:`curalog_tui.widgets.evidence`), the next proposals
with their scores, and a status line.

Keys: ``a`` (or ``g``) accepts (an ordinary merge event whose ``meta["proposal"]`` records
the proposal; the main table is updated by row diff as for any merge), ``r`` rejects (a
``note`` event: the pair is never proposed again, also after a restart), ``s`` skips (this
screen only: nothing is written; ``S`` brings the skipped pairs back), ``ctrl+z`` takes back
the last accept (``cur.undo`` through the app's undo action) or reject (``unreject``, another
note) made here and shows that proposal again (with none, it undoes the last action like
``ctrl+z`` everywhere), ``+`` / ``-`` move the threshold by 0.05 (default
:data:`curalog.analysis.proposals.DEFAULT_MIN_SCORE`), ``escape`` / ``q`` go back to the table (the
cursor on the last merged cluster).

Threads: the engine's first query makes one pass over all spikes (seconds at 50 M spikes);
every query and the evidence run in a thread worker, and results are dropped when the log
moved on meanwhile. The engine lives in the session's :class:`curalog_tui.review.Review`
(one per curation, on the app's own :class:`curalog.analysis.stats.StatsEngine`); it is fed
the curation's updates through a queue that the workers drain before each query, so a merge
on the UI thread never waits for the engine's lock while a worker holds it.

The screen knows the app only as a :class:`curalog_tui.session.CurationSession`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from curalog import Curation
from curalog.analysis.proposals import DEFAULT_MIN_SCORE, Proposal
from curalog.errors import CuralogError

from ..review import Review
from ..session import CurationSession
from ..widgets import (
    COLOR_A,
    COLOR_B,
    EvidenceData,
    ScatterView,
    amplitude_series,
    message_lines,
    render_evidence,
)
from .help import KeyTableHelp
from .history import undo_stack

STEP = 0.05  # threshold step of + / -
NARROW = 120  # below this width: the queue is one line under the header
FACTOR_NAMES = (
    ("f_sim", "sim"),
    ("f_pos", "pos"),
    ("f_amp", "amp"),
    ("f_ccg", "ccg"),
    ("f_gap", "gap"),
    ("f_isi", "isi"),
    ("f_unique", "unique"),
)


def _score_style(score: float) -> str:
    return "bold green" if score >= 0.8 else "bold yellow" if score >= 0.5 else "bold red"


def _factor_style(v: float) -> str:
    return "green" if v >= 0.8 else "yellow" if v >= 0.5 else "bold red"


@dataclass
class Decision:
    """An accept or reject made on this screen (what ctrl+z takes back)."""

    kind: str  # "accept" | "reject"
    proposal: Proposal
    seq: int  # the merge / note event
    new: int | None = None  # the merged cluster


@dataclass
class QueueState:
    """What a query found (computed in the worker)."""

    gen: int
    seq: int
    queue: list[Proposal]  # >= threshold, not skipped, the current one first
    below: list[Proposal]  # the best few under the threshold (not skipped)
    n_skipped: int  # skipped pairs still >= threshold
    ms: float


REVIEW_KEYS = [
    ("a, g", "accept: merge the pair (the log records the proposal with the merge)"),
    ("r", "reject: a note in the log; the pair is never proposed again"),
    ("s", "skip: the next proposal (nothing is written)"),
    ("S", "bring the skipped proposals back"),
    (
        "ctrl+z",
        "undo the last accept (an undo event) or reject (an unreject note) made here, "
        "and show that proposal again; with none, undo the last action",
    ),
    ("+ / -", "threshold up / down by 0.05"),
    ("escape, q", "back to the cluster table (the cursor on the last merged cluster)"),
    ("? / h", "this help"),
]


class ReviewHelp(KeyTableHelp):
    """The keys of the review queue."""

    TITLE = "merge proposals: keys"
    KEY_WIDTH = 10

    def keys(self) -> list[tuple[str, str]]:
        return REVIEW_KEYS


class ProposalsScreen(Screen[None]):
    """Review the merge proposals one at a time."""

    BINDINGS = [
        Binding("a,g", "accept", "accept"),
        Binding("r", "reject", "reject"),
        Binding("s", "skip", "skip"),
        Binding("ctrl+z", "undo", "undo"),
        Binding("plus,equals_sign", "threshold(1)", "threshold", key_display="+/-"),
        Binding("minus", "threshold(-1)", "threshold down", show=False),
        Binding("S", "unskip", "unskip all", show=False),
        Binding("question_mark,h", "help", "help"),
        Binding("escape,q", "back", "back"),
    ]
    DEFAULT_CSS = """
    ProposalsScreen { layout: vertical; }
    ProposalsScreen #pq-header { height: 3; padding: 0 1; }
    ProposalsScreen #pq-strip { height: 1; padding: 0 1; display: none; }
    ProposalsScreen #pq-main { height: 1fr; }
    ProposalsScreen #pq-evidence { width: 1fr; height: 1fr; margin: 0 1; }
    ProposalsScreen #pq-queue { width: 40; height: 1fr; padding: 0 1; border-left: tall $panel; }
    ProposalsScreen #pq-status { height: 1; background: $panel; padding: 0 1; }
    ProposalsScreen.narrow #pq-header { height: 4; }
    ProposalsScreen.narrow #pq-strip { display: block; }
    ProposalsScreen.narrow #pq-queue { display: none; }
    """

    def __init__(self, session: CurationSession, threshold: float = DEFAULT_MIN_SCORE):
        super().__init__()
        self.session = session
        self.threshold = float(threshold)
        self.review: Review | None = None
        self.gen = 0
        self.busy = False
        self.error: str | None = None
        self.current: Proposal | None = None
        self.state: QueueState | None = None
        self.evidence: EvidenceData | None = None
        self.skipped: set[tuple[int, int]] = set()
        self.decisions: list[Decision] = []
        self.counts = {"accepted": 0, "rejected": 0, "skipped": 0}
        self.last_new: int | None = None
        self.message = Text("")
        self.timings: dict[str, list[float]] = {"query": [], "evidence": [], "render": []}
        self._lines_key: tuple[Any, ...] | None = None
        self._prefer: tuple[int, int] | None = None
        self._t_request = time.monotonic()
        self._retries = 0  # consecutive queries dropped because the log moved on

    # ------------------------------------------------------------------ layout
    @property
    def cur(self) -> Curation:
        return self.session.cur

    @property
    def plot(self) -> ScatterView:
        return self.query_one("#pq-evidence", ScatterView)

    def compose(self) -> ComposeResult:
        yield Static(id="pq-header")
        yield Static(id="pq-strip")
        with Horizontal(id="pq-main"):
            yield ScatterView(id="pq-evidence")
            yield Static(id="pq-queue")
        yield Static(id="pq-status")
        yield Footer()

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < NARROW, "narrow")
        self.review = self.session.review()
        if self.session.readonly_reason:
            self.say(f"read-only: {self.session.readonly_reason}", error=True)
        else:
            self.say("a accept · r reject · s skip")
        self.set_interval(0.5, self._tick)
        self.request()

    def _tick(self) -> None:
        """While a slow query runs (the first pass over every spike), count the seconds."""
        if self.busy and self.current is None and time.monotonic() - self._t_request > 0.4:
            self._draw_header()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(self.app.size.width < NARROW, "narrow")
        self.call_after_refresh(self.redraw)

    # ------------------------------------------------------------------ queries
    def request(self, prefer: tuple[int, int] | None = None) -> None:
        """Ask the engine for the queue (and the current proposal's evidence) in a worker."""
        assert self.review is not None
        self.gen += 1
        self.busy = True
        self.error = None
        self.current = None
        self._prefer = prefer
        self._t_request = time.monotonic()
        plot = self.plot
        size = (plot.size.width, plot.size.height) if self.is_mounted else (0, 0)
        self._query_worker(
            self.gen, self.cur.seq, self.threshold, frozenset(self.skipped), prefer, size
        )
        self.redraw()

    @work(
        thread=True,
        exclusive=True,
        group="proposals",
        exit_on_error=False,
        description="merge proposals",
    )
    def _query_worker(
        self,
        gen: int,
        seq: int,
        threshold: float,
        skipped: frozenset[tuple[int, int]],
        prefer: tuple[int, int] | None,
        size: tuple[int, int],
    ) -> None:
        """The queue, then the first proposal's evidence (rendered for ``size``), posted to
        the UI thread together: the header, the queue and the plots change in one frame."""
        review = self.review
        assert review is not None
        t0 = time.perf_counter()
        try:
            every = review.proposals(0.0)
        except (CuralogError, KeyError, ValueError, IndexError) as exc:
            self.app.call_from_thread(self._failed, gen, f"proposals: {exc}")
            return
        pending = [p for p in every if p.score >= threshold]
        queue = [p for p in pending if p.pair not in skipped]
        if prefer is not None:
            hit = next((p for p in every if p.pair == prefer), None)
            if hit is not None:  # the proposal just taken back: show it first
                queue = [hit] + [p for p in queue if p.pair != prefer]
        below = [
            p for p in every if p.score < threshold and p.pair not in skipped and p.pair != prefer
        ][:3]
        state = QueueState(
            gen,
            seq,
            queue,
            below,
            len(pending) - sum(p.pair not in skipped for p in pending),
            (time.perf_counter() - t0) * 1e3,
        )
        data = None
        if queue and not get_current_worker().is_cancelled:
            t1 = time.perf_counter()
            try:
                ev = review.evidence(queue[0])
            except (CuralogError, KeyError, ValueError, IndexError) as exc:
                self.app.call_from_thread(
                    self._queued, state, None, f"evidence of {queue[0].a} + {queue[0].b}: {exc}"
                )
                return
            cmap = np.asarray(self.cur.dataset.channel_map)
            labels = [
                str(cmap[c]) if c < cmap.shape[0] else str(c)
                for c in np.asarray(ev.channels).tolist()
            ]
            data = EvidenceData(ev, labels)
            ds = self.cur.dataset
            if ds.amplitudes is not None:
                n_bins = int(np.asarray(ev.amplitude_a).shape[0]) or 128
                data.spike_amplitude = tuple(  # type: ignore[assignment]
                    amplitude_series(
                        ds.spike_times,
                        ds.amplitudes,
                        np.asarray(self.cur.spikes(c)),
                        float(ds.sample_rate),
                        float(ds.duration),
                        n_bins,
                    )
                    for c in (queue[0].a, queue[0].b)
                )
            w, h = size
            if w and h:
                data.rendered = (
                    w,
                    h,
                    render_evidence(data, w, h, duration=float(self.cur.dataset.duration)),
                )
            data.ms = (time.perf_counter() - t1) * 1e3
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._queued, state, data, None)

    def _stale(self, gen: int) -> bool:
        return gen != self.gen or not self.is_mounted

    def _queued(self, state: QueueState, data: EvidenceData | None, error: str | None) -> None:
        if self._stale(state.gen):
            return
        cur = self.cur
        first = state.queue[0] if state.queue else None
        if state.seq != cur.seq or (
            first is not None and (first.a not in cur.state or first.b not in cur.state)
        ):
            # the log moved on while the worker ran: ask again (a few times at most)
            self._retries += 1
            if self._retries <= 3:
                prefer = self._prefer
                self.request(prefer=prefer)
                return
            state.queue = [p for p in state.queue if p.a in cur.state and p.b in cur.state]
            first = state.queue[0] if state.queue else None
            data = (
                data
                if data is not None and first is not None and data.proposal.pair == first.pair
                else None
            )
        self._retries = 0
        self.state = state
        self.timings["query"].append(state.ms)
        self.current = first
        self.busy = False
        if data is not None:
            self.evidence = data
            self.timings["evidence"].append(data.ms)
        elif first is None or self.evidence is None or self.evidence.proposal.pair != first.pair:
            self.evidence = None
        if error:
            self.error = error
            self.say(error, error=True)
        self.redraw()

    def _failed(self, gen: int, message: str) -> None:
        if self._stale(gen):
            return
        self.busy = False
        self.error = message
        self.say(message, error=True)
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        self._draw_header()
        self._draw_queue()
        self._draw_evidence()
        self._draw_status()

    def _width(self) -> int:
        return max(20, self.app.size.width - 2)

    def _draw_header(self) -> None:
        p = self.current
        width = self._width()
        narrow = self.has_class("narrow")
        thr = f"≥ {self.threshold:.2f}"
        if p is None:
            if self.busy:
                first = self.review is not None and not self.review.queried
                msg = (
                    "computing the merge proposals (one pass over every spike)…"
                    if first
                    else "updating the proposals…"
                )
                elapsed = time.monotonic() - self._t_request
                if elapsed >= 1.0:
                    msg += f" {elapsed:.0f} s"
                head = Text.assemble(
                    ("merge proposals ", "bold"), (thr, "bold cyan"), ("  " + msg, "yellow")
                )
            elif self.error:
                head = Text.assemble(
                    ("merge proposals ", "bold"),
                    (thr, "bold cyan"),
                    ("  " + self.error, "bold red"),
                )
            else:
                head = Text.assemble(
                    ("merge proposals ", "bold"),
                    (thr, "bold cyan"),
                    ("  no proposal left", "bold green"),
                )
            self._set("#pq-header", self._lines([head], width))
            return
        st = self.state
        n_left = len(st.queue) if st is not None else 0
        ev = p.evidence
        cur = self.cur
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append("merge ", "bold")
        head.append(str(p.a), f"bold {COLOR_A}")
        head.append(" + ", "bold")
        head.append(str(p.b), f"bold {COLOR_B}")
        head.append("  score ", "dim")
        head.append(f"{p.score:.3f}", _score_style(p.score))
        head.append(
            f"  ({n_left} left {thr}" + (", updating…)" if self.busy else ")"),
            "yellow" if self.busy else "dim",
        )
        for cid, key, color in ((p.a, "n_a", COLOR_A), (p.b, "n_b", COLOR_B)):
            n = int(ev.get(key, 0) or 0)
            group = cur.group(cid) if cid in cur.state else None
            head.append("  ")
            head.append(str(cid), color)
            head.append(f" {n:,} spikes" + (f" {group}" if group else ""), "dim")
        reason = Text(p.reason)
        lines = list(reason.wrap(self.app.console, width))
        n_reason = 2 if narrow else 1
        shown = lines[:n_reason]
        if len(lines) > n_reason:
            shown[-1] = shown[-1].copy()
            shown[-1].truncate(width - 1)
            shown[-1].append("…")
        factors = Text(no_wrap=True, overflow="ellipsis")
        for i, (key, name) in enumerate(FACTOR_NAMES):
            v = float(p.factors.get(key, float("nan")))
            factors.append(("  " if i else "") + f"{name} ", "dim")
            factors.append(f"{v:.2f}", _factor_style(v))
        self._set("#pq-header", self._lines([head, *shown, factors], width))

    def _queue_rows(self) -> list[tuple[Proposal, bool]]:
        st = self.state
        if st is None:
            return []
        return [(p, False) for p in st.queue] + [(p, True) for p in st.below]

    def _draw_queue(self) -> None:
        st = self.state
        thr = f"≥ {self.threshold:.2f}"
        if self.has_class("narrow"):
            strip = Text(no_wrap=True, overflow="ellipsis")
            if st is None:
                strip.append("queue: …", "dim")
            else:
                strip.append(f"queue {thr}: {len(st.queue)} left", "bold")
                nxt = st.queue[1:6] if self.current is not None else []
                if nxt:
                    strip.append(" · next ", "dim")
                    strip.append(", ".join(f"{p.a}+{p.b} {p.score:.2f}" for p in nxt), "")
                if st.below:
                    strip.append(
                        f" · below: {st.below[0].a}+{st.below[0].b} {st.below[0].score:.2f}", "dim"
                    )
                if st.n_skipped:
                    strip.append(f" · {st.n_skipped} skipped (S)", "yellow")
            self._set("#pq-strip", self._lines([strip], self._width()))
            return
        box = self.query_one("#pq-queue", Static)
        height = max(3, box.size.height or (self.app.size.height - 5))
        width = max(10, (box.size.width or 40) - 2)
        lines: list[Text] = [
            Text.assemble(
                ("queue ", "bold"),
                (thr, "bold cyan"),
                (f"  {len(st.queue)} left" if st is not None else "", "dim"),
            )
        ]
        if st is not None:
            room = height - 1 - (1 if st.n_skipped else 0) - (1 if st.below else 0)
            rows = st.queue[: max(1, room - min(len(st.below), 3))]
            for i, p in enumerate(rows):
                current = i == 0 and self.current is not None and p.pair == self.current.pair
                lines.append(self._queue_line(p, width, current=current, dim=False))
            if st.below and len(lines) < height - (1 if st.n_skipped else 0):
                lines.append(Text(f"── below {self.threshold:.2f} ──", style="dim"))
                for p in st.below:
                    if len(lines) >= height - (1 if st.n_skipped else 0):
                        break
                    lines.append(self._queue_line(p, width, current=False, dim=True))
            if st.n_skipped:
                lines.append(Text(f"{st.n_skipped} skipped (S brings them back)", style="yellow"))
        self._set("#pq-queue", Text("\n").join(lines[:height]))

    @staticmethod
    def _queue_line(p: Proposal, width: int, *, current: bool, dim: bool) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("▶ " if current else "  ", "bold cyan")
        t.append(f"{p.a:>5} + {p.b:<5}", "bold" if current else ("dim" if dim else ""))
        t.append(f" {p.score:.3f}", "dim" if dim else _score_style(p.score))
        first = p.reason.split(";")[0]
        t.append(f"  {first}", "dim")
        t.truncate(width, overflow="ellipsis")
        return t

    def _draw_evidence(self) -> None:
        plot = self.plot
        w, h = plot.size.width, plot.size.height
        if not w or not h:  # not laid out yet
            return
        t0 = time.perf_counter()
        data = self.evidence
        if self.current is None:
            if self.busy and self.evidence is not None:
                return  # keep the previous plots until the next proposal is in
            if self.busy:
                text = Text("computing…", style="dim")
            elif self.error:
                text = Text(self.error, style="bold red")
            else:
                text = self._empty_text()
            key: tuple[Any, ...] = ("msg", text.plain, w, h)
            if key != self._lines_key:
                self._lines_key = key
                plot.set_lines(message_lines(text, w, h))
            return
        if data is None or data.proposal.pair != self.current.pair:
            text = (
                Text(self.error, style="bold red")
                if self.error
                else Text(
                    f"reading the evidence of {self.current.a} + {self.current.b}…", style="dim"
                )
            )
            key = ("wait", self.current.pair, text.plain, w, h)
            if key != self._lines_key:
                self._lines_key = key
                plot.set_lines(message_lines(text, w, h))
            return
        key = ("ev", id(data), w, h)
        if key == self._lines_key:
            return
        self._lines_key = key
        if data.rendered is not None and data.rendered[:2] == (w, h):
            lines = data.rendered[2]  # rendered by the worker
        else:
            lines = render_evidence(data, w, h, duration=float(self.cur.dataset.duration))
            self.timings["render"].append((time.perf_counter() - t0) * 1e3)
        plot.set_lines(lines)

    def _empty_text(self) -> Text:
        st = self.state
        t = Text.assemble((f"No merge proposal ≥ {self.threshold:.2f} left.", "bold green"))
        if st is not None and st.below:
            b = st.below[0]
            t.append(
                f"  The best below: {b.a} + {b.b} at {b.score:.2f} ('-' lowers the threshold).", ""
            )
        if st is not None and st.n_skipped:
            t.append(f"  {st.n_skipped} skipped: S brings them back.", "yellow")
        t.append("  escape: back to the table.", "dim")
        return t

    def _draw_status(self) -> None:
        c = self.counts
        right = Text(
            f"  │ accepted {c['accepted']}, rejected {c['rejected']}, skipped {c['skipped']}"
            f" │ seq {self.cur.seq}",
            style="dim",
        )
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append_text(self.message)
        line.append_text(right)
        self._set("#pq-status", self._lines([line], self._width()))

    @staticmethod
    def _lines(lines: list[Text], width: int) -> Text:
        """One row per line, cut at ``width`` with an ellipsis (a Static would wrap them)."""
        out = []
        for line in lines:
            t = line.copy()
            t.truncate(width, overflow="ellipsis")
            out.append(t)
        return Text("\n").join(out)

    def _set(self, selector: str, text: Text) -> None:
        self.query_one(selector, Static).update(text)

    def say(self, message: str, *, error: bool = False) -> None:
        self.message = Text(message, style="bold red" if error else "bold green")
        if self.is_mounted:
            self._draw_status()

    # ------------------------------------------------------------------ keys
    def _ready(self, what: str) -> Proposal | None:
        if self.current is None:
            if self.busy:
                self.say(f"{what}: still updating the proposals", error=True)
            else:
                self.say(f"{what}: no proposal to {what}", error=True)
            self.app.bell()
            return None
        return self.current

    def action_accept(self) -> None:
        p = self._ready("accept")
        if p is None or self.review is None:
            return
        session = self.session
        engine = self.review.engine
        new = session.attempt(lambda: engine.accept(p))
        if new is None:
            self.say(session.status_message or "merge refused", error=True)
            return
        seq = self.cur.seq
        self.decisions.append(Decision("accept", p, seq, new))
        self.counts["accepted"] += 1
        self.last_new = new
        text = f"accepted {p.a} + {p.b} -> {new} (merge, seq {seq})"
        session.say(text)
        self.say(text)
        self.request()

    def action_reject(self) -> None:
        p = self._ready("reject")
        if p is None or self.review is None:
            return
        session = self.session
        engine = self.review.engine
        event = session.attempt(lambda: engine.reject(p))
        if event is None:
            self.say(session.status_message or "reject refused", error=True)
            return
        self.decisions.append(Decision("reject", p, int(event.seq)))
        self.counts["rejected"] += 1
        text = f"rejected {p.a} + {p.b} (note, seq {event.seq}): not proposed again"
        session.say(text)
        session.refresh_status()
        self.say(text)
        self.request()

    def action_skip(self) -> None:
        p = self._ready("skip")
        if p is None:
            return
        self.skipped.add(p.pair)
        self.counts["skipped"] = len(self.skipped)
        self.say(f"skipped {p.a} + {p.b} (nothing written; S brings it back)")
        self.request()

    def action_unskip(self) -> None:
        if not self.skipped:
            self.say("nothing skipped")
            return
        n = len(self.skipped)
        self.skipped.clear()
        self.counts["skipped"] = 0
        self.say(f"{n} skipped proposal(s) back in the queue")
        self.request()

    def action_undo(self) -> None:
        session = self.session
        if not self.decisions:
            update = session.undo()
            if update is None:
                self.say(session.status_message or "nothing to undo", error=True)
                return
            self.say(f"undone: {update.kind} (seq {update.seq})")
            self.request()
            return
        d = self.decisions[-1]
        p = d.proposal
        if d.kind == "accept":
            active = undo_stack(self.cur.history).active
            if not active or active[-1] != d.seq:
                self.say(
                    f"cannot undo the accept of {p.a} + {p.b}: the log's last action is another one "
                    "(H: history)",
                    error=True,
                )
                return
            update = session.undo()
            if update is None:
                self.say(session.status_message or "undo refused", error=True)
                return
            self.decisions.pop()
            self.counts["accepted"] -= 1
            if self.last_new == d.new:
                self.last_new = None
            self.say(
                f"undone: accept of {p.a} + {p.b} (undo, seq {self.cur.seq}); {p.a} and {p.b} are back"
            )
        else:
            assert self.review is not None
            engine = self.review.engine
            event = session.attempt(lambda: engine.unreject(p))
            if event is None:
                self.say(session.status_message or "unreject refused", error=True)
                return
            self.decisions.pop()
            self.counts["rejected"] -= 1
            session.refresh_status()
            self.say(f"undone: reject of {p.a} + {p.b} (note, seq {event.seq})")
        self.skipped.discard(p.pair)
        self.counts["skipped"] = len(self.skipped)
        self.request(prefer=p.pair)

    def action_threshold(self, direction: int) -> None:
        new = round(min(1.0, max(0.0, self.threshold + STEP * direction)), 2)
        if new == self.threshold:
            self.say(f"threshold stays {self.threshold:.2f}")
            return
        self.threshold = new
        self.say(f"threshold {new:.2f}")
        self.request()

    def action_help(self) -> None:
        self.app.push_screen(ReviewHelp(self.BINDINGS))

    def action_back(self) -> None:
        session = self.session
        if self.last_new is not None and self.last_new in self.cur.state:
            session.select_cluster(self.last_new)
        self.dismiss(None)


__all__ = ["Decision", "ProposalsScreen", "QueueState", "ReviewHelp"]
