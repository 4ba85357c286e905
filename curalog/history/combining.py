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

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numba
import numpy as np

from curalog.clustering import Change, ClusterState
from curalog.curation import (
    DEFAULT_BRANCH,
    LOG_DIRNAME,
    Curation,
    default_log_path,
    make_header,
)
from curalog.dataset import GROUP_FIELD, Dataset, Fingerprint, load_dataset
from curalog.errors import CuralogError, InvalidActionError, LogCorruptError, LogError
from curalog.events.envelope import (
    ACTION_TYPES,
    ASSIGN,
    LABEL,
    MERGE,
    NOTE,
    REDO,
    SPLIT,
    UNDO,
    Event,
    envelope,
    unpack_array,
)
from curalog.store.log import (
    ScanResult,
    create_log,
    default_author,
    encode_frame,
    read_log,
    scan_bytes,
)

#: ``note`` kind written as the first event of a branch after the copied prefix.
BRANCH_NOTE = "branch"
#: ``note`` kind written at the end of a combined branch.
COMBINE_NOTE = "combine"
#: Value of the ``"schema"`` key of ``curalog diff --json``.
DIFF_SCHEMA = "curalog-diff/1"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_STRUCTURAL = (MERGE, SPLIT, ASSIGN)


class HistoryError(CuralogError):
    """A branch, diff or combine request that cannot be carried out."""


# ====================================================================== logs and branches
def validate_branch_name(name: str) -> str:
    """A branch name is a file name: letters, digits, ``.``, ``_``, ``-``; not ``*.log``."""
    if (
        not isinstance(name, str)
        or not _NAME_RE.match(name)
        or name.endswith((".log", ".lock", ".tmp"))
        or ".." in name
    ):
        raise HistoryError(
            f"invalid branch name {name!r}: use letters, digits, '.', '_' and '-' (at most 100, not ending in .log)"
        )
    return name


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or "/" in ref or ref.endswith(".log")


def resolve_log(folder: str | os.PathLike[str], ref: str | os.PathLike[str]) -> Path:
    """The log file named by ``ref``: a branch name of ``folder`` or a path to a log file.

    Raises
    ------
    HistoryError
        When neither a branch of that name nor such a file exists.
    """
    if isinstance(ref, Path) or _looks_like_path(str(ref)):
        p = Path(ref)
        if not p.is_file():
            raise HistoryError(f"{p}: no such log file")
        return p
    name = str(ref)
    p = default_log_path(folder, name)
    if p.is_file():
        return p
    known = ", ".join(b.name for b in list_branches(folder)) or "none yet"
    raise HistoryError(f"no branch {name!r} in {Path(folder) / LOG_DIRNAME} (branches: {known})")


def _display_name(folder: str | os.PathLike[str], path: Path) -> str:
    """The branch name when ``path`` is a branch of ``folder``, else the path."""
    log_dir = (Path(folder) / LOG_DIRNAME).resolve()
    with contextlib.suppress(OSError):
        if path.resolve().parent == log_dir and path.suffix == ".log":
            return path.stem
    return str(path)


def branch_note(events: list[Event]) -> dict[str, Any] | None:
    """The data of the last ``branch`` note of a log (its own fork record), or None."""
    for e in reversed(events):
        if e.type == NOTE and e.body.get("kind") == BRANCH_NOTE:
            data = e.body.get("data")
            return dict(data) if isinstance(data, dict) else {}
    return None


@dataclass
class BranchInfo:
    """One log of a dataset folder, as listed by ``curalog branches``.

    Attributes
    ----------
    name : str
        The file stem (``main`` for ``.curalog/main.log``).
    path : Path
    n_events : int
        Valid events (= the head's seq).
    head : str
        Hex hash of the last record (the header's hash for an empty log).
    root : str
        Hex hash of the header: logs with the same root share history.
    updated_ns : int or None
        Time of the last event.
    parent : dict or None
        ``{"name", "seq", "head"}`` from the branch note; None for a root log.
    error : str or None
        Why the log could not be read (then the other fields are empty).
    """

    name: str
    path: Path
    n_events: int = 0
    head: str = ""
    root: str = ""
    updated_ns: int | None = None
    parent: dict[str, Any] | None = None
    authors: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "events": self.n_events,
            "head": self.head,
            "root": self.root,
            "updated": iso_time(self.updated_ns) if self.updated_ns else None,
            "parent": self.parent,
            "authors": self.authors,
            "error": self.error,
        }


