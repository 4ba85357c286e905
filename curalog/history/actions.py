"""Reading a history: event times, the clusters an event touches, events as JSON, and the
actions in effect (undo/redo resolved)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from curalog.errors import LogCorruptError
from curalog.events import (
    NOTE,
    REDO,
    UNDO,
    AssignBody,
    Body,
    Event,
    LabelBody,
    MergeBody,
    NoteBody,
    RedoBody,
    SplitBody,
    UndoBody,
)
from curalog.replaying import walk_undo_stack


# ====================================================================== event helpers
def iso_time(time_ns: int | None) -> str | None:
    if not time_ns:
        return None
    return dt.datetime.fromtimestamp(time_ns / 1e9, tz=dt.UTC).isoformat(timespec="seconds")


def event_clusters(event: Event) -> list[int]:
    """Cluster ids an event mentions (its inputs and outputs), for diff listings."""
    try:
        data = event.data
    except LogCorruptError:
        return []
    ids: tuple[int, ...] = ()
    if isinstance(data, MergeBody):
        ids = (*data.clusters, data.new)
    elif isinstance(data, SplitBody | AssignBody):
        ids = (*data.deleted, *data.added)
    elif isinstance(data, LabelBody):
        ids = data.clusters
    return sorted(set(ids))


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
    try:
        data: Body | None = event.data
    except LogCorruptError:
        data = None
    if event.type in (UNDO, REDO):
        out["target"] = data.target if isinstance(data, UndoBody | RedoBody) else None
    if event.type == NOTE:
        out["kind"] = data.kind if isinstance(data, NoteBody) else None
    return out


def effective_actions(events: list[Event]) -> tuple[list[Event], list[Event]]:
    """The actions in effect after ``events`` (undo/redo resolved), and the undone ones
    (:func:`curalog.replaying.walk_undo_stack`).

    Returns
    -------
    effective : list of Event
        Actions on the undo stack below its position, oldest first.
    undone : list of Event
        Actions that were undone and are still redoable.
    """
    walk = walk_undo_stack(events)
    return walk.effective, walk.undone
