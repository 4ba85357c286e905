"""The cluster table: a DataTable whose row key is the cluster id, updated by row diffs.

Nothing here rebuilds the table after an action: ``apply_diff`` removes the deleted rows,
adds the added ones and re-sorts (which moves row indices, not data), ``refresh_clusters``
rewrites the cells of the given clusters (never with ``update_width``), and ``set_filter``
adds/removes only the rows whose visibility changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets.data_table import RowDoesNotExist

from curalog.labels import MASKED_GROUPS

from ..messages import ClusterSelected
from ..model import ClusterModel, Column
from .fast_table import FastDataTable

Predicate = Callable[[dict[str, Any]], bool]


class ClusterTable(FastDataTable):
    """Clusters of the curation, sortable and filterable, with phy's wizard navigation."""

    BINDINGS = [
        Binding("down", "next_best", "next best", show=False),
        Binding("up", "prev_best", "previous best", show=False),
        Binding("home", "first", "first", show=False),
        Binding("end", "last", "last", show=False),
    ]

    class Scrolled(Message):
        """Rows came into view (their statistics should be computed first)."""

        def __init__(self, ids: list[int]):
            super().__init__()
            self.ids = ids

    def __init__(self, model: ClusterModel, **kwargs: Any):
        super().__init__(cursor_type="row", fixed_columns=1, zebra_stripes=False, **kwargs)
        self.model = model
        self.cols: list[Column] = []
        self.order: list[int] = []  # visible cluster ids in display order
        self.sort_key = "n_spikes"
        self.descending = True
        self.predicate: Predicate | None = None
        self.filter_text = ""
        self.skip_masked = True
        self._current: int | None = None

    # ------------------------------------------------------------------ building
    def setup(self, ids: Iterable[int]) -> None:
        """Create the columns and the rows once (initial load)."""
        self.cols = self.model.columns()
        for col in self.cols:
            self.add_column(
                Text(col.label, justify="right" if col.numeric else "left"),
                width=col.width,
                key=col.key,
            )
        visible = [c for c in ids if self._passes(c)]
        visible.sort(key=self.model.sort_key(self.sort_key, self.descending))
        for cid in visible:
            self.add_row(*self.model.cells(cid, self.cols), key=str(cid))
        self.order = visible
        # phy's reset_wizard: start on the first cluster that is not noise or mua
        first = next((i for i, c in enumerate(visible) if self._navigable(c)), 0)
        if first:
            self.move_cursor(row=first)
        self._check_selection()

    def ensure_columns(self) -> None:
        """Add columns for label fields created since (e.g. ``label quality=3``)."""
        known = {c.key for c in self.cols}
        for col in self.model.columns():
            if col.key not in known:
                self.add_column(Text(col.label), width=col.width, key=col.key)
                self.cols.append(col)
                for cid in self.order:
                    self.update_cell(str(cid), col.key, self.model.cell(cid, col))

    def _passes(self, cid: int) -> bool:
        return self.predicate is None or self.predicate(self.model.row(cid))

    # ------------------------------------------------------------------ queries
    @property
    def current(self) -> int | None:
        """The cluster under the cursor."""
        if not self.order:
            return None
        row = min(max(self.cursor_row, 0), len(self.order) - 1)
        return self.order[row]

    def has(self, cid: int) -> bool:
        return str(cid) in self.rows

    # ------------------------------------------------------------------ diffs
    def apply_diff(
        self, deleted: Iterable[int], added: Iterable[int], changed: Iterable[int] = ()
    ) -> None:
        """Remove ``deleted`` rows, add ``added`` ones (if they pass the filter), refresh
        ``changed`` ones, then re-sort once. The cursor stays on its cluster when it survives."""
        keep = self._current
        removed = False
        for cid in deleted:
            if self.has(cid):
                self.remove_row(str(cid))
                removed = True
        new = [c for c in added if not self.has(c) and self._passes(c)]
        for cid in new:
            self.add_row(*self.model.cells(cid, self.cols), key=str(cid))
        self.refresh_clusters([c for c in changed if self.has(c)])
        if new or removed:
            self._resort(keep=keep)

    def refresh_clusters(self, ids: Iterable[int], columns: Iterable[str] | None = None) -> None:
        """Rewrite the cells of these clusters (all columns, or only ``columns``)."""
        cols = self.cols if columns is None else [c for c in self.cols if c.key in set(columns)]
        for cid in ids:
            if not self.has(cid):
                continue
            row = self.model.row(cid)
            key = str(cid)
            for col in cols:
                self.update_cell(key, col.key, self.model.cell(cid, col, row))

    def recheck(self, ids: Iterable[int]) -> None:
        """Re-evaluate the filter for these clusters (their values changed)."""
        if self.predicate is None:
            return
        show, hide = [], []
        for cid in ids:
            passes = self._passes(cid)
            if passes and not self.has(cid):
                show.append(cid)
            elif not passes and self.has(cid):
                hide.append(cid)
        if show or hide:
            self.apply_diff(hide, show)

    # ------------------------------------------------------------------ sort / filter
    def _resort(self, keep: int | None = None) -> None:
        ids = [int(k.value) for k in self.rows if k.value is not None]
        ids.sort(key=self.model.sort_key(self.sort_key, self.descending))
        rank = {cid: i for i, cid in enumerate(ids)}
        self.sort("id", key=lambda cell: rank[cell.cid])
        self.order = ids
        if keep is not None and keep in rank:
            self.move_cursor(row=rank[keep])
        self._check_selection()

    def set_sort(self, key: str, descending: bool | None = None) -> None:
        if descending is None:
            descending = (not self.descending) if key == self.sort_key else key != "id"
        self.sort_key, self.descending = key, descending
        self._resort(keep=self._current)

    def resort_if(self, keys: Iterable[str]) -> None:
        if self.sort_key in set(keys):
            self._resort(keep=self._current)

    def set_filter(self, predicate: Predicate | None, text: str = "") -> None:
        """Show only clusters passing ``predicate`` (row diff, not a rebuild)."""
        self.predicate = predicate
        self.filter_text = text
        all_ids = [int(c) for c in self.model.cur.cluster_ids]
        visible = {c for c in all_ids if self._passes(c)}
        hide = [c for c in self.order if c not in visible]
        show = [c for c in all_ids if c in visible and not self.has(c)]
        keep = self._current
        for cid in hide:
            self.remove_row(str(cid))
        for cid in show:
            self.add_row(*self.model.cells(cid, self.cols), key=str(cid))
        self._resort(keep=keep)

    # ------------------------------------------------------------------ selection
    def select(self, cid: int) -> bool:
        """Put the cursor on a cluster; False when it is not shown."""
        try:
            row = self.get_row_index(str(cid))
        except RowDoesNotExist:
            return False
        self.move_cursor(row=row)
        self._check_selection()
        return True

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        self._check_selection()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if int(old_value) != int(new_value):
            self.post_message(self.Scrolled(self.visible_ids()))

    def visible_ids(self) -> list[int]:
        first = max(0, int(self.scroll_y))
        return self.order[first : first + max(1, self.size.height)]

    def _check_selection(self) -> None:
        cur = self.current
        if cur != self._current:
            self._current = cur
            self.post_message(ClusterSelected(self, cur))

    def _navigable(self, cid: int) -> bool:
        return not (self.skip_masked and self.model.cur.group(cid) in MASKED_GROUPS)

    def step(self, direction: int, *, fallback: bool = False) -> int | None:
        """phy's wizard: the next/previous row that is not noise or mua; None at the end.

        With ``fallback`` (the arrow keys), when no such row is left in that direction the
        cursor still moves one row (onto a noise/mua cluster) instead of doing nothing.
        """
        if not self.order:
            return None
        start = i = self.cursor_row
        while 0 <= i + direction < len(self.order):
            i += direction
            if self._navigable(self.order[i]):
                self.move_cursor(row=i)
                return self.order[i]
        if fallback and 0 <= start + direction < len(self.order):
            self.move_cursor(row=start + direction)
            return self.order[start + direction]
        return None

    def action_next_best(self) -> None:
        self.step(+1, fallback=True)

    def action_prev_best(self) -> None:
        self.step(-1, fallback=True)

    def action_first(self) -> None:
        """The very first row, whatever its group (the arrows then skip noise and mua)."""
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=max(0, len(self.order) - 1))
