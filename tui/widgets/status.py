"""The status line: dataset, clusters by group, log position, undo depth, export state."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.text import Text
from textual.widgets import Static

from curalog import Curation
from curalog.io.phy import export_status

from ..model import GROUP_STYLES


def status_text(
    cur: Curation,
    *,
    readonly_reason: str | None = None,
    sort: str = "",
    filter_text: str = "",
    shown: int | None = None,
    pending: int = 0,
    selected: tuple[int, str | None, int] | None = None,
    marked: int = 0,
    compact: bool = False,
) -> Text:
    """The state line. It starts with the selection, in words (``cluster 11 good, 975
    spikes``), so a curator never has to read the cursor position; ``compact`` (narrow
    terminals) drops the folder name and the log hash and shortens the labels, so that
    nothing important is cut at 80 columns."""
    counts = Counter(cur.groups().values())
    n = cur.n_clusters
    parts: list[Any] = []
    if selected is not None:
        cid, group, n_sp = selected
        g = group or "unsorted"
        parts.append((f"▶ {cid}" if compact else f"▶ cluster {cid}", "bold reverse"))
        parts.append((f" {g}", GROUP_STYLES.get(group, "") or "bold"))
        parts.append((f" {n_sp:,} sp" if compact else f", {n_sp:,} spikes", "dim"))
        if marked:
            parts.append((f" ●{marked}" if compact else f" · {marked} marked", "bold magenta"))
        parts.append("  │ ")
    elif marked:
        parts.append((f"●{marked} marked  │ ", "bold magenta"))
    if not compact:
        parts.append((cur.dataset.path.name or str(cur.dataset.path), "bold"))
        parts.append("  ")
    parts.append((f"{n} cl" if compact else f"{n} clusters", "bold"))
    if shown is not None and shown != n:
        parts.append((f" ({shown} shown)", "yellow"))
    parts.append(" ")
    for g in ("good", "mua", "noise"):
        parts.append((f"{g[0].upper()}{counts.get(g, 0)} ", GROUP_STYLES[g]))
    parts.append((f"U{counts.get(None, 0)}", "dim"))
    parts.append(" │ " if compact else "  │ ")
    if compact:
        parts.append((f"seq {cur.seq}", "bold"))
        parts.append(f" undo {cur.undo_depth}" + ("↻" if cur.can_redo else ""))
    else:
        head = cur.head_hash.hex()[:8] if cur.head_hash else "--------"
        parts.append((f"seq {cur.seq} #{head}", "bold"))
        parts.append(f"  undo {cur.undo_depth}" + (" ↻" if cur.can_redo else ""))
    parts.append(" │ export " if compact else "  │ export ")
    exp = export_status(cur)
    short = {"up to date": "up to date", "never exported": "none yet"}.get(
        exp, exp.replace("exported at ", "")
    )
    if compact:
        short = {"up to date": "ok", "none yet": "none"}.get(short, short)
    parts.append((short, "green" if exp == "up to date" else "yellow"))
    if sort and not compact:
        parts.append(("  │ " + sort, "dim"))
    if filter_text:
        parts.append(("  /" + filter_text, "yellow"))
    if pending:
        parts.append((f"  ⟳ stats {pending}", "dim"))
    if readonly_reason:
        parts.append(("  │ READ-ONLY: " + readonly_reason, "bold red"))
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")


class StatusLine(Static):
    """Two lines: the session state and the last message (action result or error)."""

    DEFAULT_CSS = """
    StatusLine { height: 2; background: $panel; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs: Any):
        super().__init__("", **kwargs)
        self.state_text = Text("")
        self.message = Text("")

    def show_state(self, text: Text) -> None:
        self.state_text = text
        self._redraw()

    def say(self, message: str, *, error: bool = False) -> None:
        self.message = Text(
            message, style="bold red" if error else "green", no_wrap=True, overflow="ellipsis"
        )
        self._redraw()

    def _redraw(self) -> None:
        self.update(
            Text.assemble(self.state_text, "\n", self.message, no_wrap=True, overflow="ellipsis")
        )
