"""The append-only curation log: one crash-safe file per history (branch).

File layout (all integers little-endian)::

    header : b"CURALOG\\0" | u16 format | u32 length | u32 crc32(payload) | msgpack header map
    record : u32 length | u32 crc32(payload) | u32 crc32(first 8 bytes) | msgpack envelope

The header map holds the dataset fingerprint, creation time, author, curalog version,
the base labels and, for a branch, its parent's identity. Each record's envelope holds the
SHA-256 of the previous record's payload (the header's payload for the first record), so
the head hash identifies the whole history, as a git commit id does.

Rules (docs/DESIGN.md "The log"):

* append = one ``os.write`` of the whole frame + ``fsync`` before the action counts as done;
  a failed write is rolled back by truncating to the previous size;
* one writer: ``fcntl.flock`` on the log file itself (every alias meets it) and on
  ``<log>.lock``, which names the holder and keeps the *tail state* (events, head hash)
  that lets a reader see records cut at a boundary; readers need no lock;
* a torn last record (incomplete frame at the end of the file, or trailing zeros) is cut off
  on the next writable open, its bytes kept in ``<log>.torn-<time>-<pid>`` and the recovery
  reported (:data:`RECOVERY_HANDLERS`, ``ScanResult.warnings``);
* a complete record that fails a checksum, a broken chain, or events missing at the end is
  corruption: the log opens read-only, the error says where, and ``curalog fsck --repair``
  (:mod:`curalog.store.repair`) is offered.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from curalog.atomic import (
    clean_stale_tempfiles,
    create_exclusive,
    write_side_file,
)
from curalog.errors import LogCorruptError, LogError, UnsupportedVersionError
from curalog.events.envelope import Event, decode_envelope, envelope
from curalog.store.lock import (  # noqa: F401  (TailState, default_author, state_path: re-exported)
    TailState,
    WriterLock,
    _crc,
    check_tail,
    default_author,
    read_state,
    state_path,
)
from curalog.store.overlap import SideWork, fsync_thread

MAGIC = b"CURALOG\x00"
FORMAT_VERSION = 1
_FILE_HEAD = struct.Struct("<8sHII")  # magic, format, length, crc
_FRAME = struct.Struct("<III")  # length, crc(payload), crc(length+crc)
MAX_RECORD = 1 << 30  # 1 GiB: far above any real split, far below what breaks memory
MAX_HEADER = 64 << 20
CHECKSUM = "crc32-iso-hdlc (zlib)"


#: Called with the one-line message of every recovery made while opening a log for writing
#: (a torn tail cut, stale temp files removed); the command line prints it on stderr.
#: The message is also in ``ScanResult.warnings`` / ``Curation.warnings`` (the UI shows it).
RECOVERY_HANDLERS: list[Callable[[str], None]] = []


def _recovered(scan: ScanResult, message: str) -> None:
    scan.warnings.append(message)
    for handler in list(RECOVERY_HANDLERS):
        with contextlib.suppress(Exception):
            handler(message)


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(data: bytes, where: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise LogCorruptError(f"{where}: undecodable msgpack ({exc.__class__.__name__})") from None


def encode_frame(payload: bytes) -> bytes:
    head = struct.pack("<II", len(payload), _crc(payload))
    return head + struct.pack("<I", _crc(head)) + payload


@dataclass
class ScanResult:
    """What a scan of the log bytes found."""

    header: dict[str, Any]
    header_hash: bytes
    events: list[Event]
    offsets: list[int]  # start offset of each record
    good_end: int  # end offset of the last valid record
    file_size: int
    torn: bool = False  # an incomplete record at the end
    corruption: str | None = None  # description of mid-file damage
    warnings: list[str] = field(default_factory=list)
    where: str = ""  # the file, for messages
    lost: str | None = None  # records missing at the end (see check_tail); also in corruption

    @property
    def head_hash(self) -> bytes:
        return self.events[-1].hash if self.events else self.header_hash


def _is_zero(buf: memoryview) -> bool:
    return not any(buf)


def _header_says_format(data: bytes, hlen: int, hcrc: int) -> int | None:
    """The ``format`` a checksum-valid header payload of this curalog's format states."""
    if hlen > MAX_HEADER or _FILE_HEAD.size + hlen > len(data):
        return None
    payload = data[_FILE_HEAD.size : _FILE_HEAD.size + hlen]
    if _crc(payload) != hcrc:
        return None
    try:
        header = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception:
        return None
    fmt = header.get("format") if isinstance(header, dict) else None
    ok = isinstance(fmt, int) and not isinstance(fmt, bool) and 1 <= fmt <= FORMAT_VERSION
    return fmt if ok else None


