"""The main screen's key bar: the keys that fit the terminal's width, most useful first.

Textual's Footer shows every binding in one line and cuts what does not fit (at 80 columns:
``4 unsor▏``). This bar picks keys by priority until the line is full, shows them in their
usual order, and never cuts a word; ``?`` (every key) is always there. Each key is
clickable (``@click`` markup runs the app's action).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True)
class Key:
    key: str  # as shown
    what: str
    action: str  # app action (for clicks)
    priority: int  # lower first: kept when the line is short


#: The main screen's keys in display order, with the priority that decides what fits.
MAIN_KEYS: tuple[Key, ...] = (
    Key("g", "merge", "merge", 0),
    Key("k", "split", "split", 1),
    Key("1-4", "label", "label('good')", 0),
    Key("^z", "undo", "undo", 0),
    Key("^y", "redo", "redo", 6),
    Key("v", "views", "views", 3),
    Key("w", "waveforms", "waveforms", 9),
    Key("T", "traces", "traces", 10),
    Key("c", "ccg", "correlograms('ccg')", 4),
    Key("m", "queue", "proposals", 5),
    Key("/", "filter", "prompt('/')", 2),
    Key(":", "cmd", "prompt(':')", 4),
    Key("^s", "export", "export", 7),
    Key("H", "history", "history", 8),
    Key("?", "help", "help", -1),
    Key("q", "quit", "quit", 2),
)


def fit_keys(keys: tuple[Key, ...], width: int) -> list[Key]:
    """The keys that fit in ``width`` columns (``" key what "`` each), by priority, in
    display order."""
    chosen: set[int] = set()
    used = 0
    for i in sorted(range(len(keys)), key=lambda i: (keys[i].priority, i)):
        k = keys[i]
        need = len(k.key) + 1 + len(k.what) + 2
        if used + need <= width:
            chosen.add(i)
            used += need
    return [k for i, k in enumerate(keys) if i in chosen]


def key_text(keys: list[Key]) -> Text:
    text = Text(no_wrap=True, overflow="crop")
    for k in keys:
        text.append(" ")
        text.append(k.key, style="bold #ffb86c")
        text.append(f" {k.what} ", style="")
    return text


class KeyBar(Static):
    """One line of the keys that fit, redrawn on resize."""

    DEFAULT_CSS = """
    KeyBar { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, keys: tuple[Key, ...] = MAIN_KEYS, **kwargs: Any):
        super().__init__("", **kwargs)
        self.keys = keys
        self._width = -1

    def on_resize(self, event: Any) -> None:
        self._redraw(event.size.width)

    def on_mount(self) -> None:
        self._redraw(self.size.width or self.app.size.width)

    def _redraw(self, width: int) -> None:
        if width == self._width:
            return
        self._width = width
        self.shown = fit_keys(self.keys, max(0, width))
        self.update(key_text(self.shown))

    def on_click(self, event: Any) -> None:
        """Run the action of the key under the mouse."""
        x = event.x
        pos = 0
        for k in self.shown:
            w = len(k.key) + len(k.what) + 3
            if pos <= x < pos + w:
                self.run_action(f"app.{k.action}")
                return
            pos += w