def _branch_info(path: Path) -> BranchInfo:
    try:
        scan = read_log(path)
    except CuralogError as exc:
        return BranchInfo(name=path.stem, path=path, error=str(exc))
    note = branch_note(scan.events)
    parent = None
    if note is not None:
        p = note.get("parent")
        parent = dict(p) if isinstance(p, dict) else None
    info = BranchInfo(
        name=path.stem,
        path=path,
        n_events=len(scan.events),
        head=scan.head_hash.hex(),
        root=scan.header_hash.hex(),
        updated_ns=scan.events[-1].time_ns if scan.events else scan.header.get("created"),
        parent=parent,
        authors=sorted({e.author for e in scan.events}),
        error=scan.corruption,
    )
    return info


def list_branches(folder: str | os.PathLike[str]) -> list[BranchInfo]:
    """Every log in ``DIR/.curalog`` (``main`` first, then by name) with its head."""
    log_dir = Path(folder) / LOG_DIRNAME
    if not log_dir.is_dir():
        return []
    paths = sorted(p for p in log_dir.glob("*.log") if p.is_file() and not p.name.startswith("."))
    paths.sort(key=lambda p: (p.stem != DEFAULT_BRANCH, p.stem))
    return [_branch_info(p) for p in paths]


def _record_end(scan: ScanResult, seq: int) -> int:
    """Byte offset just after record ``seq`` (the header's end for 0)."""
    if seq < len(scan.events):
        return scan.offsets[seq]
    return scan.good_end


def _hash_at(scan: ScanResult, seq: int) -> bytes:
    return scan.events[seq - 1].hash if seq > 0 else scan.header_hash


def _check_dataset(scan: ScanResult, ds: Dataset, path: Path) -> None:
    try:
        logged = Fingerprint.from_dict(scan.header["dataset"])
    except (KeyError, TypeError, ValueError):
        raise LogCorruptError(f"{path}: header has no valid dataset fingerprint") from None
    if logged != ds.fingerprint:
        raise HistoryError(
            f"{path}: written for another dataset ({', '.join(ds.fingerprint.differences(logged))})"
        )


def _note_frame(scan: ScanResult, seq: int, body: dict[str, Any], author: str) -> bytes:
    env = envelope(seq + 1, NOTE, time.time_ns(), author, _hash_at(scan, seq), body)
    return encode_frame(msgpack.packb(env, use_bin_type=True))