def scan_bytes(data: bytes, where: str) -> ScanResult:
    """Parse a whole log. Stops at the first bad record and classifies it as torn or corrupt."""
    size = len(data)
    if size < _FILE_HEAD.size:
        raise LogCorruptError(f"{where}: too short to be a curalog log ({size} bytes)")
    magic, fmt, hlen, hcrc = _FILE_HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise LogCorruptError(f"{where}: not a curalog log (bad magic bytes)")
    if fmt > FORMAT_VERSION:
        if _header_says_format(data, hlen, hcrc) is not None:
            # the head's format field is outside the header's checksum; the header says 1
            raise LogCorruptError(
                f"{where}: format field {fmt} disagrees with the header (format 1): damaged"
            )
        raise UnsupportedVersionError(
            f"{where}: log format {fmt} is newer than this curalog ({FORMAT_VERSION})"
        )
    if fmt < 1:
        raise LogCorruptError(f"{where}: invalid log format number {fmt}")
    if hlen > MAX_HEADER or _FILE_HEAD.size + hlen > size:
        raise LogCorruptError(f"{where}: header length {hlen} is invalid")
    hpayload = data[_FILE_HEAD.size : _FILE_HEAD.size + hlen]
    if _crc(hpayload) != hcrc:
        raise LogCorruptError(f"{where}: header checksum mismatch")
    header = _unpack(hpayload, f"{where}: header")
    if not isinstance(header, dict):
        raise LogCorruptError(f"{where}: header is not a map")
    if header.get("format", fmt) != fmt:  # the head's format field is outside the header CRC
        raise LogCorruptError(
            f"{where}: format field {fmt} disagrees with the header ({header.get('format')!r})"
        )
    header_hash = hashlib.sha256(hpayload).digest()
    result = ScanResult(header, header_hash, [], [], _FILE_HEAD.size + hlen, size, where=where)
    view = memoryview(data)
    pos = result.good_end
    prev = header_hash
    seq = 0
    while pos < size:
        rec_where = f"{where}: record {seq + 1} at byte {pos}"
        if size - pos < _FRAME.size:
            result.torn = True
            break
        length, pcrc, fcrc = _FRAME.unpack_from(data, pos)
        if _crc(bytes(view[pos : pos + 8])) != fcrc:
            if _is_zero(view[pos:]):
                result.torn = True  # preallocated / zero-filled tail after a crash
            else:
                result.corruption = f"{rec_where}: frame header checksum mismatch"
            break
        if length > MAX_RECORD:
            result.corruption = f"{rec_where}: record length {length} exceeds the limit"
            break
        end = pos + _FRAME.size + length
        if end > size:
            result.torn = True
            break
        payload = bytes(view[pos + _FRAME.size : end])
        if _crc(payload) != pcrc:
            result.corruption = f"{rec_where}: payload checksum mismatch"
            break
        rec_hash = hashlib.sha256(payload).digest()
        try:
            event = decode_envelope(_unpack(payload, rec_where), rec_hash, rec_where)
        except UnsupportedVersionError:
            raise
        except LogCorruptError as exc:
            result.corruption = str(exc)
            break
        if event.seq != seq + 1:
            result.corruption = f"{rec_where}: sequence number {event.seq}, expected {seq + 1}"
            break
        if event.prev != prev:
            result.corruption = f"{rec_where}: hash chain broken (previous-record hash differs)"
            break
        result.events.append(event)
        result.offsets.append(pos)
        prev = rec_hash
        seq += 1
        pos = end
        result.good_end = pos
    return result


