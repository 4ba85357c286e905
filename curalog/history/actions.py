"""Reading a history: event times, the clusters an event touches, events as JSON, and the
actions in effect (undo/redo resolved)."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
)

_STRUCTURAL = (MERGE, SPLIT, ASSIGN)


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
