"""The exceptions curalog raises for bad input.

Every user-facing failure is a :class:`CuralogError` whose message is one line that names
the file or argument at fault. The command line prints that line and exits with status 2;
anything else reaching the user is a bug.
"""

from __future__ import annotations


class CuralogError(Exception):
    """Base class: a problem with the user's input, files or environment (exit status 2)."""


class DatasetError(CuralogError):
    """A dataset file is missing, malformed or inconsistent with the others."""


class InvalidActionError(CuralogError):
    """A merge, split, label, undo or redo that cannot be applied to the current state."""


class LogError(CuralogError):
    """The curation log cannot be read or written."""


class LogCorruptError(LogError):
    """A record in the middle of the log is damaged: the log is opened read-only."""


class LogLockedError(LogError):
    """Another process holds the log's writer lock."""


class FingerprintMismatchError(LogError):
    """The log was written for a different dataset (or the dataset changed since)."""


class UnsupportedVersionError(LogError):
    """The log or an event in it comes from a newer curalog than this one."""
