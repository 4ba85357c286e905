"""Atomic file replacement: temp file in the same folder, fsync, rename, fsync the folder.

A reader (or phy) sees either the old complete file or the new complete file, never a
half-written one, even if the process is killed mid-write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Mode of the files curalog creates: what ``open()`` would give (0666 minus the umask),
#: not mkstemp's private 0600, so colleagues and phy run by another user can read them.
FILE_MODE = 0o666 & ~_read_umask()


def new_side_file(base: Path) -> tuple[int, Path]:
    """Create ``base`` (or ``base-2``, ``base-3``, ...) for writing, never opening an existing
    file or following a symlink planted at the name (``O_CREAT | O_EXCL | O_NOFOLLOW``).

    Returns the descriptor and the path; the caller owns (and may remove) only that file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for i in range(1, 1000):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            return os.open(path, flags, FILE_MODE), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "too many side files of this name", str(base))


def write_side_file(base: Path, data: bytes) -> Path:
    """Write ``data`` durably to a new side file named from ``base`` (see :func:`new_side_file`);
    on failure the partial file is removed and the error raised."""
    fd, path = new_side_file(base)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)
    fsync_dir(path.parent)
    return path


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


#: ``.<name>.<host>-<pid>.<random>.tmp``: whose temp file it is (see :func:`clean_stale_tempfiles`).
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
#: Temp files of curalog before 0.2 (no writer in the name): removed once they are old.
_LEGACY_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
LEGACY_TEMP_AGE = 3600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def clean_stale_tempfiles(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files that writers killed mid-write left in ``folder``.

    A temp file is stale when the process named in it (on this host) no longer runs; temp
    files of older curalog versions, which carry no process id, when older than an hour.
    Symlinks and other files are never touched. Returns the files removed.
    """
    removed: list[Path] = []
    host = _host_tag()
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.endswith(".tmp") or not name.startswith("."):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            m = _TEMP_RE.match(name)
            if m is not None:
                if m.group("host") != host or _pid_alive(int(m.group("pid"))):
                    continue
            elif _LEGACY_TEMP_RE.match(name) is None or (
                now - entry.stat(follow_symlinks=False).st_mtime < LEGACY_TEMP_AGE
            ):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def private_tempfile(final: Path) -> tuple[int, Path]:
    """A unique temp file beside ``final``, with the mode a normal file would get.

    Its name says which process (on which host) writes it, so that a temp file left by a
    killed writer can be recognised and removed later (:func:`clean_stale_tempfiles`).
    """
    fd, name = tempfile.mkstemp(
        prefix=f".{final.name}.{_host_tag()}-{os.getpid()}.", suffix=".tmp", dir=final.parent
    )
    with contextlib.suppress(OSError):
        os.fchmod(fd, FILE_MODE)
    return fd, Path(name)


def create_exclusive(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create ``path`` holding ``data``, only if it does not exist yet, durably.

    The bytes go to a temp file beside it (written, fsynced), which is hard-linked into
    place: the link fails if ``path`` exists, so two creators cannot both win and nobody
    sees a half-written file. The temp file is always removed, then the folder is fsynced.
    Raises ``FileExistsError`` when ``path`` exists, ``OSError`` on any other failure.
    """
    final = Path(path)
    fd, tmp = private_tempfile(final)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, final)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(final.parent)
    return final


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fileobj)`` on a temp file, then atomically move it to ``path``."""
    final = Path(path)
    fd, tmp = private_tempfile(final)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)
    return final


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    return write_atomic(path, lambda f: f.write(data))


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """``np.save`` through a file object (np.save on a str path would append '.npy')."""
    return write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))
