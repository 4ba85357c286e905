"""Import a curation made in phy: events whose replay reproduces phy's saved state exactly.

phy saves only its result: ``spike_clusters.npy`` (the cluster of every spike) and
``cluster_group.tsv`` (the group of every live cluster that has one). The import compares
that with the curation's current state and appends:

* one ``assign`` event per connected group of changed clusters, giving every spike of
  the touched clusters its phy id (absolute ids, so replay reproduces phy's ids exactly);
* one ``label`` event per group value whose clusters differ from phy's file.

Clusters phy left alone are not touched, so on a folder curated in curalog, exported and
then changed in phy, the same command appends only the difference; run twice, the second
run appends nothing.

Inputs are validated before the first event is appended (see :func:`import_phy_into`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from curalog.curation import Curation, open_curation
from curalog.dataset import GROUP_FIELD, load_dataset, read_metadata_tsv
from curalog.errors import CuralogError, DatasetError, InvalidActionError
from curalog.events.envelope import Event
from curalog.history import contingency, linked_groups
from curalog.labels import normalize_group

T = TypeVar("T")


class CurationImportError(CuralogError):
    """An import whose input cannot be turned into events."""


@dataclass
class ImportResult:
    """What an import appended.

    Attributes
    ----------
    log : Path
    events : list of Event
        The events appended (empty when the log already matched).
    n_structural : int
        ``assign`` / ``merge`` / ``split`` events among them.
    n_labels : int
        ``label`` events among them.
    spikes_changed : int
        Spikes whose cluster changed.
    warnings : list of str
        What was not imported, and why.
    """

    log: Path
    events: list[Event] = field(default_factory=list)
    n_structural: int = 0
    n_labels: int = 0
    spikes_changed: int = 0
    warnings: list[str] = field(default_factory=list)
    id_map: dict[str, int] = field(default_factory=dict)  # file id -> curalog id, where they differ

    @property
    def up_to_date(self) -> bool:
        return not self.events


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def rehearse(cur: Curation, run: Callable[[Curation], T]) -> T:
    """Run ``run`` on a scratch copy of ``cur``'s log first, then on ``cur`` itself.

    Any error in the rehearsal leaves the real log untouched. ``cur`` must be writable (its
    lock keeps the log unchanged in between).
    """
    scratch = cur.log_path.with_name(f".{cur.log_path.name}.rehearsal-{os.getpid()}")
    lock = scratch.with_name(scratch.name + ".lock")
    try:
        shutil.copyfile(cur.log_path, scratch)
        trial = Curation(cur.dataset, scratch, author=cur.author)
        try:
            run(trial)
        finally:
            trial.close()
    except OSError as exc:
        raise CuralogError(
            f"{cur.log_path.parent}: cannot write a scratch log ({exc.strerror})"
        ) from None
    finally:
        for p in (scratch, lock):
            with contextlib.suppress(OSError):
                p.unlink()
    return run(cur)


# ---------------------------------------------------------------------- structure
@dataclass
class _Component:
    sources: set[int]  # clusters of the current state
    targets: set[int]  # phy ids
    spikes: np.ndarray  # every spike of the sources, sorted


def _components(
    state_sc: np.ndarray,
    target: np.ndarray,
    spikes_of: Callable[[int], np.ndarray],
    is_live: Callable[[int], bool],
) -> list[_Component]:
    """Groups of current clusters and phy clusters connected by shared spikes, where they differ."""
    diff = np.flatnonzero(state_sc != target)
    if diff.size == 0:
        return []
    lost = np.unique(state_sc[diff]).tolist()
    gained = np.unique(target[diff]).tolist()
    changed = sorted(set(lost) | {g for g in gained if is_live(g)})
    spikes = np.sort(
        np.concatenate([spikes_of(c) for c in changed]).astype(np.int64), kind="stable"
    )
    table = contingency(state_sc[spikes], target[spikes])  # one numba pass, no sort
    pairs = np.stack([table.ids_a[table.rows], table.ids_b[table.cols]], axis=1)
    out = [
        _Component(set(sources), set(targets), np.zeros(0, np.int64))
        for sources, targets in linked_groups(pairs.tolist())
    ]
    for comp in out:
        comp.spikes = np.sort(
            np.concatenate([spikes_of(c) for c in sorted(comp.sources)]).astype(np.int64),
            kind="stable",
        )
    out.sort(key=lambda c: (min(c.targets), min(c.sources)))
    return out


def reproduce_assignment(
    cur: Curation,
    target: np.ndarray,
    *,
    meta: dict[str, Any] | None = None,
    result: ImportResult | None = None,
) -> ImportResult:
    """Append ``assign`` events so that ``cur``'s spike_clusters becomes ``target`` exactly.

    Each event covers whole clusters of the current state and gives their spikes the
    target ids. When a target id is still a live cluster of another pending group (ids
    reused in a non-phy way), the blocking group is first moved to a fresh temporary id.
    """
    result = result or ImportResult(cur.log_path)
    target = np.ascontiguousarray(np.asarray(target).reshape(-1))
    if target.shape[0] != cur.state.n_spikes:
        raise CurationImportError(
            f"the assignment has {target.shape[0]} spikes, the dataset {cur.state.n_spikes}"
        )
    if target.dtype.kind not in "iu" or (target.size and int(target.min()) < 0):
        raise CurationImportError("cluster ids must be non-negative integers")
    if target.size and int(target.max()) >= 2**31 - 1:
        raise CurationImportError(f"cluster id {int(target.max())} beyond the int32 range")
    target = target.astype(np.int32)
    meta = dict(meta or {})
    state = cur.state
    pending = _components(state.spike_clusters, target, state.spikes, lambda c: c in state)
    result.spikes_changed += int(np.count_nonzero(state.spike_clusters != target))
    while pending:
        progressed = False
        for comp in list(pending):
            if any(t in state for t in comp.targets):
                continue
            cur.assign(comp.spikes, target[comp.spikes], meta=meta)
            result.events.append(cur.events[-1])
            result.n_structural += 1
            pending.remove(comp)
            progressed = True
        if not progressed:
            # Every group waits for an id another group still holds: there is a cycle.
            # Move one group that holds a wanted id to a fresh temporary id to break it.
            wanted = set().union(*(c.targets for c in pending))
            comp = next(c for c in pending if c.sources & wanted)
            temp = max(state.counter, int(target.max()) + 1)
            cur.assign(
                comp.spikes,
                np.full(comp.spikes.shape[0], temp, np.int64),
                meta={**meta, "step": "temporary id: phy reused a live cluster id"},
            )
            result.events.append(cur.events[-1])
            result.n_structural += 1
            comp.sources = {temp}
    if not np.array_equal(state.spike_clusters, target):  # pragma: no cover - defensive
        raise CurationImportError(
            "internal error: the imported assignment does not reproduce the target"
        )
    return result


# ---------------------------------------------------------------------- labels
def reproduce_groups(
    cur: Curation, groups: dict[int, str | None], *, reason: str, result: ImportResult | None = None
) -> ImportResult:
    """Append ``label`` events so that every live cluster's group equals ``groups``
    (clusters missing from ``groups`` end up unsorted)."""
    result = result or ImportResult(cur.log_path)
    current = cur.labels.fields.get(GROUP_FIELD, {})
    wanted: dict[str | None, list[int]] = {}
    for c in cur.cluster_ids.tolist():
        value = groups.get(c)
        if current.get(c) != value:
            wanted.setdefault(value, []).append(c)
    for value in sorted(wanted, key=lambda v: (v is None, v or "")):
        cur.label(wanted[value], group=value if value is not None else "unsorted", reason=reason)
        result.events.append(cur.events[-1])
        result.n_labels += 1
    return result


def read_phy_groups(folder: Path, warnings: list[str]) -> dict[int, str | None] | None:
    """``cluster_group.tsv`` as ``{cluster: group}``; None when the file is absent."""
    path = folder / "cluster_group.tsv"
    if not path.exists():
        return None
    columns = read_metadata_tsv(path)
    raw = columns.get(GROUP_FIELD, {})
    out: dict[int, str | None] = {}
    for c, v in raw.items():
        try:
            out[int(c)] = normalize_group(v)
        except InvalidActionError:
            warnings.append(
                f"{path}: cluster {c} has group {v!r}, which curalog does not support; not imported"
            )
    return out


def _phy_target(cur: Curation) -> tuple[np.ndarray, Path]:
    path = Path(cur.dataset.path) / "spike_clusters.npy"
    arr = cur.dataset.phy_spike_clusters()
    if arr is None:
        raise DatasetError(f"{path}: missing (nothing to import from phy)")
    return np.asarray(arr), path


def import_phy_into(cur: Curation) -> ImportResult:
    """Append to ``cur`` the events that reproduce the folder's phy files (see module doc)."""
    target, sc_path = _phy_target(cur)
    digest = sha256_file(sc_path)
    folder = Path(cur.dataset.path)

    # Every input is read and checked before the first event: the assignment's length and
    # ids, and each group value. The events are then derived from the state itself, so
    # none can be refused; an I/O failure midway leaves valid events that a re-run completes.
    # Other cluster_<field>.tsv files are read by curalog as read-only sorter columns
    # (KSLabel, ContamPct, ... and whatever phy rewrote): only groups are imported.
    result = ImportResult(cur.log_path)
    groups = read_phy_groups(folder, result.warnings)
    reproduce_assignment(
        cur,
        target,
        meta={"source": "phy", "file": "spike_clusters.npy", "sha256": digest},
        result=result,
    )
    if groups is None:
        result.warnings.append(f"{folder / 'cluster_group.tsv'}: missing; labels not imported")
    else:
        reproduce_groups(cur, groups, reason="imported from phy (cluster_group.tsv)", result=result)
    return result


def import_phy(
    folder: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    author: str | None = None,
) -> ImportResult:
    """Import the curation saved by phy in ``folder`` into its log (default ``main``).

    Parameters
    ----------
    folder : path
        A Kilosort/phy folder whose ``spike_clusters.npy`` and ``cluster_group.tsv`` phy wrote.
    log : path, optional
        The curation log (default ``DIR/.curalog/main.log``; created if absent).
    author : str, optional

    Returns
    -------
    ImportResult
    """
    ds = load_dataset(folder)
    if ds.phy_spike_clusters() is None:  # checked before the log is created
        raise DatasetError(
            f"{Path(folder) / 'spike_clusters.npy'}: missing (nothing to import from phy)"
        )
    with open_curation(folder, log, author=author) as cur:
        return import_phy_into(cur)


__all__ = [
    "CurationImportError",
    "ImportResult",
    "import_phy",
    "import_phy_into",
    "read_phy_groups",
    "rehearse",
    "reproduce_assignment",
    "reproduce_groups",
]