def _write_new_file(dest: Path, data: bytes) -> None:
    """Create ``dest`` with ``data`` atomically; refuse to replace an existing file."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, dest)
    except FileExistsError:
        raise HistoryError(f"{dest}: already exists") from None
    except OSError as exc:
        raise LogError(f"{dest}: cannot create ({exc.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    with contextlib.suppress(OSError):
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fork_bytes(
    src: Path, at: int | None, note: dict[str, Any], author: str
) -> tuple[bytes, ScanResult, int]:
    """Parent bytes up to ``at`` plus a branch note record; checks the result parses."""
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise LogError(f"{src}: cannot be read ({exc.strerror})") from None
    scan = scan_bytes(data, str(src))
    n = len(scan.events)
    if at is None:
        at = n
    if not isinstance(at, int) or at < 0 or at > n:
        raise HistoryError(f"--at {at}: {src} has events 1..{n} (0 = the sorter's output)")
    note = dict(note)
    data_field = dict(note.get("data", {}))
    parent = dict(data_field.get("parent", {}))
    parent.update({"seq": at, "head": _hash_at(scan, at).hex()})
    data_field["parent"] = parent
    note["data"] = data_field
    out = data[: _record_end(scan, at)] + _note_frame(scan, at, note, author)
    check = scan_bytes(out, str(src))
    if (
        check.corruption or check.torn or len(check.events) != at + 1
    ):  # pragma: no cover - defensive
        raise LogCorruptError(f"{src}: the branch copy does not verify")
    return out, scan, at


def _ensure_log(folder: str | os.PathLike[str], path: Path, ds: Dataset, author: str) -> None:
    if not path.exists() and path == default_log_path(folder, DEFAULT_BRANCH):
        with contextlib.suppress(LogError):  # created concurrently: fine
            create_log(path, make_header(ds, author))


def create_branch(
    folder: str | os.PathLike[str],
    name: str,
    at: int | None = None,
    from_branch: str | os.PathLike[str] = DEFAULT_BRANCH,
    *,
    author: str | None = None,
) -> BranchInfo:
    """Start branch ``name`` from ``from_branch`` (a branch name or log path) at seq ``at``.

    The new log is the parent's header and records 1..``at`` byte for byte, then a ``note``
    event of kind ``"branch"`` naming the parent and the fork point. ``main`` is created
    first if the folder has no history yet.

    Parameters
    ----------
    folder : path
        The dataset folder.
    name : str
        The new branch (``DIR/.curalog/<name>.log``); must not exist.
    at : int, optional
        Fork after this event (default: the parent's head; 0 = the sorter's output).
    from_branch : str or path
        The parent branch name or log path (default ``main``).
    author : str, optional
        Recorded in the branch note.

    Returns
    -------
    BranchInfo
    """
    validate_branch_name(name)
    author = author or default_author()
    ds = load_dataset(folder)
    dest = default_log_path(folder, name)
    if dest.exists():
        raise HistoryError(f"branch {name!r} already exists ({dest})")
    if not _looks_like_path(str(from_branch)) and not isinstance(from_branch, Path):
        _ensure_log(folder, default_log_path(folder, str(from_branch)), ds, author)
    src = resolve_log(folder, from_branch)
    parent_name = _display_name(folder, src)
    note = {
        "kind": BRANCH_NOTE,
        "text": f"branch {name} from {parent_name}" + (f" at #{at}" if at is not None else ""),
        "data": {"name": name, "parent": {"name": parent_name}},
    }
    data, scan, at = _fork_bytes(src, at, note, author)
    _check_dataset(scan, ds, src)
    _write_new_file(dest, data)
    return _branch_info(dest)


def common_prefix(a: ScanResult, b: ScanResult) -> int:
    """Number of leading records the two logs share (0 when their headers differ)."""
    if a.header_hash != b.header_hash:
        return 0
    n = min(len(a.events), len(b.events))
    # The chain makes record k's hash depend on every earlier record: binary search works.
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.events[mid - 1].hash == b.events[mid - 1].hash:
            lo = mid
        else:
            hi = mid - 1
    return lo


# ====================================================================== event helpers
def iso_time(time_ns: int | None) -> str | None:
    if not time_ns:
        return None
    return dt.datetime.fromtimestamp(time_ns / 1e9, tz=dt.UTC).isoformat(timespec="seconds")


def event_clusters(event: Event) -> list[int]:
    """Cluster ids an event mentions (its inputs and outputs), for diff listings."""
    b = event.body
    ids: list[Any] = []
    try:
        if event.type == MERGE:
            ids = [*b["clusters"], b["new"]]
        elif event.type in (SPLIT, ASSIGN):
            ids = [*b["deleted"], *b["added"]]
        elif event.type == LABEL:
            ids = list(b["clusters"])
    except (KeyError, TypeError):
        return []
    return sorted({int(x) for x in ids if isinstance(x, int)})


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-friendly summary of an event (no spike arrays)."""
    out: dict[str, Any] = {
        "seq": event.seq,
        "type": event.type,
        "time": iso_time(event.time_ns),
        "author": event.author,
        "hash": event.hash.hex(),
        "summary": event.summary(),
        "clusters": event_clusters(event),
    }
    if event.type in (UNDO, REDO):
        out["target"] = event.body.get("target")
    if event.type == NOTE:
        out["kind"] = event.body.get("kind")
    return out


