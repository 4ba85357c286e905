"""Rule-based auto-labelling: a small, safe expression language over the metric columns.

A rule is ``CONDITION -> GROUP``, e.g. ``isi_violations_ratio > 0.5 -> mua``. Rules are
evaluated in order for each cluster and the **first matching rule wins**; a cluster that
matches no rule gets no decision (its label is left alone). Nothing is ever passed to
Python's ``eval``: the text is tokenised and parsed by a recursive-descent parser into a
small tree that is evaluated against one row of the statistics table.

Grammar::

    rule       := expr '->' GROUP                GROUP: good | mua | noise | unsorted
    expr       := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | comparison
    comparison := sum (('<' | '<=' | '>' | '>=' | '==' | '!=') sum)*   chained like Python
    sum        := product (('+' | '-') product)*
    product    := unary (('*' | '/') unary)*
    unary      := '-' unary | primary
    primary    := NUMBER | STRING | 'true' | 'false' | NAME | NAME '(' expr ')' | '(' expr ')'

Names are column names (``n_spikes``, ``firing_rate``, ``isi_violations_ratio``,
``rp_contamination``, ``presence_ratio``, ``amplitude_cutoff``, ``amplitude_median``,
``template_amplitude``, ``depth``, ``shank``, ``peak_to_trough_ms``, every SpikeInterface
quality metric of :data:`curalog.analysis.stats.quality.QUALITY_COLUMNS` (``snr``,
``isolation_distance``, ``l_ratio``, ``d_prime``, ``nn_hit_rate``, ``silhouette``,
``sliding_rp_violation``, ``drift_ptp``, ...), sorter columns such as ``KSLabel`` or
``ContamPct`` (always also as ``sorter.<name>``; a sorter column named like a computed one is
*only* ``sorter.<name>``), ...), or phy's short names ``fr``, ``amp``, ``sh`` and
SpikeInterface's ``num_spikes`` and ``peak_to_valley``. Functions: ``abs(x)``, ``isnan(x)`` (true for a missing
value). Strings are quoted with ``'`` or ``"``.

Missing values: a column a cluster does not have (e.g. ``KSLabel`` for a merged cluster) and
NaN metrics (e.g. ``amplitude_cutoff`` below 500 spikes) are *missing*; arithmetic on a
missing value is missing, and every comparison involving a missing value is false (so
``not (x < 1)`` is true for a missing ``x``, like IEEE NaN; SpikeInterface's bombcell port
also lets NaN metrics pass). Comparing a string with a number is false (``!=`` is true).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from curalog.analysis.stats.quality import QUALITY_NAMES

__all__ = [
    "GROUPS",
    "ALIASES",
    "DEFAULT_RULES",
    "Rule",
    "RuleError",
    "parse_rule",
    "parse_rules",
    "evaluate_rules",
    "autolabel_decisions",
]

GROUPS = ("good", "mua", "noise", "unsorted")

#: Other names accepted for columns (phy's short headers, SpikeInterface's names).
ALIASES = {
    "fr": "firing_rate",
    "amp": "template_amplitude",
    "sh": "shank",
    "num_spikes": "n_spikes",
    "isi_violation": "isi_violations_ratio",
    "n": "n_spikes",
    "peak_to_valley": "peak_to_trough_duration",  # SpikeInterface's former name
}

#: Default rules in the spirit of bombcell's noise / MUA / good classes (Fabre et al.,
#: bombcell; thresholds from its published defaults, docs/CURATION_ECOSYSTEM.md section 4.4),
#: restricted to what a Kilosort folder gives without raw data (no SNR, no raw amplitude,
#: no PC-based isolation):
#:
#: 1. noise: waveform duration (peak-to-trough of the dominant template on its best channel)
#:    outside bombcell's 0.1-1.15 ms somatic range;
#: 2. mua: more than 20 % of spikes estimated missing (amplitude cutoff > 0.2);
#: 3. mua: fewer than 300 spikes;
#: 4. mua: refractory-period contamination above 10 % (Llobet ``rp_contamination``, which
#:    SpikeInterface's bombcell port accepts in place of the sliding RP metric);
#: 5. mua: presence ratio below 0.7 (60 s bins);
#: 6. good: everything else.
#:
#: Missing metrics (NaN) pass, as in SpikeInterface's port: e.g. a recording shorter than
#: 60 s has no presence ratio and is not made MUA by rule 5.
DEFAULT_RULES: tuple[str, ...] = (
    "peak_to_trough_ms < 0.1 or peak_to_trough_ms > 1.15 -> noise",
    "amplitude_cutoff > 0.2 -> mua",
    "n_spikes < 300 -> mua",
    "rp_contamination > 0.1 -> mua",
    "presence_ratio < 0.7 -> mua",
    "true -> good",
)


class RuleError(ValueError):
    """A rule that cannot be parsed or evaluated; the message points at the culprit."""


# ---------------------------------------------------------------------- tokenizer
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<arrow>->)
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\))
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, arrow, op, name, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split a rule into tokens; an unknown character is a :class:`RuleError`."""
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise RuleError(_point(text, pos, f"unexpected character {text[pos]!r}"))
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, m.group(), pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


