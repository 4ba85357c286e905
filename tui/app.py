"""The curalog terminal UI: curate a sorting with the keyboard, locally or over SSH.

``run_app(dir, log)`` is what ``curalog tui DIR`` calls. The app holds one
:class:`curalog.Curation`; every change goes through its API, and the app subscribes to
its updates so that a merge, split, label, undo or redo from anywhere (keys, the ``:``
prompt, the split or history screens) updates only the rows it touched.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.scrollbar import ScrollBar
from textual.widget import Widget
from textual.widgets import Input, Static

from curalog import Curation, Update
from curalog.analysis.stats import QUALITY_NAMES, CorrelogramMatrix, matrix_for
from curalog.errors import CuralogError

from .background import BackgroundMixin
from .commands import Command, CommandError, parse_command
from .feeder import Feeder
from .filter_expr import FilterError, compile_filter
from .messages import CcgReady, ClusterSelected, DetailReady, ExportDone, SimilarReady, StatsReady
from .model import ClusterModel
from .session import Session, open_session
from .split_rules import SplitPlan
from .stats_adapter import Stats
from .widgets import (
    ClusterTable,
    DetailPanel,
    KeyBar,
    LineScrollBarRender,
    SimilarityTable,
    StatusLine,
    status_text,
)

if TYPE_CHECKING:
    from curalog.analysis.features import FeatureSource

    from .review import Review

# The screens (and the feature and proposal engines they bring) are imported on first use:
# importing them with the app adds ~0.35 s before the first paint (2-core machine, measured).

T = TypeVar("T")
ScrollBar.renderer = LineScrollBarRender  # thumbs that do not look like data (0.00▇▇)
GROUP_KEYS = {"good": "1", "mua": "2", "noise": "3", "unsorted": "4"}


class CuralogApp(BackgroundMixin, App[int]):
    """The curation screen (cluster table, similarity table, detail panel, status line).

    It implements :class:`curalog_tui.session.CurationSession` for the screens it pushes.
    """

    CSS_PATH = "app.tcss"
    TITLE = "curalog"
    BINDINGS = [
        Binding("g", "merge", "merge"),
        Binding("k", "split", "split"),
        Binding("v", "views", "views"),
        Binding("w", "waveforms", "waveforms", show=False, tooltip="raw waveforms, best channels"),
        Binding("T", "traces", "traces", show=False, tooltip="the filtered recording"),
        Binding("m", "proposals", "queue", tooltip="merge proposals: the review queue"),
        Binding(
            "c",
            "correlograms('ccg')",
            "correlograms (ACG/CCG matrix)",
            tooltip="correlogram matrix (phy's CorrelogramView)",
        ),
        Binding("i", "correlograms('isi')", "ISI histograms", show=False, tooltip="ISI histograms"),
        Binding("1", "label('good')", "good"),
        Binding("2", "label('mua')", "mua"),
        Binding("3", "label('noise')", "noise"),
        Binding("4", "label('unsorted')", "unsorted"),
        Binding("alt+g", "label('good')", "good", show=False),
        Binding("alt+m", "label('mua')", "mua", show=False),
        Binding("alt+n", "label('noise')", "noise", show=False),
        Binding("alt+u", "label('unsorted')", "unsorted", show=False),
        Binding("ctrl+z", "undo", "undo"),
        Binding("ctrl+y", "redo", "redo"),
        Binding("space", "next_similar", "next similar", show=False),
        Binding("shift+space", "prev_similar", "previous similar", show=False),
        Binding("n", "next_similar", "next similar", show=False),
        Binding("p", "prev_similar", "previous similar", show=False),
        Binding("x", "toggle_mark", "mark", show=False),
        Binding("escape", "clear", "clear marks/filter", show=False),
        Binding("slash", "prompt('/')", "filter"),
        Binding("colon", "prompt(':')", "command"),
        Binding("s", "prompt(':', 'sort ')", "sort", show=False),
        Binding("ctrl+s", "export", "export"),
        Binding("H", "history", "history"),
        Binding("d", "toggle_detail", "detail", show=False),
        Binding("question_mark", "help", "help"),
        Binding("h", "help", "help", show=False),
        Binding("q", "quit", "quit"),
    ]

    cur: Curation
    stats: Stats
    model: ClusterModel
    readonly_reason: str | None

    def __init__(
        self,
        cur: Curation | None = None,
        *,
        opener: Callable[[], Session] | None = None,
        readonly_reason: str | None = None,
        owns_curation: bool = False,
        cursor_blink: bool = True,
        mouse: bool = True,
        **kwargs: Any,
    ):
        """Give an open ``cur``, or an ``opener`` run in a thread after the first paint
        (large datasets take seconds to load; the screen says so meanwhile)."""
        super().__init__(**kwargs)
        if cur is None and opener is None:
            raise ValueError("CuralogApp needs a curation or an opener")
        self.cursor_blink = cursor_blink
        self.mouse = mouse
        self.opener = opener
        self.fatal: str | None = None  # a CuralogError while opening: printed by run_app
        self.owns_curation = owns_curation
        self.feeder = Feeder()
        self.best: int | None = None
        self.similar: int | None = None
        self.exporting = False
        self.last_update: Update | None = None
        self.on_table_changed: Callable[[], None] | None = None  # hook for benchmarks
        self.live = False  # the main widgets are mounted and the app is not shutting down
        self._review: Review | None = None  # the merge-proposal service, made on first use
        self._features: FeatureSource | None = None  # the spike-feature reader, likewise
        self._correlograms: CorrelogramMatrix | None = None  # the correlogram view's cache
        if cur is not None:
            self._use_curation(cur, readonly_reason)

    def _use_curation(self, cur: Curation, readonly_reason: str | None) -> None:
        """Hold ``cur`` (given, or opened by the worker) with its statistics and row model."""
        self.cur = cur
        self.readonly_reason = readonly_reason
        self._correlograms = matrix_for(cur)
        self.stats = Stats(cur)
        self.model = ClusterModel(
            cur, bin_ms=self.stats.bin_ms, refractory_ms=self.stats.refractory_ms
        )
        cur.subscribe(self._on_curation_update)

    @property
    def ready(self) -> bool:
        return "cur" in self.__dict__

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        if not self.ready:
            yield Static(
                Text("opening the dataset and replaying its log…", style="bold"), id="loading"
            )
        else:
            yield from self._main_widgets()
        yield KeyBar(id="keys")

    def _main_widgets(self) -> list[Widget]:
        left = Vertical(ClusterTable(self.model, id="clusters"), id="left")
        right = Vertical(
            SimilarityTable(self.model, id="similar"), DetailPanel(id="detail"), id="right"
        )
        return [
            Horizontal(left, right, id="main"),
            Input(id="prompt", placeholder=""),
            StatusLine(id="status"),
        ]

    @property
    def table(self) -> ClusterTable:
        return self.query_one("#clusters", ClusterTable)

    @property
    def sim_table(self) -> SimilarityTable:
        return self.query_one("#similar", SimilarityTable)

    @property
    def detail(self) -> DetailPanel:
        return self.query_one("#detail", DetailPanel)

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    def on_mount(self) -> None:
        self._apply_size_class(self.size.width, self.size.height)
        if self.ready:
            self._start()
        else:
            self._open_worker()

    @work(thread=True, exit_on_error=False, description="open the dataset")
    def _open_worker(self) -> None:
        assert self.opener is not None
        try:
            session = self.opener()
        except CuralogError as exc:
            self.call_from_thread(self._open_failed, str(exc))
            return
        self.call_from_thread(self._opened, session)

    def show_loading(self, message: str) -> None:
        """Replace the opening screen's text (e.g. the first launch's kernel warm-up)."""
        for widget in self.query("#loading"):
            if isinstance(widget, Static):
                widget.update(Text(message, style="bold"))

    def _open_failed(self, message: str) -> None:
        self.fatal = message
        self.exit(2, return_code=2)

    async def _opened(self, session: Session) -> None:
        self._use_curation(session.cur, session.readonly_reason)
        await self.query_one("#loading").remove()
        await self.mount_all(self._main_widgets(), before=self.query_one(KeyBar))
        self._start()

    def _start(self) -> None:
        self.live = True
        prompt = self.query_one("#prompt", Input)
        prompt.display = False
        table = self.table
        table.with_meta = self.sim_table.with_meta = self.mouse  # no mouse: no click metadata
        table.setup(int(c) for c in self.cur.cluster_ids)
        table.focus()
        self.detail.clear_detail()
        self.refresh_status()
        for message in self.cur.warnings:  # recoveries made while opening (torn tail cut, ...)
            self.notify(message, title="recovered", severity="warning", timeout=30)
        if self.readonly_reason:
            self.say(f"read-only: {self.readonly_reason}", error=True)
        elif self.cur.warnings:
            self.say(f"recovered: {self.cur.warnings[-1]}", error=True)
        else:
            self.say("ready: g merge, k split, 1-4 label, ctrl+z undo, / filter, : command, ? help")
        self.want_stats(table.order[:60], front=True)
        self.want_stats(table.order[60:], front=False)
        # The render caches hold hundreds of thousands of long-lived objects; a full (gen 2)
        # garbage collection walking them takes 100-500 ms, i.e. a visible freeze after a
        # key press. Freezing moves what exists into the permanent generation (refcounting
        # still frees it; only cyclic garbage created before a freeze is kept); repeat it as
        # the caches grow.
        gc.freeze()
        self.set_interval(1.0, self._freeze_gc)

    def _freeze_gc(self) -> None:
        gc.freeze()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size_class(event.size.width, event.size.height)
        if self.live:
            self.refresh_status()  # compact or full status line

    def _apply_size_class(self, width: int, height: int | None = None) -> None:
        self.set_class(width < 140, "narrow")
        self.set_class((height if height is not None else self.size.height) < 40, "short")

    def on_unmount(self) -> None:
        self.live = False
        self.feeder.drop()
        if self.owns_curation and self.ready:
            self.cur.close()

    # ------------------------------------------------------------------ messages
    def say(self, message: str, *, error: bool = False) -> None:
        self.status.say(message, error=error)

    def refresh_status(self) -> None:
        t = self.table
        arrow = "↓" if t.descending else "↑"
        cid = t.current
        selected = None
        if cid is not None and cid in self.cur.state:
            selected = (cid, self.cur.group(cid), self.cur.state.n_spikes_of(cid))
        marked = sum(1 for c in self.model.marked if c in self.cur.state)
        self.status.show_state(
            status_text(
                self.cur,
                readonly_reason=self.readonly_reason,
                sort=f"sort {t.sort_key}{arrow}",
                filter_text=t.filter_text,
                shown=len(t.order),
                pending=len(self.feeder),
                selected=selected,
                marked=marked,
                compact=self.size.width < 140,
            )
        )

    @property
    def status_message(self) -> str:
        return self.status.message.plain

    def attempt(self, fn: Callable[[], T]) -> T | None:
        """Run a curation call; a CuralogError becomes a status message, never a crash."""
        if self.exporting:
            self.say("an export is running; try again in a moment", error=True)
            return None
        try:
            return fn()
        except CuralogError as exc:
            self.say(str(exc), error=True)
            self.bell()
            return None

    # ------------------------------------------------------------------ curation updates
    def _on_curation_update(self, update: Update) -> None:
        """Called by the Curation after every action, undo and redo (UI thread)."""
        if not self.live:
            return
        self.last_update = update
        table = self.table
        added = [int(c) for c in update.added]
        deleted = [int(c) for c in update.deleted]
        changed = [int(c) for c in update.labels_changed if int(c) not in set(added)]
        if update.labels_changed:
            table.ensure_columns()
        for c in deleted:
            self.model.marked.discard(c)
        table.apply_diff(deleted, added, changed)
        if changed:
            table.recheck(changed)
            table.resort_if(["group", *self.model.label_fields()])
            self.sim_table.refresh_clusters(set(changed))
        if added:
            # after the repaint: background threads must not compete with it for the GIL
            self.call_after_refresh(self.want_stats, added, front=True)
        if deleted:  # other clusters' silhouettes used the deleted labels
            self.call_after_refresh(self.refresh_silhouettes, deleted)
        self.refresh_status()
        if self.on_table_changed is not None:
            self.on_table_changed()

    def on_stats_ready(self, msg: StatsReady) -> None:
        if not self.live:
            return  # results arriving while the app shuts down
        if not msg.batch:  # a worker's last word: only the pending count changed
            self.refresh_status()
            if not len(self.feeder):
                self.table.warm_cache()
            return
        ids = []
        for cid, row, acg_half in msg.batch:
            self.model.set_stats(cid, row, acg_half)
            ids.append(cid)
        table = self.table
        table.refresh_clusters(ids, [c.key for c in table.cols if not c.instant or c.key == "fr"])
        table.recheck(ids)
        table.resort_if(
            [
                "template_amplitude",
                "depth",
                "ch",
                "isi_violations_ratio",
                "rp_contamination",
                "presence_ratio",
                "amplitude_cutoff",
                "amplitude_median",
                "amplitude_median_npy",
                "shank",
                "template",
                "peak_to_trough_ms",
                "best_channel",
                "isi_violations_count",
                "rp_violations",
                "amplitude_median_npy",
                *QUALITY_NAMES,
            ]
        )
        for cid in ids:
            self.sim_table.set_acg(cid)
        self.refresh_status()
        if not len(self.feeder):
            self.table.warm_cache()  # every statistic is in: pre-render the off-screen rows

    # ------------------------------------------------------------------ selection
    @on(ClusterSelected, "ClusterTable")
    def _best_changed(self, msg: ClusterSelected) -> None:
        if not self.live:
            return
        self.best = msg.cid
        self.refresh_status()  # the status line names the selected cluster
        if msg.cid is None:
            self.sim_table.show(None, [])
            self.detail.clear_detail()
            return
        # Start the heavy work after the next repaint, so the cursor moves at once.
        self.call_after_refresh(self._load_selection, msg.cid)

    def _load_selection(self, cid: int) -> None:
        if not self.live:
            return
        if cid != self.best:
            return  # the cursor moved on meanwhile
        self._similar_worker(cid)
        self._request_detail()

    @on(ClusterTable.Scrolled)
    def _rows_scrolled(self, msg: ClusterTable.Scrolled) -> None:
        if not self.live:
            return
        self.want_stats(msg.ids, front=True)

    @on(ClusterSelected, "SimilarityTable")
    def _similar_changed(self, msg: ClusterSelected) -> None:
        if not self.live:
            return
        self.similar = msg.cid
        self._request_detail()

    def on_similar_ready(self, msg: SimilarReady) -> None:
        if not self.live:
            return  # results arriving while the app shuts down
        if msg.reference != self.best:
            return
        sim = self.sim_table
        sim.show(msg.reference, msg.ranked)
        others = sim.order
        self.want_stats(others[:30], front=True)
        self._ccg_worker(msg.reference, others)

    def on_ccg_ready(self, msg: CcgReady) -> None:
        if not self.live:
            return  # results arriving while the app shuts down
        if msg.reference != self.sim_table.reference:
            return
        for cid, ccg in msg.ccgs:
            self.sim_table.set_ccg(cid, ccg)

    def _request_detail(self) -> None:
        if not self.live:
            return
        if self.best is None:
            return
        similar = self.similar if self.sim_table.reference == self.best else None
        self._detail_worker(self.best, similar, self.cur.group(self.best))

    def on_detail_ready(self, msg: DetailReady) -> None:
        if not self.live:
            return  # results arriving while the app shuts down
        if msg.detail.best == self.best:
            self.detail.show(msg.detail)

    # ------------------------------------------------------------------ targets
    def focused_on_similar(self) -> bool:
        return self.focused is self.sim_table

    def selection(self) -> list[int]:
        """Clusters an action applies to: the marked ones, else the one under the cursor."""
        if self.model.marked:
            return sorted(c for c in self.model.marked if c in self.cur.state)
        cid = self.sim_table.current if self.focused_on_similar() else self.table.current
        return [cid] if cid is not None else []

    def merge_targets(self) -> list[int]:
        marked = [c for c in self.model.marked if c in self.cur.state]
        if marked:
            ids = set(marked)
            if len(ids) == 1 and self.best is not None:
                ids.add(self.best)
            return sorted(ids)
        ids = {c for c in (self.best, self.sim_table.current) if c is not None}
        return sorted(ids)

    # ------------------------------------------------------------------ actions
    def action_merge(self, ids: list[int] | None = None) -> None:
        targets = ids if ids else self.merge_targets()
        if len(targets) < 2:
            self.say(
                "merge: select two clusters (cursor + similar, or mark them with x)", error=True
            )
            return
        new = self.attempt(lambda: self.cur.merge(targets))
        if new is not None:
            self.model.marked.clear()
            self.table.select(new)
            self.say(f"merged {', '.join(map(str, targets))} -> {new}")

    def action_label(self, group: str, ids: list[int] | None = None) -> None:
        on_similar = ids is None and not self.model.marked and self.focused_on_similar()
        targets = ids if ids else self.selection()
        if not targets:
            self.say("label: no cluster selected", error=True)
            return
        if self.attempt(lambda: self.cur.label(targets, group=group)) is None:
            return
        self.say(f"labelled {', '.join(map(str, targets))} {group}")
        if ids is None and not self.model.marked:
            # phy's "move": go on to the next cluster of the same view
            if on_similar:
                self.sim_table.step(+1)
            else:
                self.table.step(+1)
        self.model.marked.clear()
        self.table.refresh_clusters(targets, ["id"])

    def action_label_field(self, name: str, value: Any, ids: list[int] | None = None) -> None:
        targets = ids if ids else self.selection()
        if not targets:
            self.say("label: no cluster selected", error=True)
            return
        if self.attempt(lambda: self.cur.label(targets, field=name, value=value)) is not None:
            self.say(f"labelled {', '.join(map(str, targets))} {name}={value!r}")

    def _after_history_move(self, update: Update | None, verb: str) -> None:
        """Say what was undone / redone (the action, not the new event) and put the cursor
        back on the cluster it affected, as phy does."""
        if update is None:
            return
        target = self._history_target()
        if update.added:
            self.table.select(int(update.added[0]))
        elif update.labels_changed:
            self.table.select(int(update.labels_changed[0]))
        self.say(history_move_text(update, verb, target))

    def _history_target(self) -> Any:
        """The action event the last undo / redo event points at (None if not found)."""
        events = self.cur.history
        if not events or "target" not in events[-1].body:
            return None
        seq = events[-1].body["target"]
        return next((e for e in reversed(events) if e.seq == seq), None)

    def undo(self) -> Update | None:
        if not self.cur.can_undo:
            self.say("nothing to undo", error=True)
            return None
        update = self.attempt(self.cur.undo)
        self._after_history_move(update, "undid")
        return update

    def redo(self) -> Update | None:
        if not self.cur.can_redo:
            self.say("nothing to redo", error=True)
            return None
        update = self.attempt(self.cur.redo)
        self._after_history_move(update, "redid")
        return update

    def action_undo(self) -> None:
        self.undo()

    def action_redo(self) -> None:
        self.redo()

    def action_next_similar(self) -> None:
        if self.sim_table.step(+1) is None:
            self.say("no further similar cluster (noise and mua are skipped)")

    def action_prev_similar(self) -> None:
        if self.sim_table.step(-1) is None:
            self.say("at the first similar cluster")

    def action_toggle_mark(self) -> None:
        cid = self.sim_table.current if self.focused_on_similar() else self.table.current
        if cid is None:
            return
        if cid in self.model.marked:
            self.model.marked.discard(cid)
        else:
            self.model.marked.add(cid)
        self.table.refresh_clusters([cid], ["id"])
        self.sim_table.refresh_clusters([cid])
        self.say(f"marked: {', '.join(map(str, sorted(self.model.marked))) or 'none'}")

    def select_cluster(self, cid: int) -> bool:
        return self.table.select(cid)

    def select_clusters(self, ids: list[int]) -> None:
        live = [c for c in ids if c in self.cur.state]
        missing = [c for c in ids if c not in self.cur.state]
        if not live:
            self.say(f"select: no such cluster {', '.join(map(str, ids))}", error=True)
            return
        old = set(self.model.marked)
        self.model.marked = set(live) if len(live) > 1 else set()
        self.table.refresh_clusters(old | set(live), ["id"])
        if not self.table.select(live[0]):
            self.say(f"cluster {live[0]} is hidden by the filter", error=True)
            return
        note = f" (unknown: {', '.join(map(str, missing))})" if missing else ""
        self.say(f"selected {', '.join(map(str, live))}{note}")

    def action_clear(self) -> None:
        if self.model.marked:
            old = set(self.model.marked)
            self.model.marked.clear()
            self.table.refresh_clusters(old, ["id"])
            self.sim_table.refresh_clusters(old)
            self.say("marks cleared")
        elif self.table.predicate is not None:
            self.apply_filter("")

    def action_toggle_detail(self) -> None:
        self.toggle_class("show-detail")

    def action_export(self, out: str | None = None) -> None:
        if self.exporting:
            return
        self.exporting = True
        self.say("exporting…")
        self._export_worker(out)

    def on_export_done(self, msg: ExportDone) -> None:
        if not self.live:
            return  # results arriving while the app shuts down
        self.exporting = False
        self.say(msg.message, error=msg.error)
        self.refresh_status()

    def action_split(self) -> None:
        from .screens import SplitScreen

        targets = self.selection()
        if len(targets) != 1:
            self.say("split: put the cursor on one cluster (no marks)", error=True)
            return
        self.push_screen(SplitScreen(self.cur, targets[0]), self._split_done)

    def _split_done(self, plan: SplitPlan | None) -> None:
        if not plan:
            return
        added = self.attempt(lambda: self.cur.split(plan.spike_ids, plan.labels, meta=plan.meta))
        if added:
            self.table.select(added[0])
            self.say(f"split {plan.cluster_id} -> {', '.join(map(str, added))} ({plan.rule})")

    def action_views(self) -> None:
        from .screens import ViewsScreen

        targets = self.selection()
        if not targets:
            self.say("views: no cluster selected", error=True)
            return
        similar = self.similar if self.sim_table.reference == self.best else None
        self.push_screen(ViewsScreen(self, targets, similar if similar not in targets else None))

    def correlogram_clusters(self) -> list[int]:
        """The correlogram view's clusters: the cursor's, then the marked ones, else the
        cursor's and its selected similar cluster (phy shows the selected clusters)."""
        ids = [] if self.table.current is None else [int(self.table.current)]
        marked = sorted(c for c in self.model.marked if c in self.cur.state)
        if marked:
            return ids + [c for c in marked if c not in ids]
        similar = self.similar if self.sim_table.reference == self.best else None
        if similar is not None and similar in self.cur.state and similar not in ids:
            ids.append(int(similar))
        return ids

    def action_correlograms(self, mode: str = "ccg") -> None:
        ids = self.correlogram_clusters()
        if not ids:
            self.say("correlograms: no cluster selected", error=True)
            return
        from .screens import CorrelogramScreen

        self.push_screen(CorrelogramScreen(self, ids, mode))

    def _raw_view_ids(self, what: str) -> tuple[list[int], int | None] | None:
        targets = self.selection()
        if not targets:
            self.say(f"{what}: no cluster selected", error=True)
            return None
        similar = self.similar if self.sim_table.reference == self.best else None
        return targets, (similar if similar not in targets else None)

    def action_waveforms(self) -> None:
        from .screens import WaveformScreen

        got = self._raw_view_ids("waveforms")
        if got is not None:
            self.push_screen(WaveformScreen(self, got[0], got[1]))

    def action_traces(self) -> None:
        from .screens import TraceScreen

        got = self._raw_view_ids("traces")
        if got is not None:
            ids = got[0] + ([got[1]] if got[1] is not None else [])
            self.push_screen(TraceScreen(self, ids))

    def action_proposals(self) -> None:
        from .screens import ProposalsScreen

        self.push_screen(ProposalsScreen(self))

    def action_history(self) -> None:
        from .screens import HistoryScreen

        self.push_screen(HistoryScreen(self.cur))

    def action_help(self) -> None:
        from .screens import HelpScreen

        self.push_screen(HelpScreen(self.BINDINGS))

    # ------------------------------------------------------------------ services (the session)
    def review(self) -> Review:
        """The merge-proposal review service (one per curation: one pass over the spikes)."""
        from .review import Review

        if self._review is None or self._review.cur is not self.cur:
            self._review = Review(self.cur, self.stats.engine)
        return self._review

    def correlograms(self) -> CorrelogramMatrix:
        """The correlogram-matrix cache (made with the curation, so it sees every merge)."""
        if self._correlograms is None:
            self._correlograms = matrix_for(self.cur)
        return self._correlograms

    def feature_source(self) -> FeatureSource:
        """The spike-feature reader, sharing the statistics engine's best channels."""
        from curalog.analysis.features import FeatureSource

        if self._features is None or self._features.dataset is not self.cur.dataset:
            self._features = FeatureSource(
                self.cur.dataset, geometry=self.stats.engine.ctx.geometry
            )
        return self._features

    # ------------------------------------------------------------------ prompt
    def action_prompt(self, kind: str, initial: str = "") -> None:
        prompt = self.query_one("#prompt", Input)
        prompt.display = True
        prompt.cursor_blink = self.cursor_blink
        prompt.placeholder = (
            "filter, e.g. n_spikes > 500 and group != noise"
            if kind == "/"
            else "command: merge 3 4 | label good | select 1 2 | sort amp | help"
        )
        if kind == "/":
            initial = initial or self.table.filter_text
        prompt.value = initial
        prompt.border_title = "/ filter" if kind == "/" else ": command"
        prompt.set_class(kind == "/", "filter")
        prompt.focus()
        prompt.cursor_position = len(initial)

    def close_prompt(self) -> None:
        prompt = self.query_one("#prompt", Input)
        prompt.display = False
        self.table.focus()

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        is_filter = event.input.has_class("filter")
        text = event.value
        self.close_prompt()
        if is_filter:
            self.apply_filter(text)
        elif text.strip():
            self.run_command(text)

    def on_key(self, event: events.Key) -> None:
        prompt = self.query_one("#prompt", Input)
        if event.key == "escape" and prompt.display and prompt.has_focus:
            event.stop()
            self.close_prompt()

    def apply_filter(self, text: str) -> bool:
        try:
            pred = compile_filter(text, self.model.column_names())
        except FilterError as exc:
            self.say(str(exc), error=True)
            return False
        self.table.set_filter(pred if text.strip() else None, text.strip())
        shown = len(self.table.order)
        self.say(f"filter: {text.strip()} ({shown} shown)" if text.strip() else "filter cleared")
        self.refresh_status()
        return True

    def sort_by(self, name: str, descending: bool | None = None) -> bool:
        try:
            key = self.model.resolve_column(name) if name != "id" else "id"
        except KeyError as exc:
            self.say(str(exc.args[0]), error=True)
            return False
        self.table.set_sort(key, descending)
        self.refresh_status()
        self.say(f"sorted by {key} {'descending' if self.table.descending else 'ascending'}")
        return True

    def run_command(self, line: str) -> None:
        try:
            cmd = parse_command(line)
        except CommandError as exc:
            self.say(str(exc), error=True)
            return
        self.execute(cmd)

    def execute(self, cmd: Command) -> None:
        name = cmd.name
        if name == "merge":
            self.action_merge(cmd.ids or None)
        elif name == "label":
            if cmd.group is not None:
                self.action_label(cmd.group, cmd.ids or None)
            else:
                self.action_label_field(str(cmd.field_name), cmd.value, cmd.ids or None)
        elif name == "select":
            self.select_clusters(cmd.ids)
        elif name == "sort":
            self.sort_by(str(cmd.column), cmd.descending)
        elif name == "filter":
            self.apply_filter(cmd.text)
        elif name == "split":
            self.action_split()
        elif name == "undo":
            self.action_undo()
        elif name == "redo":
            self.action_redo()
        elif name == "export":
            self.action_export(cmd.text or None)
        elif name == "history":
            self.action_history()
        elif name == "help":
            self.action_help()
        elif name == "quit":
            self.exit(0)
        elif (
            name == "note" and self.attempt(lambda: self.cur.note("comment", cmd.text)) is not None
        ):
            self.say("note recorded")
            self.refresh_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.ready:
            return action in ("quit", "help")
        # The curation keys belong to the main screen, not to the split/history/help screens.
        if len(self.screen_stack) > 1 and action not in ("quit", "help"):
            return False
        # Keys typed into the prompt belong to the prompt.
        return action in ("quit", "prompt") or not isinstance(self.focused, Input)

    async def action_quit(self) -> None:
        self.exit(0)

    def exit(self, result: Any = None, return_code: int = 0, message: Any = None) -> None:
        self.live = False  # late worker results are dropped from here on
        super().exit(result, return_code, message)