def effective_actions(events: list[Event]) -> tuple[list[Event], list[Event]]:
    """The actions in effect after ``events`` (undo/redo resolved), and the undone ones.

    Returns
    -------
    effective : list of Event
        Actions on the undo stack below its position, oldest first.
    undone : list of Event
        Actions that were undone and are still redoable.
    """
    stack: list[Event] = []
    pos = 0
    for e in events:
        if e.type in ACTION_TYPES:
            del stack[pos:]
            stack.append(e)
            pos += 1
        elif e.type == UNDO and pos > 0:
            pos -= 1
        elif e.type == REDO and pos < len(stack):
            pos += 1
    return stack[:pos], stack[pos:]


# ====================================================================== contingency
#: Largest ``n_a * n_b`` for which the contingency table is counted densely.
DENSE_LIMIT = 1 << 23
#: Largest cluster id for which ids are mapped through a lookup table.
LUT_LIMIT = 1 << 24


@numba.njit(cache=True, nogil=True)
def _count_ids(x: np.ndarray, size: int) -> np.ndarray:
    counts = np.zeros(size, dtype=np.int64)
    for i in range(x.shape[0]):
        counts[x[i]] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _dense_table(
    a: np.ndarray, b: np.ndarray, lut_a: np.ndarray, lut_b: np.ndarray, kb: int, table: np.ndarray
) -> None:
    for i in range(a.shape[0]):
        table[lut_a[a[i]] * kb + lut_b[b[i]]] += 1


@numba.njit(cache=True, nogil=True)
def _sparse_table(
    a: np.ndarray, b: np.ndarray, lut_a: np.ndarray, lut_b: np.ndarray, ka: int, kb: int
):
    n = a.shape[0]
    starts = np.zeros(ka + 1, dtype=np.int64)
    for i in range(n):
        starts[lut_a[a[i]] + 1] += 1
    for k in range(ka):
        starts[k + 1] += starts[k]
    pos = starts[:-1].copy()
    grouped = np.empty(n, dtype=np.int32)
    for i in range(n):
        r = lut_a[a[i]]
        grouped[pos[r]] = lut_b[b[i]]
        pos[r] += 1
    marker = np.full(kb, -1, dtype=np.int64)
    nnz = 0
    for r in range(ka):
        for j in range(starts[r], starts[r + 1]):
            c = grouped[j]
            if marker[c] != r:
                marker[c] = r
                nnz += 1
    rows = np.empty(nnz, dtype=np.int64)
    cols = np.empty(nnz, dtype=np.int64)
    counts = np.zeros(nnz, dtype=np.int64)
    slot = np.empty(kb, dtype=np.int64)
    marker[:] = -1
    k = 0
    for r in range(ka):
        for j in range(starts[r], starts[r + 1]):
            c = grouped[j]
            if marker[c] != r:
                marker[c] = r
                slot[c] = k
                rows[k] = r
                cols[k] = c
                k += 1
            counts[slot[c]] += 1
    return rows, cols, counts


def _as_ids(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what}: cluster ids must be integers, got {arr.dtype}")
    if arr.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        arr = arr.astype(np.int64)
    arr = np.ascontiguousarray(arr)
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"{what}: negative cluster id {int(arr.min())}")
    return arr


