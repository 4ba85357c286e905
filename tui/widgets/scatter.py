"""A block of pre-rendered plot lines (braille scatter plots) that reports mouse clicks.

The spike views render their plots off the widget (``curalog_tui.braille.render_scatter``
gives one ``rich.text.Text`` per terminal row, exactly the block's width); this widget only
turns those lines into strips, once per change, and paints them. It has no border or
padding, so a click's ``(x, y)`` is directly the block cell of ``ScatterPlot.frame``
(``frame.cell_center(x, y)`` gives the data coordinates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget


def _plain_segments(line: Text) -> list[Segment] | None:
    """The segments of a line whose spans are sorted and disjoint (what the plot renderers
    make: one span per run of a colour), without Rich's general span resolution, which
    dominates the cost of turning a 200-column plot into strips. None for any other line
    (a base style, overlapping spans): :meth:`Text.render` handles those."""
    if line.style:
        return None
    plain = line.plain
    segments: list[Segment] = []
    pos = 0
    for span in line.spans:
        start, end = span.start, span.end
        if start < pos or end <= start:
            return None
        if start > pos:
            segments.append(Segment(plain[pos:start]))
        style = span.style
        segments.append(Segment(plain[start:end], _style(style)))
        pos = end
    if pos < len(plain):
        segments.append(Segment(plain[pos:]))
    return segments


_STYLES: dict[str, Style] = {}


def _style(style: str | Style) -> Style:
    if isinstance(style, Style):
        return style
    got = _STYLES.get(style)
    if got is None:
        got = _STYLES[style] = Style.parse(style)
    return got


class ScatterView(Widget):
    """Paints a list of ``Text`` lines; posts :class:`ScatterView.Clicked` on mouse clicks."""

    DEFAULT_CSS = """
    ScatterView { width: 1fr; height: 1fr; padding: 0; border: none; }
    """

    @dataclass
    class Clicked(Message):
        """A click on cell ``(col, row)`` of the block (0-based, widget coordinates)."""

        view: ScatterView
        col: int
        row: int
        button: int

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._lines: list[Text] = []
        self._strips: list[Strip] | None = None
        self.paints = 0  # lines handed over (tests and benchmarks)
        self.rendered = 0  # the ``paints`` count the compositor last drew (benchmarks)

    def set_lines(self, lines: list[Text]) -> None:
        """Show these lines (one per row; extra rows are blank, extra lines are cut).

        Only the rows that differ from the previous lines are converted and repainted (a
        crosshair move changes two or three rows of a plot)."""
        old, old_strips = self._lines, self._strips
        self._lines = lines
        self.paints += 1
        width = self.size.width
        if (
            old_strips is None
            or len(old) != len(lines)
            or len(old_strips) != len(lines)
            or not width
            or (old_strips and old_strips[0].cell_length != width)
        ):
            self._strips = None
            self.refresh()
            return
        changed = [y for y, (a, b) in enumerate(zip(old, lines, strict=True)) if a != b]
        if not changed:
            return
        strips = list(old_strips)
        for y in changed:
            strips[y] = self._strip(lines[y], width)
        self._strips = strips
        self.refresh(*(Region(0, y, width, 1) for y in changed))

    @property
    def plain(self) -> str:
        """The block as plain text (tests)."""
        return "\n".join(t.plain.rstrip() for t in self._lines)

    def _strip(self, line: Text, width: int) -> Strip:
        segments = _plain_segments(line)
        if segments is None:  # overlapping or nested spans: Rich resolves them
            segments = list(line.render(self.app.console, end=""))
        base = self.rich_style
        if base:
            segments = list(Segment.apply_style(segments, base))
        return Strip(segments).crop_extend(0, width, base or Style())

    def _build_strips(self) -> list[Strip]:
        width = self.size.width
        return [self._strip(line, width) for line in self._lines]

    def render_line(self, y: int) -> Strip:
        self.rendered = self.paints
        if self._strips is None or (
            self._strips and self._strips[0].cell_length != self.size.width
        ):
            self._strips = self._build_strips()
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width, self.rich_style)

    def on_resize(self, event: events.Resize) -> None:
        self._strips = None

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Clicked(self, int(event.x), int(event.y), int(event.button)))
