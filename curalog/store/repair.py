"""What follows the damage in a log, and ``curalog fsck --repair``.

A damaged record ends the valid part of a log: its successors cannot be chained to the
records before it. They may still be intact (a flipped bit in record 5 of 400 leaves 395
intact records). :func:`inspect_log` finds them by their frame checksums; :func:`repair_log`
keeps the valid prefix as the log and writes everything it cuts to a *salvage file*
``<log>.salvage-<time>-<pid>``: each intact record with the reason it was not kept, and
the cut bytes exactly as they were (format in docs/LOG_FORMAT.md, reader :func:`read_salvage`).

A damaged file head (magic, format, length or header checksum) with an intact header
payload is rewritten in place (the first record's ``prev`` proves the payload intact). A
damaged header payload is rebuilt from the dataset when the caller can give one
(``rebuild_header``); the records are then re-chained onto it, so the head hash changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from curalog.atomic import fsync_dir, new_side_file, private_tempfile
from curalog.errors import LogCorruptError, LogError
from curalog.events.envelope import decode_envelope
from curalog.store.log import (
    _FILE_HEAD,
    _FRAME,
    CHECKSUM,
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER,
    MAX_RECORD,
    ScanResult,
    WriterLock,
    _crc,
    _pack,
    _unpack,
    check_tail,
    encode_frame,
    read_state,
    scan_bytes,
)

#: Every envelope curalog writes starts with ``{"v": ...`` (a msgpack map, then key "v").
_SIGNATURE = b"\xa1v"
SALVAGE_KIND = "curalog-salvage"


@dataclass
class IntactRecord:
    """A complete record with valid checksums found after the damage."""

    offset: int
    end: int
    payload: bytes
    seq: int
    type: str
    prev: bytes
    hash: bytes


@dataclass
class Inspection:
    """What fsck reports about a log's damage."""

    scan: ScanResult | None  # None when the file head / header is damaged
    header_error: str | None = None
    header_fix: str | None = None  # how --repair can recover the header (None: it cannot)
    damage_at: int | None = None
    intact_after: list[IntactRecord] = field(default_factory=list)
    curalog_magic: bool = True  # the file starts with curalog's magic bytes

    @property
    def intact_seqs(self) -> str:
        seqs = [r.seq for r in self.intact_after]
        if not seqs:
            return ""
        return f"{seqs[0]}" if len(seqs) == 1 else f"{seqs[0]}-{seqs[-1]}"


def _record_at(data: bytes, pos: int) -> IntactRecord | None:
    if pos < 0 or len(data) - pos < _FRAME.size:
        return None
    length, pcrc, fcrc = _FRAME.unpack_from(data, pos)
    if _crc(data[pos : pos + 8]) != fcrc or length > MAX_RECORD:
        return None
    end = pos + _FRAME.size + length
    if end > len(data):
        return None
    payload = data[pos + _FRAME.size : end]
    if _crc(payload) != pcrc:
        return None
    rec_hash = hashlib.sha256(payload).digest()
    try:
        event = decode_envelope(_unpack(payload, "salvage"), rec_hash, "salvage")
    except LogError:
        return None
    return IntactRecord(pos, end, payload, event.seq, event.type, event.prev, rec_hash)


def find_intact_records(data: bytes, start: int) -> list[IntactRecord]:
    """Every complete record with valid checksums and envelope at or after ``start``."""
    out: list[IntactRecord] = []
    pos = start
    while True:
        i = data.find(_SIGNATURE, pos + _FRAME.size + 1)
        if i < 0:
            return out
        rec = _record_at(data, i - 1 - _FRAME.size)
        if rec is None:
            pos = i - _FRAME.size
            continue
        out.append(rec)
        pos = rec.end


def _proven_header(data: bytes) -> tuple[bytes, int, str] | None:
    """(header payload, offset of the first record, what is wrong) when the file head is
    damaged but the header payload is provably intact, else None."""
    if len(data) < _FILE_HEAD.size:
        return None
    magic, fmt, hlen, hcrc = _FILE_HEAD.unpack_from(data, 0)
    if hlen > MAX_HEADER or _FILE_HEAD.size + hlen > len(data):
        return None
    payload = data[_FILE_HEAD.size : _FILE_HEAD.size + hlen]
    try:
        header = _unpack(payload, "header")
    except LogError:
        return None
    if not isinstance(header, dict) or header.get("kind") != "curalog-log":
        return None
    start = _FILE_HEAD.size + hlen
    first = _record_at(data, start)
    if first is not None:
        if first.prev != hashlib.sha256(payload).digest():
            return None
    elif start != len(data) and _crc(payload) != hcrc:
        return None  # records follow but none proves the payload, nor does its checksum
    wrong = [
        what
        for what, bad in (
            ("magic bytes", magic != MAGIC),
            ("format field", fmt != header.get("format", FORMAT_VERSION)),
            ("header checksum", _crc(payload) != hcrc),
        )
        if bad
    ]
    return payload, start, ", ".join(wrong) or "file head"