def _factorize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(values, lut, ids, sizes)``: ``lut[values[i]]`` is the dense code of spike i."""
    if x.size == 0:
        return x, np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    mx = int(x.max())
    if mx < LUT_LIMIT:
        counts = _count_ids(x, mx + 1)
        ids = np.flatnonzero(counts)
        lut = np.full(mx + 1, -1, dtype=np.int64)
        lut[ids] = np.arange(ids.shape[0])
        return x, lut, ids.astype(np.int64), counts[ids]
    ids, inverse, sizes = np.unique(x, return_inverse=True, return_counts=True)
    return (
        inverse.astype(np.int64),
        np.arange(ids.shape[0], dtype=np.int64),
        ids.astype(np.int64),
        sizes,
    )


@dataclass
class Contingency:
    """Sparse contingency table of two labelings of the same spikes.

    ``counts[k]`` spikes are in cluster ``ids_a[rows[k]]`` of A and ``ids_b[cols[k]]`` of B.
    Entries are sorted by row, then column.
    """

    n: int
    ids_a: np.ndarray
    ids_b: np.ndarray
    sizes_a: np.ndarray
    sizes_b: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray


def contingency(a: np.ndarray, b: np.ndarray) -> Contingency:
    """The exact contingency table of two cluster assignments of the same spikes.

    Counting is one pass in numba: into a dense ``n_a x n_b`` table when it is small
    (1,000 x 1,000 clusters), else through a counting sort by A's cluster.
    """
    a = _as_ids(a, "A")
    b = _as_ids(b, "B")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"the two assignments have {a.shape[0]} and {b.shape[0]} spikes")
    va, lut_a, ids_a, sizes_a = _factorize(a)
    vb, lut_b, ids_b, sizes_b = _factorize(b)
    ka, kb = ids_a.shape[0], ids_b.shape[0]
    if ka * kb <= DENSE_LIMIT:
        table = np.zeros(ka * kb, dtype=np.int64)
        if a.shape[0]:
            _dense_table(va, vb, lut_a, lut_b, kb, table)
        flat = np.flatnonzero(table)
        rows, cols = np.divmod(flat, kb) if kb else (flat, flat)
        counts = table[flat]
    else:
        rows, cols, counts = _sparse_table(va, vb, lut_a, lut_b, ka, kb)
        order = np.lexsort((cols, rows))
        rows, cols, counts = rows[order], cols[order], counts[order]
    return Contingency(
        int(a.shape[0]),
        ids_a,
        ids_b,
        sizes_a,
        sizes_b,
        rows.astype(np.int64),
        cols.astype(np.int64),
        counts.astype(np.int64),
    )


def _pairs(x: np.ndarray) -> int:
    x = np.asarray(x, dtype=np.int64)
    return int((x * (x - 1) // 2).sum())


def adjusted_rand_index_from_table(table: Contingency) -> float:
    """Hubert and Arabie's adjusted Rand index from a contingency table.

    ``ARI = (index - expected) / (max - expected)`` with ``index = sum C(n_ij, 2)``,
    ``expected = sum C(a_i, 2) * sum C(b_j, 2) / C(n, 2)`` and
    ``max = (sum C(a_i, 2) + sum C(b_j, 2)) / 2``, computed in exact integers. Identical
    partitions give 1 (also in the degenerate cases where the formula is 0/0).
    """
    n = table.n
    total = n * (n - 1) // 2
    if total == 0:
        return 1.0
    index = _pairs(table.counts)
    sa = _pairs(table.sizes_a)
    sb = _pairs(table.sizes_b)
    num = 2 * (index * total - sa * sb)
    den = (sa + sb) * total - 2 * sa * sb
    if den == 0:
        return 1.0
    return num / den


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two cluster assignments of the same spikes."""
    return adjusted_rand_index_from_table(contingency(a, b))


# ====================================================================== outcome diff
@dataclass
class Difference:
    """A connected group of clusters on which A and B disagree.

    Attributes
    ----------
    kind : str
        ``"merge"`` (one side merged clusters the other keeps apart), ``"split"`` (one side
        split a cluster the other keeps whole) or ``"other"``.
    by : str or None
        ``"a"`` or ``"b"``: the side that merged or split; None for ``"other"``.
    a_clusters, b_clusters : list of int
    n_spikes : int
    """

    kind: str
    by: str | None
    a_clusters: list[int]
    b_clusters: list[int]
    n_spikes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "by": self.by,
            "a_clusters": self.a_clusters,
            "b_clusters": self.b_clusters,
            "n_spikes": self.n_spikes,
        }


@dataclass
class LabelDisagreement:
    """A label field whose value differs on a cluster identical in A and B."""

    a_cluster: int
    b_cluster: int
    field: str
    a_value: Any
    b_value: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "a_cluster": self.a_cluster,
            "b_cluster": self.b_cluster,
            "field": self.field,
            "a": self.a_value,
            "b": self.b_value,
        }


