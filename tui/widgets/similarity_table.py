"""The similarity table: clusters ranked by similarity to the selected one (phy's rule)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets.data_table import RowDoesNotExist

from curalog.labels import MASKED_GROUPS

from ..messages import ClusterSelected
from ..model import CCG_WIDTH, ClusterModel, IdCell, ccg_cell, format_value, group_text
from .fast_table import FastDataTable

COLUMNS = (
    ("id", "id", 6),
    ("sim", "sim", 5),
    ("group", "group", 8),
    ("n_spikes", "n_spikes", 8),
    ("acg", "ACG 0-25ms", 13),
    ("ccg", "CCG ±25ms", CCG_WIDTH),
)


class SimilarityTable(FastDataTable):
    """Rows for the clusters most similar to ``reference``; CCG cells fill in as computed."""

    def __init__(self, model: ClusterModel, **kwargs: Any):
        super().__init__(cursor_type="row", fixed_columns=1, **kwargs)
        self.model = model
        self.reference: int | None = None
        self.order: list[int] = []
        self.sims: dict[int, float] = {}
        self.ccgs: dict[int, np.ndarray] = {}
        self.skip_masked = True
        self._current: int | None = None

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            numeric = key in ("sim", "n_spikes")
            self.add_column(
                Text(label, justify="right" if numeric else "left"), width=width, key=key
            )

    # ------------------------------------------------------------------ content
    def show(self, reference: int | None, ranked: list[tuple[int, float]]) -> None:
        """Replace the rows (a new reference cluster: at most ~100 rows)."""
        self.clear()
        self.reference = reference
        self.sims = dict(ranked)
        self.ccgs = {}
        self.order = [c for c, _ in ranked if c in self.model.cur.state]
        for cid in self.order:
            self.add_row(*self._cells(cid), key=str(cid))
        self._current = None
        if self.order:
            self.move_cursor(row=0)
            if not self._navigable(self.order[0]):
                self.step(+1)
        self._check_selection()

    def _cells(self, cid: int) -> list[Text]:
        m = self.model
        n = m.cur.state.n_spikes_of(cid) if cid in m.cur.state else 0
        ccg = self.ccgs.get(cid)
        return [
            IdCell(cid, m.cur.group(cid), cid in m.marked),
            format_value(self.sims.get(cid), ".3f"),
            group_text(m.cur.group(cid)),
            format_value(n, "d"),
            m.acg_text(cid),
            ccg_cell(ccg, m.bin_ms, m.refractory_ms) if ccg is not None else Text("…", style="dim"),
        ]

    def refresh_clusters(self, ids: list[int] | set[int]) -> None:
        for cid in ids:
            if str(cid) not in self.rows:
                continue
            for (key, _, _), cell in zip(COLUMNS, self._cells(cid), strict=True):
                self.update_cell(str(cid), key, cell)

    def set_ccg(self, cid: int, ccg: np.ndarray) -> None:
        self.ccgs[cid] = ccg
        if str(cid) in self.rows:
            m = self.model
            self.update_cell(str(cid), "ccg", ccg_cell(ccg, m.bin_ms, m.refractory_ms))

    def set_acg(self, cid: int) -> None:
        if str(cid) in self.rows:
            self.update_cell(str(cid), "acg", self.model.acg_text(cid))

    # ------------------------------------------------------------------ selection
    @property
    def current(self) -> int | None:
        if not self.order:
            return None
        return self.order[min(max(self.cursor_row, 0), len(self.order) - 1)]

    def select(self, cid: int) -> bool:
        try:
            self.move_cursor(row=self.get_row_index(str(cid)))
        except RowDoesNotExist:
            return False
        self._check_selection()
        return True

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        self._check_selection()

    def _check_selection(self) -> None:
        cur = self.current
        if cur != self._current:
            self._current = cur
            self.post_message(ClusterSelected(self, cur))

    def _navigable(self, cid: int) -> bool:
        return not (self.skip_masked and self.model.cur.group(cid) in MASKED_GROUPS)

    def step(self, direction: int) -> int | None:
        """Next/previous similar cluster that is not noise or mua (phy's space/shift+space)."""
        i = self.cursor_row
        while 0 <= i + direction < len(self.order):
            i += direction
            if self._navigable(self.order[i]):
                self.move_cursor(row=i)
                self._check_selection()
                return self.order[i]
        return None
