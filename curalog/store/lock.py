"""The single-writer lock of a log and the tail state kept beside it (``<log>.lock``).

The lock is an exclusive ``flock`` on the log file itself, so every path to the log (a
symlink, a hard link, a symlinked folder) meets it, plus, for curalog 0.1 writers, the
``flock`` on ``<log>.lock``. That file names the holder for refusal messages and keeps the
*tail state*: the number of events and the head hash after the last durable append, which
lets a reader tell a log cut at a record boundary from a complete one (:func:`check_tail`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import os
import re
import socket
import stat
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from curalog.errors import LogError, LogLockedError

if TYPE_CHECKING:
    from curalog.store.log import ScanResult


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def default_author() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return os.environ.get("CURALOG_AUTHOR") or f"{user}@{socket.gethostname()}"


def _realpath(path: Path) -> Path:
    return Path(os.path.realpath(path))


def state_path(log_path: str | os.PathLike[str]) -> Path:
    """``<log>.lock`` beside the log's real file: the writer lock of older curalog versions,
    the holder's name for refusal messages, and the writer's *tail state* (see :func:`read_state`)."""
    real = _realpath(Path(log_path))
    return real.with_name(real.name + ".lock")


_STATE_RE = re.compile(r"^events (\d+) head ([0-9a-f]{64}) root ([0-9a-f]{16}) crc ([0-9a-f]{8})$")


@dataclass(frozen=True)
class TailState:
    """What the last writer recorded after its last durable append: the number of events,
    the head hash and the header hash (root) of the log it belongs to."""

    n_events: int
    head: str
    root: str


def _format_state(state: TailState) -> str:
    text = f"events {state.n_events} head {state.head} root {state.root}"
    return f"{text} crc {_crc(text.encode()):08x}"


def _parse_state(text: str) -> TailState | None:
    for line in text.splitlines():
        m = _STATE_RE.match(line.strip())
        if m is None:
            continue
        body = line.strip().rsplit(" crc ", 1)[0]
        if f"{_crc(body.encode()):08x}" != m.group(4):
            return None  # read while being rewritten: no information
        return TailState(int(m.group(1)), m.group(2), m.group(3))
    return None


def read_state(log_path: str | os.PathLike[str]) -> TailState | None:
    """The tail state kept in ``<log>.lock`` (None when absent, unreadable or malformed)."""
    try:
        fd = os.open(state_path(log_path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _parse_state(os.read(fd, 4096).decode("ascii", "replace"))
    except OSError:
        return None
    finally:
        os.close(fd)


def check_tail(scan: ScanResult, state: TailState | None) -> str | None:
    """Compare a scan with the last writer's tail state: a message when records were lost.

    Detects a log cut at a record boundary (or restored from an older copy) while its
    ``.lock`` file is beside it. It cannot detect a cut when that file is missing (the log
    was copied or moved alone), was removed or rewritten too, or belongs to another log.
    """
    if state is None or state.root != scan.header_hash.hex()[:16]:
        return None
    n = len(scan.events)
    if n < state.n_events:
        kept = f"; it now ends after event {n}" if n else "; no event is left"
        return (
            f"{scan.where}: {state.n_events - n} recorded event(s) missing at the end: the last "
            f"writer recorded {state.n_events} events (head {state.head[:12]}){kept} "
            "(the log was cut or restored from an older copy)"
        )
    if state.n_events and scan.events[state.n_events - 1].hash.hex() != state.head:
        return (
            f"{scan.where}: event {state.n_events} differs from the one its last writer recorded "
            f"(head {state.head[:12]}): the log was replaced or rewritten"
        )
    return None


def _open_private(path: Path, flags: int) -> int:
    """Open a side file of the log without following a symlink planted at its name, and
    refuse anything but a regular file with a single link."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise OSError(errno.EPERM, "not a regular file of its own (a link?)")
    return fd


class WriterLock:
    """The single-writer lock of a log.

    An exclusive ``flock`` on the log file itself, so every path to it (a symlink, a hard
    link, another mount) meets the same lock; plus, for curalog versions before 0.2, the
    ``flock`` on ``<log>.lock``, which also names the holder and keeps the tail state.
    """

    def __init__(self, log_path: Path):
        self.log_path = Path(log_path)
        self.path = state_path(self.log_path)
        self.fd: int | None = None
        self.log_fd: int | None = None
        self.holder = (
            f"{default_author()} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        self.previous: TailState | None = None  # the tail state found when locking
        self._length = 1 << 62  # bytes in the lock file (unknown until the first write)

    def _refuse(self, holder: str) -> LogLockedError:
        who = f" by {holder}" if holder else ""
        return LogLockedError(f"{self.log_path}: already open for writing{who}")

    def _holder(self) -> str:
        with contextlib.suppress(OSError):
            fd = _open_private(self.path, os.O_RDONLY)
            try:
                for _ in range(3):  # the holder writes its name right after locking
                    first = os.pread(fd, 4096, 0).decode("utf-8", "replace").split("\n")[0]
                    if first.strip():
                        return "" if first.startswith("closed") else first.strip()
                    time.sleep(0.005)
            finally:
                os.close(fd)
        return ""

    def acquire(self) -> None:
        try:
            lfd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise LogError(f"{self.log_path}: no such log") from None
        except OSError as exc:
            raise LogError(f"{self.log_path}: cannot be opened ({exc.strerror})") from None
        try:
            try:
                fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._refuse(self._holder()) from None
                raise LogError(f"{self.log_path}: cannot lock ({exc.strerror})") from None
            with contextlib.suppress(OSError):
                if os.fstat(lfd).st_ino != os.stat(self.log_path).st_ino:
                    # replaced (repaired, removed) between our open and our lock
                    raise self._refuse("")
            try:
                fd = _open_private(self.path, os.O_RDWR | os.O_CREAT)
            except OSError as exc:
                raise LogError(
                    f"{self.path}: cannot use it as the lock file ({exc.strerror})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = self._holder()
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._refuse(holder) from None
                raise LogError(f"{self.path}: cannot lock ({exc.strerror})") from None
        except BaseException:
            os.close(lfd)
            raise
        self.fd, self.log_fd = fd, lfd
        with contextlib.suppress(OSError):
            self.previous = _parse_state(os.pread(fd, 4096, 0).decode("ascii", "replace"))
        self._write(self.holder, self.previous)

    def _write(self, first: str, state: TailState | None) -> None:
        if self.fd is None:
            return
        text = first + "\n" + (_format_state(state) + "\n" if state is not None else "")
        data = text.encode("utf-8", "replace")
        with contextlib.suppress(OSError):
            os.pwrite(self.fd, data, 0)
            if len(data) < self._length:  # a shorter text leaves a tail to cut (rare)
                os.ftruncate(self.fd, len(data))
            self._length = len(data)

    def record(self, n_events: int, head: bytes, root: bytes) -> None:
        """Note the log's new tail (after a durable append; not fsynced: a lost update only
        weakens the check, it never makes the log look damaged)."""
        self.previous = TailState(n_events, head.hex(), root.hex()[:16])
        self._write(self.holder, self.previous)

    def release(self) -> None:
        if self.fd is not None:
            self._write("closed", self.previous)  # no time: a no-op session changes nothing
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        if self.log_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.log_fd, fcntl.LOCK_UN)
            os.close(self.log_fd)
            self.log_fd = None
