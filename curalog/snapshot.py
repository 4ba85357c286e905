"""A disposable snapshot of a replayed curation, so that reopening a long history is fast.

Replaying a 10,000-event log over 50 M spikes takes seconds (the index of
``spike_templates``, the logged selections to inflate and check, the merges). The log stays
the only source of truth; beside it, ``<log>.snapshot`` caches the state its replay gives
at one event: the cluster index and ``spike_clusters``, the labels, and the undo stack with
the spike arrays of the actions kept in memory, exactly as the replay leaves them. Opening
the log again maps that file instead of replaying, when it matches:

* **its key**: the snapshot format, curalog's version, the dataset's fingerprint, the
  log's header hash, and the sequence number and hash of the event it was taken at, which
  must be an event of the log as it is now (so the head hash chain proves that every
  event up to it is the one the snapshot saw). A log that grew since is replayed from the
  snapshot on (its new events only); a log that was cut or rewritten below it, another
  dataset or another curalog rebuild it from the log;
* **its checksums**: CRC-32 of the header and of every 8 MiB of data, all verified on
  open; any damage (or a short file) rebuilds;
* **its structure**: array references in range, the live clusters covering every spike
  once, the undo stack's entries being the log's actions.

Anything else is treated as absent, and the state is replayed from the log as if the
file did not exist; the session writes a fresh snapshot when it closes. Deleting the file
is always safe. ``CURALOG_SNAPSHOT=0`` turns snapshots off.

File layout (little-endian)::

    b"CURASNAP" | u32 format | u32 meta length | u32 crc32(meta) | meta (msgpack) |
    zero padding to 4096 | data (arrays, each at a 64-byte aligned offset)

The data are mapped copy-on-write, so opening touches the page cache instead of
allocating and copying; writes (deferred ``spike_clusters`` updates) stay private.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from curalog._version import __version__
from curalog.clustering import Change, ClusterState
from curalog.events import ACTION_TYPES, LABEL, Event
from curalog.labels import LabelValue
from curalog.replaying import Action, UndoStack

__all__ = [
    "SNAPSHOT_FORMAT",
    "Snapshot",
    "enabled",
    "read_snapshot",
    "snapshot_path",
    "write_snapshot",
]

SNAPSHOT_FORMAT = 1
MAGIC = b"CURASNAP"
_HEAD = struct.Struct("<8sIII")
DATA_START = 4096
ALIGN = 64
CHUNK = 8 << 20
#: Below this many spikes a replay is fast enough without a snapshot (default policy).
MIN_SPIKES = 1_000_000
_DTYPES = {"i4": np.dtype("<i4"), "i8": np.dtype("<i8")}


def snapshot_path(log_path: str | os.PathLike[str]) -> Path:
    """``<log>.snapshot`` beside the log."""
    p = Path(log_path)
    return p.with_name(p.name + ".snapshot")


def enabled(n_spikes: int, policy: bool | None) -> bool:
    """Whether a session of this size keeps a snapshot (``policy``: True, False, None =
    by size, and never when ``CURALOG_SNAPSHOT=0``)."""
    if os.environ.get("CURALOG_SNAPSHOT", "").strip() in ("0", "no", "off", "false"):
        return False
    if policy is not None:
        return bool(policy)
    return n_spikes >= MIN_SPIKES


def make_key(
    fingerprint: dict[str, Any], header_hash: bytes, seq: int, head_hash: bytes, hot: tuple
) -> dict[str, Any]:
    return {
        "format": SNAPSHOT_FORMAT,
        "curalog": __version__,
        "dataset": fingerprint,
        "header_hash": header_hash.hex(),
        "seq": int(seq),
        "head_hash": head_hash.hex(),
        "hot": list(hot),
    }


@dataclass
class Snapshot:
    """A loaded snapshot: what :meth:`curalog.curation.Curation` restores."""

    seq: int
    state: ClusterState
    fields: list[tuple[str, dict[int, LabelValue]]]
    stack: UndoStack[Action]
    floor: int
    hot_bytes: int


class SnapshotInvalid(Exception):
    """Why a snapshot file cannot be used (it is then rebuilt from the log)."""


# ---------------------------------------------------------------------- writing
class _Pool:
    """Spike arrays by identity: an array shared by the index and the undo history is
    stored once and shared again when loaded."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._ids: dict[int, int] = {}

    def ref(self, arr: np.ndarray | None) -> int:
        if arr is None:
            return -1
        k = self._ids.get(id(arr))
        if k is None:
            if arr.dtype.str not in ("<i4", "<i8") or arr.ndim != 1:
                raise ValueError(f"unexpected spike array {arr.dtype} {arr.shape}")
            k = len(self.arrays)
            self._ids[id(arr)] = k
            self.arrays.append(arr)
        return k


