"""Branches: self-contained log files that share their parent's bytes up to the fork point,
and the common prefix of two logs (found by record hashes)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from curalog.atomic import create_exclusive
from curalog.binding import (
    DEFAULT_BRANCH,
    LOG_DIRNAME,
    default_log_path,
    make_header,
)
from curalog.dataset import Dataset, Fingerprint, load_dataset
from curalog.errors import CuralogError, LogCorruptError, LogError
from curalog.events import NoteBody
from curalog.events.envelope import (
    NOTE,
    Event,
    envelope,
)
from curalog.history.actions import iso_time
from curalog.store.log import (
    ScanResult,
    create_log,
    default_author,
    encode_frame,
    read_log,
    scan_bytes,
)

#: ``note`` kind written as the first event of a branch after the copied prefix.
BRANCH_NOTE = "branch"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class HistoryError(CuralogError):
    """A branch, diff or combine request that cannot be carried out."""


# ====================================================================== logs and branches
def validate_branch_name(name: str) -> str:
    """A branch name is a file name: letters, digits, ``.``, ``_``, ``-``; not ``*.log``."""
    if (
        not isinstance(name, str)
        or not _NAME_RE.match(name)
        or name.endswith((".log", ".lock", ".tmp"))
        or ".." in name
    ):
        raise HistoryError(
            f"invalid branch name {name!r}: use letters, digits, '.', '_' and '-' (at most 100, not ending in .log)"
        )
    return name


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or "/" in ref or ref.endswith(".log")


def resolve_log(folder: str | os.PathLike[str], ref: str | os.PathLike[str]) -> Path:
    """The log file named by ``ref``: a branch name of ``folder`` or a path to a log file.

    Raises
    ------
    HistoryError
        When neither a branch of that name nor such a file exists.
    """
    if isinstance(ref, Path) or _looks_like_path(str(ref)):
        p = Path(ref)
        if not p.is_file():
            raise HistoryError(f"{p}: no such log file")
        return p
    name = str(ref)
    p = default_log_path(folder, name)
    if p.is_file():
        return p
    known = ", ".join(b.name for b in list_branches(folder)) or "none yet"
    raise HistoryError(f"no branch {name!r} in {Path(folder) / LOG_DIRNAME} (branches: {known})")


def _display_name(folder: str | os.PathLike[str], path: Path) -> str:
    """The branch name when ``path`` is a branch of ``folder``, else the path."""
    log_dir = (Path(folder) / LOG_DIRNAME).resolve()
    with contextlib.suppress(OSError):
        if path.resolve().parent == log_dir and path.suffix == ".log":
            return path.stem
    return str(path)


def branch_note(events: list[Event]) -> dict[str, Any] | None:
    """The data of the last ``branch`` note of a log (its own fork record), or None."""
    for e in reversed(events):
        if e.type != NOTE:
            continue
        try:
            note = e.data
        except LogCorruptError:
            continue
        if isinstance(note, NoteBody) and note.kind == BRANCH_NOTE:
            return dict(note.data) if note.data is not None else {}
    return None


@dataclass
class BranchInfo:
    """One log of a dataset folder, as listed by ``curalog branches``.

    Attributes
    ----------
    name : str
        The file stem (``main`` for ``.curalog/main.log``).
    path : Path
    n_events : int
        Valid events (= the head's seq).
    head : str
        Hex hash of the last record (the header's hash for an empty log).
    root : str
        Hex hash of the header: logs with the same root share history.
    updated_ns : int or None
        Time of the last event.
    parent : dict or None
        ``{"name", "seq", "head"}`` from the branch note; None for a root log.
    error : str or None
        Why the log could not be read (then the other fields are empty).
    """

    name: str
    path: Path
    n_events: int = 0
    head: str = ""
    root: str = ""
    updated_ns: int | None = None
    parent: dict[str, Any] | None = None
    authors: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "events": self.n_events,
            "head": self.head,
            "root": self.root,
            "updated": iso_time(self.updated_ns) if self.updated_ns else None,
            "parent": self.parent,
            "authors": self.authors,
            "error": self.error,
        }


def _branch_info(path: Path) -> BranchInfo:
    try:
        scan = read_log(path)
    except CuralogError as exc:
        return BranchInfo(name=path.stem, path=path, error=str(exc))
    note = branch_note(scan.events)
    parent = None
    if note is not None:
        p = note.get("parent")
        parent = dict(p) if isinstance(p, dict) else None
    info = BranchInfo(
        name=path.stem,
        path=path,
        n_events=len(scan.events),
        head=scan.head_hash.hex(),
        root=scan.header_hash.hex(),
        updated_ns=scan.events[-1].time_ns if scan.events else scan.header.get("created"),
        parent=parent,
        authors=sorted({e.author for e in scan.events}),
        error=scan.corruption,
    )
    return info


def list_branches(folder: str | os.PathLike[str]) -> list[BranchInfo]:
    """Every log in ``DIR/.curalog`` (``main`` first, then by name) with its head."""
    log_dir = Path(folder) / LOG_DIRNAME
    if not log_dir.is_dir():
        return []
    paths = sorted(p for p in log_dir.glob("*.log") if p.is_file() and not p.name.startswith("."))
    paths.sort(key=lambda p: (p.stem != DEFAULT_BRANCH, p.stem))
    return [_branch_info(p) for p in paths]


def _record_end(scan: ScanResult, seq: int) -> int:
    """Byte offset just after record ``seq`` (the header's end for 0)."""
    if seq < len(scan.events):
        return scan.offsets[seq]
    return scan.good_end


def _hash_at(scan: ScanResult, seq: int) -> bytes:
    return scan.events[seq - 1].hash if seq > 0 else scan.header_hash


def _check_dataset(scan: ScanResult, ds: Dataset, path: Path) -> None:
    try:
        logged = Fingerprint.from_dict(scan.header["dataset"])
    except (KeyError, TypeError, ValueError):
        raise LogCorruptError(f"{path}: header has no valid dataset fingerprint") from None
    if logged != ds.fingerprint:
        raise HistoryError(
            f"{path}: written for another dataset ({', '.join(ds.fingerprint.differences(logged))})"
        )


def _note_frame(scan: ScanResult, seq: int, body: dict[str, Any], author: str) -> bytes:
    env = envelope(seq + 1, NOTE, time.time_ns(), author, _hash_at(scan, seq), body)
    return encode_frame(msgpack.packb(env, use_bin_type=True))


def _write_new_file(dest: Path, data: bytes) -> None:
    """Create ``dest`` with ``data`` atomically; refuse to replace an existing file."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        create_exclusive(dest, data)
    except FileExistsError:
        raise HistoryError(f"{dest}: already exists") from None
    except OSError as exc:
        raise LogError(f"{dest}: cannot create ({exc.strerror})") from None


def _fork_bytes(
    src: Path, at: int | None, note: dict[str, Any], author: str
) -> tuple[bytes, ScanResult, int]:
    """Parent bytes up to ``at`` plus a branch note record; checks the result parses."""
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise LogError(f"{src}: cannot be read ({exc.strerror})") from None
    scan = scan_bytes(data, str(src))
    n = len(scan.events)
    if at is None:
        at = n
    if not isinstance(at, int) or at < 0 or at > n:
        raise HistoryError(f"--at {at}: {src} has events 1..{n} (0 = the sorter's output)")
    note = dict(note)
    data_field = dict(note.get("data", {}))
    parent = dict(data_field.get("parent", {}))
    parent.update({"seq": at, "head": _hash_at(scan, at).hex()})
    data_field["parent"] = parent
    note["data"] = data_field
    out = data[: _record_end(scan, at)] + _note_frame(scan, at, note, author)
    check = scan_bytes(out, str(src))
    if (
        check.corruption or check.torn or len(check.events) != at + 1
    ):  # pragma: no cover - defensive
        raise LogCorruptError(f"{src}: the branch copy does not verify")
    return out, scan, at


def _ensure_log(folder: str | os.PathLike[str], path: Path, ds: Dataset, author: str) -> None:
    if not path.exists() and path == default_log_path(folder, DEFAULT_BRANCH):
        with contextlib.suppress(LogError):  # created concurrently: fine
            create_log(path, make_header(ds, author))


def create_branch(
    folder: str | os.PathLike[str],
    name: str,
    at: int | None = None,
    from_branch: str | os.PathLike[str] = DEFAULT_BRANCH,
    *,
    author: str | None = None,
) -> BranchInfo:
    """Start branch ``name`` from ``from_branch`` (a branch name or log path) at seq ``at``.

    The new log is the parent's header and records 1..``at`` byte for byte, then a ``note``
    event of kind ``"branch"`` naming the parent and the fork point. ``main`` is created
    first if the folder has no history yet.

    Parameters
    ----------
    folder : path
        The dataset folder.
    name : str
        The new branch (``DIR/.curalog/<name>.log``); must not exist.
    at : int, optional
        Fork after this event (default: the parent's head; 0 = the sorter's output).
    from_branch : str or path
        The parent branch name or log path (default ``main``).
    author : str, optional
        Recorded in the branch note.

    Returns
    -------
    BranchInfo
    """
    validate_branch_name(name)
    author = author or default_author()
    ds = load_dataset(folder)
    dest = default_log_path(folder, name)
    if dest.exists():
        raise HistoryError(f"branch {name!r} already exists ({dest})")
    if not _looks_like_path(str(from_branch)) and not isinstance(from_branch, Path):
        _ensure_log(folder, default_log_path(folder, str(from_branch)), ds, author)
    src = resolve_log(folder, from_branch)
    parent_name = _display_name(folder, src)
    note = {
        "kind": BRANCH_NOTE,
        "text": f"branch {name} from {parent_name}" + (f" at #{at}" if at is not None else ""),
        "data": {"name": name, "parent": {"name": parent_name}},
    }
    data, scan, at = _fork_bytes(src, at, note, author)
    _check_dataset(scan, ds, src)
    _write_new_file(dest, data)
    return _branch_info(dest)


def common_prefix(a: ScanResult, b: ScanResult) -> int:
    """Number of leading records the two logs share (0 when their headers differ)."""
    if a.header_hash != b.header_hash:
        return 0
    n = min(len(a.events), len(b.events))
    # The chain makes record k's hash depend on every earlier record: binary search works.
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.events[mid - 1].hash == b.events[mid - 1].hash:
            lo = mid
        else:
            hi = mid - 1
    return lo
