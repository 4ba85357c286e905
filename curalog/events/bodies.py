"""Typed event bodies: one frozen dataclass per event type, its version and its upcasters.

A body holds what one action leaves in the log: the intent (the inputs the user gave) and
the resolved result (absolute new ids, spike counts), so that replay can check itself. On
disk a body is a msgpack map with string keys (``docs/LOG_FORMAT.md``); :meth:`to_dict`
gives exactly that map (same keys, same order, optional keys left out when empty) and
:meth:`from_dict` reads it back, refusing wrong types with ``TypeError``/``KeyError`` (the
callers turn those into a :class:`~curalog.errors.LogCorruptError` naming the event).

Versions are per type: the envelope's ``v`` is the version of its body's type, and a body
of an older version is upcast by its own type's chain (``UPCASTERS`` of the class) before it
is read; the file is never rewritten. Every type is at version 1.

Spike selections stay packed (:mod:`curalog.events.packing`) inside a body: replay unpacks
only the actions it applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from curalog.errors import LogCorruptError, UnsupportedVersionError

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
#: Events that change the clustering.
STRUCTURAL_TYPES = (MERGE, SPLIT, ASSIGN)

#: A packed array map (see :func:`curalog.events.packing.pack_indices`), kept packed.
Packed: TypeAlias = dict[str, Any]
#: Turns a body map of version ``v`` into version ``v + 1``.
Upcaster: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]


# ------------------------------------------------------------------ field readers
def _int(x: Any, name: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise TypeError(f"{name} is not an integer")
    return x


def _ints(x: Any, name: str) -> tuple[int, ...]:
    if not isinstance(x, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in x
    ):
        raise TypeError(f"{name} is not a list of integers")
    return tuple(x)


def _str(x: Any, name: str) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{name} is not a string")
    return x


def _packed(x: Any, name: str) -> Packed:
    if not isinstance(x, dict):
        raise TypeError(f"{name} is not a packed array")
    return x


def _map(x: Any, name: str) -> dict[str, Any] | None:
    if x is None:
        return None
    if not isinstance(x, dict):
        raise TypeError(f"{name} is not a map")
    return x


def _ids(xs: tuple[int, ...]) -> str:
    if len(xs) > 8:
        return ", ".join(str(x) for x in xs[:8]) + f", ... ({len(xs)})"
    return ", ".join(str(x) for x in xs)


# ------------------------------------------------------------------ the bodies
@dataclass(frozen=True)
class MergeBody:
    """``merge``: the clusters merged (sorted) and the id the merge gave."""

    TYPE: ClassVar[str] = MERGE
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    clusters: tuple[int, ...]
    new: int
    n_spikes: int
    meta: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "clusters": list(self.clusters),
            "new": self.new,
            "n_spikes": self.n_spikes,
        }
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MergeBody:
        return cls(
            clusters=_ints(d["clusters"], "clusters"),
            new=_int(d["new"], "new"),
            n_spikes=_int(d["n_spikes"], "n_spikes"),
            meta=_map(d.get("meta"), "meta"),
        )

    @property
    def added(self) -> tuple[int, ...]:
        return (self.new,)

    @property
    def deleted(self) -> tuple[int, ...]:
        return self.clusters

    def describe(self) -> str:
        return f"merge {_ids(self.clusters)} -> {self.new} ({self.n_spikes:,} spikes)"


def _moved(spikes: Packed, n_spikes: int) -> str:
    """``n_spikes`` is the size of the clusters the action touched; the selection is the
    packed array's length: a 967-spike split of a 5,000-spike cluster says "967 of 5,000"."""
    moved = spikes.get("n") if isinstance(spikes, dict) else None
    if isinstance(moved, int) and not isinstance(moved, bool) and moved != n_spikes:
        return f"{moved:,} of {n_spikes:,} spikes"
    return f"{n_spikes:,} spikes"


@dataclass(frozen=True)
class SplitBody:
    """``split`` (phy's split): the selected spikes, optional relative labels, the result."""

    TYPE: ClassVar[str] = SPLIT
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    added: tuple[int, ...]
    deleted: tuple[int, ...]
    n_spikes: int
    as_merge: bool
    spikes: Packed
    labels: Packed | None = None
    meta: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "added": list(self.added),
            "deleted": list(self.deleted),
            "n_spikes": self.n_spikes,
            "as_merge": self.as_merge,
            "spikes": self.spikes,
        }
        if self.labels is not None:
            d["labels"] = self.labels
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitBody:
        labels = d.get("labels")
        return cls(
            added=_ints(d["added"], "added"),
            deleted=_ints(d["deleted"], "deleted"),
            n_spikes=_int(d["n_spikes"], "n_spikes"),
            as_merge=bool(d.get("as_merge", False)),
            spikes=_packed(d["spikes"], "spikes"),
            labels=None if labels is None else _packed(labels, "labels"),
            meta=_map(d.get("meta"), "meta"),
        )

    def describe(self) -> str:
        verb = "split (whole clusters: merge)" if self.as_merge else "split"
        return f"{verb} {_ids(self.deleted)} -> {_ids(self.added)} ({_moved(self.spikes, self.n_spikes)})"


