"""Curation events: the envelope, the payload types, their encoding and upcasting.

An event is what one user action leaves in the log. Following the ``eventsourcing``
library's split, the *envelope* (schema version, sequence number, type, time, author,
hash of the previous record) is the same for every event, and the *body* holds the
type-specific payload: the intent (the inputs the user gave) and the resolved result
(absolute new ids, spike counts), so that replay can check itself.

Bodies are plain msgpack maps with string keys. Spike selections are stored compactly:
sorted, delta-encoded, zlib-compressed little-endian integers (see :func:`pack_indices`).

Schema evolution: every envelope carries ``v``. Readers upcast older versions with the
chain registered in :data:`UPCASTERS` (never rewriting the file); a version or event type
newer than this curalog knows is a clear :class:`~curalog.errors.UnsupportedVersionError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from curalog.errors import LogCorruptError, UnsupportedVersionError

#: Current schema version of event envelopes and bodies.
SCHEMA_VERSION = 1

MERGE = "merge"
SPLIT = "split"
ASSIGN = "assign"
LABEL = "label"
UNDO = "undo"
REDO = "redo"
#: A decision recorded for provenance only (e.g. a rejected merge proposal); no state change.
NOTE = "note"

EVENT_TYPES = (MERGE, SPLIT, ASSIGN, LABEL, UNDO, REDO, NOTE)
#: Events that change the clustering or the labels (the ones undo walks back through).
ACTION_TYPES = (MERGE, SPLIT, ASSIGN, LABEL)

#: ``UPCASTERS[(type, v)]`` turns a body of version ``v`` into version ``v + 1``.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True)
class Event:
    """One decoded log record.

    Attributes
    ----------
    seq : int
        1-based position in the log (the header is 0).
    type : str
        One of :data:`EVENT_TYPES`.
    time_ns : int
        Wall-clock time of the action, nanoseconds since the epoch.
    author : str
        Who did it.
    prev : bytes
        Hash of the previous record (the chain link).
    body : dict
        Type-specific payload, upcast to :data:`SCHEMA_VERSION`.
    hash : bytes
        SHA-256 of this record's payload bytes (the next record's ``prev``).
    """

    seq: int
    type: str
    time_ns: int
    author: str
    prev: bytes
    body: dict[str, Any]
    hash: bytes = b""

    @property
    def short_hash(self) -> str:
        return self.hash.hex()[:10]

    def summary(self) -> str:
        """A one-line human description (used by ``curalog log`` and the history screen)."""
        return describe(self.type, self.body)


def envelope(
    seq: int, type_: str, time_ns: int, author: str, prev: bytes, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "seq": seq,
        "type": type_,
        "time": time_ns,
        "author": author,
        "prev": prev,
        "body": body,
    }


def decode_envelope(obj: Any, record_hash: bytes, where: str) -> Event:
    """Validate a decoded payload and upcast it; raise a clear error on anything odd."""
    if not isinstance(obj, dict):
        raise LogCorruptError(f"{where}: record is not a map")
    try:
        v = obj["v"]
        seq = obj["seq"]
        type_ = obj["type"]
        time_ns = obj["time"]
        author = obj["author"]
        prev = obj["prev"]
        body = obj["body"]
    except KeyError as exc:
        raise LogCorruptError(f"{where}: record lacks field {exc}") from None
    if not (isinstance(v, int) and isinstance(seq, int) and isinstance(type_, str)):
        raise LogCorruptError(f"{where}: malformed envelope")
    if not (isinstance(time_ns, int) and isinstance(author, str) and isinstance(prev, bytes)):
        raise LogCorruptError(f"{where}: malformed envelope")
    if not isinstance(body, dict):
        raise LogCorruptError(f"{where}: body is not a map")
    if v > SCHEMA_VERSION:
        raise UnsupportedVersionError(
            f"{where}: event schema v{v} is newer than this curalog (v{SCHEMA_VERSION}); upgrade curalog"
        )
    if type_ not in EVENT_TYPES:
        raise UnsupportedVersionError(
            f"{where}: unknown event type {type_!r} (written by a newer curalog?)"
        )
    while v < SCHEMA_VERSION:
        up = UPCASTERS.get((type_, v))
        if up is None:
            raise UnsupportedVersionError(f"{where}: no upcaster for {type_} v{v}")
        body = up(body)
        v += 1
    return Event(
        seq=seq, type=type_, time_ns=time_ns, author=author, prev=prev, body=body, hash=record_hash
    )


# ------------------------------------------------------------------ compact arrays
_MAX_DECODED = 1 << 34  # bytes; guards against hostile declared sizes


def pack_indices(indices: np.ndarray) -> dict[str, Any]:
    """Sorted unique non-negative integers -> ``{"enc": "delta-zlib", "dtype", "n", "start", "data"}``.

    ``start`` is the first value; the data are the deltas that follow it. Deltas of a sorted
    spike selection are small, so they fit in uint16 or uint32 and compress well (a
    contiguous run of a million spikes packs to a few kilobytes).
    """
    arr = np.asarray(indices, dtype=np.int64)
    start = int(arr[0]) if arr.size else 0
    deltas = np.diff(arr, prepend=np.int64(start)) if arr.size else arr
    top = int(deltas.max()) if deltas.size else 0
    dtype = "<u2" if top < 2**16 else "<u4" if top < 2**32 else "<u8"  # smaller = faster to inflate
    raw = deltas.astype(dtype).tobytes()
    return {
        "enc": "delta-zlib",
        "dtype": dtype,
        "n": int(arr.size),
        "start": start,
        "data": zlib.compress(raw, 1),
    }


def pack_values(values: np.ndarray) -> dict[str, Any]:
    """Arbitrary integers aligned with a selection -> ``{"enc": "zlib", "dtype": "<i8", ...}``."""
    arr = np.asarray(values, dtype="<i8")
    return {
        "enc": "zlib",
        "dtype": "<i8",
        "n": int(arr.size),
        "data": zlib.compress(arr.tobytes(), 1),
    }


def unpack_array(obj: Any, where: str, max_items: int | None = None) -> np.ndarray:
    """Inverse of :func:`pack_indices` / :func:`pack_values`, validating everything.

    ``max_items`` bounds the declared length before anything is decompressed (a selection
    never has more items than the dataset has spikes).
    """
    if not isinstance(obj, dict):
        raise LogCorruptError(f"{where}: packed array is not a map")
    enc, dtype, n, data = obj.get("enc"), obj.get("dtype"), obj.get("n"), obj.get("data")
    if enc not in ("delta-zlib", "zlib") or dtype not in ("<u2", "<u4", "<u8", "<i8"):
        raise LogCorruptError(f"{where}: unknown array encoding {enc!r}/{dtype!r}")
    if not isinstance(n, int) or n < 0 or not isinstance(data, bytes):
        raise LogCorruptError(f"{where}: malformed packed array")
    if max_items is not None and n > max_items:
        raise LogCorruptError(
            f"{where}: packed array declares {n} items, more than the {max_items} possible"
        )
    itemsize = np.dtype(dtype).itemsize
    expected = n * itemsize
    if expected > _MAX_DECODED:
        raise LogCorruptError(f"{where}: packed array declares {n} items (too many)")
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, expected + 1)
    except zlib.error as exc:
        raise LogCorruptError(f"{where}: packed array does not decompress ({exc})") from None
    if len(raw) != expected:
        raise LogCorruptError(f"{where}: packed array has {len(raw)} bytes, expected {expected}")
    arr = np.frombuffer(raw, dtype=dtype).astype(np.int64)
    if enc == "delta-zlib":
        start = obj.get("start", 0)
        if not isinstance(start, int) or not 0 <= start < 2**62:
            raise LogCorruptError(f"{where}: malformed packed array start")
        arr = np.cumsum(arr)
        if start:
            arr += start
    return arr


# ------------------------------------------------------------------ descriptions
def _ids(xs: Any) -> str:
    if not isinstance(xs, list):
        return "?"
    if len(xs) > 8:
        return ", ".join(str(x) for x in xs[:8]) + f", ... ({len(xs)})"
    return ", ".join(str(x) for x in xs)


def describe(type_: str, body: dict[str, Any]) -> str:
    """Human summary of an event body, e.g. ``merge 3, 7 -> 65 (1,204 spikes)``."""
    try:
        if type_ == MERGE:
            return f"merge {_ids(body['clusters'])} -> {body['new']} ({body['n_spikes']:,} spikes)"
        if type_ in (SPLIT, ASSIGN):
            verb = "split" if type_ == SPLIT else "assign"
            if body.get("as_merge"):
                verb += " (whole clusters: merge)"
            # n_spikes is the size of the clusters the action touched; the selection is the
            # packed array's length (a 967-spike split of a 5,000-spike cluster says 967)
            moved = body["spikes"].get("n") if isinstance(body.get("spikes"), dict) else None
            size = (
                f"{moved:,} of {body['n_spikes']:,} spikes"
                if isinstance(moved, int) and moved != body["n_spikes"]
                else f"{body['n_spikes']:,} spikes"
            )
            return f"{verb} {_ids(body['deleted'])} -> {_ids(body['added'])} ({size})"
        if type_ == LABEL:
            value = body.get("value")
            shown = (
                "unsorted"
                if value is None and body.get("field") == "group"
                else repr(value)
                if not isinstance(value, str)
                else value
            )
            reason = f"  [{body['reason']}]" if body.get("reason") else ""
            return f"label {_ids(body['clusters'])} {body['field']}={shown}{reason}"
        if type_ in (UNDO, REDO):
            return f"{type_} #{body['target']}"
        if type_ == NOTE:
            return f"note {body.get('kind', '')}: {body.get('text', '')}"
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    return type_
