"""The ``:`` command prompt: parsing only (the app executes the parsed command).

Commands (phy's snippet names are accepted as aliases)::

    merge [IDS]            g      merge the given clusters, or the selection
    split                  k      open the split screen for the selected cluster
    label GROUP [IDS]      l      good | mua | noise | unsorted
    label FIELD=VALUE [IDS]       a free label field (VALUE: number or text; empty clears)
    select IDS             c      select clusters (``1 2 3``, ``1,2,3``, ``4-7``)
    sort COLUMN [asc|desc] s      sort the cluster table (prefix of a column name is enough)
    filter [EXPR]          f      filter the cluster table (empty: clear)
    undo | redo | export [DIR] | history | help | quit | note TEXT
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

ALIASES = {
    "g": "merge",
    "k": "split",
    "l": "label",
    "c": "select",
    "s": "sort",
    "f": "filter",
    "u": "undo",
    "r": "redo",
    "q": "quit",
    "h": "help",
    "?": "help",
    "e": "export",
}
COMMANDS = (
    "merge",
    "split",
    "label",
    "select",
    "sort",
    "filter",
    "undo",
    "redo",
    "export",
    "history",
    "help",
    "quit",
    "note",
)
GROUP_NAMES = ("good", "mua", "noise", "unsorted")


class CommandError(ValueError):
    """A command line that cannot be parsed."""


@dataclass
class Command:
    name: str
    ids: list[int] = field(default_factory=list)
    group: str | None = None  # label: a group name
    field_name: str | None = None  # label: a free field
    value: str | int | float | None = None
    column: str | None = None  # sort
    descending: bool | None = None
    text: str = ""  # filter expression, note text, export path


def parse_ids(tokens: list[str]) -> list[int]:
    """``['1', '2,3', '5-7']`` -> ``[1, 2, 3, 5, 6, 7]`` (order kept, duplicates dropped)."""
    out: list[int] = []
    for tok in tokens:
        for part in tok.replace(",", " ").split():
            try:
                if "-" in part.strip("-") and not part.startswith("-"):
                    lo, hi = part.split("-", 1)
                    a, b = int(lo), int(hi)
                    if b < a or b - a > 100_000:
                        raise CommandError(f"bad range {part!r}")
                    out.extend(range(a, b + 1))
                else:
                    out.append(int(part))
            except ValueError:
                raise CommandError(f"{part!r} is not a cluster id") from None
    return list(dict.fromkeys(out))


def parse_value(text: str) -> str | int | float | None:
    """phy's rule for snippet arguments: int, then float, then text; empty clears."""
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def parse_command(line: str) -> Command:
    """Parse one prompt line (without the leading ``:``)."""
    line = line.strip().lstrip(":").strip()
    if not line:
        raise CommandError("empty command")
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"cannot parse {line!r}: {exc}") from None
    head, args = tokens[0].lower(), tokens[1:]
    name = ALIASES.get(head, head)
    if name not in COMMANDS:
        raise CommandError(f"unknown command {head!r} (try: {', '.join(COMMANDS)})")
    if name == "merge":
        return Command("merge", ids=parse_ids(args))
    if name == "select":
        ids = parse_ids(args)
        if not ids:
            raise CommandError("select: give cluster ids, e.g. 'select 3 7 12' or 'select 4-9'")
        return Command("select", ids=ids)
    if name == "label":
        if not args:
            raise CommandError("label: give a group (good, mua, noise, unsorted) or FIELD=VALUE")
        what, rest = args[0], args[1:]
        if "=" in what:
            fname, _, raw = what.partition("=")
            if not fname:
                raise CommandError("label: FIELD=VALUE needs a field name")
            return Command("label", ids=parse_ids(rest), field_name=fname, value=parse_value(raw))
        if what.lower() in GROUP_NAMES:
            return Command("label", ids=parse_ids(rest), group=what.lower())
        if rest and what.lower() == "group" and rest[0].lower() in GROUP_NAMES:
            return Command("label", ids=parse_ids(rest[1:]), group=rest[0].lower())
        if len(rest) >= 1:  # phy style ':l field value'
            return Command(
                "label", ids=parse_ids(rest[1:]), field_name=what, value=parse_value(rest[0])
            )
        raise CommandError(f"label: {what!r} is not a group; use FIELD=VALUE for a free field")
    if name == "sort":
        if not args:
            raise CommandError("sort: give a column, e.g. 'sort amp' or 'sort n_spikes asc'")
        desc = None
        if len(args) > 1:
            order = args[1].lower()
            if order not in ("asc", "desc"):
                raise CommandError("sort: order is 'asc' or 'desc'")
            desc = order == "desc"
        return Command("sort", column=args[0], descending=desc)
    if name in ("filter", "note", "export"):
        return Command(
            name, text=" ".join(args) if name != "filter" else line[len(tokens[0]) :].strip()
        )
    if args:
        raise CommandError(f"{name} takes no arguments")
    return Command(name)
