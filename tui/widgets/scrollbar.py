"""Scrollbars that cannot be mistaken for data.

Textual draws a scrollbar thumb with eighth-block glyphs (``▁▂▃▅▇``) for sub-cell
precision; beside a column of numbers or a sparkline they read as data (``0.00▇▇``). This
renderer draws the track as a dim ``│`` and the thumb as a bold ``┃`` (vertical), ``─`` and
``━`` (horizontal): one cell thick, whole cells only. Install it with
``ScrollBar.renderer = LineScrollBarRender`` (Textual's documented hook).
"""

from __future__ import annotations

from math import ceil

from rich.color import Color
from rich.segment import Segment, Segments
from rich.style import Style
from textual.scrollbar import ScrollBarRender

_BACK = Color.parse("#555555")
_BAR = Color.parse("bright_magenta")


class LineScrollBarRender(ScrollBarRender):
    @classmethod
    def render_bar(
        cls,
        size: int = 25,
        virtual_size: float = 50,
        window_size: float = 20,
        position: float = 0,
        thickness: int = 1,
        vertical: bool = True,
        back_color: Color = _BACK,
        bar_color: Color = _BAR,
    ) -> Segments:
        size = int(size)
        track_ch, thumb_ch = ("│", "┃") if vertical else ("─", "━")
        width = thickness if vertical else 1
        up = Style(color=back_color, meta={"@mouse.down": "scroll_up"})
        down = Style(color=back_color, meta={"@mouse.down": "scroll_down"})
        thumb = Style(color=bar_color, bold=True, meta={"@mouse.down": "grab"})
        if window_size and size and virtual_size and size != virtual_size:
            thumb_size = max(1, ceil(window_size / (virtual_size / size)))
            span = max(1e-9, virtual_size - window_size)
            start = int(round((size - thumb_size) * min(1.0, max(0.0, position / span))))
            end = min(size, start + thumb_size)
            segments = (
                [Segment(track_ch * width, up)] * start
                + [Segment(thumb_ch * width, thumb)] * (end - start)
                + [Segment(track_ch * width, down)] * (size - end)
            )
        else:
            segments = [Segment(" " * width, Style())] * size
        if vertical:
            return Segments(segments, new_lines=True)
        return Segments((segments + [Segment.line()]) * thickness, new_lines=False)
