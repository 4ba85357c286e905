"""Opening a curation for the UI: a locked log falls back to read-only, with the reason."""

from __future__ import annotations

import os
from dataclasses import dataclass

import curalog
from curalog import Curation
from curalog.errors import LogCorruptError, LogLockedError


@dataclass
class Session:
    cur: Curation
    readonly_reason: str | None = None


def open_session(
    folder: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    author: str | None = None,
) -> Session:
    """Open for writing; if another process holds the log (or the log is damaged in the
    middle), open read-only and say why.

    Other :class:`curalog.errors.CuralogError` (bad dataset, wrong log) propagate: the
    caller prints their one-line message.
    """
    try:
        cur = curalog.open(folder, log, author=author)
    except (LogLockedError, LogCorruptError) as exc:
        cur = curalog.open(folder, log, author=author, readonly=True)
        return Session(cur, f"{exc}")
    reason = None
    if cur.readonly:
        reason = cur.corruption or "opened read-only"
    return Session(cur, reason)


__all__ = ["Session", "open_session"]