def read_log(path: str | os.PathLike[str], *, check_state: bool = True) -> ScanResult:
    """Read a log without locking or modifying it (a torn tail is ignored, corruption reported).

    With ``check_state``, the tail state its last writer left in ``<log>.lock`` is compared
    with the records found: events missing at the end are reported as ``lost`` and as
    ``corruption`` (the log is then read-only until ``curalog fsck --repair``).
    """
    p = Path(path)
    # The state first: a writer updates it only after its append is durable, so a state
    # read before the bytes never claims more than they hold.
    state = read_state(p) if check_state else None
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise LogError(f"{p}: no such log") from None
    except IsADirectoryError:
        raise LogError(f"{p}: is a folder, not a log") from None
    except OSError as exc:
        raise LogError(f"{p}: cannot be read ({exc.strerror})") from None
    scan = scan_bytes(data, str(p))
    lost = check_tail(scan, state)
    if lost is not None:
        scan.lost = lost
        if scan.corruption is None:
            scan.corruption = lost
    return scan


def create_log(path: str | os.PathLike[str], header: dict[str, Any]) -> None:
    """Create a new log holding only ``header`` (atomically: temp file, fsync, rename)."""
    p = Path(path)
    if p.exists():
        raise LogError(f"{p}: already exists")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LogError(
            f"{p.parent}: cannot create the log folder ({exc.strerror}); pass --log PATH"
        ) from None
    full = {"format": FORMAT_VERSION, "checksum": CHECKSUM, **header}
    payload = _pack(full)
    data = _FILE_HEAD.pack(MAGIC, FORMAT_VERSION, len(payload), _crc(payload)) + payload
    try:
        create_exclusive(p, data)  # fails if someone created the log meanwhile
    except FileExistsError:
        raise LogError(f"{p}: already exists") from None
    except OSError as exc:
        raise LogError(f"{p}: cannot create ({exc.strerror})") from None