def _point(text: str, pos: int, message: str) -> str:
    shown = (
        text if len(text) <= 200 else text[: max(0, pos - 20)][:60] + " ... " + text[pos : pos + 60]
    )
    caret = f"\n  {' ' * (pos + 1)}^" if len(text) <= 200 else ""
    return f"{message} at column {pos + 1}: {shown!r}{caret}"


# ---------------------------------------------------------------------- tree
class _Missing:
    """A missing value (absent column, NaN, None)."""

    def __repr__(self) -> str:
        return "missing"


MISSING: Any = _Missing()


def _norm(value: Any) -> Any:
    if value is None or value is MISSING:
        return MISSING
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return MISSING if isinstance(value, float) and math.isnan(value) else value
    if hasattr(value, "item"):  # numpy scalars
        return _norm(value.item())
    return value


@dataclass(frozen=True)
class Node:
    op: str  # num, str, bool, name, neg, not, and, or, cmp, arith, call
    args: tuple[Any, ...]

    def eval(self, row: Mapping[str, Any]) -> Any:
        op, a = self.op, self.args
        if op in ("num", "str", "bool"):
            return a[0]
        if op == "name":
            return _norm(row.get(a[0], MISSING))
        if op == "neg":
            v = a[0].eval(row)
            return -v if _is_number(v) else MISSING
        if op == "not":
            return not _truth(a[0].eval(row))
        if op == "and":
            return all(_truth(x.eval(row)) for x in a)
        if op == "or":
            return any(_truth(x.eval(row)) for x in a)
        if op == "cmp":
            left = a[0].eval(row)
            for cmp_op, right_node in zip(a[1], a[2], strict=True):
                right = right_node.eval(row)
                if not _compare(cmp_op, left, right):
                    return False
                left = right
            return True
        if op == "arith":
            left = a[0].eval(row)
            for ar_op, right_node in zip(a[1], a[2], strict=True):
                right = right_node.eval(row)
                if not (_is_number(left) and _is_number(right)):
                    return MISSING
                if ar_op == "+":
                    left = left + right
                elif ar_op == "-":
                    left = left - right
                elif ar_op == "*":
                    left = left * right
                else:
                    left = left / right if right != 0 else MISSING
            return left
        if op == "call":
            name, arg = a
            v = arg.eval(row)
            if name == "isnan":
                return v is MISSING
            if name == "abs":
                return abs(v) if _is_number(v) else MISSING
        raise RuleError(f"cannot evaluate {op}")  # pragma: no cover - parser guarantees

    def names(self) -> set[str]:
        if self.op == "name":
            return {self.args[0]}
        out: set[str] = set()
        for x in self.args:
            items = x if isinstance(x, tuple) else (x,)
            for y in items:
                if isinstance(y, Node):
                    out |= y.names()
        return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float))  # bool is an int: true + true == 2


def _truth(v: Any) -> bool:
    if v is MISSING:
        return False
    return bool(v)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is MISSING or right is MISSING:
        return False
    if isinstance(left, str) != isinstance(right, str):
        return op == "!="
    try:
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        if op == ">=":
            return left >= right
        if op == "==":
            return left == right
        return left != right
    except TypeError:
        return op == "!="


