"""The table filter (``/``): curalog's safe rule language (:mod:`curalog.analysis.autolabel`), reused.

A filter is the condition part of an autolabel rule, e.g.::

    n_spikes > 1000 and fr >= 0.5
    group == 'good'          (or: group == good; unsorted clusters have group 'unsorted')
    isi_violations_ratio < 0.1 or not (KSLabel == 'mua')
    abs(depth - 1200) < 100

Nothing is passed to ``eval``. Columns are the table's (short or long names); a cluster
whose statistics are still being computed has missing values, and a comparison with a
missing value is false.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from curalog.analysis.autolabel import RuleError, parse_condition

#: Bare group words usable as values (``group == good``): rows carry them as constants.
GROUP_WORDS = ("good", "mua", "noise", "unsorted")


class FilterError(ValueError):
    """A filter that cannot be parsed or names an unknown column."""


Row = Mapping[str, Any]


def compile_filter(text: str, names: Iterable[str]) -> Callable[[Row], bool]:
    """A predicate over a row ``{column: value}``; raises :class:`FilterError` (one line)."""
    source = text.strip()
    if not source:
        return lambda row: True
    known = set(names) | set(GROUP_WORDS)
    try:
        rule = parse_condition(source, known)
    except RuleError as exc:
        msg = str(exc).splitlines()[0].replace("end of rule", "end of filter")
        raise FilterError(f"filter: {msg}") from None
    words = {w: w for w in GROUP_WORDS}

    def predicate(row: Row) -> bool:
        return rule.matches(_WithWords(row, words))

    return predicate


class _WithWords(Mapping[str, Any]):
    """A row that also answers the bare group words with themselves."""

    __slots__ = ("_row", "_words")

    def __init__(self, row: Row, words: dict[str, str]):
        self._row = row
        self._words = words

    def __getitem__(self, key: str) -> Any:
        if key in self._row:
            return self._row[key]
        return self._words[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self):  # pragma: no cover - not used by the evaluator
        yield from self._row
        yield from self._words

    def __len__(self) -> int:  # pragma: no cover
        return len(self._row) + len(self._words)
