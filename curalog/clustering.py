"""Cluster state: spike -> cluster and cluster -> spikes, with phy's id rules bit-for-bit.

The state starts from the sorter's ``spike_templates`` (cluster id = template id) and an id
counter at ``max(spike_templates) + 1`` that only ever grows. Each action is first
*resolved* into a :class:`Change` (which clusters disappear, which appear with which spikes)
without touching the state, so invalid input is refused before anything is written; the
change is then applied, and can later be reverted (undo) and re-applied (redo) with the
same absolute ids.

Costs follow the spikes touched, never the recording: ``cluster -> spikes`` is an inverted
index (a counting sort of ``spike_templates`` built once, then one sorted array per new
cluster), so a merge concatenates and sorts the merged clusters' spike arrays and writes
those entries of ``spike_clusters``, nothing else.

The id rules (docs/PHY_SEMANTICS.md sections 2.3-2.5 and 8.1):

* ``merge(C1..Ck)``: all their spikes get ``N = counter``; counter = N + 1.
* ``split(S)``: S gets N; each touched cluster's remainder gets N+1, N+2, ... in ascending
  order of the old id; if S covers only whole clusters, it is a merge of them into N.
* ``split(S, labels)``: label r -> ``r - min(r) + N`` (gaps kept); remainders start at the
  largest of those + 1.
* undo never lowers the counter, so ids of undone actions are never reused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from curalog.errors import InvalidActionError
from curalog.events import NoteBody

#: Largest change (spikes relabelled) that :meth:`ClusterState.write_ahead` writes while the
#: log's fsync is in flight: ~32 k scattered int32 stores take about as long as one fsync
#: of a local disk (0.2-0.5 ms); larger changes stay deferred to the next read.
WRITE_AHEAD_MAX = 1 << 15


@dataclass(frozen=True)
class Update:
    """What an action (or its undo / redo) changed, for caches and views.

    Attributes
    ----------
    kind : str
        ``merge``, ``split``, ``assign``, ``label``, or the kind of the action undone/redone.
    added, deleted : tuple of int
        Cluster ids that appeared / disappeared.
    descendants : tuple of (int, int)
        ``(old, new)`` pairs (parents -> children).
    largest_old : int or None
        The parent with the most spikes (ties: the smaller id).
    n_spikes : int
        Spikes whose cluster changed.
    labels_changed : tuple of int
        Clusters whose labels changed (including labels inherited by new clusters).
    history : str or None
        None for a new action, ``"undo"`` or ``"redo"``.
    seq : int
        Log sequence number of the event that caused it (0 for none).
    note : NoteBody or None
        For ``kind == "note"``: the decision recorded (e.g. a rejected merge proposal); such
        an update changes nothing else.
    """

    kind: str
    added: tuple[int, ...] = ()
    deleted: tuple[int, ...] = ()
    descendants: tuple[tuple[int, int], ...] = ()
    largest_old: int | None = None
    n_spikes: int = 0
    labels_changed: tuple[int, ...] = ()
    history: str | None = None
    seq: int = 0
    note: NoteBody | None = None

    @property
    def merged(self) -> tuple[int, tuple[int, ...]] | None:
        """``(new id, parents)`` when this update made one cluster out of two or more whole
        ones (a merge, or the undo of a split into one piece): the new cluster is exactly
        the union of the deleted ones, so what composes can be combined from them."""
        added = tuple(int(c) for c in self.added)
        olds = {int(old) for old, _ in self.descendants}
        if (
            len(added) == 1
            and self.descendants
            and all(int(new) == added[0] for _, new in self.descendants)
            and olds == {int(c) for c in self.deleted}
            and len(olds) >= 2
        ):
            return added[0], tuple(sorted(olds))
        return None


@dataclass
class Change:
    """A resolved structural change: enough to apply, revert and re-apply it exactly."""

    kind: str  # "merge" (incl. whole-cluster splits), "split", "assign"
    deleted: dict[int, np.ndarray]  # old id -> its spikes (sorted)
    added: dict[int, np.ndarray]  # new id -> its spikes (sorted)
    counter_after: int
    descendants: tuple[tuple[int, int], ...]
    largest_old: int | None
    inherited: Mapping[str, Mapping[int, object]] = field(default_factory=dict)  # filled by labels
    n_spikes: int = -1  # spikes whose cluster changed (computed on creation)
    evicted: bool = False  # arrays dropped to bound memory; undo must rebuild by replay

    def __post_init__(self) -> None:
        if self.n_spikes < 0:
            self.n_spikes = int(sum(a.shape[0] for a in self.added.values()))

    @property
    def nbytes(self) -> int:
        if self.evicted:
            return 0
        return int(
            sum(a.nbytes for a in self.added.values())
            + sum(a.nbytes for a in self.deleted.values())
        )

    def evict(self) -> None:
        """Drop the spike arrays (keeping ids and counts) to bound the memory of history."""
        self.added = dict.fromkeys(self.added)  # type: ignore[arg-type]
        self.deleted = dict.fromkeys(self.deleted)  # type: ignore[arg-type]
        self.evicted = True

    @property
    def added_ids(self) -> list[int]:
        return sorted(self.added)

    @property
    def deleted_ids(self) -> list[int]:
        return sorted(self.deleted)


class WriteAhead:
    """:meth:`ClusterState.write_ahead` as work for the log's fsync window
    (:class:`curalog.store.overlap.SideWork`); ``written`` says whether it wrote."""

    def __init__(self, state: ClusterState, change: Change):
        self.state = state
        self.change = change
        self.written = False

    def run(self) -> None:
        self.written = self.state.write_ahead(self.change)

    def undo(self) -> None:
        self.state.unwrite(self.change)
        self.written = False


@numba.njit(cache=True, nogil=True)
def _counting_sort(ids: np.ndarray, n_ids: int, order: np.ndarray) -> np.ndarray:
    """Stable counting sort: ``order`` gets spike indices grouped by id; returns offsets."""
    counts = np.zeros(n_ids + 1, dtype=np.int64)
    for i in range(ids.shape[0]):
        counts[ids[i] + 1] += 1
    for k in range(n_ids):
        counts[k + 1] += counts[k]
    pos = counts[:-1].copy()
    for i in range(ids.shape[0]):
        c = ids[i]
        order[pos[c]] = i
        pos[c] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _scatter(spike_clusters: np.ndarray, spikes: np.ndarray, cid: int) -> None:
    for i in range(spikes.shape[0]):
        spike_clusters[spikes[i]] = cid


@numba.njit(cache=True, nogil=True)
def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The union of two disjoint sorted arrays, sorted (one linear pass)."""
    out = np.empty(a.shape[0] + b.shape[0], dtype=a.dtype)
    i = 0
    j = 0
    k = 0
    while i < a.shape[0] and j < b.shape[0]:
        if a[i] < b[j]:
            out[k] = a[i]
            i += 1
        else:
            out[k] = b[j]
            j += 1
        k += 1
    while i < a.shape[0]:
        out[k] = a[i]
        i += 1
        k += 1
    while j < b.shape[0]:
        out[k] = b[j]
        j += 1
        k += 1
    return out