def _pairs(d: dict[int, Any]) -> list[list[Any]]:
    return [[int(k), v] for k, v in d.items()]


def _change_meta(ch: Change, pool: _Pool) -> dict[str, Any]:
    return {
        "kind": ch.kind,
        "deleted": [[int(c), pool.ref(a)] for c, a in ch.deleted.items()],
        "added": [[int(c), pool.ref(a)] for c, a in ch.added.items()],
        "counter_after": int(ch.counter_after),
        "descendants": [[int(a), int(b)] for a, b in ch.descendants],
        "largest_old": ch.largest_old,
        "inherited": [[name, _pairs(vals)] for name, vals in ch.inherited.items()],
        "n_spikes": int(ch.n_spikes),
        "evicted": bool(ch.evicted),
    }


def write_snapshot(
    path: Path,
    key: dict[str, Any],
    state: ClusterState,
    fields: dict[str, dict[int, LabelValue]],
    stack: UndoStack[Action],
    floor: int,
    hot_bytes: int,
) -> int:
    """Write the snapshot atomically (a temporary file renamed over ``path``); returns its
    size in bytes. Raises OSError or ValueError when it cannot be written (the caller
    ignores it: a snapshot is only a cache)."""
    spike_clusters = state.spike_clusters  # flushes deferred writes
    pool = _Pool()
    live = [[int(c), pool.ref(a)] for c, a in sorted(state._spikes.items())]  # noqa: SLF001
    actions = []
    for action in stack.items:
        actions.append(
            {
                "seq": int(action.seq),
                "counter_before": int(action.counter_before),
                "previous": None if action.previous is None else _pairs(action.previous),
                "change": None if action.change is None else _change_meta(action.change, pool),
            }
        )
    table = []
    offset = 0
    blobs: list[np.ndarray] = [np.ascontiguousarray(spike_clusters, dtype="<i4")]
    table.append([offset, int(spike_clusters.shape[0]), "i4"])
    offset += blobs[0].nbytes
    for arr in pool.arrays:
        offset = -(-offset // ALIGN) * ALIGN
        table.append([offset, int(arr.shape[0]), arr.dtype.str[1:]])
        blobs.append(np.ascontiguousarray(arr))
        offset += arr.nbytes
    data_size = offset
    meta = {
        "key": key,
        "n_spikes": int(state.n_spikes),
        "index_dtype": np.dtype(state.index_dtype).str[1:],
        "counter": int(state.counter),
        "arrays": table,  # [0] is spike_clusters
        "live": live,
        "fields": [[name, _pairs(vals)] for name, vals in fields.items()],
        "actions": actions,
        "pos": int(stack.pos),
        "floor": int(floor),
        "hot_bytes": int(hot_bytes),
        "data_size": data_size,
        "chunk": CHUNK,
    }
    crcs = _data_crcs_of(blobs, table, data_size)
    meta["crcs"] = crcs
    packed = msgpack.packb(meta, use_bin_type=True)
    if _HEAD.size + len(packed) > DATA_START:
        start = -(-(_HEAD.size + len(packed)) // DATA_START) * DATA_START
    else:
        start = DATA_START
    head = _HEAD.pack(MAGIC, SNAPSHOT_FORMAT, len(packed), zlib.crc32(packed) & 0xFFFFFFFF)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(packed)
            f.write(b"\0" * (start - _HEAD.size - len(packed)))
            pos = 0
            for (off, _, _), blob in zip(table, blobs, strict=True):
                if off > pos:
                    f.write(b"\0" * (off - pos))
                f.write(memoryview(blob).cast("B"))
                pos = off + blob.nbytes
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return start + data_size


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _data_crcs_of(blobs: list[np.ndarray], table: list[list[Any]], size: int) -> list[int]:
    """CRC-32 of each CHUNK of the data region as it will be written (padding included)."""
    crcs = []
    chunk_start = 0
    crc = 0
    filled = 0  # bytes of the current chunk so far

    def feed(buf: memoryview) -> None:
        nonlocal crc, filled, chunk_start
        while len(buf):
            take = min(len(buf), CHUNK - filled)
            crc = zlib.crc32(buf[:take], crc)
            filled += take
            buf = buf[take:]
            if filled == CHUNK:
                crcs.append(crc & 0xFFFFFFFF)
                crc, filled = 0, 0
                chunk_start += CHUNK

    pos = 0
    for (off, _, _), blob in zip(table, blobs, strict=True):
        if off > pos:
            feed(memoryview(b"\0" * (off - pos)))
        feed(memoryview(blob).cast("B"))
        pos = off + blob.nbytes
    if filled:
        crcs.append(crc & 0xFFFFFFFF)
    return crcs


# ---------------------------------------------------------------------- reading
def _check_crcs(data: memoryview, crcs: list[int], size: int) -> None:
    n = -(-size // CHUNK) if size else 0
    if not isinstance(crcs, list) or len(crcs) != n:
        raise SnapshotInvalid("corrupt: checksum table")
    bad: list[int] = []

    def run(lo: int, hi: int) -> None:
        for k in range(lo, hi):
            part = data[k * CHUNK : min(size, (k + 1) * CHUNK)]
            if zlib.crc32(part) & 0xFFFFFFFF != crcs[k]:
                bad.append(k)

    if n >= 4:  # two threads (zlib releases the GIL)
        t = threading.Thread(target=run, args=(n // 2, n))
        t.start()
        run(0, n // 2)
        t.join()
    else:
        run(0, n)
    if bad:
        raise SnapshotInvalid(f"corrupt: checksum mismatch at byte {min(bad) * CHUNK}")


def _int(x: Any) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise TypeError("not an integer")
    return x


def _value(x: Any) -> LabelValue:
    if x is None or isinstance(x, (str, float)) or (isinstance(x, int) and not isinstance(x, bool)):
        return x
    raise TypeError("not a label value")


def _label_dict(pairs: Any) -> dict[int, LabelValue]:
    return {_int(c): _value(v) for c, v in pairs}


def read_snapshot(path: Path, key: dict[str, Any], events: list[Event]) -> Snapshot:
    """Load and verify a snapshot; :class:`SnapshotInvalid` says why it cannot be used.

    ``key`` is what the session expects (its ``seq`` / ``head_hash`` are ignored: the
    snapshot's own event must be one of ``events``, the log as read now).
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - the mapping outlives the with-block below
    except FileNotFoundError:
        raise SnapshotInvalid("absent") from None
    except OSError as exc:
        raise SnapshotInvalid(f"unreadable ({exc.__class__.__name__})") from None
    with f:
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            raise SnapshotInvalid("corrupt: truncated header")
        magic, fmt, mlen, mcrc = _HEAD.unpack(head)
        if magic != MAGIC:
            raise SnapshotInvalid("corrupt: not a curalog snapshot")
        if fmt != SNAPSHOT_FORMAT:
            raise SnapshotInvalid(f"stale: snapshot format {fmt}")
        size = os.fstat(f.fileno()).st_size
        if mlen > min(size, 1 << 30):
            raise SnapshotInvalid("corrupt: header length")
        packed = f.read(mlen)
        if len(packed) != mlen or zlib.crc32(packed) & 0xFFFFFFFF != mcrc:
            raise SnapshotInvalid("corrupt: header checksum")
        try:
            meta = msgpack.unpackb(packed, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.UnpackException):
            raise SnapshotInvalid("corrupt: header does not decode") from None
        try:
            return _load(f, size, mlen, meta, key, events)
        except SnapshotInvalid:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            raise SnapshotInvalid(f"corrupt: {exc.__class__.__name__} in its contents") from None


def _load(f, size: int, mlen: int, meta: dict, key: dict, events: list[Event]) -> Snapshot:
    got = meta["key"]
    for name in ("format", "curalog", "dataset", "header_hash", "hot"):
        if got.get(name) != key.get(name):
            raise SnapshotInvalid(f"stale: {name} differs")
    seq = _int(got["seq"])
    if not 0 <= seq <= len(events):
        raise SnapshotInvalid(f"stale: taken at event {seq}, the log has {len(events)}")
    if seq and (events[seq - 1].seq != seq or events[seq - 1].hash.hex() != got["head_hash"]):
        raise SnapshotInvalid(f"stale: event {seq} of the log is not the one it was taken at")
    if not seq and got["head_hash"] != key["header_hash"]:
        raise SnapshotInvalid("stale: head")
    n_spikes = _int(meta["n_spikes"])
    start = max(DATA_START, -(-(_HEAD.size + mlen) // DATA_START) * DATA_START)
    data_size = _int(meta["data_size"])
    if meta["chunk"] != CHUNK or start + data_size != size:
        raise SnapshotInvalid(f"corrupt: {size} bytes, expected {start + data_size}")
    if data_size == 0:
        raise SnapshotInvalid("corrupt: no data")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    data = memoryview(mm)[start:]
    _check_crcs(data, meta["crcs"], data_size)
    arrays: list[np.ndarray] = []
    for off, count, code in meta["arrays"]:
        dt = _DTYPES[code]
        off, count = _int(off), _int(count)
        if off % ALIGN or off < 0 or count < 0 or off + count * dt.itemsize > data_size:
            raise SnapshotInvalid("corrupt: array table")
        arrays.append(np.frombuffer(mm, dtype=dt, count=count, offset=start + off))
    spike_clusters = arrays[0]
    if spike_clusters.dtype != np.int32 or spike_clusters.shape[0] != n_spikes:
        raise SnapshotInvalid("corrupt: spike_clusters")
    pool = arrays[1:]

    def arr(k: Any) -> np.ndarray | None:
        k = _int(k)
        if k == -1:
            return None
        if not 0 <= k < len(pool):
            raise SnapshotInvalid("corrupt: array reference")
        return pool[k]

    index_dtype = _DTYPES[meta["index_dtype"]]
    spikes: dict[int, np.ndarray] = {}
    covered = 0
    for cid, k in meta["live"]:
        a = arr(k)
        if a is None or a.dtype != index_dtype or _int(cid) < 0 or cid in spikes:
            raise SnapshotInvalid("corrupt: cluster index")
        spikes[cid] = a
        covered += a.shape[0]
    counter = _int(meta["counter"])
    if covered != n_spikes or (spikes and counter <= max(spikes)):
        raise SnapshotInvalid("corrupt: the clusters do not cover the spikes")
    state = ClusterState.restored(spike_clusters, spikes, counter, index_dtype)
    fields = [(str(name), _label_dict(pairs)) for name, pairs in meta["fields"]]
    if not fields or fields[0][0] != "group":
        raise SnapshotInvalid("corrupt: labels")
    stack: UndoStack[Action] = UndoStack()
    for rec in meta["actions"]:
        s = _int(rec["seq"])
        if not 1 <= s <= seq or events[s - 1].type not in ACTION_TYPES:
            raise SnapshotInvalid("corrupt: undo stack")
        event = events[s - 1]
        action = Action(event, counter_before=_int(rec["counter_before"]))
        if rec["previous"] is not None:
            action.previous = _label_dict(rec["previous"])
        ch = rec["change"]
        if ch is not None:
            if event.type == LABEL:
                raise SnapshotInvalid("corrupt: undo stack")
            action.change = _change(ch, arr)
        stack.items.append(action)
    stack.pos = _int(meta["pos"])
    if not 0 <= stack.pos <= len(stack.items):
        raise SnapshotInvalid("corrupt: undo position")
    return Snapshot(seq, state, fields, stack, _int(meta["floor"]), _int(meta["hot_bytes"]))


def _change(ch: dict[str, Any], arr) -> Change:
    evicted = bool(ch["evicted"])
    deleted = {_int(c): arr(k) for c, k in ch["deleted"]}
    added = {_int(c): arr(k) for c, k in ch["added"]}
    if not evicted and any(a is None for a in (*deleted.values(), *added.values())):
        raise SnapshotInvalid("corrupt: change without its arrays")
    lo = ch["largest_old"]
    change = Change(
        kind=str(ch["kind"]),
        deleted=deleted,  # type: ignore[arg-type]
        added=added,  # type: ignore[arg-type]
        counter_after=_int(ch["counter_after"]),
        descendants=tuple((_int(a), _int(b)) for a, b in ch["descendants"]),
        largest_old=None if lo is None else _int(lo),
        inherited={str(name): _label_dict(pairs) for name, pairs in ch["inherited"]},
        n_spikes=_int(ch["n_spikes"]),
        evicted=evicted,
    )
    return change


# ---------------------------------------------------------------------- the session's cache
#: A read-only session rebuilds a missing snapshot when its replay took this long.
REBUILD_AFTER_S = 0.2
#: Events replayed on top of a snapshot before a session writes a newer one.
TAIL_MAX = 32


class SnapshotCache:
    """The snapshot of one session's log: loading it on open, refreshing it on close.

    ``status`` says what happened on open: ``"loaded"`` (or ``"loaded at event N, K more
    replayed"``), ``"off"``, or why the file was not used (``"absent"``, ``"stale: ..."``,
    ``"corrupt: ..."``); ``written`` is set once a snapshot was written by this session.
    """

    def __init__(self, cur: Any, policy: bool | None, header_hash: bytes, hot: tuple[int, int]):
        self.path = snapshot_path(cur.log_path)
        self.policy = policy
        self.on = enabled(int(cur.dataset.n_spikes), policy)
        self.header_hash = header_hash
        self.status = "off"
        self.disk_seq: int | None = None  # event of the usable snapshot on disk
        self.replay_seconds = 0.0
        self.written: int | None = None
        self.ready = False  # set by the session once its state is completely replayed
        self._fingerprint = cur.dataset.fingerprint.to_dict()
        self._hot = hot  # the undo history's bounds shape what the snapshot holds

    def key(self, seq: int, head_hash: bytes) -> dict[str, Any]:
        return make_key(self._fingerprint, self.header_hash, seq, head_hash, self._hot)

    def load(self, events: list[Event]) -> Snapshot | None:
        if not self.on:
            return None
        try:
            snap = read_snapshot(self.path, self.key(0, self.header_hash), events)
        except SnapshotInvalid as exc:
            self.status = str(exc)
            return None
        self.disk_seq = snap.seq
        more = len(events) - snap.seq
        self.status = "loaded" if not more else f"loaded at event {snap.seq}, {more} more replayed"
        return snap

    def discard(self, why: str) -> None:
        self.status = f"stale: {why}"
        self.disk_seq = None

    def due(self, cur: Any) -> bool:
        if not self.ready or not self.on or cur.corruption or not cur.events:
            return False
        if self.disk_seq == cur.seq:
            return False
        if self.policy:  # asked for explicitly: always keep it at the head
            return True
        if self.disk_seq is None:
            return self.replay_seconds >= REBUILD_AFTER_S or cur.seq >= TAIL_MAX
        return cur.seq - self.disk_seq >= TAIL_MAX

    def save_if_due(self, cur: Any) -> None:
        """Write the session's state as the log's snapshot when due; never raises (a
        snapshot is only a cache: a full disk or a read-only folder just skips it)."""
        try:
            if not self.due(cur):
                return
            key = self.key(cur.seq, cur.head_hash)
            self.written = write_snapshot(
                self.path,
                key,
                cur.state,
                cur.labels.fields,
                cur._undo,  # noqa: SLF001
                cur._floor,  # noqa: SLF001
                cur._hot_bytes,  # noqa: SLF001
            )
            self.disk_seq = cur.seq
        except (OSError, ValueError, TypeError, OverflowError):
            pass
