"""Histories: branches, their common prefix, diffs of two curations, and combining them.

A *branch* is a self-contained log file ``DIR/.curalog/<name>.log``. A new branch starts as a
byte-for-byte copy of its parent's header and of the parent's records up to the fork point,
followed by one ``note`` event of kind ``"branch"`` that records the branch name, the parent
and the fork point (seq and record hash). Because the copied bytes are identical, the hash
chain of the two files is identical up to the fork: the common prefix of *any* two logs of
a dataset is found by comparing record hashes, as git finds a merge base by commit ids,
and a branch file copied to a colleague still carries its own provenance.

The *diff* of two histories has two levels (see docs/HISTORIES.md):

* events: the common prefix and the events only in A and only in B;
* outcome: both logs are replayed to ``spike_clusters`` (same spikes, so the comparison is
  exact) and compared through their contingency table, with the state at the common prefix
  as the reference that tells merges from splits. Label disagreements are listed for
  clusters identical in both; the fraction of spikes in identical clusters and the adjusted
  Rand index summarise the agreement.

*Combining* two branches rebases B's effective actions after the common prefix onto A,
remapping B's new cluster ids, and lists the actions that touch what A changed instead of
guessing.
"""

from curalog.history.actions import effective_actions, event_clusters, event_to_dict, iso_time
from curalog.history.branches import (
    BRANCH_NOTE,
    BranchInfo,
    HistoryError,
    branch_note,
    common_prefix,
    create_branch,
    list_branches,
    resolve_log,
    validate_branch_name,
)
from curalog.history.combining import COMBINE_NOTE, CombineResult, Conflict, combine
from curalog.history.contingencies import (
    Contingency,
    adjusted_rand_index,
    adjusted_rand_index_from_table,
    contingency,
    linked_groups,
    member_mask,
)
from curalog.history.diff import DIFF_SCHEMA, DiffResult, diff_histories
from curalog.history.outcome import (
    Difference,
    LabelDisagreement,
    OutcomeDiff,
    outcome_diff,
)

__all__ = [
    "linked_groups",
    "member_mask",
    "BRANCH_NOTE",
    "COMBINE_NOTE",
    "DIFF_SCHEMA",
    "BranchInfo",
    "branch_note",
    "CombineResult",
    "Conflict",
    "Contingency",
    "DiffResult",
    "Difference",
    "HistoryError",
    "LabelDisagreement",
    "OutcomeDiff",
    "adjusted_rand_index",
    "adjusted_rand_index_from_table",
    "combine",
    "common_prefix",
    "contingency",
    "create_branch",
    "diff_histories",
    "effective_actions",
    "event_clusters",
    "event_to_dict",
    "iso_time",
    "list_branches",
    "outcome_diff",
    "resolve_log",
    "validate_branch_name",
]
