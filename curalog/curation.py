"""A curation session: dataset + log + cluster state + labels.

This is the API a notebook user, the command line and the terminal UI all use::

    import curalog
    from curalog.io.phy import export_phy

    with curalog.open("path/to/kilosort") as cur:
        new = cur.merge([3, 7])
        cur.split(spike_ids)
        cur.label([new], group="good")
        cur.undo()
        export_phy(cur)  # phy's files: exports live in curalog.io, not in the session

Every action is validated and resolved first (nothing is written for bad input), appended
to the log durably (write + fsync), and only then applied to the in-memory state; the log
is the only source of truth and everything else is rebuilt by replay.

One idea, the session, in one module (longer than the ~600-line guideline): the action
API, the undo stack it moves and the in-memory eviction of old actions are one state
machine. What stands on its own lives beside it: the log's binding to its dataset
(:mod:`curalog.binding`), the replay rules (:mod:`curalog.replaying`), the replay snapshot
cache (:mod:`curalog.snapshot`), exports (:mod:`curalog.io`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from numpy.typing import ArrayLike

from curalog.binding import (
    DEFAULT_BRANCH,
    LOG_DIRNAME,
    check_binding,
    default_log_path,
    make_header,
)
from curalog.clustering import (
    Change,
    ClusterState,
    Update,
    WriteAhead,
    cluster_id_list,
    is_sorted_unique,
)
from curalog.dataset import GROUP_FIELD, Dataset, load_dataset, release_pages
from curalog.errors import (
    CuralogError,
    InvalidActionError,
    LogCorruptError,
    LogError,
)
from curalog.events import (
    ASSIGN,
    LABEL,
    MERGE,
    NOTE,
    REDO,
    SPLIT,
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
    pack_indices,
    pack_values,
)
from curalog.labels import (
    LabelStore,
    LabelValue,
    normalize_group,
    validate_field_name,
    validate_value,
)
from curalog.replaying import (
    Action,
    UndoStack,
    diverged,
    logged_label,
    plan_replay,
    resolve_logged,
)
from curalog.snapshot import SnapshotCache
from curalog.store.log import LogWriter, create_log, default_author, read_log
from curalog.store.overlap import SideWork
from curalog.waveforms import RecordingMixin

#: Undo history kept in memory with its spike arrays (older actions are undone by replay).
HOT_ACTIONS = 1000
HOT_BYTES_MIN = 32 << 20


class Curation(RecordingMixin):
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
        sync: bool = True,
        verify: bool = False,
        snapshot: bool | None = None,
    ):
        self.dataset = dataset
        self._verify = verify
        self.log_path = Path(log_path)
        self.author = author or default_author()
        self.readonly = readonly or upto is not None
        self._writer: LogWriter | None = None
        self._listeners: list[Callable[[Update], None]] = []
        self.warnings: list[str] = []
        self.corruption: str | None = None
        self._cache: SnapshotCache | None = None
        events: list[Event]
        # A log this session creates and never writes to is removed again on close, so that
        # a refused first action (or just looking) leaves nothing in the dataset folder.
        self._created: list[Path] = []
        if not self.log_path.exists():
            if self.readonly or not create:
                header: dict[str, Any] = make_header(dataset, self.author)
                events = []
                self._has_log = False
            else:
                self._created = [
                    p for p in (self.log_path.parent, *self.log_path.parents) if not p.exists()
                ]
                try:
                    create_log(self.log_path, make_header(dataset, self.author))
                    self._created.insert(0, self.log_path)
                except LogError:
                    if not self.log_path.exists():
                        raise
                    self._created = []  # another writer created it first: meet its lock below
                self._has_log = True
        else:
            self._has_log = True
        if self._has_log:
            if self.readonly:
                scan = read_log(self.log_path)
                self.corruption = scan.corruption
            else:
                self._writer = LogWriter(self.log_path, sync=sync)
                self._writer.clean_temp_files(dataset.path)  # left by killed exports
                scan = self._writer.scan
                self.warnings.extend(scan.warnings)
            header = scan.header
            events = scan.events
            self.head_hash = scan.head_hash
            header_hash = scan.header_hash
        else:
            self.head_hash = header_hash = b""
        self.header = header
        try:
            check_binding(header, self.dataset, self.log_path)
            if "sorter_columns" in header:
                dataset.pin_sorter_metadata(header)
            self._hot_budget = max(HOT_BYTES_MIN, 2 * dataset.n_spikes)
            if upto is not None:
                events = [e for e in events if e.seq <= upto]
            if self._has_log and upto is None and not verify:
                hot = (HOT_ACTIONS, self._hot_budget)
                self._cache = SnapshotCache(self, snapshot, header_hash, hot)
            self.events: list[Event] = []
            if self._cache is None or not self._open_cached(events):
                t0 = time.perf_counter()
                self._reset_state()
                self.events = []
                if verify:
                    for event in events:
                        self._replay_sequential(event)
                else:
                    self._replay_fast(events)
                if self._cache is not None:
                    self._cache.replay_seconds = time.perf_counter() - t0
            if upto is not None:
                self.head_hash = self.events[-1].hash if self.events else header_hash
            if self._cache is not None:
                self._cache.ready = True  # only a completely replayed state is saved
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Release the writer lock (the log is always complete on disk already), after
        refreshing the log's snapshot when it is due (:mod:`curalog.snapshot`)."""
        if self._cache is not None:
            self._cache.save_if_due(self)
            self._cache = None
        if self._writer is not None:
            if self._created and not self._writer.events:
                self._remove_unused_log()
            self._writer.close()
            self._writer = None

    def _remove_unused_log(self) -> None:
        """Remove the empty log this session created (still holding its lock), its lock file
        and the folders created for it."""
        with contextlib.suppress(OSError):
            self.log_path.unlink()
            self._writer.lock.path.unlink()  # type: ignore[union-attr]
            for folder in self._created[1:]:
                folder.rmdir()

    def __enter__(self) -> Curation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "writable"
        return f"<Curation {self.dataset.path} seq={self.seq} clusters={self.n_clusters} {mode}>"

    def require_intact(self, upto: int | None = None) -> None:
        """Refuse to use a damaged log's state, unless ``upto`` stops before the damage."""
        if self.corruption and (upto is None or upto > len(self.events)):
            raise LogCorruptError(
                f"{self.log_path}: damaged ({self.corruption}); its state is not the "
                "curation's (curalog fsck --repair, or --upto an earlier event)"
            )

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
        return self._undo.pos > 0

    @property
    def can_redo(self) -> bool:
        return self._undo.next is not None

    @property
    def undo_depth(self) -> int:
        return self._undo.pos

    @property
    def _stack(self) -> list[Action]:
        """The actions on the undo stack, oldest first (read by tests of the eviction)."""
        return self._undo.items

    def subscribe(self, callback: Callable[[Update], None]) -> None:
        """Call ``callback(update)`` after every action, undo and redo."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------ actions
    def _require_writer(self) -> LogWriter:
        if self._writer is None:
            why = f" ({self.corruption})" if self.corruption else ""
            raise LogError(f"{self.log_path}: opened read-only{why}")
        return self._writer

    def _append(self, body: Body, meanwhile: SideWork | None = None) -> Event:
        writer = self._require_writer()
        event = writer.append(body.TYPE, body.to_dict(), self.author, meanwhile=meanwhile)
        self._created = []  # the log now holds work: it stays
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
            raise InvalidActionError(
                "provenance must hold only strings, numbers, lists and dicts"
            ) from None
        return meta

    def merge(self, cluster_ids: Iterable[int], *, meta: dict[str, Any] | None = None) -> int:
        """Merge two or more clusters; returns the new cluster id."""
        self._require_writer()
        change = self.state.resolve_merge(list(cluster_ids))
        new = change.added_ids[0]
        body = MergeBody(
            clusters=tuple(change.deleted_ids),
            new=new,
            n_spikes=change.n_spikes,
            meta=self._check_meta(meta),
        )
        return self._record_change(body, change).added[0]

    def split(
        self,
        spike_ids: ArrayLike,
        labels: ArrayLike | None = None,
        *,
        meta: dict[str, Any] | None = None,
    ) -> list[int]:
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
        spikes_sorted = np.asarray(spike_ids, dtype=np.int64).reshape(-1)
        if not is_sorted_unique(spikes_sorted):
            spikes_sorted = np.sort(spikes_sorted)
        packed_labels = None
        if labels is not None:
            order = np.argsort(np.asarray(spike_ids, dtype=np.int64).reshape(-1), kind="stable")
            packed_labels = pack_values(np.asarray(labels, dtype=np.int64).reshape(-1)[order])
        body = SplitBody(
            added=tuple(change.added_ids),
            deleted=tuple(change.deleted_ids),
            n_spikes=change.n_spikes,
            as_merge=change.kind == "merge",
            spikes=pack_indices(spikes_sorted),
            labels=packed_labels,
            meta=self._check_meta(meta),
        )
        return list(self._record_change(body, change).added)

    def assign(
        self, spike_ids: ArrayLike, cluster_ids: ArrayLike, *, meta: dict[str, Any] | None = None
    ) -> list[int]:
        """Give spikes explicit absolute cluster ids (used by imports); returns the new ids."""
        self._require_writer()
        change = self.state.resolve_assign(spike_ids, cluster_ids)
        sel = np.asarray(spike_ids, dtype=np.int64).reshape(-1)
        order = np.argsort(sel, kind="stable")
        body = AssignBody(
            spikes=pack_indices(sel[order]),
            clusters=pack_values(np.asarray(cluster_ids, dtype=np.int64).reshape(-1)[order]),
            added=tuple(change.added_ids),
            deleted=tuple(change.deleted_ids),
            n_spikes=change.n_spikes,
            meta=self._check_meta(meta),
        )
        return list(self._record_change(body, change).added)

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
        ids = sorted(set(cluster_id_list(cluster_ids, "label")))
        if not ids:
            raise InvalidActionError("label: no clusters given")
        missing = [c for c in ids if c not in self.state]
        if missing:
            raise InvalidActionError(f"label: unknown cluster {missing[0]}")
        if field is None or field == GROUP_FIELD:
            if field is None and group is None and value is None:
                raise InvalidActionError(
                    "label: give a group (good, mua, noise, unsorted) or a field and value"
                )
            name = GROUP_FIELD
            val: LabelValue = normalize_group(group if group is not None else value)
        else:
            if group is not None:
                raise InvalidActionError("label: give either a group or a field, not both")
            name = validate_field_name(field, set(self.dataset.sorter_columns))
            val = validate_value(value)
        previous = [[c, self.labels.get(name, c)] for c in ids]
        body = LabelBody(
            clusters=tuple(ids),
            field=name,
            value=val,
            previous=previous,
            reason=str(reason) if reason else None,
        )
        event = self._append(body)
        return self._do_label(event)

    def undo(self) -> Update | None:
        """Revert the latest effective action; None when there is nothing to undo."""
        self._require_writer()
        if not self.can_undo:
            return None
        action = self._undo.latest
        assert action is not None
        event = self._append(UndoBody(target=action.seq, kind=action.type))
        self._undo.pos -= 1
        return self._emit(self._revert(action, event.seq))

    def redo(self) -> Update | None:
        """Re-apply the last undone action with the same ids; None when there is none."""
        self._require_writer()
        if not self.can_redo:
            return None
        action = self._undo.next
        assert action is not None
        event = self._append(RedoBody(target=action.seq, kind=action.type))
        self._undo.pos += 1
        return self._emit(self._apply(action, event.seq, REDO))

    def note(self, kind: str, text: str = "", data: dict[str, Any] | None = None) -> Event:
        """Record a decision that changes nothing (e.g. a rejected merge proposal)."""
        body = NoteBody(kind=str(kind), text=str(text), data=self._check_meta(data))
        event = self._append(body)
        self._emit(Update(kind=NOTE, seq=event.seq, note=body))
        return event

    # ------------------------------------------------------------------ internals
    def _reset_state(self) -> None:
        # Reset in place on a rebuild: statistics engines and views hold these objects.
        base_groups = {int(c): g for c, g in self.header.get("base_groups", [])}
        # the state holds its own copy: the memory map's pages go before the index is built
        if getattr(self, "state", None) is None:
            self.state = ClusterState(self.dataset.spike_templates, release_pages)
            self.labels = LabelStore(base_groups)
        else:
            self.state.reset(self.dataset.spike_templates, release_pages)
            self.labels.reset(base_groups)
        self._undo: UndoStack[Action] = UndoStack()
        self._floor = 0  # structural actions below this stack index have evicted arrays
        self._hot_bytes = 0

    def _open_cached(self, events: list[Event]) -> bool:
        """Take the state from the log's snapshot when it matches the log, then replay the
        events logged after it; False (nothing changed) when there is no usable snapshot."""
        assert self._cache is not None
        release_pages(self.dataset.spike_templates)  # read when the folder was checked
        snap = self._cache.load(events)
        if snap is None:
            return False
        self.state = snap.state
        self.labels = LabelStore()
        self.labels.fields = dict(snap.fields)
        self._undo = snap.stack
        self._floor = snap.floor
        self._hot_bytes = snap.hot_bytes
        self.events = list(events[: snap.seq])
        try:
            for event in events[snap.seq :]:
                self._replay_sequential(event)
        except LogCorruptError:  # let a replay from the sorter's output say it
            self._cache.discard("the events after it do not replay on it")
            self.state = None
            return False
        return True

    def _push(self, action: Action) -> None:
        for dropped in self._undo.push(action):  # a new action discards the redo branch
            if dropped.change is not None:
                self._hot_bytes -= dropped.change.nbytes

    def _evict(self) -> None:
        """Bound the memory of the undo history: keep the spike arrays of the latest
        actions; older ones are undone by replaying the log instead."""
        if self._verify:
            return
        hot = self._undo.pos - self._floor
        while (
            hot > HOT_ACTIONS or self._hot_bytes > self._hot_budget
        ) and self._floor < self._undo.pos - 1:
            change = self._undo.items[self._floor].change
            if change is not None and not change.evicted:
                self._hot_bytes -= change.nbytes
                change.evict()
            self._floor += 1
            hot -= 1

    def _record_change(self, body: Body, change: Change) -> Update:
        """Log a new structural action, writing its ids while the record's fsync is in
        flight (:class:`WriteAhead`), then push, apply and announce it."""
        ahead = WriteAhead(self.state, change)
        event = self._append(body, ahead)
        return self._do_change(event, change, written=ahead.written)

    def _do_change(self, event: Event, change: Change, *, written: bool = False) -> Update:
        """A new structural action: push it, apply it, tell the listeners."""
        action = Action(event, change=change, counter_before=self.state.counter)
        self._push(action)
        return self._emit(self._apply(action, event.seq, None, written=written))

    def _do_label(self, event: Event) -> Update:
        action = Action(event)
        self._push(action)
        return self._emit(self._apply(action, event.seq, None))

    def _apply(
        self, action: Action, seq: int, history: str | None, *, written: bool = False
    ) -> Update:
        """Apply an action (new, replayed or redone), resolving it from its event if needed."""
        if action.type == LABEL:
            ids, name, value = self._label_body(action.event)
            action.previous = self.labels.set(name, ids, value)
            return Update(kind=LABEL, labels_changed=tuple(ids), history=history, seq=seq)
        if action.change is None or action.change.evicted:
            # Resolve with the counter the action originally saw, so ids come out as logged.
            counter = self.state.counter
            self.state.counter = action.counter_before
            try:
                action.change = self._resolve(action.event)
            finally:
                self.state.counter = counter
        change = action.change
        self.state.apply(change, written=written)
        change.inherited = self.labels.inherit(change)
        self._hot_bytes += change.nbytes
        self._evict()
        return self._change_update(change, seq, history)

    def _revert(self, action: Action, seq: int) -> Update:
        if action.type == LABEL:
            assert action.previous is not None
            self.labels.restore(self._label_body(action.event)[1], action.previous)
            return Update(kind=LABEL, labels_changed=tuple(action.previous), history=UNDO, seq=seq)
        ch = action.change
        if ch is None or ch.evicted:
            return self._rebuild(seq)
        self.labels.remove_inherited(ch.inherited)
        self.state.revert(ch)
        return Update(
            kind=action.type,
            added=tuple(ch.deleted_ids),
            deleted=tuple(ch.added_ids),
            descendants=tuple((new, old) for old, new in ch.descendants),
            n_spikes=ch.n_spikes,
            labels_changed=tuple(ch.deleted_ids),
            history=UNDO,
            seq=seq,
        )

    def _rebuild(self, seq: int) -> Update:
        """Undo of an action older than the in-memory history: replay the log from scratch."""
        before = set(self.state.cluster_ids.tolist())
        events = self.events
        if self._cache is not None:
            self._cache.ready = False  # until the replay is complete again
        self._reset_state()
        self.events = []
        self._replay_fast(events)
        if self._cache is not None:
            self._cache.ready = True
        after = set(self.state.cluster_ids.tolist())
        return Update(
            kind="rebuild",
            added=tuple(sorted(after - before)),
            deleted=tuple(sorted(before - after)),
            labels_changed=tuple(sorted(after)),
            history=UNDO,
            seq=seq,
        )

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
        return diverged(self.log_path, event, what)

    def _resolve(self, event: Event) -> Change:
        """Resolve a logged merge/split/assign against the current state, checking its result."""
        return resolve_logged(self.state, event, self.log_path, self.dataset.n_spikes)

    def _label_body(self, event: Event) -> tuple[list[int], str, LabelValue]:
        """A logged label event, validated exactly as the live API validates its input."""
        return logged_label(
            self.state, event, self.log_path, reserved=set(self.dataset.sorter_columns)
        )

    def _replay_fast(self, events: list[Event]) -> None:
        """Replay a log: apply only the actions in effect at the end (see
        :func:`curalog.replaying.plan_replay`); undone-but-redoable actions are kept
        unresolved and resolved (and checked against the log) if they are redone."""
        plan = plan_replay(events, self.state.counter, self.log_path)
        for name in plan.fields:  # fields exist from their first event on, even if undone
            self.labels.fields.setdefault(name, {})
        self.events.extend(events)
        effective = plan.stack.effective
        self._undo = plan.stack
        self._undo.pos = 0
        for action in effective:
            self._undo.pos += 1
            self._apply(action, action.seq, None)
        self.state.counter = max(self.state.counter, plan.counter)

    def _replay_sequential(self, event: Event) -> None:
        """Replay one event exactly as it happened (``verify=True``: checks every event,
        including undone ones; used by ``curalog fsck``)."""
        self.events.append(event)
        if event.type in (MERGE, SPLIT, ASSIGN):
            self._do_change(event, self._resolve(event))
        elif event.type == LABEL:
            self._do_label(event)
        elif event.type in (UNDO, REDO):
            action = self._undo.follow(event, self.log_path)
            assert action is not None  # follow() checked the target
            if event.type == UNDO:
                self._revert(action, event.seq)
            else:
                self._apply(action, event.seq, REDO)


def open_curation(
    folder: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    author: str | None = None,
    readonly: bool = False,
    upto: int | None = None,
    create: bool = True,
    sync: bool = True,
    verify: bool = False,
    raw: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
    snapshot: bool | None = None,
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
    sync : bool
        fsync every event before the action returns (default). ``False`` is for scripted
        bulk work only: events become durable when the curation is closed.
    verify : bool
        Replay every event as it happened, including undone ones, checking each recorded
        result (slower; ``curalog fsck``). The default replays only the actions in effect.
    raw : path or list of paths, optional
        The raw recording, overriding ``params.py``'s ``dat_path`` (``--raw PATH``); opened
        lazily by :attr:`Curation.recording` (see :mod:`curalog.recording`).
    snapshot : bool, optional
        Keep ``<log>.snapshot``, a disposable cache of the replayed state that makes the
        next open fast (:mod:`curalog.snapshot`). Default: for datasets of a million
        spikes or more (``CURALOG_SNAPSHOT=0`` turns it off everywhere).
    """
    ds = load_dataset(folder)
    log_path = Path(log) if log is not None else default_log_path(folder)
    cur = Curation(
        ds,
        log_path,
        author=author,
        readonly=readonly,
        upto=upto,
        create=create,
        sync=sync,
        verify=verify,
        snapshot=snapshot,
    )
    cur._raw = raw
    return cur


def replay(
    folder: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    upto: int | None = None,
) -> np.ndarray:
    """The ``spike_clusters`` array after replaying ``log`` up to ``upto`` (default: all)."""
    cur = open_curation(folder, log, readonly=True, upto=upto)
    try:
        cur.require_intact(upto)
        return cur.state.spike_clusters.copy()
    finally:
        cur.close()


__all__ = [
    "DEFAULT_BRANCH",
    "LOG_DIRNAME",
    "Curation",
    "CuralogError",
    "default_log_path",
    "make_header",
    "open_curation",
    "replay",
]
