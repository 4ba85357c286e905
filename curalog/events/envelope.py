"""Curation events: the envelope every log record carries, and its decoding.

An event is what one user action leaves in the log. Following the ``eventsourcing``
library's split, the *envelope* (version, sequence number, type, time, author, hash of the
previous record) is the same for every event, and the *body* holds the type-specific
payload (:mod:`curalog.events.bodies`: one typed dataclass per event type), whose spike
selections are packed (:mod:`curalog.events.packing`).

Schema evolution: every envelope carries ``v``, the version of its body's type. Readers
upcast older bodies with that type's chain (never rewriting the file); a version or event
type newer than this curalog knows is a clear :class:`~curalog.errors.UnsupportedVersionError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from curalog.errors import LogCorruptError
from curalog.events.bodies import (
    ACTION_TYPES,
    ASSIGN,
    BODY_TYPES,
    EVENT_TYPES,
    LABEL,
    MERGE,
    NOTE,
    REDO,
    SPLIT,
    STRUCTURAL_TYPES,
    UNDO,
    Body,
    body_version,
    parse_body,
    upcast,
)
from curalog.events.packing import pack_indices, pack_values, unpack_array

#: The newest body version of any event type (every type is at version 1).
SCHEMA_VERSION = max(cls.VERSION for cls in BODY_TYPES.values())

#: ``UPCASTERS[(type, v)]`` turns a body of version ``v`` into version ``v + 1``: a view of
#: the chains kept beside each body type (``MergeBody.UPCASTERS``, ...).
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    (t, v): up for t, cls in BODY_TYPES.items() for v, up in cls.UPCASTERS.items()
}


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
        Type-specific payload as stored, upcast to its type's current version;
        :attr:`data` is the same payload typed.
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

    @cached_property
    def data(self) -> Body:
        """The typed body (:mod:`curalog.events.bodies`), read on first use.

        Raises :class:`~curalog.errors.LogCorruptError` naming the event when the body is
        malformed.
        """
        return parse_body(self.type, self.body, f"event {self.seq}")

    def summary(self) -> str:
        """A one-line human description (used by ``curalog log`` and the history screen)."""
        return describe(self.type, self.body)


def envelope(
    seq: int, type_: str, time_ns: int, author: str, prev: bytes, body: dict[str, Any]
) -> dict[str, Any]:
    """The record map of an event (what the log stores, msgpack-encoded)."""
    return {
        "v": body_version(type_),
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
    body = upcast(type_, v, body, where)
    return Event(
        seq=seq, type=type_, time_ns=time_ns, author=author, prev=prev, body=body, hash=record_hash
    )


# ------------------------------------------------------------------ descriptions
def describe(type_: str, body: dict[str, Any]) -> str:
    """Human summary of an event body, e.g. ``merge 3, 7 -> 65 (1,204 spikes)``; the bare type
    when the body is malformed."""
    try:
        return parse_body(type_, body, "").describe()
    except LogCorruptError:
        return type_


# The type names and packing helpers are re-exported: code written against the flat module
# (``from curalog.events.envelope import MERGE, pack_indices``) keeps working.
__all__ = [
    "ACTION_TYPES",
    "ASSIGN",
    "EVENT_TYPES",
    "LABEL",
    "MERGE",
    "NOTE",
    "REDO",
    "SCHEMA_VERSION",
    "SPLIT",
    "STRUCTURAL_TYPES",
    "UNDO",
    "UPCASTERS",
    "Event",
    "decode_envelope",
    "describe",
    "envelope",
    "pack_indices",
    "pack_values",
    "unpack_array",
]
