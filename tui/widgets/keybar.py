"""The key bar of the main screen and the raw views: the keys that fit the terminal's
width, most useful first.

Textual's Footer shows every binding in one line and cuts what does not fit (at 80 columns:
``4 unsor▏``). This bar picks keys by priority until the line is full, shows them in their
usual order, and never cuts a word; ``?`` (every key) is always there. Each key is
clickable (runs the app's action, or the screen's for a screen's own keys). It is also one
Static where Footer composes a widget per key: pushing the waveform view with it instead of
Footer costs about 40 ms less at 200x60 (bench/bench_recording.py).
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


#: How the raw views' binding key names read in a bar.
_GLYPHS = {
    "escape": "esc",
    "plus": "+",
    "minus": "-",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "question_mark": "?",
}


def bar_keys(bindings: Any, priority: dict[str, int], quit_priority: int) -> tuple[Key, ...]:
    """A screen's bar from its own ``BINDINGS``: every shown binding (its first key, its
    description, its action) in order, ranked by ``priority[action]``, then the app's quit.

    The bar is one Static, not Textual's Footer, so it cannot read the bindings itself; built
    from them, it cannot drift from what the keys do."""
    keys = []
    for b in bindings:
        if not b.show:
            continue
        first = b.key.split(",")[0]
        keys.append(Key(_GLYPHS.get(first, first), b.description, b.action, priority[b.action]))
    keys.append(Key("q", "quit", "app.quit", quit_priority))
    return tuple(keys)


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

    def __init__(self, keys: tuple[Key, ...] = MAIN_KEYS, namespace: str = "app", **kwargs: Any):
        super().__init__("", **kwargs)
        self.keys = keys
        self.namespace = namespace  # whose actions the keys name: "app" or "screen"
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

    async def on_click(self, event: Any) -> None:
        """Run the action of the key under the mouse (awaited: ``run_action`` is a
        coroutine; not awaiting it made every click a no-op)."""
        x = event.x
        pos = 0
        for k in self.shown:
            w = len(k.key) + len(k.what) + 3
            if pos <= x < pos + w:
                qualified = "." in k.action.split("(")[0]  # e.g. "app.quit" on a screen
                await self.run_action(k.action if qualified else f"{self.namespace}.{k.action}")
                return
            pos += w
