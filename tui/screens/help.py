"""The help screen: every key (from the app's bindings), the commands and filter examples."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "slash": "/",
    "colon": ":",
    "question_mark": "?",
    "space": "space",
    "shift+space": "shift+space",
}

#: Keys explained better together than binding by binding: ``(keys, what, actions)``;
#: the bindings of ``actions`` are not listed again (no key appears twice in the help).
EXTRA_KEYS = [
    ("down / up", "next / previous best cluster (skips noise and mua, like phy)", ()),
    ("home / end", "first / last cluster", ()),
    ("tab", "switch between the cluster and the similarity tables", ()),
    (
        "space / shift+space, n / p",
        "next / previous similar cluster (skips noise and mua)",
        ("next_similar", "prev_similar"),
    ),
    ("x", "mark / unmark the cluster under the cursor", ("toggle_mark",)),
    ("escape", "clear marks, then the filter; closes the prompt and screens", ("clear",)),
    ("s", "sort prompt (':sort COLUMN [asc|desc]')", ("prompt(':', 'sort ')",)),
    ("d", "toggle the detail panel", ("toggle_detail",)),
    ("?, h", "this help", ("help",)),
]

COMMANDS = [
    ("merge [IDS]", "merge the given clusters, or the marked ones, or best + similar"),
    ("label GROUP [IDS]", "good | mua | noise | unsorted"),
    ("label FIELD=VALUE [IDS]", "set a free label field (empty value clears)"),
    ("select IDS", "select clusters: 3 7 12, 4-9, 1,2,3"),
    (
        "sort COLUMN [asc|desc]",
        "n_spikes, fr, amp, depth, ch, isi, contam, pres, any sorter column",
    ),
    ("filter EXPR", "same as '/'"),
    ("split", "open the split screen"),
    ("undo | redo | history | export [DIR] | note TEXT | help | quit", ""),
]

FILTERS = [
    "n_spikes > 500 and group != noise",
    "group == good",
    "isi < 0.5 and pres > 0.9",
    "KSLabel == 'good' and amp > 50",
    "abs(depth - 1200) < 200",
]


def _key(binding: Binding) -> str:
    return ", ".join(KEY_NAMES.get(k, k) for k in binding.key.split(","))


def _grid(key_width: int) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True, width=key_width)
    table.add_column(ratio=1)
    return table


def help_text(bindings: Iterable[BindingType]) -> Group:
    """Every key once: bindings of one action on one line (``1, alt+g  label good``), the
    keys of :data:`EXTRA_KEYS` with their longer explanation instead of their bindings."""
    keys = _grid(max(len(k) for k, _, _ in EXTRA_KEYS))
    covered = {a for _, _, actions in EXTRA_KEYS for a in actions}
    rows: dict[str, list[Any]] = {}
    for b in bindings:
        if not isinstance(b, Binding) or not b.description or b.action in covered:
            continue
        row = rows.setdefault(b.action, [[], b.description])
        for k in _key(b).split(", "):
            if k not in row[0]:
                row[0].append(k)
    for action, (ks, what) in rows.items():
        what = f"label {what}" if action.startswith("label") else what
        keys.add_row(Text(", ".join(ks)), Text(what))
    for key, label, _ in EXTRA_KEYS:
        keys.add_row(Text(key), Text(label))
    commands = Table.grid(padding=(0, 2))
    commands.add_column(style="bold cyan", ratio=2)
    commands.add_column(ratio=3)
    for cmd, label in COMMANDS:
        commands.add_row(Text(cmd), Text(label))
    filters = Text("\n".join(f"  {f}" for f in FILTERS), style="cyan")
    return Group(
        Text("Keys", style="bold underline"),
        keys,
        Text(""),
        Text("Commands (:)", style="bold underline"),
        commands,
        Text(""),
        Text("Filters (/)", style="bold underline"),
        filters,
    )


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; any of escape, q, ? or h closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark,h", "dismiss", "close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; height: 90%; border: thick $accent; padding: 0 1;
                                  background: $surface; }
    """

    def __init__(self, bindings: Iterable[BindingType]):
        super().__init__()
        self._key_list = list(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll() as v:
            v.border_title = "curalog keys  (escape closes)"
            yield Static(help_text(self._key_list), id="help-text")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)


class KeyTableHelp(HelpScreen):
    """A help screen listing a screen's own ``(key, what)`` pairs (subclasses set them)."""

    TITLE = "keys"
    KEY_WIDTH = 10

    def keys(self) -> Iterable[tuple[str, str]]:
        return ()

    def compose(self) -> ComposeResult:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, width=self.KEY_WIDTH)
        table.add_column(ratio=1)
        for key, what in self.keys():
            table.add_row(key, what)
        with VerticalScroll() as v:
            v.border_title = f"{self.TITLE}  (escape closes)"
            yield Static(table, id="help-text")
