"""The diff of two histories: the common prefix, the events only in each, and the outcome
diff of the two replayed states."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curalog.curation import (
    Curation,
)
from curalog.dataset import Dataset, load_dataset
from curalog.events.envelope import (
    Event,
)
from curalog.history.actions import event_to_dict
from curalog.history.branches import (
    _check_dataset,
    _display_name,
    _hash_at,
    common_prefix,
    resolve_log,
)
from curalog.history.outcome import OutcomeDiff, outcome_diff
from curalog.store.log import (
    read_log,
)

#: Value of the ``"schema"`` key of ``curalog diff --json``.
DIFF_SCHEMA = "curalog-diff/1"


# ====================================================================== diff of two histories
@dataclass
class SideInfo:
    """One side of a diff."""

    name: str
    log: Path
    n_events: int
    head: str
    seq: int
    n_clusters: int
    corruption: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "log": str(self.log),
            "events": self.n_events,
            "head": self.head,
            "seq": self.seq,
            "clusters": self.n_clusters,
            "damaged": self.corruption,
        }


@dataclass
class DiffResult:
    """Event-level and outcome-level comparison of two histories of one dataset."""

    dataset: dict[str, Any]
    a: SideInfo
    b: SideInfo
    same_root: bool
    common_prefix: int
    base_head: str
    only_a: list[Event]
    only_b: list[Event]
    outcome: OutcomeDiff

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON document of ``curalog diff --json`` (schema ``curalog-diff/1``)."""
        return {
            "schema": DIFF_SCHEMA,
            "dataset": self.dataset,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "events": {
                "same_root": self.same_root,
                "common_prefix": self.common_prefix,
                "base_head": self.base_head,
                "only_a": [event_to_dict(e) for e in self.only_a],
                "only_b": [event_to_dict(e) for e in self.only_b],
            },
            "outcome": self.outcome.to_dict(),
        }


def _replay(
    ds: Dataset, path: Path, upto: int | None = None
) -> tuple[np.ndarray, dict[str, dict[int, Any]], int, str | None]:
    cur = Curation(ds, path, readonly=True, upto=upto)
    try:
        return (cur.state.spike_clusters.copy(), cur.labels.snapshot(), cur.seq, cur.corruption)
    finally:
        cur.close()


def diff_histories(
    folder: str | os.PathLike[str], a: str | os.PathLike[str], b: str | os.PathLike[str]
) -> DiffResult:
    """Compare two histories (branch names or log paths) of the dataset in ``folder``.

    Both logs are replayed in full; the state at their common prefix is the reference for
    telling merges from splits.
    """
    ds = load_dataset(folder)
    path_a, path_b = resolve_log(folder, a), resolve_log(folder, b)
    scan_a, scan_b = read_log(path_a), read_log(path_b)
    _check_dataset(scan_a, ds, path_a)
    _check_dataset(scan_b, ds, path_b)
    k = common_prefix(scan_a, scan_b)
    same_root = scan_a.header_hash == scan_b.header_hash
    sc_a, lab_a, seq_a, bad_a = _replay(ds, path_a)
    sc_b, lab_b, seq_b, bad_b = _replay(ds, path_b)
    base = _replay(ds, path_a, upto=k)[0] if k else np.ascontiguousarray(ds.spike_templates)
    outcome = outcome_diff(sc_a, sc_b, base, lab_a, lab_b)
    del sc_a, sc_b, base
    return DiffResult(
        dataset={**ds.describe(), "fingerprint": ds.fingerprint.short()},
        a=SideInfo(
            _display_name(folder, path_a),
            path_a,
            len(scan_a.events),
            scan_a.head_hash.hex(),
            seq_a,
            outcome.n_clusters_a,
            bad_a,
        ),
        b=SideInfo(
            _display_name(folder, path_b),
            path_b,
            len(scan_b.events),
            scan_b.head_hash.hex(),
            seq_b,
            outcome.n_clusters_b,
            bad_b,
        ),
        same_root=same_root,
        common_prefix=k,
        base_head=_hash_at(scan_a, k).hex() if same_root else "",
        only_a=scan_a.events[k:],
        only_b=scan_b.events[k:],
        outcome=outcome,
    )