@dataclass
class OutcomeDiff:
    """The comparison of two replayed states of the same spikes."""

    n_spikes: int
    n_clusters_a: int
    n_clusters_b: int
    identical: list[tuple[int, int, int]]  # (a id, b id, n spikes)
    differences: list[Difference]
    label_disagreements: list[LabelDisagreement]
    agreement: float
    adjusted_rand_index: float

    @property
    def merges(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "merge"]

    @property
    def splits(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "split"]

    @property
    def other(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "other"]

    @property
    def n_identical_spikes(self) -> int:
        return int(sum(n for _, _, n in self.identical))

    @property
    def is_equal(self) -> bool:
        """Same clusters with the same ids and the same labels."""
        return (
            not self.differences
            and not self.label_disagreements
            and all(x == y for x, y, _ in self.identical)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_spikes": self.n_spikes,
            "n_clusters": {"a": self.n_clusters_a, "b": self.n_clusters_b},
            "agreement": self.agreement,
            "adjusted_rand_index": self.adjusted_rand_index,
            "identical": {
                "count": len(self.identical),
                "n_spikes": self.n_identical_spikes,
                "renamed": [[x, y] for x, y, _ in self.identical if x != y],
            },
            "merges": [d.to_dict() for d in self.merges],
            "splits": [d.to_dict() for d in self.splits],
            "other": [d.to_dict() for d in self.other],
            "label_disagreements": [d.to_dict() for d in self.label_disagreements],
        }


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        parent = self.parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, x: Any, y: Any) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[ry] = rx


def _base_shape(
    side: np.ndarray, base: np.ndarray, base_ids: np.ndarray, base_sizes: np.ndarray
) -> dict[int, tuple[bool, int]]:
    """For each cluster of ``side`` (restricted to some spikes): whether it is a union of
    whole base clusters, and how many base clusters it intersects."""
    t = contingency(side, base)
    full = t.counts == base_sizes[np.searchsorted(base_ids, t.ids_b[t.cols])]
    out: dict[int, tuple[bool, int]] = {}
    bounds = np.flatnonzero(np.diff(t.rows)) + 1
    for chunk_rows, chunk_full in zip(
        np.split(t.rows, bounds), np.split(full, bounds), strict=True
    ):
        if chunk_rows.size:
            out[int(t.ids_a[chunk_rows[0]])] = (bool(chunk_full.all()), int(chunk_rows.size))
    return out


