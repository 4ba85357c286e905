"""Command-line subcommands for histories: ``branch``, ``branches``, ``diff``, ``combine``
and ``import``.

:func:`register` is called by :func:`curalog.cli.build_parser` with its ``add`` helper,
which creates a subparser with the ``DIR`` and ``--log`` arguments. Every failure is a
:class:`~curalog.errors.CuralogError` (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from curalog.errors import CuralogError
from curalog.history import (
    CombineResult,
    Difference,
    DiffResult,
    combine,
    create_branch,
    diff_histories,
    event_clusters,
    iso_time,
    list_branches,
)
from curalog.io.phy_import import import_phy
from curalog.io.spikeinterface import import_spikeinterface


class HistoryCliError(CuralogError):
    """A bad argument to a history command."""


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _no_log(args: argparse.Namespace, command: str, hint: str) -> None:
    if getattr(args, "log", None):
        raise HistoryCliError(f"{command} does not use --log; {hint}")


def _ids(xs: list[int], limit: int = 8) -> str:
    if len(xs) > limit:
        return ", ".join(map(str, xs[:limit])) + f", ... ({len(xs)})"
    return ", ".join(map(str, xs))


def _short(h: str) -> str:
    return h[:12] if h else "-"


# ---------------------------------------------------------------------- branch / branches
def cmd_branch(args: argparse.Namespace) -> int:
    source = args.log or args.from_branch
    info = create_branch(args.dir, args.name, at=args.at, from_branch=source, author=args.author)
    parent = info.parent or {}
    print(
        f"created branch {info.name} from {parent.get('name', source)} at #{parent.get('seq', '?')}: {info.path}"
    )
    return 0


def cmd_branches(args: argparse.Namespace) -> int:
    _no_log(args, "branches", "it lists every log in DIR/.curalog")
    branches = list_branches(args.dir)
    if args.json:
        print(json.dumps([b.to_dict() for b in branches], indent=1))
        return 0
    if not branches:
        print(f"no history yet in {args.dir} (the first action creates .curalog/main.log)")
        return 0
    from rich.table import Table

    table = Table(title=f"branches of {args.dir}")
    for col in ("branch", "events", "head", "root", "from", "updated", "authors"):
        table.add_column(col, justify="right" if col == "events" else "left")
    for b in branches:
        if b.error and not b.head:
            table.add_row(b.name, "", "", "", "", "", f"[red]{b.error}[/red]")
            continue
        parent = f"{b.parent.get('name')} #{b.parent.get('seq')}" if b.parent else ""
        updated = b.to_dict()["updated"] or ""
        name = b.name + (" [red](damaged)[/red]" if b.error else "")
        table.add_row(
            name,
            str(b.n_events),
            _short(b.head),
            _short(b.root)[:8],
            parent,
            updated.replace("+00:00", "Z"),
            ", ".join(b.authors),
        )
    _console().print(table)
    return 0


# ---------------------------------------------------------------------- diff
def _diff_rows(
    diffs: list[Difference], name_a: str, name_b: str
) -> list[tuple[str, str, str, str]]:
    rows = []
    for d in diffs:
        who = {"a": name_a, "b": name_b}.get(d.by or "", "")
        kind = f"{d.kind} by {who}" if who else d.kind
        rows.append((kind, _ids(d.a_clusters), _ids(d.b_clusters), f"{d.n_spikes:,}"))
    return rows


def render_diff(result: DiffResult, *, limit: int = 20, console: Any = None) -> None:
    """Print a diff as rich tables (summary, events on each side, differences, labels)."""
    from rich.table import Table

    con = console or _console()
    a, b, o = result.a, result.b, result.outcome
    con.print(
        f"[bold]{a.name}[/bold] ({a.n_events} events, head {_short(a.head)})  vs  "
        f"[bold]{b.name}[/bold] ({b.n_events} events, head {_short(b.head)})"
    )
    if not result.same_root:
        con.print(
            "the two logs were started separately (different headers): no shared events; "
            "outcomes compared from the sorter's output"
        )
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "common history", f"{result.common_prefix} events (base {_short(result.base_head)})"
    )
    summary.add_row("only in " + a.name, str(len(result.only_a)))
    summary.add_row("only in " + b.name, str(len(result.only_b)))
    summary.add_row("clusters", f"{a.name} {o.n_clusters_a}, {b.name} {o.n_clusters_b}")
    renamed = sum(1 for x, y, _ in o.identical if x != y)
    summary.add_row(
        "identical clusters",
        f"{len(o.identical)}" + (f" ({renamed} with different ids)" if renamed else ""),
    )
    summary.add_row(
        "merge / split / other differences", f"{len(o.merges)} / {len(o.splits)} / {len(o.other)}"
    )
    summary.add_row("label disagreements", str(len(o.label_disagreements)))
    summary.add_row(
        "spikes in identical clusters",
        f"{o.n_identical_spikes:,} of {o.n_spikes:,} ({100 * o.agreement:.2f}%)",
    )
    summary.add_row("adjusted Rand index", f"{o.adjusted_rand_index:.6f}")
    con.print(summary)
    for side, events in ((a.name, result.only_a), (b.name, result.only_b)):
        if not events:
            continue
        t = Table(title=f"events only in {side}")
        for col in ("seq", "time", "author", "event", "clusters"):
            t.add_column(col)
        for e in events[:limit]:
            t.add_row(
                str(e.seq),
                (iso_time(e.time_ns) or "").replace("+00:00", "Z"),
                e.author,
                e.summary(),
                _ids(event_clusters(e)),
            )
        con.print(t)
        if len(events) > limit:
            con.print(f"... {len(events) - limit} more (--limit N, or --json)")
    if o.differences:
        t = Table(title="structural differences")
        for col in ("kind", f"clusters in {a.name}", f"clusters in {b.name}", "spikes"):
            t.add_column(col, justify="right" if col == "spikes" else "left")
        rows = _diff_rows(o.differences, a.name, b.name)
        for row in rows[:limit]:
            t.add_row(*row)
        con.print(t)
        if len(rows) > limit:
            con.print(f"... {len(rows) - limit} more")
    if o.label_disagreements:
        t = Table(title="label disagreements on identical clusters")
        for col in (f"cluster in {a.name}", f"cluster in {b.name}", "field", a.name, b.name):
            t.add_column(col)
        for d in o.label_disagreements[:limit]:
            t.add_row(
                str(d.a_cluster),
                str(d.b_cluster),
                d.field,
                repr(d.a_value) if d.a_value is not None else "-",
                repr(d.b_value) if d.b_value is not None else "-",
            )
        con.print(t)
        if len(o.label_disagreements) > limit:
            con.print(f"... {len(o.label_disagreements) - limit} more")
    if o.is_equal and not result.only_a and not result.only_b:
        con.print("[green]identical histories[/green]")
    elif o.is_equal:
        con.print("[green]same outcome[/green] (same clusters, ids and labels)")


def cmd_diff(args: argparse.Namespace) -> int:
    _no_log(args, "diff", "give branch names or log paths as A and B")
    result = diff_histories(args.dir, args.a, args.b)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=1)
        print()
    else:
        render_diff(result, limit=args.limit)
    return 0


# ---------------------------------------------------------------------- combine
def render_combine(result: CombineResult, *, console: Any = None) -> None:
    from rich.table import Table

    con = console or _console()
    con.print(
        f"created branch [bold]{result.name}[/bold] ({result.path}), head {_short(result.head)}: "
        f"{len(result.applied)} actions applied, {len(result.already_in_a)} already there, "
        f"{len(result.conflicts)} conflicts"
    )
    if result.conflicts:
        t = Table(title="conflicts (not applied)")
        for col in ("seq", "event", "reason"):
            t.add_column(col)
        for c in result.conflicts:
            t.add_row(str(c.seq), c.summary, c.reason)
        con.print(t)


def cmd_combine(args: argparse.Namespace) -> int:
    _no_log(args, "combine", "give branch names or log paths as A and B")
    result = combine(args.dir, args.a, args.b, args.into, author=args.author)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        render_combine(result)
    return 1 if result.conflicts else 0


# ---------------------------------------------------------------------- import
def cmd_import(args: argparse.Namespace) -> int:
    if args.from_phy:
        result = import_phy(args.dir, args.log, author=args.author)
        source = "phy"
    else:
        result = import_spikeinterface(
            args.dir, args.from_spikeinterface, args.log, author=args.author
        )
        source = args.from_spikeinterface
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if result.up_to_date:
        print(f"{result.log}: already matches {source}; nothing appended")
    else:
        first, last = result.events[0].seq, result.events[-1].seq
        print(
            f"{result.log}: appended events #{first}-#{last} from {source}: "
            f"{result.n_structural} structural ({result.spikes_changed:,} spikes moved), {result.n_labels} label"
        )
    for k, v in sorted(result.id_map.items()):
        print(f"unit {k} of the file is cluster {v}")
    return 0


# ---------------------------------------------------------------------- registration
AddFn = Callable[..., argparse.ArgumentParser]


def register(add: AddFn) -> None:
    """Add the history subcommands through ``add(name, func, help, author=...)``."""
    p = add(
        "branch",
        cmd_branch,
        "start a new branch (a copy of another history up to a point)",
        author=True,
    )
    p.add_argument("name", metavar="NAME", help="the new branch: DIR/.curalog/NAME.log")
    p.add_argument(
        "--at",
        type=int,
        metavar="SEQ",
        help="fork after this event (default: the head; 0 = the sorter's output)",
    )
    p.add_argument(
        "--from",
        dest="from_branch",
        default="main",
        metavar="BRANCH",
        help="parent branch or log path (default main; --log PATH works too)",
    )

    p = add("branches", cmd_branches, "list the branches of DIR with their heads")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("diff", cmd_diff, "compare two histories: events, clusters, labels, agreement")
    p.add_argument("a", metavar="A", help="branch name or log path")
    p.add_argument("b", metavar="B", help="branch name or log path")
    p.add_argument("--json", action="store_true", help="JSON (schema curalog-diff/1)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="rows per table (default 20)")

    p = add(
        "combine",
        cmd_combine,
        "replay B's actions onto A as a new branch; conflicts are listed, "
        "not guessed (exit status 1 when there are some)",
        author=True,
    )
    p.add_argument("a", metavar="A", help="branch name or log path (kept as is)")
    p.add_argument(
        "b",
        metavar="B",
        help="branch name or log path (its actions after the common history are replayed)",
    )
    p.add_argument("--into", required=True, metavar="NAME", help="the new branch")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add(
        "import",
        cmd_import,
        "append events that reproduce a curation made in phy or SpikeInterface",
        author=True,
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--from-phy",
        action="store_true",
        help="DIR's spike_clusters.npy and cluster_group.tsv as saved by phy",
    )
    g.add_argument(
        "--from-spikeinterface",
        metavar="FILE.json",
        help="a SpikeInterface curation file (format 0, 1 or 2)",
    )


__all__ = [
    "cmd_branch",
    "cmd_branches",
    "cmd_combine",
    "cmd_diff",
    "cmd_import",
    "register",
    "render_combine",
    "render_diff",
]