@dataclass(frozen=True)
class AssignBody:
    """``assign``: explicit absolute cluster ids for a selection (used by imports)."""

    TYPE: ClassVar[str] = ASSIGN
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    spikes: Packed
    clusters: Packed
    added: tuple[int, ...]
    deleted: tuple[int, ...]
    n_spikes: int
    meta: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "spikes": self.spikes,
            "clusters": self.clusters,
            "added": list(self.added),
            "deleted": list(self.deleted),
            "n_spikes": self.n_spikes,
        }
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AssignBody:
        return cls(
            spikes=_packed(d["spikes"], "spikes"),
            clusters=_packed(d["clusters"], "clusters"),
            added=_ints(d["added"], "added"),
            deleted=_ints(d["deleted"], "deleted"),
            n_spikes=_int(d["n_spikes"], "n_spikes"),
            meta=_map(d.get("meta"), "meta"),
        )

    def describe(self) -> str:
        return f"assign {_ids(self.deleted)} -> {_ids(self.added)} ({_moved(self.spikes, self.n_spikes)})"


@dataclass(frozen=True)
class LabelBody:
    """``label``: a field's new value on clusters, and the values it replaced.

    ``value`` is validated by the reader (:mod:`curalog.labels`), as the live API validates
    its input; ``previous`` is ``[[id, value], ...]``.
    """

    TYPE: ClassVar[str] = LABEL
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    clusters: tuple[int, ...]
    field: str
    value: Any
    previous: list[Any]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "clusters": list(self.clusters),
            "field": self.field,
            "value": self.value,
            "previous": self.previous,
        }
        if self.reason:
            d["reason"] = self.reason
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelBody:
        previous = d.get("previous", [])
        if not isinstance(previous, list):
            raise TypeError("previous is not a list")
        reason = d.get("reason")
        return cls(
            clusters=_ints(d["clusters"], "clusters"),
            field=_str(d["field"], "field"),
            value=d["value"],
            previous=previous,
            reason=None if reason is None else str(reason),
        )

    def describe(self) -> str:
        value = self.value
        if value is None and self.field == "group":
            shown = "unsorted"
        else:
            shown = value if isinstance(value, str) else repr(value)
        reason = f"  [{self.reason}]" if self.reason else ""
        return f"label {_ids(self.clusters)} {self.field}={shown}{reason}"


@dataclass(frozen=True)
class _MoveBody:
    """``undo`` / ``redo``: the seq of the action moved over, and its type."""

    target: int
    kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind}

    def describe(self) -> str:
        return f"{self.TYPE} #{self.target}"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class UndoBody(_MoveBody):
    TYPE: ClassVar[str] = UNDO
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UndoBody:
        return cls(target=_int(d["target"], "target"), kind=str(d.get("kind", "")))


@dataclass(frozen=True)
class RedoBody(_MoveBody):
    TYPE: ClassVar[str] = REDO
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RedoBody:
        return cls(target=_int(d["target"], "target"), kind=str(d.get("kind", "")))


@dataclass(frozen=True)
class NoteBody:
    """``note``: a decision that changes nothing (e.g. a rejected merge proposal)."""

    TYPE: ClassVar[str] = NOTE
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    kind: str
    text: str = ""
    data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.data:
            d["data"] = self.data
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoteBody:
        return cls(
            kind=str(d.get("kind", "")),
            text=str(d.get("text", "")),
            data=_map(d.get("data"), "data"),
        )

    def describe(self) -> str:
        return f"note {self.kind}: {self.text}"


Body: TypeAlias = MergeBody | SplitBody | AssignBody | LabelBody | UndoBody | RedoBody | NoteBody
#: A body that changes the clustering.
StructuralBody: TypeAlias = MergeBody | SplitBody | AssignBody

BODY_TYPES: dict[str, type[Body]] = {
    cls.TYPE: cls
    for cls in (MergeBody, SplitBody, AssignBody, LabelBody, UndoBody, RedoBody, NoteBody)
}


def body_version(type_: str) -> int:
    """The version written for ``type_`` (the envelope's ``v``)."""
    return BODY_TYPES[type_].VERSION


def upcast(type_: str, v: int, body: dict[str, Any], where: str) -> dict[str, Any]:
    """A body map of version ``v`` brought to its type's current version by that type's chain."""
    cls = BODY_TYPES.get(type_)
    if cls is None:
        raise UnsupportedVersionError(
            f"{where}: unknown event type {type_!r} (written by a newer curalog?)"
        )
    if v > cls.VERSION:
        raise UnsupportedVersionError(
            f"{where}: {type_} event schema v{v} is newer than this curalog (v{cls.VERSION}); "
            "upgrade curalog"
        )
    while v < cls.VERSION:
        up = cls.UPCASTERS.get(v)
        if up is None:
            raise UnsupportedVersionError(f"{where}: no upcaster for {type_} v{v}")
        body = up(body)
        v += 1
    return body


def parse_body(type_: str, body: dict[str, Any], where: str) -> Body:
    """The typed body of an event; a malformed one is a :class:`LogCorruptError`."""
    cls = BODY_TYPES.get(type_)
    if cls is None:
        raise LogCorruptError(f"{where}: unknown event type {type_!r}")
    try:
        return cls.from_dict(body)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise LogCorruptError(
            f"{where}: malformed {type_} body ({exc.__class__.__name__}: {exc})"
        ) from None


__all__ = [
    "ACTION_TYPES",
    "ASSIGN",
    "BODY_TYPES",
    "EVENT_TYPES",
    "LABEL",
    "MERGE",
    "NOTE",
    "REDO",
    "SPLIT",
    "STRUCTURAL_TYPES",
    "UNDO",
    "AssignBody",
    "Body",
    "LabelBody",
    "MergeBody",
    "NoteBody",
    "Packed",
    "RedoBody",
    "SplitBody",
    "StructuralBody",
    "UndoBody",
    "Upcaster",
    "body_version",
    "parse_body",
    "upcast",
]