def inspect_log(path: str | os.PathLike[str]) -> Inspection:
    """Scan a log like :func:`curalog.store.log.read_log`, and count what follows damage."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise LogError(f"{p}: no such log") from None
    except OSError as exc:
        raise LogError(f"{p}: cannot be read ({exc.strerror})") from None
    state = read_state(p)
    try:
        scan = scan_bytes(data, str(p))
    except LogCorruptError as exc:
        ins = Inspection(None, header_error=str(exc), damage_at=0)
        ins.curalog_magic = data.startswith(MAGIC)
        proven = _proven_header(data)
        if proven is not None:
            ins.header_fix = f"the header itself is intact ({proven[2]} damaged): rewritten"
            ins.intact_after = find_intact_records(data, proven[1])
        else:
            ins.header_fix = None
            ins.intact_after = find_intact_records(data, _FILE_HEAD.size)
        return ins
    lost = check_tail(scan, state)
    if lost is not None:
        scan.lost = lost
        scan.corruption = scan.corruption or lost
    ins = Inspection(scan)
    if scan.good_end < scan.file_size:
        ins.damage_at = scan.good_end
        ins.intact_after = find_intact_records(data, scan.good_end)
    return ins


# ---------------------------------------------------------------------- salvage files
def _salvage_bytes(
    log: Path, damage: str, cut_at: int, cut: bytes, records: list[tuple[IntactRecord, str]]
) -> bytes:
    head = {
        "kind": SALVAGE_KIND,
        "v": 1,
        "log": str(log),
        "created": time.time_ns(),
        "damage": damage,
        "cut_at": cut_at,
        "records": len(records),
    }
    out = bytearray(encode_frame(_pack(head)))
    for rec, reason in records:
        item = {
            "kind": "record",
            "offset": rec.offset,
            "seq": rec.seq,
            "type": rec.type,
            "reason": reason,
            "payload": rec.payload,
        }
        out += encode_frame(_pack(item))
    out += encode_frame(_pack({"kind": "raw", "offset": cut_at, "data": cut}))
    return bytes(out)


def read_salvage(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The maps of a salvage file: its head, one per intact record, then the raw cut bytes."""
    data = Path(path).read_bytes()
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        length, pcrc, _ = _FRAME.unpack_from(data, pos)
        payload = data[pos + _FRAME.size : pos + _FRAME.size + length]
        if _crc(payload) != pcrc:
            raise LogCorruptError(f"{path}: damaged salvage frame at byte {pos}")
        out.append(msgpack.unpackb(payload, raw=False))
        pos += _FRAME.size + length
    return out


def _reason(rec: IntactRecord, damage: str, known: dict[bytes, int]) -> str:
    if rec.prev in known:
        link = f"it follows event {known[rec.prev]}" if known[rec.prev] else "it follows the header"
        return f"intact, after the damage ({damage}); {link} but not in sequence with the kept log"
    return f"intact, after the damage ({damage}); the record before it (event {rec.seq - 1}) is damaged or missing"


@dataclass
class RepairResult:
    kept: int
    side: Path | None = None
    intact_set_aside: int = 0
    header: str | None = None  # what was done to the header
    accepted_loss: str | None = None  # missing events accepted as lost (tail state reset)

    def summary(self, log: Path) -> str:
        parts = [f"{log}: kept {self.kept} events"]
        if self.header:
            parts.append(self.header)
        if self.side is not None:
            parts.append(
                f"{self.intact_set_aside} intact later record(s) and every cut byte are in {self.side}"
            )
        if self.accepted_loss:
            parts.append(f"accepted as lost: {self.accepted_loss}")
        if len(parts) == 1:
            parts.append("nothing to repair")
        return "; ".join(parts)


def _rechain(header_payload: bytes, records: list[IntactRecord]) -> tuple[bytes, int]:
    """A new log: the header, then the consecutive records from seq 1, each re-linked."""
    data = bytearray(
        _FILE_HEAD.pack(MAGIC, FORMAT_VERSION, len(header_payload), _crc(header_payload))
    )
    data += header_payload
    prev = hashlib.sha256(header_payload).digest()
    n = 0
    for rec in records:
        if rec.seq != n + 1:
            break
        env = _unpack(rec.payload, "record")
        env["prev"] = prev
        payload = _pack(env)
        data += encode_frame(payload)
        prev = hashlib.sha256(payload).digest()
        n += 1
    return bytes(data), n


