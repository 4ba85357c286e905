"""The UI's session: opening a curation, and what screens may ask of the app.

:func:`open_session` opens a curation for the UI (a locked log falls back to read-only,
with the reason). :class:`CurationSession` is the narrow interface between the app and the
screens it pushes: a screen is handed one in its constructor and never sees the app itself
(its widgets, its status line, its key actions), the way Harlequin hands its components a
driver rather than the app. :class:`curalog_tui.app.CuralogApp` implements it; a test can
implement it with a small fake.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import curalog
from curalog import Curation, Update
from curalog.errors import LogCorruptError, LogLockedError

if TYPE_CHECKING:
    from curalog.analysis.features import FeatureSource
    from curalog.analysis.stats import CorrelogramMatrix

    from .model import ClusterModel
    from .review import Review

T = TypeVar("T")


@dataclass
class Session:
    cur: Curation
    readonly_reason: str | None = None


def open_session(
    folder: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    author: str | None = None,
    raw: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
) -> Session:
    """Open for writing; if another process holds the log (or the log is damaged in the
    middle), open read-only and say why.

    Other :class:`curalog.errors.CuralogError` (bad dataset, wrong log) propagate: the
    caller prints their one-line message. ``raw`` overrides params.py's ``dat_path`` (the
    raw recording of the waveform and trace views, ``--raw PATH``).
    """
    try:
        cur = curalog.open(folder, log, author=author, raw=raw)
    except (LogLockedError, LogCorruptError) as exc:
        cur = curalog.open(folder, log, author=author, readonly=True, raw=raw)
        return Session(cur, f"{exc}")
    reason = None
    if cur.readonly:
        reason = cur.corruption or "opened read-only"
    return Session(cur, reason)


class CurationSession(Protocol):
    """What a screen may use of the app: the curation and a few services around it.

    Every method runs on the UI thread (workers go through ``call_from_thread``).
    """

    @property
    def cur(self) -> Curation:
        """The open curation (every change goes through its API, via :meth:`attempt`)."""
        ...

    @property
    def model(self) -> ClusterModel:
        """The cluster table's rows: statistics, label fields, marks."""
        ...

    @property
    def readonly_reason(self) -> str | None:
        """Why the curation is read-only (None: it is writable)."""
        ...

    @property
    def similar(self) -> int | None:
        """The cluster under the similarity table's cursor."""
        ...

    @property
    def status_message(self) -> str:
        """The status line's last message (after a refused :meth:`attempt`: the reason)."""
        ...

    def attempt(self, fn: Callable[[], T]) -> T | None:
        """Run a curation call; a refusal becomes a status message and None, never a crash."""
        ...

    def say(self, message: str, *, error: bool = False) -> None:
        """Show a message in the main status line."""
        ...

    def refresh_status(self) -> None:
        """Redraw the main status line's counters (after a change the table does not show)."""
        ...

    def select_cluster(self, cid: int) -> bool:
        """Put the cluster table's cursor on ``cid``; False if the filter hides it."""
        ...

    def undo(self) -> Update | None:
        """Undo the last action as ``ctrl+z`` does on the table; None if nothing was undone."""
        ...

    def redo(self) -> Update | None:
        """Redo as ``ctrl+y`` does on the table; None if nothing was redone."""
        ...

    def review(self) -> Review:
        """The merge-proposal review service of this curation (made on first use)."""
        ...

    def feature_source(self) -> FeatureSource:
        """The spike-feature reader of this curation (made on first use, files load lazily)."""
        ...

    def correlograms(self) -> CorrelogramMatrix:
        """The correlogram-matrix cache of this curation (made on first use, fed its updates)."""
        ...


__all__ = ["CurationSession", "Session", "open_session"]