class LogWriter:
    """The single writer of a log: verified on open, appends durably.

    Parameters
    ----------
    path : path-like
        The log file (must exist; see :func:`create_log`).
    recover : bool
        Cut off a torn tail (keeping its bytes in a side file). Mid-file corruption is
        never repaired here: it raises :class:`LogCorruptError`.
    sync : bool
        fsync after every record (default). ``False`` is for scripted bulk imports and
        benchmarks only: records are then made durable by :meth:`flush` or :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, recover: bool = True, sync: bool = True):
        self.path = Path(path)
        self.sync = sync
        self.broken: str | None = None
        self.lock = WriterLock(self.path)
        self.lock.acquire()
        try:
            self.scan = read_log(self.path)
            if self.scan.corruption:
                raise LogCorruptError(
                    f"{self.scan.corruption}; the log is read-only until repaired (curalog fsck --repair)"
                )
            if self.scan.torn:
                if not recover:
                    raise LogCorruptError(f"{self.path}: torn record at byte {self.scan.good_end}")
                self._cut_torn_tail()
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self.clean_temp_files(self.path.parent)
        except BaseException:
            self.lock.release()
            raise
        self.size = self.scan.good_end
        self.events = self.scan.events
        self.head_hash = self.scan.head_hash

    def clean_temp_files(self, folder: str | os.PathLike[str]) -> None:
        """Remove the temp files killed writers left in ``folder``, each reported as a recovery."""
        for tmp in clean_stale_tempfiles(folder):
            _recovered(self.scan, f"{tmp}: removed (a temp file left by a killed writer)")

    def _cut_torn_tail(self) -> None:
        good = self.scan.good_end
        base = self.path.with_name(
            f"{self.path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        )
        try:
            with open(self.path, "rb") as f:
                f.seek(good)
                tail = f.read()
            side = write_side_file(base, tail)
        except OSError as exc:
            raise LogError(
                f"{self.path}: cannot keep the torn last record aside ({exc.strerror}); "
                "the log is unchanged"
            ) from None
        try:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise LogError(
                f"{self.path}: cannot cut the torn last record ({exc.strerror})"
            ) from None
        _recovered(
            self.scan,
            f"{self.path}: cut off an incomplete last record after event {len(self.scan.events)} "
            f"(an interrupted write, never acknowledged: {len(tail)} bytes, kept in {side})",
        )
        self.scan.torn = False
        self.scan.file_size = good

    @property
    def header(self) -> dict[str, Any]:
        return self.scan.header

    @property
    def next_seq(self) -> int:
        return len(self.events) + 1

    def append(
        self,
        type_: str,
        body: dict[str, Any],
        author: str,
        *,
        meanwhile: SideWork | None = None,
    ) -> Event:
        """Write one record and fsync it; on any failure the file is left as it was.

        ``meanwhile`` is in-memory work to run while the fsync is in flight (see
        :mod:`curalog.store.overlap`). The action still counts as done only once the fsync
        has returned; if the record is not committed, the work is undone first.
        """
        if self.broken:
            raise LogError(
                f"{self.path}: {self.broken}; reopen the log before recording anything else"
            )
        seq = self.next_seq
        env = envelope(seq, type_, time.time_ns(), author, self.head_hash, body)
        payload = _pack(env)
        if len(payload) > MAX_RECORD:
            raise LogError(f"{self.path}: event too large ({len(payload)} bytes)")
        frame = encode_frame(payload)
        try:
            view = memoryview(frame)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            if self.sync and meanwhile is not None:
                fsync_thread().commit(self.fd, meanwhile)
            elif self.sync:
                os.fsync(self.fd)
        except OSError as exc:
            self._roll_back(exc)
        except BaseException:
            with contextlib.suppress(LogError):
                self._roll_back(None)
            raise
        rec_hash = hashlib.sha256(payload).digest()
        event = Event(
            seq=seq,
            type=type_,
            time_ns=env["time"],
            author=author,
            prev=self.head_hash,
            body=body,
            hash=rec_hash,
        )
        self.events.append(event)
        self.head_hash = rec_hash
        self.size += len(frame)
        if self.sync:
            self.lock.record(len(self.events), rec_hash, self.scan.header_hash)
        return event

    def _roll_back(self, exc: OSError | None) -> None:
        """Truncate a written, uncommitted record away; then raise :class:`LogError` for ``exc``."""
        rolled_back = False
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, self.size)
            os.fsync(self.fd)
            rolled_back = os.fstat(self.fd).st_size == self.size
        reason = exc.strerror if exc is not None else "interrupted"
        if not rolled_back:
            self.broken = f"a failed write could not be rolled back ({reason})"
            raise LogError(
                f"{self.path}: could not record the action ({reason}) nor undo the partial "
                "write; reopen the log (its torn end will be cut)"
            ) from None
        if exc is not None:
            raise LogError(
                f"{self.path}: could not record the action ({reason}); nothing was changed"
            ) from None

    def flush(self) -> None:
        """Make every appended record durable (only needed with ``sync=False``)."""
        if getattr(self, "fd", None) is not None:
            os.fsync(self.fd)
            self.lock.record(len(self.events), self.head_hash, self.scan.header_hash)

    def close(self) -> None:
        if getattr(self, "fd", None) is not None:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)
                if not self.sync and self.broken is None:
                    self.lock.record(len(self.events), self.head_hash, self.scan.header_hash)
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None  # type: ignore[assignment]  # closed: the getattr checks see None
        self.lock.release()