def repair_log(
    path: str | os.PathLike[str], rebuild_header: Callable[[], dict[str, Any]] | None = None
) -> RepairResult:
    """Cut a damaged log after its last valid record; set everything cut aside.

    A damaged file head is rewritten when the header payload is provably intact; otherwise,
    with ``rebuild_header`` (a fresh header for the log's dataset), the header is replaced
    and the intact records from seq 1 re-chained onto it. Events found missing at the end
    (the tail state's count) are accepted as lost: the state is reset to the log as it is.
    """
    p = Path(path)
    lock = WriterLock(p)
    lock.acquire()
    try:
        data = p.read_bytes()
        header_note = None
        try:
            scan_bytes(data, str(p))
        except LogCorruptError as exc:
            data, header_note = _repair_header(p, data, str(exc), rebuild_header)
        scan = scan_bytes(data, str(p))
        result = RepairResult(len(scan.events), header=header_note)
        lost = check_tail(scan, lock.previous)
        if lost is not None and scan.good_end >= scan.file_size:  # (a cut explains itself)
            result.accepted_loss = lost.split(": ", 1)[-1]
        if scan.good_end < scan.file_size:
            damage = scan.corruption or "an incomplete last record"
            cut = data[scan.good_end :]
            known = {scan.header_hash: 0, **{e.hash: e.seq for e in scan.events}}
            records = [
                (r, _reason(r, damage, known)) for r in find_intact_records(data, scan.good_end)
            ]
            base = p.with_name(f"{p.name}.salvage-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
            fd, side = new_side_file(base)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_salvage_bytes(p, damage, scan.good_end, cut, records))
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                with contextlib.suppress(OSError):
                    side.unlink()
                raise LogError(
                    f"{side}: cannot write the salvage file ({exc.strerror}); the log is unchanged"
                ) from None
            fsync_dir(side.parent)
            result.side, result.intact_set_aside = side, len(records)
        # The tail state first (a reader never sees it claim more than the log holds) ...
        lock.record(len(scan.events), scan.head_hash, scan.header_hash)
        if scan.good_end < scan.file_size:  # ... then the cut
            try:
                with open(p, "r+b") as f:
                    f.truncate(scan.good_end)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise LogError(f"{p}: cannot cut the damaged tail ({exc.strerror})") from None
        return result
    finally:
        lock.release()


def _repair_header(
    p: Path, data: bytes, error: str, rebuild_header: Callable[[], dict[str, Any]] | None
) -> tuple[bytes, str]:
    """Recover a damaged file head or header; returns the log's new bytes and what was done.
    The original bytes are kept in a salvage file first."""
    proven = _proven_header(data)
    if proven is not None:
        payload, start, what = proven
        new = (
            _FILE_HEAD.pack(MAGIC, FORMAT_VERSION, len(payload), _crc(payload))
            + data[_FILE_HEAD.size :]
        )
        note = f"the header was intact ({what} damaged): rewritten"
    else:
        if rebuild_header is None:
            raise LogCorruptError(
                f"{error}; the header cannot be recovered from the log alone (give the dataset folder)"
            )
        records = find_intact_records(data, _FILE_HEAD.size)
        if not records and not data.startswith(MAGIC):
            raise LogCorruptError(
                f"{error}; no curalog header and no intact record: not a curalog log, "
                "nothing to recover (the file is left as it is)"
            )
        header = {"format": FORMAT_VERSION, "checksum": CHECKSUM, **rebuild_header()}
        header["recovered"] = {"time": time.time_ns(), "why": error[:200]}
        new, n = _rechain(_pack(header), records)
        note = (
            f"the header was damaged ({error.split(': ', 1)[-1]}): rebuilt from the dataset, "
            f"{n} intact events re-chained onto it (the head hash changes)"
        )
    base = p.with_name(f"{p.name}.salvage-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-header")
    side_bytes = _salvage_bytes(p, error, 0, data, [])
    fd, side = new_side_file(base)
    with os.fdopen(fd, "wb") as f:
        f.write(side_bytes)
        f.flush()
        os.fsync(f.fileno())
    note += f"; the original file is in {side}"
    if proven is not None:
        with open(p, "r+b") as f:  # in place: same file, same lock
            f.write(new[: _FILE_HEAD.size])
            f.flush()
            os.fsync(f.fileno())
    else:
        fd, tmp = private_tempfile(p)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(new)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(p.parent)
    return new, note


__all__ = [
    "Inspection",
    "IntactRecord",
    "RepairResult",
    "find_intact_records",
    "inspect_log",
    "read_salvage",
    "repair_log",
]
