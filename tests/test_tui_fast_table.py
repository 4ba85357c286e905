"""FastDataTable renders exactly what Textual's DataTable renders, from its caches."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from curalog_tui.model import IdCell
from curalog_tui.plots import sparkline
from curalog_tui.widgets.fast_table import FAST_CELLS, FastDataTable

CELLS = [
    lambda i: IdCell(i, "good", marked=i % 2 == 0),
    lambda i: Text("noise", style="#777777"),
    lambda i: Text(f"{i * 1.234:.2f}", justify="right"),
    lambda i: Text("a label much longer than its column", no_wrap=True, overflow="ellipsis"),
    lambda i: sparkline([0, 1, 3, i, 2, 8, 5], marked=__import__("numpy").array([True, False] * 4)),
    lambda i: Text("mid", justify="center", style="dim"),
    lambda i: Text("left", justify="left"),
    lambda i: f"plain {i}",
]


class Pair(App):
    def compose(self) -> ComposeResult:
        yield DataTable(id="slow", cursor_type="row", fixed_columns=1)
        yield FastDataTable(id="fast", cursor_type="row", fixed_columns=1)

    def on_mount(self) -> None:
        for table in self.query(DataTable):
            for j, width in enumerate((6, 8, 7, 12, 9, 7, 6, 10)):
                table.add_column(f"c{j}", width=width, key=f"c{j}")
            for i in range(12):
                table.add_row(*[make(i) for make in CELLS], key=str(i))


def explode(lines) -> list[tuple[str, object]]:
    """Per character (char, style): independent of how segments were split."""
    out = []
    for seg in Segment.simplify([s for line in lines for s in line]):
        out.extend((ch, seg.style) for ch in seg.text)
    return out


async def test_fast_cells_match_datatable_rendering():
    assert FAST_CELLS
    app = Pair()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        slow, fast = app.query_one("#slow", DataTable), app.query_one("#fast", FastDataTable)

        def cells(table, render) -> dict:
            base = table.rich_style
            out = {}
            for row in range(12):
                for col in range(8):
                    width = table.ordered_columns[col].get_render_width(table)
                    for cursor in (False, True):
                        out[row, col, cursor] = explode(
                            render(row, col, base, width, cursor, False)
                        )
            return out

        slow.focus()  # the cursor style depends on focus: compare each table focused
        await pilot.pause()
        expected = cells(slow, lambda *a: DataTable._render_cell(slow, *a))
        fast.focus()
        await pilot.pause()
        got = cells(fast, fast._render_cell)
        for key in expected:
            assert got[key] == expected[key], key
        # and whole screen lines (cache hits included) are identical
        fast.blur()
        await pilot.pause()
        for y in range(14):
            assert slow.render_line(y).text == fast.render_line(y).text
        fast.update_cell("3", "c2", Text("99.00", justify="right"))
        slow.update_cell("3", "c2", Text("99.00", justify="right"))
        await pilot.pause()
        for y in range(14):
            assert slow.render_line(y).text == fast.render_line(y).text
        rendered = fast.cells_rendered
        fast.update_cell("5", "c1", Text("mua"))
        await pilot.pause()
        fast.render_line(7)
        fast.render_line(2)
        assert fast.cells_rendered - rendered <= 1  # only the changed cell was rendered again
