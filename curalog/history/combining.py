"""Combining two branches: B's effective actions after the common prefix rebased onto A, with
B's new cluster ids remapped and conflicting actions listed, not guessed."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curalog.clustering import Change, ClusterState
from curalog.curation import (
    Curation,
    default_log_path,
)
from curalog.dataset import GROUP_FIELD, Dataset, load_dataset
from curalog.events import (
    LABEL,
    REDO,
    STRUCTURAL_TYPES,
    UNDO,
    AssignBody,
    Event,
    LabelBody,
    MergeBody,
    SplitBody,
    UndoBody,
    unpack_array,
)
from curalog.history.actions import effective_actions
from curalog.history.branches import (
    BRANCH_NOTE,
    HistoryError,
    _check_dataset,
    _display_name,
    _fork_bytes,
    _write_new_file,
    common_prefix,
    resolve_log,
    validate_branch_name,
)
from curalog.replaying import UndoStack, resolve_logged
from curalog.store.log import (
    default_author,
    read_log,
)

#: ``note`` kind written at the end of a combined branch.
COMBINE_NOTE = "combine"


# ====================================================================== combine
@dataclass
class Conflict:
    """An action of B that was not applied, and why."""

    seq: int
    type: str
    summary: str
    reason: str
    clusters: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "summary": self.summary,
            "reason": self.reason,
            "clusters": self.clusters,
        }


@dataclass
class CombineResult:
    """What :func:`combine` did.

    Attributes
    ----------
    name, path : the new branch
    base_seq : int
        Length of the common prefix of A and B.
    applied : list of (int, int)
        ``(seq in B, seq in the new branch)`` of each action re-applied.
    already_in_a : list of int
        B's actions whose result A already has (same clusters): only their ids were mapped.
    conflicts : list of Conflict
        B's actions (or the clusters of a label action) that were not applied.
    id_map : dict
        B's new cluster ids -> ids in the new branch.
    """

    name: str
    path: Path
    base_seq: int
    applied: list[tuple[int, int]]
    already_in_a: list[int]
    conflicts: list[Conflict]
    id_map: dict[int, int]
    head: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.name,
            "log": str(self.path),
            "base_seq": self.base_seq,
            "head": self.head,
            "applied": [list(p) for p in self.applied],
            "already_in_a": self.already_in_a,
            "conflicts": [c.to_dict() for c in self.conflicts],
            "id_map": {str(k): v for k, v in sorted(self.id_map.items())},
        }


@dataclass
class _Step:
    event: Event
    change: Change | None

    @property
    def seq(self) -> int:
        return self.event.seq


def _simulate(
    ds: Dataset, events: list[Event], k: int, path: Path
) -> tuple[set[int], list[_Step], list[int]]:
    """Replay B's structure on a private state; return the live ids at ``k``, the effective
    steps after ``k`` (with their resolved changes, in B's ids) and the shared actions that
    B undid."""
    state = ClusterState(ds.spike_templates)
    stack: UndoStack[_Step] = UndoStack()
    live_k: set[int] | None = None
    shared: set[int] = set()
    for e in events:
        if e.seq == k + 1:
            live_k = set(state.cluster_ids.tolist())
            shared = {s.seq for s in stack.effective}
        if e.type in STRUCTURAL_TYPES:
            change = resolve_logged(state, e, path, ds.n_spikes)
            state.apply(change)
            stack.push(_Step(e, change))
        elif e.type == LABEL:
            stack.push(_Step(e, None))
        elif e.type in (UNDO, REDO):
            step = stack.follow(e, path)
            if step is not None and step.change is not None:
                if e.type == UNDO:
                    state.revert(step.change)
                else:
                    state.apply(step.change)
    if live_k is None:
        live_k = set(state.cluster_ids.tolist())
        shared = {s.seq for s in stack.effective}
    effective = [s for s in stack.effective if s.seq > k]
    undone_shared = sorted(shared - {s.seq for s in stack.effective})
    return live_k, effective, undone_shared


def _who_deleted(events: list[Event], k: int) -> dict[int, int]:
    """Cluster id -> seq of the effective action after ``k`` that made it disappear."""
    out: dict[int, int] = {}
    effective, _ = effective_actions(events)
    for e in effective:
        if e.seq <= k or e.type not in STRUCTURAL_TYPES:
            continue
        data = e.data
        assert isinstance(data, MergeBody | SplitBody | AssignBody)
        for c in data.deleted:
            out.setdefault(c, e.seq)
    return out


def combine(
    folder: str | os.PathLike[str],
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    into: str,
    *,
    author: str | None = None,
) -> CombineResult:
    """Rebase B's actions after the common prefix onto A, as the new branch ``into``.

    The new branch is a copy of A (its events unchanged), a ``branch`` note, B's effective
    actions after the common prefix (undone ones dropped), each re-applied where it touches
    only clusters A did not change, and a ``combine`` note listing what was applied and
    what conflicted.

    Rules:

    * a merge, split or assign of B is applied when every cluster it removes still exists in
      the combined state (untouched by A, or created by an earlier applied action of B). New
      ids come from the combined counter; B's ids are remapped for later actions.
    * if A already made the same change (same spike sets), B's ids are mapped to A's.
    * a label is a three-way register per cluster: applied when A still has the value B
      saw before its change, skipped when A has B's value, a conflict otherwise.
    * everything else (clusters A merged or split, actions depending on a conflicting
      action, B undoing an action of the common history) is reported, never guessed.

    Returns
    -------
    CombineResult
    """
    validate_branch_name(into)
    author = author or default_author()
    ds = load_dataset(folder)
    path_a, path_b = resolve_log(folder, a), resolve_log(folder, b)
    dest = default_log_path(folder, into)
    if dest.exists():
        raise HistoryError(f"branch {into!r} already exists ({dest})")
    scan_a, scan_b = read_log(path_a), read_log(path_b)
    _check_dataset(scan_a, ds, path_a)
    _check_dataset(scan_b, ds, path_b)
    for scan, p in ((scan_a, path_a), (scan_b, path_b)):
        if scan.corruption:
            raise HistoryError(
                f"{p}: damaged ({scan.corruption}); repair it first (curalog fsck --repair)"
            )
    k = common_prefix(scan_a, scan_b)
    name_a, name_b = _display_name(folder, path_a), _display_name(folder, path_b)
    live_k, steps, undone_shared = _simulate(ds, scan_b.events, k, path_b)
    a_deleted_by = _who_deleted(scan_a.events, k)

    note = {
        "kind": BRANCH_NOTE,
        "text": f"branch {into}: {name_b} combined into {name_a}",
        "data": {
            "name": into,
            "parent": {"name": name_a},
            "combine": {"from": name_b, "head": scan_b.head_hash.hex(), "base_seq": k},
        },
    }
    data, _, _ = _fork_bytes(path_a, None, note, author)
    tmp = dest.with_name(f".{dest.stem}.combine-{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        tmp.unlink()
    _write_new_file(tmp, data)
    result = CombineResult(into, dest, k, [], [], [], {})
    try:
        cur = Curation(ds, tmp, author=author)
        try:
            _rebase(cur, steps, live_k, a_deleted_by, name_a, name_b, result)
            for u in undone_shared:
                undo = next(
                    (
                        e
                        for e in scan_b.events[k:]
                        if isinstance(e.data, UndoBody) and e.data.target == u
                    ),
                    None,
                )
                seq = undo.seq if undo is not None else u
                result.conflicts.append(
                    Conflict(
                        seq,
                        UNDO,
                        f"undo #{u}",
                        f"undoes #{u} of the common history, which {name_a} keeps",
                    )
                )
            result.conflicts.sort(key=lambda c: c.seq)
            cur.note(
                COMBINE_NOTE,
                f"combined {name_b} into {name_a}: {len(result.applied)} applied, "
                f"{len(result.already_in_a)} already in {name_a}, {len(result.conflicts)} conflicts",
                data={
                    "from": name_b,
                    "into": into,
                    "base_seq": k,
                    "b_head": scan_b.head_hash.hex(),
                    "applied": [list(p) for p in result.applied],
                    "already_in_a": result.already_in_a,
                    "conflicts": [c.seq for c in result.conflicts],
                },
            )
            result.head = cur.head_hash.hex()
        finally:
            cur.close()
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise HistoryError(f"branch {into!r} already exists ({dest})") from None
    finally:
        for p in (tmp, tmp.with_name(tmp.name + ".lock")):
            with contextlib.suppress(OSError):
                p.unlink()
    return result


def _same_clusters(cur: Curation, change: Change) -> bool:
    """True if every cluster ``change`` creates already exists in ``cur`` with those spikes."""
    state = cur.state
    for spikes in change.added.values():
        cid = int(state.spike_clusters[spikes[0]])
        if not np.array_equal(state.spikes(cid), spikes):
            return False
    return True


def _rebase(
    cur: Curation,
    steps: list[_Step],
    live_k: set[int],
    a_deleted_by: dict[int, int],
    name_a: str,
    name_b: str,
    result: CombineResult,
) -> None:
    id_map = result.id_map
    skipped: dict[int, int] = {}  # B id -> seq of the conflicting action that created it
    b_new: set[int] = set()

    def locate(c: int) -> tuple[int | None, str | None]:
        if c in skipped:
            return None, f"cluster {c} comes from conflicting #{skipped[c]}"
        if c in id_map:
            return id_map[c], None
        if c in b_new:  # pragma: no cover - every new id is mapped or skipped
            return None, f"cluster {c} is unknown"
        if c in cur.state:
            return c, None
        if c in a_deleted_by:
            return None, f"cluster {c} was changed by {name_a} #{a_deleted_by[c]}"
        if c not in live_k:
            return None, f"cluster {c} does not exist at the common prefix"
        return None, f"cluster {c} no longer exists in {name_a}"

    for step in steps:
        e = step.event
        meta = {"combined_from": name_b, "b_seq": e.seq, "b_hash": e.hash.hex()[:16]}
        if step.change is not None:
            change = step.change
            problems = []
            mapped: list[int] = []
            for c in change.deleted_ids:
                m, why = locate(c)
                if why or m is None:
                    problems.append(why or f"cluster {c} is unknown")
                else:
                    mapped.append(m)
            b_new.update(change.added)
            if problems:
                if _same_clusters(cur, change):
                    for bid, spikes in change.added.items():
                        id_map[bid] = int(cur.state.spike_clusters[spikes[0]])
                    result.already_in_a.append(e.seq)
                else:
                    for bid in change.added:
                        skipped[bid] = e.seq
                    result.conflicts.append(
                        Conflict(
                            e.seq, e.type, e.summary(), "; ".join(problems), change.deleted_ids
                        )
                    )
                continue
            data = e.data
            if isinstance(data, MergeBody):
                cur.merge(mapped, meta=meta)
            elif isinstance(data, SplitBody):
                where = f"{name_b}: event {e.seq}"
                spikes = unpack_array(data.spikes, where, cur.dataset.n_spikes)
                labels = (
                    unpack_array(data.labels, where, cur.dataset.n_spikes)
                    if data.labels is not None
                    else None
                )
                cur.split(spikes, labels, meta=meta)
            else:
                sel = np.concatenate([change.added[t] for t in change.added_ids]).astype(np.int64)
                fresh = {t: cur.state.counter + i for i, t in enumerate(change.added_ids)}
                targets = np.concatenate(
                    [
                        np.full(change.added[t].shape[0], fresh[t], np.int64)
                        for t in change.added_ids
                    ]
                )
                cur.assign(sel, targets, meta=meta)
            for bid, spikes in change.added.items():
                id_map[bid] = int(cur.state.spike_clusters[spikes[0]])
            result.applied.append((e.seq, cur.seq))
            continue
        # label: a per-cluster three-way register
        label = e.data
        assert isinstance(label, LabelBody)
        name = label.field
        value = label.value
        before = {int(c): v for c, v in label.previous}
        apply_ids: list[int] = []
        bad: list[str] = []
        bad_ids: list[int] = []
        for c in label.clusters:
            m, why = locate(c)
            if why or m is None:
                bad.append(why or f"cluster {c} is unknown")
                bad_ids.append(c)
                continue
            now = cur.labels.get(name, m)
            if now == value:
                continue
            if now == before.get(c):
                apply_ids.append(m)
            else:
                bad.append(
                    f"{name} of {c}: {name_a} has {now!r}, {name_b} changed {before.get(c)!r} to {value!r}"
                )
                bad_ids.append(c)
        if apply_ids:
            reason = f"combined from {name_b} #{e.seq}"
            if name == GROUP_FIELD:
                cur.label(
                    apply_ids, group=value if value is not None else "unsorted", reason=reason
                )
            else:
                cur.label(apply_ids, field=name, value=value, reason=reason)
            result.applied.append((e.seq, cur.seq))
        if bad:
            result.conflicts.append(Conflict(e.seq, e.type, e.summary(), "; ".join(bad), bad_ids))
        elif not apply_ids:
            result.already_in_a.append(e.seq)
