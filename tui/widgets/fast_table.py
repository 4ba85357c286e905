"""A DataTable that re-renders only the cells that changed.

Textual's DataTable (8.x) keys its cell-render cache on a table-wide ``_update_count`` that
every mutation increments, so one ``update_cell`` or ``remove_row`` re-renders every
visible cell through Rich (measured: ~125 ms CPU for a 200x50 screen of 15 columns on the
2-core reference machine). Curation changes a handful of rows per action, so this
subclass keeps a second cache keyed on a per-row / per-cell version instead; a cell is
rendered again only when its value, width, style, cursor or hover state changed. The row
and column indices that DataTable stores in each segment's meta (for mouse clicks) are
re-applied on every use, so a cached cell stays correct after rows move.

The cache key has no theme: call ``clear_render_cache()`` after changing the theme. It
overrides the private ``_render_cell`` hook; ``FAST_CELLS`` turns it off should a
future Textual change that signature (the tests check the cached path is taken).
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual.cache import LRUCache
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

_EXPECTED = ["self", "row_index", "column_index", "base_style", "width", "cursor", "hover"]
_EXPECTED_ROW = ["self", "row_key", "line_no", "base_style", "cursor_location", "hover_location"]
_EXPECTED_LINE = ["self", "y", "x1", "x2", "base_style"]
FAST_CELLS = (
    list(inspect.signature(DataTable._render_cell).parameters) == _EXPECTED
    and list(inspect.signature(DataTable._render_line_in_row).parameters) == _EXPECTED_ROW
    and list(inspect.signature(DataTable._render_line).parameters) == _EXPECTED_LINE
    and hasattr(DataTable, "_get_offsets")
)


class FastDataTable(DataTable):
    """DataTable with a per-cell render cache that survives unrelated mutations."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._versions: dict[tuple[RowKey, ColumnKey], int] = {}
        self._row_versions: dict[RowKey, int] = {}
        self._counter = itertools.count(1)
        self._fast_cache: LRUCache[tuple, list] = LRUCache(40_000)
        self._placed_cache: LRUCache[tuple, list] = LRUCache(20_000)
        self._row_cell_versions: dict[RowKey, int] = {}
        self._line_parts_cache: LRUCache[tuple, tuple] = LRUCache(5_000)
        self._strip_cache: LRUCache[tuple, Any] = LRUCache(2_000)
        self._widths: tuple[int, tuple[int, ...]] = (-1, ())
        self.cells_rendered = 0  # cache misses (for tests and benchmarks)
        self.with_meta = True  # False without a mouse: clicks need no row/column meta
        self._warm_timer: Any = None
        self._warm_keys: list[RowKey] = []

    def add_row(
        self, *cells: Any, height: int | None = 1, key: str | None = None, label: Any = None
    ) -> RowKey:
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        self._row_versions[row_key] = next(self._counter)
        return row_key

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: Any,
        *,
        update_width: bool = False,
    ) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        rk = row_key if isinstance(row_key, RowKey) else RowKey(row_key)
        ck = column_key if isinstance(column_key, ColumnKey) else ColumnKey(column_key)
        version = next(self._counter)
        self._versions[(rk, ck)] = version
        self._row_cell_versions[rk] = version

    def clear(self, columns: bool = False) -> DataTable:
        self._fast_cache.clear()
        self._placed_cache.clear()
        self._line_parts_cache.clear()
        self._strip_cache.clear()
        self._versions.clear()
        self._row_versions.clear()
        self._row_cell_versions.clear()
        return super().clear(columns)

    def warm_cache(self, rows_per_tick: int = 4, interval: float = 0.05) -> None:
        """Render the rows that are not on screen yet, a few per tick, in idle time.

        Jumping to a page never shown (e.g. the cursor following a merged cluster to
        another part of the table) then costs cache hits instead of ~50 fresh rows of
        Rich rendering. Stops by itself when every row is cached; cheap to call again.
        """
        if not FAST_CELLS or self._warm_timer is not None:
            return
        self._warm_keys = [k for k in self.rows]
        self._warm_timer = self.set_interval(interval, lambda: self._warm_step(rows_per_tick))

    def _warm_step(self, n: int) -> None:
        keys = self._warm_keys
        done = 0
        style = self.rich_style
        self._pseudo_class_state = self.get_pseudo_class_state()
        while keys and done < n:
            key = keys.pop()
            if key in self._row_locations:
                self._render_line_in_row(
                    key, 0, style, self.cursor_coordinate, self.hover_coordinate
                )
                done += 1
        if not keys and self._warm_timer is not None:
            self._warm_timer.stop()
            self._warm_timer = None

    def _render_text_cell(
        self,
        row_key: RowKey,
        column_key: ColumnKey,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> list | None:
        """A one-line ``Text`` cell rendered directly, without Rich's Padding/Styled/wrap
        machinery (~5x faster); the same characters and styles as DataTable's own path
        (tests compare both). None for anything else (the caller falls back)."""
        value = self._data.get(row_key, {}).get(column_key)
        row = self.rows.get(row_key)
        if (
            not isinstance(value, Text)
            or row is None
            or row.height != 1
            or "\n" in value.plain
            or "\t" in value.plain
            or value.justify == "full"
        ):
            return None
        is_fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            is_fixed,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre = (
            base_style
            + Style.from_meta({"row": row_index, "column": column_index})
            + component_style
        )
        pad = self.cell_padding
        inner = max(0, width - 2 * pad)
        text = value.copy()
        text.end = ""
        justify = value.justify or "default"
        if justify == "right":
            text.rstrip()
        text.truncate(inner, overflow=value.overflow or "fold")
        gap = inner - text.cell_len
        left_gap = right_gap = 0
        if justify == "right":
            text.pad_left(gap)
        elif justify == "center":
            text.pad_left(gap // 2)
            text.pad_right(gap - gap // 2)
        elif justify == "left":
            text.pad_right(gap)
        else:
            right_gap = gap
        if text.style:  # as Text.__rich_console__ does (join): the base style under the spans
            text.spans = [Span(0, len(text), text.style), *text.spans]
            text.style = ""
        console = self.app.console
        inner_segments = list(text.render(console, end=""))
        line = []
        if pad + left_gap:
            line.append(Segment(" " * (pad + left_gap), pre + post_style))
        for seg in inner_segments:
            style = seg.style
            line.append(Segment(seg.text, pre + style + post_style if style else pre + post_style))
        if pad + right_gap:
            line.append(Segment(" " * (pad + right_gap), pre + post_style))
        return [line]

    def clear_render_cache(self) -> None:
        self._fast_cache.clear()
        self._placed_cache.clear()
        self._line_parts_cache.clear()
        self._strip_cache.clear()
        self.refresh()

    def _column_widths(self) -> tuple[int, ...]:
        if self._widths[0] != self._update_count:
            self._widths = (
                self._update_count,
                tuple(c.get_render_width(self) for c in self.ordered_columns),
            )
        return self._widths[1]

    def _row_key_parts(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Any,
        hover_location: Any,
    ) -> tuple:
        row_index = self._row_locations.get(row_key)
        per_column = self.cursor_type in ("column", "cell")
        cursor = cursor_location if per_column or cursor_location.row == row_index else None
        hover = hover_location if per_column or hover_location.row == row_index else None
        return (
            row_key,
            line_no,
            hash(base_style),
            self._row_versions.get(row_key, 0),
            self._row_cell_versions.get(row_key, 0),
            row_index,
            cursor,
            hover,
            self.cursor_type,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self._column_widths(),
            self.with_meta,
            self.fixed_columns,
            self.fixed_rows,
        )

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style):
        """Whole table lines cached on the row's versions (DataTable keys them on the
        table-wide update count, so any change rebuilt every visible line)."""
        if not FAST_CELLS:
            return super()._render_line(y, x1, x2, base_style)
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        if row_key == self._header_row_key or row_key not in self._row_locations:
            return super()._render_line(y, x1, x2, base_style)
        key = (
            self._row_key_parts(
                row_key, line_no, base_style, self.cursor_coordinate, self.hover_coordinate
            ),
            x1,
            x2,
            self.size.width,
        )
        strip = self._strip_cache.get(key)
        if strip is None:
            strip = super()._render_line(y, x1, x2, base_style)
            self._strip_cache[key] = strip
        return strip

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Any,
        hover_location: Any,
    ):
        """Row lines cached on the row's own versions (not the table-wide update count)."""
        if not FAST_CELLS or row_key == self._header_row_key or row_key not in self._row_locations:
            return super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        key = self._row_key_parts(row_key, line_no, base_style, cursor_location, hover_location)
        got = self._line_parts_cache.get(key)
        if got is None:
            got = super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
            self._line_parts_cache[key] = got
        return got

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ):
        if not FAST_CELLS or row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (
            row_key,
            column_key,
            self._row_versions.get(row_key, 0),
            self._versions.get((row_key, column_key), 0),
            hash(base_style),
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
            row_index < self.fixed_rows,
            column_index < self.fixed_columns,
        )
        lines = self._fast_cache.get(key)
        if lines is None:
            lines = self._render_text_cell(
                row_key, column_key, row_index, column_index, base_style, width, cursor, hover
            )
            if lines is None:
                lines = super()._render_cell(
                    row_index, column_index, base_style, width, cursor, hover
                )
            self._fast_cache[key] = lines
            self.cells_rendered += 1
            return lines
        if not self.with_meta:
            return lines
        placed_key = (key, row_index, column_index)
        placed = self._placed_cache.get(placed_key)
        if placed is None:
            meta = Style.from_meta({"row": row_index, "column": column_index})
            placed = [
                [
                    Segment(text, (style + meta) if style else meta, control)
                    for text, style, control in line
                ]
                for line in lines
            ]
            self._placed_cache[placed_key] = placed
        return placed
