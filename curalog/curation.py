"""A curation session: dataset + log + cluster state + labels.

This is the API a notebook user, the command line and the terminal UI all use::

    import curalog
    with curalog.open("path/to/kilosort") as cur:
        new = cur.merge([3, 7])
        cur.split(spike_ids)
        cur.label([new], group="good")
        cur.undo()
        cur.export()

Every action is validated and resolved first (nothing is written for bad input), appended
to the log durably (write + fsync), and only then applied to the in-memory state; the log
is the only source of truth and everything else is rebuilt by replay.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from . import __version__
from .clustering import Change, ClusterState, Update
from .dataset import GROUP_FIELD, Dataset, Fingerprint, load_dataset
from .errors import (
    CuralogError,
    FingerprintMismatchError,
    InvalidActionError,
    LogCorruptError,
    LogError,
)
from .events import (
    ASSIGN,
    LABEL,
    MERGE,
    NOTE,
    REDO,
    SPLIT,
    UNDO,
    Event,
    pack_indices,
    pack_values,
    unpack_array,
)
from .labels import LabelStore, LabelValue, normalize_group, validate_field_name, validate_value
from .log import LogWriter, create_log, default_author, read_log

LOG_DIRNAME = ".curalog"
DEFAULT_BRANCH = "main"


def default_log_path(folder: str | os.PathLike[str], branch: str = DEFAULT_BRANCH) -> Path:
    """``DIR/.curalog/<branch>.log``."""
    return Path(folder) / LOG_DIRNAME / f"{branch}.log"


@dataclass
class _Action:
    """An applied user action on the undo stack."""

    seq: int
    type: str
    change: Change | None = None  # structural actions
    field: str | None = None  # label actions
    value: LabelValue = None
    previous: dict[int, LabelValue] | None = None


def make_header(ds: Dataset, author: str, branch: str = DEFAULT_BRANCH, parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """The log header: what the log is bound to and its starting labels."""
    return {
        "kind": "curalog-log",
        "created": time.time_ns(),
        "author": author,
        "curalog_version": __version__,
        "dataset": ds.fingerprint.to_dict(),
        "dataset_path": str(Path(ds.path).resolve()),
        "base_groups": [[int(c), str(g)] for c, g in sorted(ds.base_groups.items())],
        "branch": {"name": branch, "parent": parent},
    }


class Curation:
    """A curation history opened on a dataset. Create with :func:`curalog.open`.

    Attributes
    ----------
    dataset : Dataset
    log_path : Path
    state : ClusterState
        Live cluster assignment (read it; change it only through this object's methods).
    labels : LabelStore
    readonly : bool
        True when opened read-only (explicitly, or because the log is damaged).
    """

    def __init__(
        self,
        dataset: Dataset,
        log_path: Path,
        *,
        author: str | None = None,
        readonly: bool = False,
        upto: int | None = None,
        create: bool = True,
    ):
        self.dataset = dataset
        self.log_path = Path(log_path)
        self.author = author or default_author()
        self.readonly = readonly or upto is not None
        self._writer: LogWriter | None = None
        self._listeners: list[Callable[[Update], None]] = []
        self.warnings: list[str] = []
        self.corruption: str | None = None
        events: list[Event]
        if not self.log_path.exists():
            if self.readonly or not create:
                header: dict[str, Any] = make_header(dataset, self.author)
                events = []
                self._has_log = False
            else:
                create_log(self.log_path, make_header(dataset, self.author))
                self._has_log = True
        else:
            self._has_log = True
        if self._has_log:
            if self.readonly:
                scan = read_log(self.log_path)
                self.corruption = scan.corruption
            else:
                self._writer = LogWriter(self.log_path)
                scan = self._writer.scan
                self.warnings.extend(scan.warnings)
            header = scan.header
            events = scan.events
            self.head_hash = scan.head_hash
        else:
            self.head_hash = b""
        self.header = header
        try:
            self._check_fingerprint(header)
            self.state = ClusterState(dataset.spike_templates)
            self.labels = LabelStore({int(c): g for c, g in header.get("base_groups", [])})
            self._stack: list[_Action] = []
            self._pos = 0
            self.events: list[Event] = []
            for event in events:
                if upto is not None and event.seq > upto:
                    break
                self._replay(event)
            if upto is not None and self.events:
                self.head_hash = self.events[-1].hash
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def _check_fingerprint(self, header: dict[str, Any]) -> None:
        try:
            logged = Fingerprint.from_dict(header["dataset"])
        except (KeyError, TypeError, ValueError):
            raise LogCorruptError(f"{self.log_path}: header has no valid dataset fingerprint") from None
        current = self.dataset.fingerprint
        if logged != current:
            diffs = ", ".join(current.differences(logged))
            raise FingerprintMismatchError(
                f"{self.log_path}: written for another dataset or the dataset changed since ({diffs}); refusing to replay onto {self.dataset.path}"
            )

    def close(self) -> None:
        """Release the writer lock. The log is always complete on disk already."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Curation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "writable"
        return f"<Curation {self.dataset.path} seq={self.seq} clusters={self.n_clusters} {mode}>"

    # ------------------------------------------------------------------ queries
    @property
    def spike_clusters(self) -> np.ndarray:
        """Current cluster of every spike (int32, read-only view)."""
        view = self.state.spike_clusters.view()
        view.flags.writeable = False
        return view

    @property
    def cluster_ids(self) -> np.ndarray:
        return self.state.cluster_ids

    @property
    def n_clusters(self) -> int:
        return self.state.n_clusters

    def spikes(self, cluster_id: int) -> np.ndarray:
        """Sorted spike indices of a cluster."""
        return self.state.spikes(cluster_id)

    def group(self, cluster_id: int) -> str | None:
        return self.labels.group(cluster_id)

    def groups(self) -> dict[int, str | None]:
        """Group of every live cluster (None = unsorted)."""
        g = self.labels.fields[GROUP_FIELD]
        return {int(c): g.get(int(c)) for c in self.cluster_ids}  # type: ignore[misc]

    @property
    def history(self) -> list[Event]:
        """Every event of the log up to the current position, oldest first."""
        return list(self.events)

    @property
    def seq(self) -> int:
        """Sequence number of the last event applied (0 = the sorter's output)."""
        return self.events[-1].seq if self.events else 0

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._stack)

    @property
    def undo_depth(self) -> int:
        return self._pos

    def subscribe(self, callback: Callable[[Update], None]) -> None:
        """Call ``callback(update)`` after every action, undo and redo."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------ actions
    def _require_writer(self) -> LogWriter:
        if self._writer is None:
            why = f" ({self.corruption})" if self.corruption else ""
            raise LogError(f"{self.log_path}: opened read-only{why}")
        return self._writer

    def _append(self, type_: str, body: dict[str, Any]) -> Event:
        writer = self._require_writer()
        event = writer.append(type_, body, self.author)
        self.events.append(event)
        self.head_hash = event.hash
        return event

    @staticmethod
    def _check_meta(meta: dict[str, Any] | None) -> dict[str, Any] | None:
        if meta is None:
            return None
        if not isinstance(meta, dict):
            raise InvalidActionError("provenance must be a dict")
        try:
            msgpack.packb(meta, use_bin_type=True, strict_types=False)
        except (TypeError, ValueError, OverflowError):
            raise InvalidActionError("provenance must hold only strings, numbers, lists and dicts") from None
        return meta

    def merge(self, cluster_ids: Iterable[int], *, meta: dict[str, Any] | None = None) -> int:
        """Merge two or more clusters; returns the new cluster id."""
        self._require_writer()
        change = self.state.resolve_merge(list(cluster_ids))
        new = change.added_ids[0]
        body: dict[str, Any] = {"clusters": change.deleted_ids, "new": new, "n_spikes": change.n_spikes}
        if meta := self._check_meta(meta):
            body["meta"] = meta
        event = self._append(MERGE, body)
        return self._do_change(event, change).added[0]

    def split(self, spike_ids, labels=None, *, meta: dict[str, Any] | None = None) -> list[int]:
        """Split spikes off their clusters (phy's split/assign); returns the new ids.

        Parameters
        ----------
        spike_ids : array of int
            Absolute spike indices (any order, no duplicates).
        labels : array of int, optional
            Relative labels of the same length: label r becomes ``r - min + N``.
        """
        self._require_writer()
        change = self.state.resolve_split(spike_ids, labels)
        body: dict[str, Any] = {
            "added": change.added_ids,
            "deleted": change.deleted_ids,
            "n_spikes": change.n_spikes,
            "as_merge": change.kind == "merge",
        }
        spikes_sorted = np.sort(np.asarray(spike_ids, dtype=np.int64).reshape(-1))
        body["spikes"] = pack_indices(spikes_sorted)
        if labels is not None:
            order = np.argsort(np.asarray(spike_ids, dtype=np.int64).reshape(-1), kind="stable")
            body["labels"] = pack_values(np.asarray(labels, dtype=np.int64).reshape(-1)[order])
        if meta := self._check_meta(meta):
            body["meta"] = meta
        event = self._append(SPLIT, body)
        return list(self._do_change(event, change).added)

    def assign(self, spike_ids, cluster_ids, *, meta: dict[str, Any] | None = None) -> list[int]:
        """Give spikes explicit absolute cluster ids (used by imports); returns the new ids."""
        self._require_writer()
        change = self.state.resolve_assign(spike_ids, cluster_ids)
        sel = np.asarray(spike_ids, dtype=np.int64).reshape(-1)
        order = np.argsort(sel, kind="stable")
        body: dict[str, Any] = {
            "spikes": pack_indices(sel[order]),
            "clusters": pack_values(np.asarray(cluster_ids, dtype=np.int64).reshape(-1)[order]),
            "added": change.added_ids,
            "deleted": change.deleted_ids,
            "n_spikes": change.n_spikes,
        }
        if meta := self._check_meta(meta):
            body["meta"] = meta
        event = self._append(ASSIGN, body)
        return list(self._do_change(event, change).added)

    def label(
        self,
        cluster_ids: Iterable[int],
        group: str | None = None,
        *,
        field: str | None = None,
        value: Any = None,
        reason: str | None = None,
    ) -> Update:
        """Label clusters: ``label([3], group="good")`` or ``label([3], field="note", value="x")``.

        ``group="unsorted"`` (or ``value=None`` for a field) clears the value.
        """
        self._require_writer()
        ids = sorted({int(c) for c in cluster_ids})
        if not ids:
            raise InvalidActionError("label: no clusters given")
        missing = [c for c in ids if c not in self.state]
        if missing:
            raise InvalidActionError(f"label: unknown cluster {missing[0]}")
        if field is None or field == GROUP_FIELD:
            if field is None and group is None and value is None:
                raise InvalidActionError("label: give a group (good, mua, noise, unsorted) or a field and value")
            name = GROUP_FIELD
            val: LabelValue = normalize_group(group if group is not None else value)
        else:
            if group is not None:
                raise InvalidActionError("label: give either a group or a field, not both")
            name = validate_field_name(field, set(self.dataset.sorter_columns))
            val = validate_value(value)
        previous = [[c, self.labels.get(name, c)] for c in ids]
        body: dict[str, Any] = {"clusters": ids, "field": name, "value": val, "previous": previous}
        if reason:
            body["reason"] = str(reason)
        event = self._append(LABEL, body)
        return self._do_label(event, name, ids, val)

    def undo(self) -> Update | None:
        """Revert the latest effective action; None when there is nothing to undo."""
        self._require_writer()
        if not self.can_undo:
            return None
        action = self._stack[self._pos - 1]
        event = self._append(UNDO, {"target": action.seq, "kind": action.type})
        return self._do_undo(event)

    def redo(self) -> Update | None:
        """Re-apply the last undone action with the same ids; None when there is none."""
        self._require_writer()
        if not self.can_redo:
            return None
        action = self._stack[self._pos]
        event = self._append(REDO, {"target": action.seq, "kind": action.type})
        return self._do_redo(event)

    def note(self, kind: str, text: str = "", data: dict[str, Any] | None = None) -> Event:
        """Record a decision that changes nothing (e.g. a rejected merge proposal)."""
        body: dict[str, Any] = {"kind": str(kind), "text": str(text)}
        if data := self._check_meta(data):
            body["data"] = data
        return self._append(NOTE, body)

    # ------------------------------------------------------------------ internals
    def _push(self, action: _Action) -> None:
        del self._stack[self._pos :]  # a new action discards the redo branch
        self._stack.append(action)
        self._pos += 1

    def _do_change(self, event: Event, change: Change) -> Update:
        self.state.apply(change)
        change.inherited = self.labels.inherit(change)
        self._push(_Action(event.seq, event.type, change=change))
        return self._emit(self._change_update(change, event.seq, None))

    def _do_label(self, event: Event, name: str, ids: list[int], value: LabelValue) -> Update:
        previous = self.labels.set(name, ids, value)
        self._push(_Action(event.seq, LABEL, field=name, value=value, previous=previous))
        return self._emit(Update(kind=LABEL, labels_changed=tuple(ids), seq=event.seq))

    def _do_undo(self, event: Event) -> Update:
        action = self._stack[self._pos - 1]
        self._pos -= 1
        if action.change is not None:
            self.labels.remove_inherited(action.change.inherited)
            self.state.revert(action.change)
            ch = action.change
            update = Update(
                kind=action.type,
                added=tuple(ch.deleted_ids),
                deleted=tuple(ch.added_ids),
                descendants=tuple((new, old) for old, new in ch.descendants),
                largest_old=None,
                n_spikes=ch.n_spikes,
                labels_changed=tuple(ch.deleted_ids),
                history=UNDO,
                seq=event.seq,
            )
        else:
            assert action.field is not None and action.previous is not None
            self.labels.restore(action.field, action.previous)
            update = Update(kind=LABEL, labels_changed=tuple(action.previous), history=UNDO, seq=event.seq)
        return self._emit(update)

    def _do_redo(self, event: Event) -> Update:
        action = self._stack[self._pos]
        self._pos += 1
        if action.change is not None:
            self.state.apply(action.change)
            self.labels.apply_inherited(action.change.inherited)
            update = self._change_update(action.change, event.seq, REDO)
        else:
            assert action.field is not None and action.previous is not None
            self.labels.set(action.field, list(action.previous), action.value)
            update = Update(kind=LABEL, labels_changed=tuple(action.previous), history=REDO, seq=event.seq)
        return self._emit(update)

    @staticmethod
    def _change_update(change: Change, seq: int, history: str | None) -> Update:
        return Update(
            kind=change.kind,
            added=tuple(change.added_ids),
            deleted=tuple(change.deleted_ids),
            descendants=change.descendants,
            largest_old=change.largest_old,
            n_spikes=change.n_spikes,
            labels_changed=tuple(change.added_ids),
            history=history,
            seq=seq,
        )

    def _emit(self, update: Update) -> Update:
        for callback in list(self._listeners):
            callback(update)
        return update

    # ------------------------------------------------------------------ replay
    def _diverged(self, event: Event, what: str) -> LogCorruptError:
        return LogCorruptError(f"{self.log_path}: replay of event {event.seq} ({event.type}) diverged: {what}")

    def _replay(self, event: Event) -> None:
        """Apply a logged event, checking its recorded result."""
        body = event.body
        where = f"{self.log_path}: event {event.seq}"
        self.events.append(event)
        try:
            if event.type == MERGE:
                change = self.state.resolve_merge(body["clusters"])
                if change.added_ids != [body["new"]]:
                    raise self._diverged(event, f"new id {change.added_ids} != logged {body['new']}")
                self._do_change(event, change)
            elif event.type in (SPLIT, ASSIGN):
                spikes = unpack_array(body["spikes"], where)
                if event.type == SPLIT:
                    labels = unpack_array(body["labels"], where) if body.get("labels") is not None else None
                    change = self.state.resolve_split(spikes, labels)
                else:
                    change = self.state.resolve_assign(spikes, unpack_array(body["clusters"], where))
                if change.added_ids != list(body["added"]) or change.deleted_ids != list(body["deleted"]):
                    raise self._diverged(event, f"ids {change.deleted_ids}->{change.added_ids} != logged {body['deleted']}->{body['added']}")
                self._do_change(event, change)
            elif event.type == LABEL:
                ids = [int(c) for c in body["clusters"]]
                missing = [c for c in ids if c not in self.state]
                if missing:
                    raise self._diverged(event, f"label of missing cluster {missing[0]}")
                self._do_label(event, str(body["field"]), ids, body["value"])
            elif event.type == UNDO:
                if not self.can_undo or self._stack[self._pos - 1].seq != body["target"]:
                    raise self._diverged(event, f"undo target #{body['target']} is not the latest action")
                self._do_undo(event)
            elif event.type == REDO:
                if not self.can_redo or self._stack[self._pos].seq != body["target"]:
                    raise self._diverged(event, f"redo target #{body['target']} is not the next undone action")
                self._do_redo(event)
        except InvalidActionError as exc:
            raise self._diverged(event, str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise LogCorruptError(f"{where}: malformed {event.type} body ({exc.__class__.__name__}: {exc})") from None

    # ------------------------------------------------------------------ export
    def export(self, out: str | os.PathLike[str] | None = None, *, info: bool = True):
        """Write spike_clusters.npy and phy's TSV files (see :func:`curalog.io.phy.export_phy`)."""
        from .io.phy import export_phy

        return export_phy(self, out, info=info)


def open_curation(
    folder: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    author: str | None = None,
    readonly: bool = False,
    upto: int | None = None,
    create: bool = True,
) -> Curation:
    """Open (and by default create) the curation log of a Kilosort/phy folder.

    Parameters
    ----------
    folder : path
        The sorter's output folder (params.py, spike_times.npy, spike_templates.npy, ...).
    log : path, optional
        The log file; default ``folder/.curalog/main.log``. Use it for read-only folders.
    author : str, optional
        Recorded in every event (default ``$CURALOG_AUTHOR`` or ``user@host``).
    readonly : bool
        Do not lock or write the log.
    upto : int, optional
        Replay only events with ``seq <= upto`` (implies read-only).
    """
    ds = load_dataset(folder)
    log_path = Path(log) if log is not None else default_log_path(folder)
    return Curation(ds, log_path, author=author, readonly=readonly, upto=upto, create=create)


def replay(folder: str | os.PathLike[str], log: str | os.PathLike[str] | None = None, upto: int | None = None) -> np.ndarray:
    """The ``spike_clusters`` array after replaying ``log`` up to ``upto`` (default: all)."""
    cur = open_curation(folder, log, readonly=True, upto=upto)
    try:
        return cur.state.spike_clusters.copy()
    finally:
        cur.close()


__all__ = ["Curation", "CuralogError", "default_log_path", "open_curation", "replay"]
