"""``curalog proposals`` and ``curalog evaluate``: merge proposals from the command line.

``curalog proposals DIR`` lists the merge proposals of the current state (best first, with
their score and a one-line reason); ``--accept-all --min-score X`` applies them greedily as
ordinary merge events whose provenance (``meta["proposal"]``) records the proposal, its
evidence and its scores. ``curalog evaluate DIR --truth FILE`` measures the proposals against
a ground truth on a scratch log (the dataset's own logs are never touched).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from curalog.analysis.evaluate import DEFAULT_THRESHOLDS, evaluate, format_table
from curalog.analysis.proposals import DEFAULT_MIN_SCORE, ProposalEngine
from curalog.curation import open_curation
from curalog.errors import CuralogError


class ProposalArgumentError(CuralogError):
    """A bad argument of ``curalog proposals`` or ``curalog evaluate``."""


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _check_score(value: float | None, what: str = "--min-score") -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ProposalArgumentError(f"{what} must be between 0 and 1 (got {value:g})")


def cmd_proposals(args: argparse.Namespace) -> int:
    _check_score(args.min_score)
    if args.limit is not None and args.limit < 0:
        raise ProposalArgumentError("--limit must be >= 0")
    if args.accept_all:
        if args.min_score is None:
            raise ProposalArgumentError(
                f"--accept-all needs an explicit --min-score ({DEFAULT_MIN_SCORE:g} is the documented threshold)"
            )
        return _accept_all(args)
    min_score = DEFAULT_MIN_SCORE if args.min_score is None else args.min_score
    with open_curation(args.dir, args.log, readonly=True) as cur:
        engine = ProposalEngine(cur)
        props = engine.proposals(min_score, args.limit)
        n_clusters = cur.n_clusters
    if args.json:
        print(
            json.dumps(
                {
                    "min_score": min_score,
                    "clusters": n_clusters,
                    "proposals": [p.to_dict() for p in props],
                },
                indent=1,
            )
        )
        return 0
    from rich.table import Table

    con = _console()
    if not props:
        con.print(
            f"no merge proposal reaches {min_score:g} among {n_clusters} clusters "
            "(--min-score 0 lists every candidate)"
        )
        return 0
    table = Table(
        title=f"{len(props)} merge proposals with score >= {min_score:g} ({n_clusters} clusters)"
    )
    for col, just in (
        ("#", "right"),
        ("a", "right"),
        ("b", "right"),
        ("score", "right"),
        ("spikes a", "right"),
        ("spikes b", "right"),
        ("reason", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for i, p in enumerate(props, 1):
        table.add_row(
            str(i),
            str(p.a),
            str(p.b),
            f"{p.score:.3f}",
            f"{int(p.evidence['n_a']):,}",
            f"{int(p.evidence['n_b']):,}",
            p.reason,
        )
    con.print(table)
    con.print(
        f"accept them with: curalog proposals {args.dir} --accept-all --min-score {min_score:g}"
    )
    return 0


def _accept_all(args: argparse.Namespace) -> int:
    con = _console() if not args.json else None
    merges: list[dict[str, Any]] = []
    with open_curation(args.dir, args.log, author=args.author) as cur:
        before = cur.n_clusters
        engine = ProposalEngine(cur)

        def done(prop: Any, new: int) -> None:
            merges.append(
                {
                    "a": prop.a,
                    "b": prop.b,
                    "new": new,
                    "score": round(prop.score, 4),
                    "seq": cur.seq,
                    "reason": prop.reason,
                }
            )
            if con is not None and args.verbose:
                con.print(
                    f"  merge {prop.a} + {prop.b} -> {new}  (score {prop.score:.3f}: {prop.reason})"
                )

        if con is not None and not args.verbose:
            with con.status(f"accepting proposals with score >= {args.min_score:g}"):
                engine.accept_all(args.min_score, max_merges=args.max_merges, callback=done)
        else:
            engine.accept_all(args.min_score, max_merges=args.max_merges, callback=done)
        after = cur.n_clusters
    if args.json:
        print(
            json.dumps(
                {
                    "min_score": args.min_score,
                    "clusters_before": before,
                    "clusters_after": after,
                    "merges": merges,
                },
                indent=1,
            )
        )
        return 0
    assert con is not None
    con.print(
        f"accepted {len(merges)} proposals with score >= {args.min_score:g}: "
        f"{before} -> {after} clusters (each one a merge event; `curalog undo` takes them back one by one)"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:

    _check_score(args.min_score)
    thresholds = set(DEFAULT_THRESHOLDS)
    if args.thresholds:
        try:
            thresholds = {float(x) for x in args.thresholds.split(",") if x.strip()}
        except ValueError:
            raise ProposalArgumentError(
                f"--thresholds: not a comma-separated list of numbers: {args.thresholds!r}"
            ) from None
        for t in thresholds:
            _check_score(t, "--thresholds")
    min_score = DEFAULT_MIN_SCORE if args.min_score is None else args.min_score
    thresholds.add(min_score)
    con = None if args.json else _console()
    say = (
        (lambda msg: con.print(f"  {msg}", style="dim"))
        if con is not None and sys.stderr.isatty()
        else None
    )
    ev = evaluate(args.dir, args.truth, thresholds=sorted(thresholds, reverse=True), progress=say)
    if args.json:
        out = ev.to_dict()
        if not args.merges:
            out.pop("merges", None)
        out["min_score"] = min_score
        print(json.dumps(out, indent=1, default=float))
        return 0
    from rich.table import Table

    assert con is not None
    con.print(
        f"[bold]{ev.folder}[/bold]: {ev.n_spikes:,} spikes, {ev.n_templates} templates, "
        f"{ev.n_units} true units"
    )
    info = ev.truth
    if info.get("format") == "ground-truth tables":
        con.print(
            f"truth {info['source']}: {info['pieces']} of {info['sorted_units']} sorted units are "
            f"pieces of {info['units_with_pieces']} true units ({info['split_units']} split; a piece "
            f"holds >= 80 % of its spikes from one unit), {len(info['not_pieces'])} are mixtures or noise"
        )
    phy = ev.phy
    con.print(
        f"phy's similarity ranking: the top-1 similar cluster is the same unit for "
        f"{100 * phy['top1_hit_rate']:.1f} % of the {int(phy['split_clusters'])} clusters of split units; "
        f"merging every cluster with its top-1 would mix units in {100 * phy['top1_impure_rate']:.1f} % "
        f"of {int(phy['real_clusters'])} clusters"
    )
    rows = format_table(ev)
    table = Table(
        title="accepting every proposal above a score (scratch log, greedy, re-scored after each merge)"
    )
    for col in rows[0]:
        table.add_column(col, justify="right")
    for o, row in zip(ev.outcomes, rows[1:], strict=True):
        style = "bold" if abs(o.min_score - min_score) < 1e-12 else None
        table.add_row(*row, style=style)
    con.print(table)
    for o in ev.outcomes:
        if abs(o.min_score - min_score) < 1e-12:
            split = o.split_units
            con.print(
                f"at {min_score:g}: {o.real_clusters} clusters for {o.n_units} true units; "
                + (
                    "units still in several clusters: "
                    + ", ".join(f"{u} ({k})" for u, k in split.items())
                    if split
                    else "every true unit in one cluster"
                )
            )
    best = ev.best()
    if best is not None:
        con.print(
            f"highest threshold with at most 10 % more clusters than units and no impure merge: "
            f"{best.min_score:g}"
        )
    con.print(
        f"time: first proposals {ev.timings['first_proposals_s']:.1f} s, accepting all "
        f"{ev.timings['accept_all_s']:.1f} s"
    )
    return 0


def register(add: Callable[..., Any]) -> None:
    """Add the ``proposals`` and ``evaluate`` subcommands to curalog's parser."""
    p = add(
        "proposals",
        cmd_proposals,
        "merge proposals: clusters that are pieces of one neuron, with their evidence "
        "(--accept-all --min-score X applies them as merge events)",
        author=True,
    )
    p.add_argument(
        "--min-score",
        type=float,
        metavar="X",
        help=f"only proposals scoring at least X in [0, 1] (listing default {DEFAULT_MIN_SCORE:g}, "
        "the documented threshold; --accept-all needs it explicitly)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="list at most N proposals")
    p.add_argument("--json", action="store_true", help="machine-readable output (with every score)")
    p.add_argument(
        "--accept-all",
        action="store_true",
        help="merge greedily, best first, re-scoring after every merge, until no proposal "
        "reaches --min-score",
    )
    p.add_argument(
        "--max-merges", type=int, metavar="N", help="with --accept-all: stop after N merges"
    )
    p.add_argument(
        "--verbose", "-v", action="store_true", help="with --accept-all: print every merge"
    )

    p = add(
        "evaluate",
        cmd_evaluate,
        "measure the merge proposals against a ground truth (on a scratch log; the dataset's "
        "logs are never touched)",
        dataset=False,
    )
    p.add_argument("dir", metavar="DIR", help="Kilosort/phy output folder")
    p.add_argument(
        "--truth",
        metavar="FILE",
        help="ground truth: a JSON file with 'unit_of_template', or a folder of ground-truth "
        "tables (gt_match_counts.tsv, gt_sorted_sizes.tsv, gt_agreement.tsv; a sorted unit is a "
        "piece of the true unit holding >= 80 %% of its spikes) (default DIR/synth_truth.json, "
        "else DIR's own gt_*.tsv)",
    )
    p.add_argument(
        "--min-score",
        type=float,
        metavar="X",
        help=f"the threshold to highlight (default {DEFAULT_MIN_SCORE:g})",
    )
    p.add_argument(
        "--thresholds", metavar="X,Y,...", help="thresholds to report (default 0.9 ... 0.2)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--merges", action="store_true", help="with --json: include every accepted merge"
    )
