"""Atomic file replacement: temp file in the same folder, fsync, rename, fsync the folder.

A reader (or phy) sees either the old complete file or the new complete file, never a
half-written one, even if the process is killed mid-write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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


def private_tempfile(final: Path) -> tuple[int, Path]:
    """A unique temp file beside ``final``, with the mode a normal file would get."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
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
