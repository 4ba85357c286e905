"""Replaying a log: the undo stack an event sequence leaves, and logged actions resolved
against a cluster state and checked against their record.

:class:`curalog.curation.Curation` replays its log with these; the rules live here, apart
from the session, so that every reader of a history applies the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curalog.clustering import Change, ClusterState
from curalog.dataset import GROUP_FIELD
from curalog.errors import InvalidActionError, LogCorruptError
from curalog.events.envelope import ASSIGN, LABEL, MERGE, REDO, SPLIT, UNDO, Event, unpack_array
from curalog.labels import LabelValue, normalize_group, validate_field_name, validate_value


@dataclass
class Action:
    """A user action on the undo stack: its event, and once applied, how to revert it."""

    event: Event
    change: Change | None = None  # structural actions, once resolved
    previous: dict[int, LabelValue] | None = None  # label actions, once applied
    counter_before: int = -1  # the id counter when the action was first made

    @property
    def seq(self) -> int:
        return self.event.seq

    @property
    def type(self) -> str:
        return self.event.type


def int_list(values: Any) -> list[int]:
    """A list of cluster ids from a log body (ints only; anything else is malformed)."""
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise TypeError("expected a list of integer cluster ids")
    return [int(v) for v in values]


def logged_counter_after(event: Event) -> int:
    """The id counter after a logged action, from the ids recorded in its body."""
    body = event.body
    try:
        if event.type == MERGE:
            return int(body["new"]) + 1
        if event.type in (SPLIT, ASSIGN) and body.get("added"):
            return max(int(c) for c in body["added"]) + 1
    except (KeyError, TypeError, ValueError, OverflowError):
        raise LogCorruptError(f"event {event.seq}: malformed {event.type} body") from None
    return 0


def diverged(log_path: Path, event: Event, what: str) -> LogCorruptError:
    """The error of a replayed event whose result differs from its record."""
    return LogCorruptError(
        f"{log_path}: replay of event {event.seq} ({event.type}) diverged: {what}"
    )


def resolve_logged(state: ClusterState, event: Event, log_path: Path, n_spikes: int) -> Change:
    """Resolve a logged merge/split/assign against ``state``, checking its result."""
    body = event.body
    where = f"{log_path}: event {event.seq}"
    try:
        if event.type == MERGE:
            change = state.resolve_merge(body["clusters"])
            if change.added_ids != [body["new"]]:
                raise diverged(
                    log_path, event, f"new id {change.added_ids} != logged {body['new']}"
                )
            return change
        spikes = unpack_array(body["spikes"], where, n_spikes)
        if event.type == SPLIT:
            labels = (
                unpack_array(body["labels"], where, n_spikes)
                if body.get("labels") is not None
                else None
            )
            change = state.resolve_split(spikes, labels, touched=int_list(body["deleted"]))
        elif event.type == ASSIGN:
            change = state.resolve_assign(spikes, unpack_array(body["clusters"], where, n_spikes))
        else:
            raise diverged(log_path, event, "not a clustering event")
        if change.added_ids != list(body["added"]) or change.deleted_ids != list(body["deleted"]):
            raise diverged(
                log_path,
                event,
                f"ids {change.deleted_ids}->{change.added_ids} != logged "
                f"{body['deleted']}->{body['added']}",
            )
        return change
    except InvalidActionError as exc:
        raise diverged(log_path, event, str(exc)) from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise LogCorruptError(
            f"{where}: malformed {event.type} body ({exc.__class__.__name__}: {exc})"
        ) from None


def logged_label(
    state: ClusterState, event: Event, log_path: Path, *, reserved: set[str] | None = None
) -> tuple[list[int], str, LabelValue]:
    """A logged label event, validated exactly as the live API validates its input
    (``reserved``: the dataset's sorter columns, as the API refuses them)."""
    body = event.body
    try:
        ids = int_list(body["clusters"])
        name = body["field"]
        if not isinstance(name, str):
            raise TypeError("field is not a string")
        if name == GROUP_FIELD:
            value: LabelValue = normalize_group(body["value"])
        else:
            name = validate_field_name(name, reserved)
            value = validate_value(body["value"])
    except InvalidActionError as exc:
        raise diverged(log_path, event, str(exc)) from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise LogCorruptError(
            f"{log_path}: event {event.seq}: malformed label body ({exc.__class__.__name__}: {exc})"
        ) from None
    missing = [c for c in ids if c not in state]
    if missing:
        raise diverged(log_path, event, f"label of missing cluster {missing[0]}")
    return ids, name, value


@dataclass
class ReplayPlan:
    """The undo stack a log leaves: its actions (unresolved), the stack position, the id
    counter after every logged action (undone ones too) and the label fields it names."""

    stack: list[Action]
    pos: int
    counter: int
    fields: list[str]


def plan_replay(events: list[Event], counter: int, log_path: Path) -> ReplayPlan:
    """Work out which actions are in effect at the end of ``events`` (undo and redo only move
    a position on the action stack), checking every undo/redo target.

    Each effective action was resolved against exactly the state its stack prefix produces,
    so applying ``stack[:pos]`` in order gives the same state, ids and labels as replaying
    every event, while undone actions cost nothing.
    """
    stack: list[Action] = []
    pos = 0
    fields: list[str] = []
    for event in events:
        if event.type in (MERGE, SPLIT, ASSIGN, LABEL):
            del stack[pos:]
            stack.append(Action(event, counter_before=counter))
            pos += 1
            counter = max(counter, logged_counter_after(event))
            if event.type == LABEL and isinstance(event.body.get("field"), str):
                fields.append(event.body["field"])
        elif event.type in (UNDO, REDO):
            target = event.body.get("target") if isinstance(event.body, dict) else None
            if event.type == UNDO:
                if pos == 0 or stack[pos - 1].seq != target:
                    raise diverged(
                        log_path, event, f"undo target #{target} is not the latest action"
                    )
                pos -= 1
            else:
                if pos >= len(stack) or stack[pos].seq != target:
                    raise diverged(
                        log_path, event, f"redo target #{target} is not the next undone action"
                    )
                pos += 1
    return ReplayPlan(stack, pos, counter, fields)