_FUNCTIONS = ("abs", "isnan")
_KEYWORDS = ("and", "or", "not", "true", "false")
_CMP = ("<", "<=", ">", ">=", "==", "!=")


#: Deepest nesting of parentheses, ``not`` and unary minus a rule may use (a recursive
#: descent parser would otherwise end in a RecursionError far deeper).
MAX_NESTING = 50


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nested more than {MAX_NESTING} levels deep")

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> RuleError:
        tok = tok or self.peek()
        return RuleError(_point(self.text, tok.pos, message))

    def expect(self, kind: str, text: str | None = None) -> Token:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind
            got = tok.text or "end of rule"
            raise self.error(f"expected {want!r}, got {got!r}")
        return self.take()

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text.lower() == word

    def expr(self) -> Node:
        parts = [self.and_expr()]
        while self.is_word("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Node("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.is_word("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def not_expr(self) -> Node:
        if self.is_word("not"):
            self.take()
            self.enter()
            node = Node("not", (self.not_expr(),))
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        ops: list[str] = []
        rights: list[Node] = []
        while self.peek().kind == "op" and self.peek().text in _CMP:
            ops.append(self.take().text)
            rights.append(self.sum())
        if not ops:
            return left
        return Node("cmp", (left, tuple(ops), tuple(rights)))

    def _chain(self, sub, symbols: tuple[str, ...]) -> Node:
        left = sub()
        ops: list[str] = []
        rights: list[Node] = []
        while self.peek().kind == "op" and self.peek().text in symbols:
            ops.append(self.take().text)
            rights.append(sub())
        if not ops:
            return left
        return Node("arith", (left, tuple(ops), tuple(rights)))

    def sum(self) -> Node:
        return self._chain(self.product, ("+", "-"))

    def product(self) -> Node:
        return self._chain(self.unary, ("*", "/"))

    def unary(self) -> Node:
        if self.peek().kind == "op" and self.peek().text == "-":
            self.take()
            self.enter()
            node = Node("neg", (self.unary(),))
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "num":
            self.take()
            value = float(tok.text)
            return Node(
                "num",
                (
                    int(value)
                    if value.is_integer() and "." not in tok.text and "e" not in tok.text.lower()
                    else value,
                ),
            )
        if tok.kind == "str":
            self.take()
            return Node("str", (tok.text[1:-1],))
        if tok.kind == "op" and tok.text == "(":
            self.take()
            self.enter()
            node = self.expr()
            self.expect("op", ")")
            self.depth -= 1
            return node
        if tok.kind == "name":
            word = tok.text.lower()
            if word in ("true", "false"):
                self.take()
                return Node("bool", (word == "true",))
            if word in ("and", "or", "not"):
                raise self.error(f"unexpected {tok.text!r}")
            self.take()
            if self.peek().kind == "op" and self.peek().text == "(":
                if word not in _FUNCTIONS:
                    raise self.error(
                        f"unknown function {tok.text!r} (known: {', '.join(_FUNCTIONS)})", tok
                    )
                self.take()
                self.enter()
                arg = self.expr()
                self.expect("op", ")")
                self.depth -= 1
                return Node("call", (word, arg))
            return Node("name", (ALIASES.get(tok.text, tok.text),))
        got = tok.text or "end of rule"
        raise self.error(f"expected a number, a column or '(', got {got!r}")


@dataclass(frozen=True)
class Rule:
    """A parsed rule: ``condition -> group``; ``text`` is the rule as written (provenance)."""

    text: str
    condition: Node
    group: str

    @property
    def columns(self) -> set[str]:
        """Column names the rule reads (aliases resolved)."""
        return self.condition.names()

    def matches(self, row: Mapping[str, Any]) -> bool:
        return _truth(self.condition.eval(row))


def parse_rule(text: str, columns: Iterable[str] | None = None) -> Rule:
    """Parse ``CONDITION -> GROUP``.

    With ``columns`` (the known column names), an unknown name is an error listing them.
    """
    p = _Parser(text)
    if p.peek().kind == "end":
        raise RuleError("empty rule (expected 'CONDITION -> GROUP')")
    cond = p.expr()
    if p.peek().kind != "arrow":
        got = p.peek().text or "end of rule"
        raise p.error(f"expected '->' then a group ({', '.join(GROUPS)}), got {got!r}")
    p.take()
    tok = p.expect("name")
    group = tok.text.lower()
    if group not in GROUPS:
        raise p.error(f"unknown group {tok.text!r} (one of {', '.join(GROUPS)})", tok)
    if p.peek().kind != "end":
        raise p.error(f"unexpected {p.peek().text!r} after the group")
    rule = Rule(text.strip(), cond, group)
    if columns is not None:
        known = set(columns)
        unknown = sorted(rule.columns - known)
        if unknown:
            raise RuleError(
                f"unknown column {unknown[0]!r} in rule {text!r} (columns: {', '.join(sorted(known))})"
            )
    return rule


def parse_condition(text: str, columns: Iterable[str] | None = None) -> Rule:
    """Parse a bare ``CONDITION`` (a table filter): a :class:`Rule` whose group is ``""``.

    Errors point into ``text`` exactly as typed (nothing is added around it).
    """
    p = _Parser(text)
    if p.peek().kind == "end":
        raise RuleError("empty condition")
    cond = p.expr()
    if p.peek().kind != "end":
        raise p.error(f"unexpected {p.peek().text!r}")
    rule = Rule(text.strip(), cond, "")
    if columns is not None:
        unknown = sorted(rule.columns - set(columns))
        if unknown:
            raise RuleError(
                f"unknown column {unknown[0]!r} (columns: {', '.join(sorted(set(columns)))})"
            )
    return rule


def parse_rules(rules: Iterable[str | Rule], columns: Iterable[str] | None = None) -> list[Rule]:
    cols = None if columns is None else list(columns)
    return [r if isinstance(r, Rule) else parse_rule(r, cols) for r in rules]


def evaluate_rules(
    rules: Iterable[str | Rule], table: Mapping[int, Mapping[str, Any]]
) -> dict[int, tuple[str, str]]:
    """``{cluster_id: (group, rule_text)}``: for each cluster the first rule that matches.

    Clusters that match no rule are absent.
    """
    parsed = parse_rules(rules)
    out: dict[int, tuple[str, str]] = {}
    for cid, row in table.items():
        for rule in parsed:
            if rule.matches(row):
                out[int(cid)] = (rule.group, rule.text)
                break
    return out


def _as_table(source: Any) -> dict[int, Mapping[str, Any]]:
    if hasattr(source, "table_rows"):
        source = source.table_rows()
    if isinstance(source, Mapping):
        return {int(k): v for k, v in source.items()}
    return {int(row["id"]): row for row in source}


def autolabel_decisions(
    source: Any, rules: Iterable[str | Rule] = DEFAULT_RULES
) -> list[tuple[int, str, str]]:
    """Decisions ``[(cluster_id, group, rule_text)]`` sorted by id.

    ``source`` is a :class:`~curalog.analysis.stats.engine.StatsEngine` (its ``table_rows()`` over
    the live clusters), a mapping ``{cluster_id: row}``, or a list of rows with an ``id``.
    Rule texts are parsed first, and an unknown column is reported before anything is
    decided (columns = the union of the rows' keys and the metric columns).
    """
    table = _as_table(source)
    known: set[str] = {
        "id",
        "n_spikes",
        "template",
        "ch",
        "best_channel",
        "shank",
        "depth",
        "firing_rate",
        "template_amplitude",
        "amplitude_median",
        "isi_violations_ratio",
        "isi_violations_count",
        "rp_contamination",
        "rp_violations",
        "presence_ratio",
        "amplitude_cutoff",
        "peak_to_trough_ms",
        "amplitude_median_npy",
        "silhouette",
        *QUALITY_NAMES,
    }
    for row in table.values():
        known.update(row.keys())
    parsed = parse_rules(rules, known)
    decided = evaluate_rules(parsed, table)
    return [(cid, g, text) for cid, (g, text) in sorted(decided.items())]
