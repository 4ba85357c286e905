"""Replaying a log: the undo-stack rule, and logged actions resolved against a cluster state
and checked against their record.

Every reader of a history uses these, so the rules are written once: the session
(:class:`curalog.curation.Curation`), the history tools (:mod:`curalog.history`) and the
terminal UI's history screen.

The undo-stack rule: a new action (merge, split, assign, label) discards the actions above
the stack position (the redo branch) and is pushed; ``undo`` moves the position down over
the latest effective action, ``redo`` up over the next undone one. Undo and redo only move
the position, so the state at the end of a log is the state the effective actions give,
applied in order (``docs/LOG_FORMAT.md``, "Replay strategy").
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from curalog.clustering import Change, ClusterState
from curalog.dataset import GROUP_FIELD
from curalog.errors import InvalidActionError, LogCorruptError
from curalog.events import (
    ACTION_TYPES,
    LABEL,
    REDO,
    STRUCTURAL_TYPES,
    UNDO,
    AssignBody,
    Event,
    LabelBody,
    MergeBody,
    SplitBody,
    unpack_array,
)
from curalog.labels import LabelValue, normalize_group, validate_field_name, validate_value

Where = str | os.PathLike[str]


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


class _HasSeq(Protocol):
    @property
    def seq(self) -> int: ...


T = TypeVar("T", bound=_HasSeq)


def diverged(log_path: Where, event: Event, what: str) -> LogCorruptError:
    """The error of a replayed event whose result differs from its record."""
    return LogCorruptError(
        f"{log_path}: replay of event {event.seq} ({event.type}) diverged: {what}"
    )


def _typed(event: Event, log_path: Where) -> Any:
    try:
        return event.data
    except LogCorruptError as exc:
        raise LogCorruptError(f"{log_path}: {exc}") from None


# ------------------------------------------------------------------ the undo stack
@dataclass
class UndoStack(Generic[T]):
    """Actions (anything with a ``seq``) on an undo stack, and the position in it.

    ``items[:pos]`` are in effect (oldest first), ``items[pos:]`` undone and redoable.
    """

    items: list[T] = field(default_factory=list)
    pos: int = 0

    @property
    def effective(self) -> list[T]:
        return self.items[: self.pos]

    @property
    def undone(self) -> list[T]:
        return self.items[self.pos :]

    @property
    def latest(self) -> T | None:
        """What an undo would revert."""
        return self.items[self.pos - 1] if self.pos > 0 else None

    @property
    def next(self) -> T | None:
        """What a redo would re-apply."""
        return self.items[self.pos] if self.pos < len(self.items) else None

    def push(self, item: T) -> list[T]:
        """A new action: discard the redo branch (returned) and push ``item``."""
        dropped = self.items[self.pos :]
        del self.items[self.pos :]
        self.items.append(item)
        self.pos += 1
        return dropped

    def follow(self, event: Event, log_path: Where | None = None) -> T | None:
        """Move the position as a logged ``undo``/``redo`` did; the action moved over.

        With ``log_path``, the event's target must be the action it moves over (else a
        divergence naming the event); without it only the position counts, and a move past
        either end is ignored (``None``).
        """
        if event.type == UNDO:
            item, what = self.latest, "is not the latest action"
        elif event.type == REDO:
            item, what = self.next, "is not the next undone action"
        else:
            raise ValueError(f"not an undo or redo: {event.type}")
        if log_path is not None:
            body = event.body
            target = body.get("target") if isinstance(body, dict) else None
            if item is None or item.seq != target:
                raise diverged(log_path, event, f"{event.type} target #{target} {what}")
        if item is None:
            return None
        self.pos += -1 if event.type == UNDO else 1
        return item


@dataclass(frozen=True)
class StackWalk:
    """What a sequence of events leaves on the undo stack."""

    effective: list[Event]  # in effect at the end, oldest first
    undone: list[Event]  # undone and still redoable
    discarded: list[Event]  # undone, then dropped by a later new action


def walk_undo_stack(events: Iterable[Event], log_path: Where | None = None) -> StackWalk:
    """The undo stack a sequence of events leaves (targets checked when ``log_path`` is given,
    see :meth:`UndoStack.follow`)."""
    stack: UndoStack[Event] = UndoStack()
    discarded: list[Event] = []
    for event in events:
        if event.type in ACTION_TYPES:
            discarded.extend(stack.push(event))
        elif event.type in (UNDO, REDO):
            stack.follow(event, log_path)
    return StackWalk(stack.effective, stack.undone, discarded)


# ------------------------------------------------------------------ the fast replay plan
def logged_counter_after(event: Event) -> int:
    """The id counter after a logged action, from the ids recorded in its body."""
    if event.type not in STRUCTURAL_TYPES:
        return 0
    try:
        data = event.data
        if isinstance(data, MergeBody):
            return data.new + 1
        if isinstance(data, SplitBody | AssignBody) and data.added:
            return max(data.added) + 1
    except LogCorruptError:
        raise LogCorruptError(f"event {event.seq}: malformed {event.type} body") from None
    return 0


@dataclass
class ReplayPlan:
    """The undo stack a log leaves: its actions (unresolved), the stack position, the id
    counter after every logged action (undone ones too) and the label fields it names."""

    stack: UndoStack[Action]
    counter: int
    fields: list[str]


def plan_replay(events: list[Event], counter: int, log_path: Where) -> ReplayPlan:
    """Work out which actions are in effect at the end of ``events``, checking every undo
    and redo target, and the id counter each action saw (ids burned by undone actions are
    never reused).

    Each effective action was resolved against exactly the state its stack prefix produces,
    so applying the effective actions in order gives the same state, ids and labels as
    replaying every event, while undone actions cost nothing.
    """
    stack: UndoStack[Action] = UndoStack()
    fields: list[str] = []
    for event in events:
        if event.type in ACTION_TYPES:
            stack.push(Action(event, counter_before=counter))
            counter = max(counter, logged_counter_after(event))
            name = event.body.get("field") if event.type == LABEL else None
            if isinstance(name, str):  # read unparsed: an undone label is never validated
                fields.append(name)
        elif event.type in (UNDO, REDO):
            stack.follow(event, log_path)
    return ReplayPlan(stack, counter, fields)


# ------------------------------------------------------------------ resolving logged actions
def resolve_logged(
    state: ClusterState, event: Event, log_path: Where, n_spikes: int | None = None
) -> Change:
    """Resolve a logged merge/split/assign against ``state`` and check the ids it gives
    against the record (new, added and deleted ids); a difference is a divergence naming the
    event. ``n_spikes`` bounds the packed selections before they are inflated."""
    where = f"{log_path}: event {event.seq}"
    data = _typed(event, log_path)
    try:
        if isinstance(data, MergeBody):
            change = state.resolve_merge(list(data.clusters))
            if change.added_ids != [data.new]:
                raise diverged(log_path, event, f"new id {change.added_ids} != logged {data.new}")
            logged_added, logged_deleted = [data.new], sorted(data.clusters)
        elif isinstance(data, SplitBody):
            spikes = unpack_array(data.spikes, where, n_spikes)
            labels = unpack_array(data.labels, where, n_spikes) if data.labels is not None else None
            change = state.resolve_split(spikes, labels, touched=list(data.deleted))
            logged_added, logged_deleted = list(data.added), list(data.deleted)
        elif isinstance(data, AssignBody):
            spikes = unpack_array(data.spikes, where, n_spikes)
            change = state.resolve_assign(spikes, unpack_array(data.clusters, where, n_spikes))
            logged_added, logged_deleted = list(data.added), list(data.deleted)
        else:
            raise diverged(log_path, event, "not a clustering event")
    except InvalidActionError as exc:
        raise diverged(log_path, event, str(exc)) from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise LogCorruptError(
            f"{where}: malformed {event.type} body ({exc.__class__.__name__}: {exc})"
        ) from None
    if change.added_ids != logged_added or change.deleted_ids != logged_deleted:
        raise diverged(
            log_path,
            event,
            f"ids {change.deleted_ids}->{change.added_ids} != logged "
            f"{logged_deleted}->{logged_added}",
        )
    return change


def logged_label(
    state: ClusterState, event: Event, log_path: Where, *, reserved: set[str] | None = None
) -> tuple[list[int], str, LabelValue]:
    """A logged label event, validated exactly as the live API validates its input
    (``reserved``: the dataset's sorter columns, as the API refuses them)."""
    data = _typed(event, log_path)
    if not isinstance(data, LabelBody):
        raise diverged(log_path, event, "not a label event")
    try:
        ids = list(data.clusters)
        name = data.field
        if name == GROUP_FIELD:
            value: LabelValue = normalize_group(data.value)
        else:
            name = validate_field_name(name, reserved)
            value = validate_value(data.value)
    except InvalidActionError as exc:
        raise diverged(log_path, event, str(exc)) from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise LogCorruptError(
            f"{log_path}: event {event.seq}: malformed label body ({exc.__class__.__name__}: {exc})"
        ) from None
    missing = [c for c in ids if c not in state]
    if missing:
        raise diverged(log_path, event, f"label of missing cluster {missing[0]}")
    return ids, name, value


__all__ = [
    "Action",
    "ReplayPlan",
    "StackWalk",
    "UndoStack",
    "diverged",
    "logged_counter_after",
    "logged_label",
    "plan_replay",
    "resolve_logged",
    "walk_undo_stack",
]