def _member_mask(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.isin(x, ids)`` through a lookup table when the ids are small."""
    top = int(x.max()) if x.size else 0
    if top < LUT_LIMIT:
        lut = np.zeros(top + 1, dtype=bool)
        lut[ids[ids <= top]] = True
        return lut[x]
    return np.isin(x, ids)


def _label_disagreements(
    pairs: list[tuple[int, int, int]],
    labels_a: dict[str, dict[int, Any]],
    labels_b: dict[str, dict[int, Any]],
) -> list[LabelDisagreement]:
    out: list[LabelDisagreement] = []
    fields = list(dict.fromkeys([*labels_a, *labels_b]))
    empty: dict[int, Any] = {}
    for name in fields:
        va, vb = labels_a.get(name, empty), labels_b.get(name, empty)
        if not va and not vb:
            continue
        for x, y, _ in pairs:
            p, q = va.get(x), vb.get(y)
            if p != q:
                out.append(LabelDisagreement(x, y, name, p, q))
    out.sort(key=lambda d: (d.a_cluster, d.b_cluster, d.field != GROUP_FIELD, d.field))
    return out


def outcome_diff(
    a: np.ndarray,
    b: np.ndarray,
    base: np.ndarray | None = None,
    labels_a: dict[str, dict[int, Any]] | None = None,
    labels_b: dict[str, dict[int, Any]] | None = None,
) -> OutcomeDiff:
    """Compare two cluster assignments of the same spikes.

    Parameters
    ----------
    a, b : ndarray of int, shape (n_spikes,)
        The two ``spike_clusters``.
    base : ndarray of int, optional
        Their common ancestor (the state at the common prefix). It tells a merge by one
        side from a split by the other: a one-to-many difference is a *merge* by the coarse
        side when the fine side's clusters are unions of whole base clusters, a *split* by
        the fine side when the coarse cluster lies within one base cluster, else *other*.
        Without a base, every one-to-many difference counts as a merge by the coarse side.
    labels_a, labels_b : dict, optional
        ``{field: {cluster: value}}``; compared on clusters identical in both.

    Returns
    -------
    OutcomeDiff
    """
    table = contingency(a, b)
    ra, cb = table.rows, table.cols
    sa = table.sizes_a[ra]
    sb = table.sizes_b[cb]
    same = (table.counts == sa) & (table.counts == sb)
    identical = [
        (int(table.ids_a[r]), int(table.ids_b[c]), int(n))
        for r, c, n in zip(
            ra[same].tolist(), cb[same].tolist(), table.counts[same].tolist(), strict=True
        )
    ]
    uf = _UnionFind()
    rest = ~same
    for r, c in zip(ra[rest].tolist(), cb[rest].tolist(), strict=True):
        uf.union(("a", r), ("b", c))
    comps: dict[Any, tuple[list[int], list[int]]] = {}
    for node in list(uf.parent):
        root = uf.find(node)
        side, idx = node
        entry = comps.setdefault(root, ([], []))
        entry[0 if side == "a" else 1].append(idx)
    shape_a: dict[int, tuple[bool, int]] = {}
    shape_b: dict[int, tuple[bool, int]] = {}
    if comps and base is not None:
        base_arr = _as_ids(base, "base")
        if base_arr.shape[0] != table.n:
            raise ValueError(f"base has {base_arr.shape[0]} spikes, expected {table.n}")
        a_arr, b_arr = _as_ids(a, "A"), _as_ids(b, "B")
        involved_ids = np.unique(np.concatenate([table.ids_a[r] for r, _ in comps.values()]))
        sel = np.flatnonzero(_member_mask(a_arr, involved_ids))
        _, _, base_ids, base_sizes = _factorize(base_arr)
        sub_base = base_arr[sel]
        shape_a = _base_shape(a_arr[sel], sub_base, base_ids, base_sizes)
        shape_b = _base_shape(b_arr[sel], sub_base, base_ids, base_sizes)
    differences: list[Difference] = []
    for rows_idx, cols_idx in comps.values():
        ids_a = sorted(int(table.ids_a[r]) for r in rows_idx)
        ids_b = sorted(int(table.ids_b[c]) for c in cols_idx)
        n = int(table.sizes_a[rows_idx].sum())
        kind, by = "other", None
        if len(ids_a) == 1 or len(ids_b) == 1:
            coarse, fine = ("a", "b") if len(ids_a) == 1 else ("b", "a")
            fine_ids = ids_b if fine == "b" else ids_a
            coarse_id = (ids_a if coarse == "a" else ids_b)[0]
            fine_shape = shape_b if fine == "b" else shape_a
            coarse_shape = shape_a if coarse == "a" else shape_b
            if base is None or all(fine_shape[c][0] for c in fine_ids):
                kind, by = "merge", coarse
            elif coarse_shape[coarse_id][1] == 1:
                kind, by = "split", fine
        differences.append(Difference(kind, by, ids_a, ids_b, n))
    order = {"merge": 0, "split": 1, "other": 2}
    differences.sort(key=lambda d: (order[d.kind], min(d.a_clusters + d.b_clusters)))
    disagreements = _label_disagreements(identical, labels_a or {}, labels_b or {})
    n_ident = sum(n for _, _, n in identical)
    return OutcomeDiff(
        n_spikes=table.n,
        n_clusters_a=int(table.ids_a.shape[0]),
        n_clusters_b=int(table.ids_b.shape[0]),
        identical=identical,
        differences=differences,
        label_disagreements=disagreements,
        agreement=(n_ident / table.n) if table.n else 1.0,
        adjusted_rand_index=adjusted_rand_index_from_table(table),
    )


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


def _resolve_logged(state: ClusterState, event: Event, where: str) -> Change:
    """Resolve a logged structural event on ``state`` and check it against its record."""
    body = event.body
    try:
        if event.type == MERGE:
            change = state.resolve_merge(body["clusters"])
            logged_added, logged_deleted = [body["new"]], sorted(body["clusters"])
        else:
            spikes = unpack_array(body["spikes"], where)
            if event.type == SPLIT:
                labels = (
                    unpack_array(body["labels"], where) if body.get("labels") is not None else None
                )
                change = state.resolve_split(spikes, labels)
            else:
                change = state.resolve_assign(spikes, unpack_array(body["clusters"], where))
            logged_added, logged_deleted = list(body["added"]), list(body["deleted"])
    except InvalidActionError as exc:
        raise LogCorruptError(f"{where}: replay diverged ({exc})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise LogCorruptError(f"{where}: malformed {event.type} body ({exc})") from None
    if change.added_ids != logged_added or change.deleted_ids != logged_deleted:
        raise LogCorruptError(f"{where}: replay diverged (ids differ from the record)")
    return change


@dataclass
class _Step:
    event: Event
    change: Change | None


def _simulate(
    ds: Dataset, events: list[Event], k: int, path: Path
) -> tuple[set[int], list[_Step], list[int]]:
    """Replay B's structure on a private state; return the live ids at ``k``, the effective
    steps after ``k`` (with their resolved changes, in B's ids) and the shared actions that
    B undid."""
    state = ClusterState(ds.spike_templates)
    stack: list[_Step] = []
    pos = 0
    live_k: set[int] | None = None
    shared: set[int] = set()
    for e in events:
        if e.seq == k + 1:
            live_k = set(state.cluster_ids.tolist())
            shared = {s.event.seq for s in stack[:pos]}
        if e.type in _STRUCTURAL:
            change = _resolve_logged(state, e, f"{path}: event {e.seq}")
            state.apply(change)
            del stack[pos:]
            stack.append(_Step(e, change))
            pos += 1
        elif e.type == LABEL:
            del stack[pos:]
            stack.append(_Step(e, None))
            pos += 1
        elif e.type == UNDO and pos > 0:
            pos -= 1
            step = stack[pos]
            if step.change is not None:
                state.revert(step.change)
        elif e.type == REDO and pos < len(stack):
            step = stack[pos]
            if step.change is not None:
                state.apply(step.change)
            pos += 1
    if live_k is None:
        live_k = set(state.cluster_ids.tolist())
        shared = {s.event.seq for s in stack[:pos]}
    effective = [s for s in stack[:pos] if s.event.seq > k]
    undone_shared = sorted(shared - {s.event.seq for s in stack[:pos]})
    return live_k, effective, undone_shared


def _who_deleted(events: list[Event], k: int) -> dict[int, int]:
    """Cluster id -> seq of the effective action after ``k`` that made it disappear."""
    out: dict[int, int] = {}
    effective, _ = effective_actions(events)
    for e in effective:
        if e.seq <= k or e.type not in _STRUCTURAL:
            continue
        gone = e.body.get("clusters") if e.type == MERGE else e.body.get("deleted")
        for c in gone or []:
            out.setdefault(int(c), e.seq)
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
                    (e for e in scan_b.events[k:] if e.type == UNDO and e.body.get("target") == u),
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
            mapped = []
            for c in change.deleted_ids:
                m, why = locate(c)
                if why:
                    problems.append(why)
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
            body = e.body
            if e.type == MERGE:
                cur.merge(mapped, meta=meta)
            elif e.type == SPLIT:
                where = f"{name_b}: event {e.seq}"
                spikes = unpack_array(body["spikes"], where)
                labels = (
                    unpack_array(body["labels"], where) if body.get("labels") is not None else None
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
        body = e.body
        name = str(body["field"])
        value = body.get("value")
        before = {int(c): v for c, v in body.get("previous", [])}
        apply_ids: list[int] = []
        bad: list[str] = []
        bad_ids: list[int] = []
        for c in body["clusters"]:
            c = int(c)
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


__all__ = [
    "BRANCH_NOTE",
    "COMBINE_NOTE",
    "DIFF_SCHEMA",
    "BranchInfo",
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
