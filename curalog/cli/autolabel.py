"""``curalog autolabel``: label clusters from rules over their statistics.

Each rule that matched clusters becomes one ordinary label event whose ``reason`` is the
rule text, so the history says why every label was given (and undo takes it back).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from curalog.analysis.autolabel import DEFAULT_RULES, RuleError, autolabel_decisions
from curalog.analysis.stats.engine import StatsEngine
from curalog.curation import open_curation
from curalog.errors import CuralogError


class RuleArgumentError(CuralogError):
    """A --rule that does not parse."""


def cmd_autolabel(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    rules = args.rule or list(DEFAULT_RULES)
    con = Console(highlight=False, soft_wrap=True)
    with open_curation(args.dir, args.log, author=args.author, readonly=args.dry_run) as cur:
        engine = StatsEngine(cur.dataset, cur.state, recording=cur.recording)
        ids = cur.cluster_ids.tolist()
        with con.status(f"computing statistics of {len(ids)} clusters"):
            rows = engine.table_rows(ids, n_threads=2)
        try:
            decisions = autolabel_decisions(rows, rules)
        except RuleError as exc:
            raise RuleArgumentError(f"--rule: {str(exc).splitlines()[0]}") from None
        groups = cur.groups()
        by_rule: dict[tuple[str, str], list[int]] = defaultdict(list)
        skipped = 0
        for cid, group, rule in decisions:
            current = groups.get(cid)
            wanted = None if group == "unsorted" else group
            if current == wanted:
                continue
            if current is not None and not args.overwrite:
                skipped += 1
                continue
            by_rule[(rule, group)].append(cid)
        table = Table(title="auto-labels" + (" (dry run: nothing written)" if args.dry_run else ""))
        table.add_column("rule")
        table.add_column("group")
        table.add_column("clusters", justify="right")
        for (rule, group), cids in by_rule.items():
            table.add_row(rule, group, str(len(cids)))
            if not args.dry_run:
                cur.label(cids, group=group, reason=f"autolabel: {rule}")
        con.print(table)
        if skipped:
            con.print(
                f"{skipped} clusters that already have a group (from cluster_group.tsv or a curator) "
                "were left alone (--overwrite to relabel them)"
            )
        if not by_rule:
            con.print("no label changes")
    return 0


def register(add: Callable[..., Any]) -> None:
    """Add the ``autolabel`` subcommand to curalog's parser."""
    p = add(
        "autolabel",
        cmd_autolabel,
        "label clusters from rules such as 'isi_violations_ratio > 0.5 -> mua' (first match wins)",
        author=True,
    )
    p.add_argument(
        "--rule",
        action="append",
        metavar="'EXPR -> GROUP'",
        help="a rule (repeatable, tried in order). Columns: n_spikes, firing_rate (fr), "
        "template_amplitude (amp), amplitude_median, isi_violations_ratio, "
        "rp_contamination, presence_ratio, amplitude_cutoff, depth, shank (sh), "
        "peak_to_trough_ms, SpikeInterface's quality metrics (snr, isolation_distance, "
        "l_ratio, d_prime, nn_hit_rate, silhouette, sliding_rp_violation, drift_ptp, ...; "
        "see curalog clusters --json), sorter columns (KSLabel, ContamPct, sorter.<name>). "
        "Default: a "
        "bombcell-like set (see curalog.analysis.autolabel.DEFAULT_RULES)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="also relabel clusters that already have a group"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be labelled, write nothing"
    )
