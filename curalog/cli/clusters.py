"""``curalog clusters``: the cluster table with every metric, sorted and filtered.

The same table the UI shows (and ``cluster_info.tsv`` holds), for the current state of the
log or any point of its history (``--upto SEQ``): ``id``, ``group``, the label fields, phy's
and curalog's columns, SpikeInterface's quality metrics under SpikeInterface's names
(docs/METRICS.md) and the sorter's columns (``sorter.<name>``). ``--filter`` takes the UI's
filter language (the condition of an autolabel rule: ``isolation_distance > 20 and
group != noise``); ``--sort`` a column (``--desc`` or ``--sort=-COL`` for descending; missing values
last).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from curalog.analysis.autolabel import ALIASES, GROUPS, RuleError, parse_rule
from curalog.analysis.stats.engine import TABLE_COLUMNS
from curalog.analysis.stats.quality import QUALITY_COLUMNS
from curalog.analysis.stats.table import SI_RENAMES, clean, cluster_rows, spikeinterface_names
from curalog.cli.progress import progress_bar
from curalog.cli.waveforms import add_raw_argument
from curalog.curation import open_curation
from curalog.errors import CuralogError

#: Short headers for the text table (phy's / the UI's where they exist).
SHORT = {k: h for k, h, _ in TABLE_COLUMNS} | {c.name: c.short for c in QUALITY_COLUMNS}
SHORT.update({"group": "group", "silhouette": "silh"})


class ClustersArgumentError(CuralogError):
    """A --sort, --columns or --filter that names no column or does not parse."""


def _names(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


def _resolver(names: list[str]) -> Callable[[str, str], str]:
    inverse = {v: k for k, v in SI_RENAMES.items()}
    short = {h: k for k, h in SHORT.items() if k in names}

    def resolve(name: str, what: str) -> str:
        for cand in (name, ALIASES.get(name), inverse.get(name), short.get(name)):
            if cand in names:
                return cand
        raise ClustersArgumentError(
            f"{what}: unknown column {name!r} (columns: {', '.join(names)})"
        )

    return resolve


def compile_filter(text: str, names: list[str]) -> Callable[[dict[str, Any]], bool]:
    """The UI's filter: an autolabel condition; bare group words are values."""
    shorts = {h: k for k, h in SHORT.items() if k in names and h not in names}
    known = set(names) | set(GROUPS) | set(ALIASES) | set(SI_RENAMES.values()) | set(shorts)
    try:
        rule = parse_rule(f"({text}) -> good", known)
    except RuleError as exc:
        msg = str(exc).splitlines()[0].replace(" -> good", "").replace("rule", "filter")
        raise ClustersArgumentError(f"--filter: {msg}") from None
    words = {g: g for g in GROUPS}

    def pred(row: dict[str, Any]) -> bool:
        view = {**words, **row}
        for si, ours in ((v, k) for k, v in SI_RENAMES.items()):
            view.setdefault(si, row.get(ours))
        for short, long in shorts.items():
            view.setdefault(short, row.get(long))
        return rule.matches(view)

    return pred


def _sort_key(col: str, descending: bool) -> Callable[[dict[str, Any]], tuple]:
    def key(row: dict[str, Any]) -> tuple:
        v = clean(row.get(col))
        if v is None:
            return (1, 0.0, "", row["id"])
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return (0, -v if descending else v, "", row["id"])
        return (0, 0.0, str(v), row["id"])

    return key


def _cell(value: Any, fmt: str) -> str:
    value = clean(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        if fmt in ("d", "s"):
            fmt = ".4g"
        text = f"{value:{fmt}}"
        return text if abs(value) < 1e5 or "e" in text else f"{value:.3g}"
    return str(value)


def cmd_clusters(args: argparse.Namespace) -> int:
    with open_curation(args.dir, args.log, readonly=True, upto=args.upto, raw=args.raw) as cur:
        if args.upto is not None:
            cur.require_intact(args.upto)
            if args.upto > len(cur.events) and args.upto > cur.seq:
                raise ClustersArgumentError(
                    f"--upto {args.upto}: the log has only {cur.seq} events"
                )
        if args.raw and cur.recording is None:
            raise ClustersArgumentError(f"--raw: {cur.recording_error}")
        with progress_bar("computing metrics", cur.n_clusters) as progress:
            rows = cluster_rows(cur, progress=progress)
    names = _names(rows)
    resolve = _resolver(names)
    if args.filter:
        pred = compile_filter(args.filter, names)
        rows = [r for r in rows if pred(r)]
    if args.sort:
        desc = args.sort.startswith("-") or args.desc
        col = resolve(args.sort.lstrip("-"), "--sort")
        rows.sort(key=_sort_key(col, desc))
    if args.columns:
        cols = [resolve(c.strip(), "--columns") for c in args.columns.split(",") if c.strip()]
        for must in ("id",):
            if must not in cols:
                cols.insert(0, must)
    else:
        cols = names
    out = sys.stdout
    if args.json:
        json.dump([spikeinterface_names({c: r.get(c) for c in cols}) for r in rows], out, indent=1)
        out.write("\n")
    elif args.tsv:
        out.write("\t".join(SI_RENAMES.get(c, c) for c in cols) + "\n")
        for r in rows:
            out.write(
                "\t".join("" if clean(r.get(c)) is None else str(clean(r.get(c))) for c in cols)
                + "\n"
            )
    else:
        fmts = {k: f for k, _, f in TABLE_COLUMNS} | {c.name: c.fmt for c in QUALITY_COLUMNS}
        heads = [SHORT.get(c, c) for c in cols]
        cells = [[_cell(r.get(c), fmts.get(c, "s")) for c in cols] for r in rows]
        widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
        out.write("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)) + "\n")
        for row in cells:
            out.write("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + "\n")
        if not rows:
            out.write("(no clusters match)\n")
    return 0


def register(add: Callable[..., Any]) -> None:
    """Add the ``clusters`` subcommand to curalog's parser."""
    p = add(
        "clusters",
        cmd_clusters,
        "the cluster table with every metric (SpikeInterface's quality metrics included)",
    )
    p.add_argument(
        "--sort",
        metavar="COL",
        help="sort by a column (missing values last); --sort=-COL or --desc: descending",
    )
    p.add_argument("--desc", action="store_true", help="sort in descending order")
    p.add_argument(
        "--filter",
        metavar="EXPR",
        help='keep clusters matching the UI\'s filter, e.g. "snr > 5 and group != noise" '
        "(columns as in --json, phy's short names, 'sorter.<name>' for the sorter's own)",
    )
    p.add_argument(
        "--columns", metavar="A,B", help="columns to show, comma-separated (default: all)"
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        action="store_true",
        help="a JSON list of rows: id, group, label fields, metrics under SpikeInterface's names",
    )
    fmt.add_argument("--tsv", action="store_true", help="tab-separated, one header line")
    p.add_argument(
        "--upto", type=int, metavar="SEQ", help="the state after this event (default: the latest)"
    )
    add_raw_argument(p)