def history_move_text(update: Update, verb: str, target: Any = None) -> str:
    """``undid merge 27, 72 -> 102 (seq 5)``, ``redid label 9 noise (seq 7)``: the action
    undone or redone, with its own seq (not the new undo/redo event's)."""

    def ids(xs: Any) -> str:
        return ", ".join(str(int(c)) for c in xs)

    kind = update.kind
    where = f" (seq {target.seq})" if target is not None else ""
    if update.added or update.deleted:
        before, after = (
            (update.added, update.deleted)
            if update.history == "undo"
            else (update.deleted, update.added)
        )
        return f"{verb} {kind} {ids(before)} -> {ids(after)}{where}"
    body = target.body if target is not None else {}
    clusters = body.get("clusters") or update.labels_changed
    if kind == "label" and body:
        field, value = body.get("field", "group"), body.get("value")
        what = (value or "unsorted") if field == "group" else f"{field}={value!r}"
        return f"{verb} label {ids(clusters)} {what}{where}"
    return f"{verb} {kind} {ids(clusters)}{where}".replace("  ", " ")


def run_app(
    dir: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    author: str | None = None,
    mouse: bool = True,
    raw: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
) -> int:
    """Open ``dir`` (and its log) and run the UI; returns the exit status.

    The dataset is opened in a worker after the first paint; a bad folder or log ends the
    app with the error's one-line message on stderr and status 2.
    """
    if not Path(dir).is_dir():
        print(f"curalog: {dir}: no such folder", file=sys.stderr)
        return 2

    def opener() -> Session:
        from .warmup import warm_up_first_run

        warm_up_first_run(lambda text: app.call_from_thread(app.show_loading, text))
        app.call_from_thread(app.show_loading, "opening the dataset and replaying its log…")
        return open_session(dir, log, author=author, raw=raw)

    app = CuralogApp(opener=opener, owns_curation=True, mouse=mouse)
    try:
        app.run(mouse=mouse)
    finally:
        if app.ready:
            app.cur.close()
    if app.fatal:
        print(f"curalog: {app.fatal}", file=sys.stderr)
        return 2
    return int(app.return_code or 0)
