"""The history screen: the log as a list, a preview of the state at any earlier point, and
undo/redo from there.

The preview replays the log up to the highlighted event in a worker thread (a read-only
``Curation(dataset, log, readonly=True, upto=seq)`` on the already loaded dataset, the
same as ``curalog.open(folder, log, readonly=True, upto=seq)`` without reloading the
folder; one replay at a time, the latest request wins); the live session is not touched
until the curator presses ``u`` (undo back to here: undo every action after the event) or
``r`` (redo up to here), which append ordinary undo/redo events.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from curalog import Curation
from curalog.errors import CuralogError
from curalog.events import ACTION_TYPES, Event
from curalog.replaying import walk_undo_stack

from ..model import GROUP_STYLES


@dataclass
class Stack:
    """The undo stack implied by a log: active actions, undone (redoable) ones, discarded ones."""

    active: list[int]
    undone: list[int]
    discarded: set[int]

    def status(self, seq: int) -> str:
        if seq in self.active:
            return "active"
        if seq in self.undone:
            return "undone"
        if seq in self.discarded:
            return "dropped"
        return ""


def undo_stack(events: list[Event]) -> Stack:
    walk = walk_undo_stack(events)
    return Stack(
        [e.seq for e in walk.effective],
        [e.seq for e in walk.undone],
        {e.seq for e in walk.discarded},
    )


@dataclass
class Preview:
    seq: int
    n_clusters: int
    groups: Counter
    same_as_now: bool
    error: str | None = None


STATUS_STYLE = {"active": "green", "undone": "yellow", "dropped": "dim strike", "": "dim"}


class HistoryScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q,H", "close", "back"),
        Binding("u", "undo_to", "undo back to here"),
        Binding("r", "redo_to", "redo up to here"),
        Binding("ctrl+z", "undo", "undo"),
        Binding("ctrl+y", "redo", "redo"),
    ]
    DEFAULT_CSS = """
    HistoryScreen #history-main { height: 1fr; }
    HistoryScreen #events { width: 3fr; }
    HistoryScreen #preview { width: 2fr; padding: 0 1; border-left: tall $panel; }
    HistoryScreen.narrow #history-main { layout: vertical; }
    HistoryScreen.narrow #events { width: 1fr; height: 2fr; }
    HistoryScreen.narrow #preview { width: 1fr; height: 1fr; border-left: none; border-top: solid $panel; }
    HistoryScreen #history-status { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, cur: Curation):
        super().__init__()
        self.cur = cur
        self.selected_seq: int | None = None
        self.preview: Preview | None = None
        self._shown = 0
        self._wanted: int | None = None
        self._replaying = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="history-main"):
            yield DataTable(id="events", cursor_type="row")
            yield Static(id="preview")
        yield Static(id="history-status")
        yield Footer()

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < 120, "narrow")
        table = self.query_one("#events", DataTable)
        for key, label, width in (
            ("seq", "seq", 5),
            ("action", "action", 40),
            ("status", "status", 7),
            ("time", "time", 19),
            ("author", "author", 14),
        ):
            table.add_column(label, key=key, width=width)
        self.sync_rows()
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)
        table.focus()
        self._say(
            "arrows: preview the state after an event · u: undo back to it · r: redo up to it"
        )

    def on_resize(self, event: object) -> None:
        self.set_class(self.app.size.width < 120, "narrow")

    # ------------------------------------------------------------------ rows
    def sync_rows(self) -> None:
        """Append rows for new events and refresh every status cell (cheap: one per event)."""
        table = self.query_one("#events", DataTable)
        events = self.cur.history
        stack = undo_stack(events)
        for e in events[self._shown :]:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time_ns / 1e9))
            table.add_row(
                str(e.seq),
                Text(e.summary(), no_wrap=True, overflow="ellipsis"),
                self._status_cell(stack, e),
                stamp,
                Text(e.author[:14]),
                key=str(e.seq),
            )
        self._shown = len(events)
        for e in events:
            if e.type in ACTION_TYPES:
                table.update_cell(str(e.seq), "status", self._status_cell(stack, e))
        if table.row_count == 0:
            self.query_one("#preview", Static).update(
                Text("the log is empty: no action yet", style="dim")
            )

    @staticmethod
    def _status_cell(stack: Stack, e: Event) -> Text:
        st = stack.status(e.seq) if e.type in ACTION_TYPES else ""
        return Text(st or e.type, style=STATUS_STYLE.get(st, "dim"))

    # ------------------------------------------------------------------ preview
    @on(DataTable.RowHighlighted, "#events")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None:
            return
        seq = int(event.row_key.value)
        self.selected_seq = seq
        self.query_one("#preview", Static).update(Text(f"replaying up to seq {seq}…", style="dim"))
        self._request_preview(seq)

    def _request_preview(self, seq: int) -> None:
        """One replay at a time (each holds a full cluster state): the latest request wins."""
        self._wanted = seq
        if not self._replaying:
            self._replaying = True
            self._preview_worker(seq)

    @work(thread=True, group="preview", exit_on_error=False, description="history preview")
    def _preview_worker(self, seq: int) -> None:
        try:
            # The same dataset object (already loaded and fingerprinted): only the replay runs.
            past = Curation(self.cur.dataset, self.cur.log_path, readonly=True, upto=seq)
            try:
                groups = Counter(past.groups().values())
                same = set(past.cluster_ids.tolist()) == set(self.cur.cluster_ids.tolist())
                result = Preview(seq, past.n_clusters, groups, same)
            finally:
                past.close()
        except CuralogError as exc:
            result = Preview(seq, 0, Counter(), False, str(exc))
        self.app.call_from_thread(self._preview_done, result)

    def _preview_done(self, p: Preview) -> None:
        self._replaying = False
        if self._wanted is not None and self._wanted != p.seq:
            self._request_preview(self._wanted)  # the cursor moved on meanwhile
        self._show_preview(p)

    def _show_preview(self, p: Preview) -> None:
        if p.seq != self.selected_seq:
            return
        self.preview = p
        box = self.query_one("#preview", Static)
        if p.error:
            box.update(Text(p.error, style="bold red"))
            return
        stack = undo_stack(self.cur.history)
        after = [s for s in stack.active if s > p.seq]
        redo_n = self._redo_count(stack, p.seq)
        lines = Text.assemble(
            (f"state after seq {p.seq}\n", "bold"),
            (f"{p.n_clusters} clusters\n", "bold"),
            (f"good {p.groups.get('good', 0)}\n", GROUP_STYLES["good"]),
            (f"mua {p.groups.get('mua', 0)}\n", GROUP_STYLES["mua"]),
            (f"noise {p.groups.get('noise', 0)}\n", GROUP_STYLES["noise"]),
            (f"unsorted {p.groups.get(None, 0)}\n\n", "dim"),
            (f"now: {self.cur.n_clusters} clusters (seq {self.cur.seq})\n", ""),
            ("same clusters as now\n" if p.same_as_now else "clusters differ from now\n", "dim"),
            (f"\nu: undo {len(after)} action(s) after seq {p.seq}\n" if after else "", "yellow"),
            (f"r: redo {redo_n} undone action(s) up to seq {p.seq}\n" if redo_n else "", "yellow"),
        )
        box.update(lines)

    # ------------------------------------------------------------------ actions
    @staticmethod
    def _redo_count(stack: Stack, seq: int) -> int:
        if seq in stack.undone:
            return stack.undone.index(seq) + 1
        return 0

    def _say(self, message: str, error: bool = False) -> None:
        self.query_one("#history-status", Static).update(
            Text(message, style="bold red" if error else "dim")
        )

    def _repeat(self, n: int, fn_name: str) -> int:
        done = 0
        app = self.app
        for _ in range(n):
            fn = getattr(self.cur, fn_name)
            try:
                if fn() is None:
                    break
            except CuralogError as exc:
                self._say(str(exc), error=True)
                break
            done += 1
        self.sync_rows()
        if hasattr(app, "refresh_status"):
            app.refresh_status()
        return done

    def action_undo_to(self) -> None:
        if self.selected_seq is None:
            return
        after = [s for s in undo_stack(self.cur.history).active if s > self.selected_seq]
        if not after:
            self._say(f"nothing to undo after seq {self.selected_seq}")
            return
        done = self._repeat(len(after), "undo")
        self._say(f"undid {done} action(s); now at seq {self.cur.seq}")
        self._refresh_preview()

    def action_redo_to(self) -> None:
        if self.selected_seq is None:
            return
        n = self._redo_count(undo_stack(self.cur.history), self.selected_seq)
        if not n:
            self._say(f"seq {self.selected_seq} is not an undone action")
            return
        done = self._repeat(n, "redo")
        self._say(f"redid {done} action(s); now at seq {self.cur.seq}")
        self._refresh_preview()

    def action_undo(self) -> None:
        self._say("undone" if self._repeat(1, "undo") else "nothing to undo")
        self._refresh_preview()

    def action_redo(self) -> None:
        self._say("redone" if self._repeat(1, "redo") else "nothing to redo")
        self._refresh_preview()

    def _refresh_preview(self) -> None:
        if self.selected_seq is not None:
            self._request_preview(self.selected_seq)

    def action_close(self) -> None:
        self.app.pop_screen()