@numba.njit(cache=True, nogil=True)
def _remainder(members: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """``members`` minus ``subset`` (both sorted, subset included in members): a merge walk."""
    out = np.empty(members.shape[0] - subset.shape[0], dtype=members.dtype)
    j = 0
    k = 0
    for i in range(members.shape[0]):
        if j < subset.shape[0] and subset[j] == members[i]:
            j += 1
        else:
            out[k] = members[i]
            k += 1
    return out


@numba.njit(cache=True, nogil=True)
def _subset_remainder(members: np.ndarray, subset: np.ndarray):
    """If sorted ``subset`` is included in sorted ``members``, (True, members - subset)."""
    out = np.empty(max(members.shape[0] - subset.shape[0], 0), dtype=members.dtype)
    j = 0
    k = 0
    n_sub = subset.shape[0]
    for i in range(members.shape[0]):
        m = members[i]
        if j < n_sub and subset[j] < m:
            return False, out  # a selected spike that is not a member
        if j < n_sub and subset[j] == m:
            j += 1
        elif k < out.shape[0]:
            out[k] = m
            k += 1
        else:
            return False, out
    return j == n_sub, out


@numba.njit(cache=True, nogil=True)
def _strictly_increasing(a: np.ndarray) -> bool:
    """Sorted without duplicates."""
    for i in range(1, a.shape[0]):  # noqa: SIM110 - numba compiles loops, not all()
        if a[i] <= a[i - 1]:
            return False
    return True


def is_sorted_unique(a: np.ndarray) -> bool:
    """True when the 1-D integer array ``a`` is strictly increasing."""
    return bool(_strictly_increasing(np.ascontiguousarray(a)))


def _largest(sizes: dict[int, int]) -> int | None:
    """The id with the most spikes; ties go to the smaller id."""
    best = None
    for cid in sorted(sizes):
        if best is None or sizes[cid] > sizes[best]:
            best = cid
    return best


def cluster_id_list(values: Any, what: str) -> list[int]:
    """Cluster ids given to an action: Python or numpy integers only.

    ``int()`` would also take ``' 1'``, ``'１'`` (full-width) or ``3.7``; those are refused.
    """
    try:
        items = list(values)
    except TypeError:
        raise InvalidActionError(f"{what}: give a list of cluster ids") from None
    out: list[int] = []
    for c in items:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise InvalidActionError(f"{what}: cluster ids must be integers (got {c!r})")
        out.append(int(c))
    return out


class ClusterState:
    """Live cluster assignment with an inverted index.

    Parameters
    ----------
    spike_templates : ndarray of int, shape (n_spikes,)
        The base assignment (copied into an int32 ``spike_clusters``).
    """

    def __init__(
        self, spike_templates: np.ndarray, release: Callable[[np.ndarray], None] | None = None
    ):
        self.reset(spike_templates, release)

    def reset(
        self, spike_templates: np.ndarray, release: Callable[[np.ndarray], None] | None = None
    ) -> None:
        """Back to the sorter's assignment, in place (holders of this object stay valid).

        ``release(spike_templates)`` is called once it is copied, before the index is built
        (to drop a memory map's pages while the index takes its own memory)."""
        self.n_spikes = int(spike_templates.shape[0])
        self._spike_clusters = np.array(spike_templates, dtype=np.int32, order="C")
        if release is not None:
            release(spike_templates)
        base = self._spike_clusters  # unchanged until the first action
        self._pending: list[tuple[int, np.ndarray]] = []
        self._prune_at = 64
        self.index_dtype = np.int32 if self.n_spikes < 2**31 - 1 else np.int64
        n_ids = int(base.max()) + 1 if self.n_spikes else 0
        order = np.empty(self.n_spikes, dtype=self.index_dtype)
        offsets = _counting_sort(base, n_ids, order) if self.n_spikes else np.zeros(1, np.int64)
        self._order: np.ndarray | None = order
        self._spikes: dict[int, np.ndarray] = {}
        for cid in np.flatnonzero(np.diff(offsets)):
            self._spikes[int(cid)] = order[offsets[cid] : offsets[cid + 1]]
        self.counter = n_ids
        self._sorted_ids: np.ndarray | None = None

    @classmethod
    def restored(
        cls,
        spike_clusters: np.ndarray,
        spikes: dict[int, np.ndarray],
        counter: int,
        index_dtype: np.dtype,
    ) -> ClusterState:
        """A state taken back from a snapshot (:mod:`curalog.snapshot`): ``spike_clusters``
        up to date, ``spikes`` the sorted spike array of every live cluster, as checked by
        the caller. Later :meth:`reset` calls rebuild from the sorter's output as usual."""
        self = cls.__new__(cls)
        self.n_spikes = int(spike_clusters.shape[0])
        self._spike_clusters = spike_clusters
        self._pending = []
        self._prune_at = 64
        self.index_dtype = np.dtype(index_dtype).type
        self._order = None
        self._spikes = spikes
        self.counter = int(counter)
        self._sorted_ids = None
        return self

    # ------------------------------------------------------------------ queries
    @property
    def spike_clusters(self) -> np.ndarray:
        """Cluster of every spike (int32). Do not modify it; use the actions.

        Writes into this array are deferred until it is read: a chain of merges writes each
        spike once, for the cluster it ends up in, instead of once per merge.
        """
        if self._pending:
            self._flush()
        return self._spike_clusters

    def _flush(self) -> None:
        # Every spike whose cluster changed since the last flush belongs to a live cluster
        # added (or restored) since then, so writing only the still-live ones is exact.
        seen: set[int] = set()
        for cid, spikes in self._pending:
            if self._spikes.get(cid) is spikes and cid not in seen:
                seen.add(cid)
                _scatter(self._spike_clusters, spikes, cid)
        self._pending.clear()
        self._prune_at = 64

    def _clusters_of_hinted(self, spikes: np.ndarray, hint: list[int]) -> np.ndarray:
        """Clusters of ``spikes`` when the touched clusters are known (replay of a logged
        split): search only those clusters, and check they are exactly the touched ones."""
        out = np.full(spikes.shape[0], -1, dtype=np.int64)
        for c in hint:
            arr = self._spikes.get(int(c))
            if arr is None:
                raise InvalidActionError(f"cluster {c} does not exist")
            pos = np.searchsorted(arr, spikes)
            pos[pos >= arr.shape[0]] = 0
            hit = arr[pos] == spikes
            if not hit.any():
                raise InvalidActionError(f"cluster {c} is not touched by the selection")
            out[hit] = c
        if out.shape[0] and out.min() < 0:
            raise InvalidActionError("the selection has spikes outside the recorded clusters")
        return out

    def clusters_of(self, spikes: np.ndarray) -> np.ndarray:
        """Current cluster of the given (sorted) spikes, without flushing deferred writes
        when only a few clusters changed since the last flush."""
        live = []
        seen: set[int] = set()
        for cid, arr in reversed(self._pending):
            if cid not in seen and self._spikes.get(cid) is arr:
                seen.add(cid)
                live.append((cid, arr))
        if len(live) > 8:
            return self.spike_clusters[spikes]
        out = self._spike_clusters[spikes]
        for cid, arr in live:
            pos = np.searchsorted(arr, spikes)
            pos[pos >= arr.shape[0]] = 0
            out[arr[pos] == spikes] = cid
        return out

    def _prune_pending(self) -> None:
        """Forget deferred writes of clusters that no longer exist, so their arrays can be
        freed. The rest reference live clusters only: at most one entry per live cluster."""
        live: dict[int, np.ndarray] = {}
        for cid, spikes in self._pending:
            if self._spikes.get(cid) is spikes:
                live[cid] = spikes
        self._pending = list(live.items())
        self._prune_at = len(self._pending) + 64

    @property
    def cluster_ids(self) -> np.ndarray:
        """Sorted ids of the live (non-empty) clusters."""
        if self._sorted_ids is None:
            self._sorted_ids = np.array(sorted(self._spikes), dtype=np.int64)
        return self._sorted_ids

    @property
    def n_clusters(self) -> int:
        return len(self._spikes)

    def __contains__(self, cid: object) -> bool:
        return cid in self._spikes

    def spikes(self, cid: int) -> np.ndarray:
        """Sorted spike indices of a live cluster (a read-only view; do not modify)."""
        try:
            return self._spikes[int(cid)]
        except KeyError:
            raise InvalidActionError(f"cluster {cid} does not exist") from None

    def n_spikes_of(self, cid: int) -> int:
        return int(self.spikes(cid).shape[0])

    def sizes(self) -> dict[int, int]:
        return {c: int(s.shape[0]) for c, s in self._spikes.items()}

    # ------------------------------------------------------------------ resolve
    def _check_live(self, ids: list[int], what: str) -> None:
        missing = [c for c in ids if c not in self._spikes]
        if missing:
            raise InvalidActionError(
                f"{what}: unknown cluster{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}"
            )

    def resolve_merge(self, cluster_ids) -> Change:
        """A merge of two or more live clusters into the next id."""
        ids = sorted(set(cluster_id_list(cluster_ids, "merge")))
        if len(ids) < 2:
            raise InvalidActionError(f"merge: needs at least two different clusters, got {ids}")
        self._check_live(ids, "merge")
        return self._merge_change(ids)

    def _merge_change(self, ids: list[int]) -> Change:
        new = self.counter
        parts = [self._spikes[c] for c in ids]
        if len(parts) == 2:
            spikes = _merge_sorted(parts[0], parts[1])
        else:
            spikes = np.concatenate(parts)
            spikes.sort(kind="stable")  # timsort merges the sorted runs, in place
        return Change(
            kind="merge",
            deleted={c: self._spikes[c] for c in ids},
            added={new: spikes},
            counter_after=new + 1,
            descendants=tuple((c, new) for c in ids),
            largest_old=_largest({c: int(self._spikes[c].shape[0]) for c in ids}),
        )

    def _validate_selection(self, spike_ids, what: str) -> np.ndarray:
        try:
            sel = np.asarray(spike_ids)
        except (TypeError, ValueError):
            raise InvalidActionError(f"{what}: spike ids must be integers") from None
        if sel.ndim != 1:
            raise InvalidActionError(
                f"{what}: spike ids must be a 1-D array of indices (got shape {sel.shape})"
            )
        if sel.size == 0:
            raise InvalidActionError(f"{what}: empty spike selection")
        if sel.dtype.kind not in "iu":
            if sel.dtype.kind == "f" and np.all(np.isfinite(sel)) and np.all(sel == np.floor(sel)):
                sel = sel.astype(np.int64)
            else:
                raise InvalidActionError(f"{what}: spike ids must be integers, got {sel.dtype}")
        sel = sel.astype(np.int64, copy=False)
        lo, hi = int(sel.min()), int(sel.max())
        if lo < 0 or hi >= self.n_spikes:
            bad = lo if lo < 0 else hi
            raise InvalidActionError(
                f"{what}: spike id {bad} out of range (0..{self.n_spikes - 1})"
            )
        return sel

    def resolve_split(self, spike_ids, labels=None, *, touched: list[int] | None = None) -> Change:
        """phy's ``split`` / ``assign``: the selection gets new ids, remainders get their own.

        ``touched`` (replay only) names the clusters the selection is recorded to touch, which
        spares reading ``spike_clusters``; a wrong claim raises :class:`InvalidActionError`.
        """
        sel = self._validate_selection(spike_ids, "split")
        if labels is None and touched is None:
            change = self._split_within_one(sel)
            if change is not None:
                return change
        if labels is None:
            rel = np.zeros(sel.shape[0], dtype=np.int64)
        else:
            rel = np.asarray(labels)
            if rel.ndim != 1:
                raise InvalidActionError(
                    f"split: labels must be a 1-D array (got shape {rel.shape})"
                )
            if rel.shape[0] != sel.shape[0]:
                raise InvalidActionError(f"split: {rel.shape[0]} labels for {sel.shape[0]} spikes")
            if rel.dtype.kind not in "iu":
                raise InvalidActionError(f"split: labels must be integers, got {rel.dtype}")
            rel = rel.astype(np.int64)
        order = np.argsort(sel, kind="stable")
        sel = sel[order]
        rel = rel[order]
        if sel.shape[0] > 1 and np.any(sel[1:] == sel[:-1]):
            dup = int(sel[1:][sel[1:] == sel[:-1]][0])
            raise InvalidActionError(f"split: spike {dup} appears more than once")
        n0 = self.counter
        span = int(rel.max()) - int(rel.min())  # Python ints: no int64 wrap-around
        if n0 + span + sel.shape[0] >= 2**31 - 1:  # new ids and remainders must fit in int32
            raise InvalidActionError(
                f"split: labels span {span:,} ids; the new cluster ids would exceed the int32 range"
            )
        new_ids = rel - rel.min() + n0
        if touched is not None and len(touched) == 1 and int(touched[0]) in self._spikes:
            # Replay of a split recorded as touching one cluster: one linear pass checks the
            # claim and yields the remainder.
            c = int(touched[0])
            members = self._spikes[c]
            ok, rest = _subset_remainder(members, sel.astype(members.dtype))
            if not ok:
                raise InvalidActionError(f"the selection is not inside cluster {c}")
            return self._split_from_parts(
                sel,
                new_ids,
                labels is None,
                {c: members},
                {c: rest} if rest.shape[0] else {},
                np.full(sel.shape[0], c, dtype=np.int64),
                np.array([c]),
            )
        if touched is not None and len(touched) <= 16:
            old_ids = self._clusters_of_hinted(sel, touched)
        else:
            old_ids = self.clusters_of(sel)
        touched, inverse = np.unique(old_ids, return_inverse=True)
        # Group the selection by old cluster (each group stays sorted), then take each
        # touched cluster's remainder with a linear merge walk.
        by_old = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[by_old], np.arange(touched.shape[0] + 1))
        rests: dict[int, np.ndarray] = {}
        deleted: dict[int, np.ndarray] = {}
        for k, c in enumerate(touched.tolist()):
            members = self._spikes[c]
            deleted[c] = members
            n_sel = int(bounds[k + 1] - bounds[k])
            if n_sel < members.shape[0]:
                subset = sel[by_old[bounds[k] : bounds[k + 1]]].astype(members.dtype)
                rests[c] = _remainder(members, subset)
        return self._split_from_parts(
            sel, new_ids, labels is None, deleted, rests, old_ids, touched
        )

    def _split_within_one(self, sel: np.ndarray) -> Change | None:
        """The usual interactive split: a sorted selection inside one cluster, resolved with
        one gather of its clusters and one linear pass over that cluster; None otherwise
        (the general path then resolves it, and reports what is wrong with it)."""
        if sel.shape[0] == 0 or not _strictly_increasing(sel):
            return None
        # The first spike names the candidate cluster; the linear pass below checks that
        # every other selected spike is one of its members (else the general path runs).
        c = int(self.clusters_of(sel[:1])[0])
        n0 = self.counter
        if n0 + sel.shape[0] >= 2**31 - 1:
            return None
        members = self._spikes.get(c)
        if members is None:
            return None
        ok, rest = _subset_remainder(members, sel.astype(members.dtype))
        if not ok:
            return None
        one = np.array([c])
        return self._split_from_parts(
            sel, one, True, {c: members}, {c: rest} if rest.shape[0] else {}, one, one
        )

    def _split_from_parts(
        self,
        sel: np.ndarray,
        new_ids: np.ndarray,
        unlabelled: bool,
        deleted: dict[int, np.ndarray],
        rests: dict[int, np.ndarray],
        old_ids: np.ndarray,
        touched: np.ndarray,
    ) -> Change:
        n0 = self.counter
        largest = _largest({c: int(a.shape[0]) for c, a in deleted.items()})
        distinct = np.array([n0]) if unlabelled else np.unique(new_ids)
        if not rests and distinct.shape[0] == 1:
            return self._merge_change(sorted(deleted))  # whole clusters: phy makes it a merge
        added: dict[int, np.ndarray] = {}
        if distinct.shape[0] == 1:
            added[int(distinct[0])] = sel.astype(self.index_dtype)
            desc = {(c, int(distinct[0])) for c in touched.tolist()}
        else:
            by_id = np.argsort(new_ids, kind="stable")  # keeps spikes ascending within an id
            sorted_ids = new_ids[by_id]
            id_bounds = np.flatnonzero(np.diff(sorted_ids)) + 1
            for chunk in np.split(by_id, id_bounds):
                added[int(new_ids[chunk[0]])] = sel[chunk].astype(self.index_dtype)
            pairs = np.unique(old_ids.astype(np.int64) * (1 << 32) + new_ids)
            desc = {(int(p >> 32), int(p & 0xFFFFFFFF)) for p in pairs.tolist()}
        next_id = int(distinct.max()) + 1
        for c in sorted(rests):
            added[next_id] = rests[c]
            desc.add((c, next_id))
            next_id += 1
        return Change(
            kind="split",
            deleted=deleted,
            added=added,
            counter_after=max(self.counter, max(added) + 1),
            descendants=tuple(sorted(desc)),
            largest_old=largest,
        )

    def resolve_assign(self, spike_ids, cluster_ids) -> Change:
        """An explicit assignment (imports): spikes get the given absolute ids.

        The selection must cover every touched cluster entirely (clusters are replaced,
        never edited in place), and no target id may be a cluster that stays alive.
        """
        sel = self._validate_selection(spike_ids, "assign")
        targets = np.asarray(cluster_ids).reshape(-1)
        if targets.shape[0] != sel.shape[0]:
            raise InvalidActionError(
                f"assign: {targets.shape[0]} cluster ids for {sel.shape[0]} spikes"
            )
        if targets.dtype.kind not in "iu" or (targets.size and int(targets.min()) < 0):
            raise InvalidActionError("assign: cluster ids must be non-negative integers")
        if targets.size and int(targets.max()) >= 2**31 - 1:
            raise InvalidActionError("assign: cluster id beyond the int32 range")
        targets = targets.astype(np.int64)
        order = np.argsort(sel, kind="stable")
        sel, targets = sel[order], targets[order]
        if sel.shape[0] > 1 and np.any(sel[1:] == sel[:-1]):
            raise InvalidActionError("assign: a spike appears more than once")
        old_ids = self.clusters_of(sel)
        touched = np.unique(old_ids).tolist()
        covered = sum(int(self._spikes[c].shape[0]) for c in touched)
        if covered != sel.shape[0]:
            raise InvalidActionError(
                "assign: the selection must contain every spike of the clusters it touches"
            )
        distinct = np.unique(targets)
        live = [int(t) for t in distinct.tolist() if t in self._spikes]
        if live:
            raise InvalidActionError(f"assign: target cluster {live[0]} already exists")
        added: dict[int, np.ndarray] = {}
        by_id = np.argsort(targets, kind="stable")
        bounds = np.flatnonzero(np.diff(targets[by_id])) + 1
        for chunk in np.split(by_id, bounds):
            added[int(targets[chunk[0]])] = sel[chunk].astype(self.index_dtype)
        deleted = {c: self._spikes[c] for c in touched}
        return Change(
            kind="assign",
            deleted=deleted,
            added=added,
            counter_after=max(self.counter, int(distinct.max()) + 1),
            descendants=tuple(sorted(set(zip(old_ids.tolist(), targets.tolist(), strict=True)))),
            largest_old=_largest({c: int(a.shape[0]) for c, a in deleted.items()}),
        )

    # ------------------------------------------------------------------ apply / revert
    def write_ahead(self, change: Change) -> bool:
        """Write a resolved, not yet applied change's new ids into ``spike_clusters`` now.

        Used while the log commits the change's record: the stores then cost no wall time,
        instead of being deferred to the next read. Only changes of at most
        :data:`WRITE_AHEAD_MAX` spikes are written (about one fsync's worth of scattered
        stores); returns whether it was. Pass ``written=True`` to :meth:`apply` afterwards,
        or call :meth:`unwrite` if the change is abandoned.
        """
        if change.evicted or change.n_spikes > WRITE_AHEAD_MAX:
            return False
        for cid, spikes in change.added.items():
            _scatter(self._spike_clusters, spikes, cid)
        return True

    def unwrite(self, change: Change) -> None:
        """Undo :meth:`write_ahead` (also a partial one) of a change that was not applied."""
        for cid, spikes in change.deleted.items():
            _scatter(self._spike_clusters, spikes, cid)

    def apply(self, change: Change, *, written: bool = False) -> None:
        """Apply a resolved change (also used by redo, with the same absolute ids).

        ``written``: :meth:`write_ahead` already stored the new ids in ``spike_clusters``.
        """
        if change.evicted:
            raise InvalidActionError(
                "internal: this change was evicted from memory and must be re-resolved"
            )
        for cid in change.deleted:
            del self._spikes[cid]
        for cid, spikes in change.added.items():
            if not written:
                self._pending.append((cid, spikes))
            self._spikes[cid] = spikes
        self.counter = max(self.counter, change.counter_after)
        self._sorted_ids = None
        if len(self._pending) > self._prune_at:
            self._prune_pending()

    def revert(self, change: Change) -> None:
        """Undo a change; the counter is not lowered (ids are never reused)."""
        if change.evicted:
            raise InvalidActionError(
                "internal: this change was evicted from memory; rebuild by replay"
            )
        for cid in change.added:
            del self._spikes[cid]
        for cid, spikes in change.deleted.items():
            self._pending.append((cid, spikes))
            self._spikes[cid] = spikes
        self._sorted_ids = None
