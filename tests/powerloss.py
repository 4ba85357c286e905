"""Power-loss simulation: record a writer's write stream, replay it up to a random point.

A SIGKILL leaves the page cache intact: everything ``write()`` returned for is on disk. A
power cut keeps only what was made durable: for each file, the writes up to its last
``fsync`` before the cut; what came after may be lost, partly kept, or (on filesystems
that order metadata before data) present as zeros. :class:`WriteRecorder` wraps
``os.write`` / ``os.pwrite`` / ``os.ftruncate`` / ``os.fsync`` while a writer works and
records, for the log and its lock file, every operation with its file offset, plus an
``ack`` marker each time an action returned (with the state it acknowledged).
:func:`materialize` rebuilds the files as a power cut after operation *k* could leave
them, in one of four models; :func:`power_loss_campaign` checks each rebuilt log:

* it reads without corruption and without a false "records missing" alarm;
* every event acknowledged before the cut is there, with the same hash;
* it opens for writing (a torn tail is cut and kept), and the replayed state at the last
  acknowledged event is the one the writer acknowledged; at most one event more is durable.

This models a disk that honours ``fsync`` (the promise curalog relies on); a disk whose
cache lies about it, or NFS, is out of scope (RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import faultlib

MODELS = ("drop", "prefix", "partial", "zeros")
SECTOR = 512


class WriteRecorder:
    """Record the write stream to ``paths`` while active (a context manager)."""

    def __init__(self, paths: list[Path]):
        self.paths = {str(Path(p).resolve()) for p in paths}
        self.ops: list[tuple[Any, ...]] = []
        self.initial = {p: Path(p).read_bytes() if Path(p).exists() else b"" for p in self.paths}
        self._saved: dict[str, Any] = {}

    def _path(self, fd: int) -> str | None:
        try:
            p = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        return p if p in self.paths else None

    def __enter__(self) -> WriteRecorder:
        real = {n: getattr(os, n) for n in ("write", "pwrite", "ftruncate", "fsync", "fdatasync")}
        self._saved = real
        fstat = os.fstat

        def write(fd, data):
            path = self._path(fd)
            if path is None:
                return real["write"](fd, data)
            offset = fstat(fd).st_size  # the log and lock are appended to / rewritten by pwrite
            n = real["write"](fd, data)
            self.ops.append(("write", path, offset, bytes(memoryview(data)[:n])))
            return n

        def pwrite(fd, data, offset):
            path = self._path(fd)
            n = real["pwrite"](fd, data, offset)
            if path is not None:
                self.ops.append(("write", path, offset, bytes(memoryview(data)[:n])))
            return n

        def ftruncate(fd, length):
            path = self._path(fd)
            real["ftruncate"](fd, length)
            if path is not None:
                self.ops.append(("truncate", path, length))

        def fsync(fd):
            path = self._path(fd)
            real["fsync"](fd)
            if path is not None:
                self.ops.append(("fsync", path))

        os.write, os.pwrite, os.ftruncate = write, pwrite, ftruncate
        os.fsync = os.fdatasync = fsync
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(os, name, fn)

    def ack(self, seq: int, head: str, digest: str) -> None:
        self.ops.append(("ack", seq, head, digest))


def _apply(buf: bytearray, op: tuple[Any, ...], keep: int | None = None, zeros: bool = False):
    if op[0] == "truncate":
        del buf[op[2] :]
        return
    _, _, offset, data = op
    if keep is not None:
        data = data[:keep]
    if zeros:
        data = b"\0" * len(data)
    if offset > len(buf):
        buf.extend(b"\0" * (offset - len(buf)))
    buf[offset : offset + len(data)] = data


def materialize(
    rec: WriteRecorder, k: int, model: str, rng: np.random.Generator
) -> dict[str, bytes]:
    """The files after a power cut following operation ``k`` (exclusive), under ``model``:
    ``drop`` (everything after the last fsync lost), ``prefix`` (a random number of the
    later writes kept, in order), ``partial`` (the same, the last kept write cut at a
    sector boundary) or ``zeros`` (later writes present as zero bytes: the size was
    journaled, the data not)."""
    files = {p: bytearray(b) for p, b in rec.initial.items()}
    ops = rec.ops[:k]
    for path in files:
        mine = [i for i, op in enumerate(ops) if op[0] != "ack" and op[1] == path]
        synced = [i for i in mine if ops[i][0] == "fsync"]
        last = synced[-1] if synced else -1
        for i in mine:
            if i <= last and ops[i][0] != "fsync":
                _apply(files[path], ops[i])
        later = [i for i in mine if i > last and ops[i][0] != "fsync"]
        if not later or model == "drop":
            continue
        if model == "zeros":
            for i in later:
                _apply(files[path], ops[i], zeros=ops[i][0] == "write")
            continue
        m = int(rng.integers(0, len(later) + 1))
        for j, i in enumerate(later[:m]):
            cut = None
            if model == "partial" and j == m - 1 and ops[i][0] == "write":
                n = len(ops[i][3])
                cut = int(rng.integers(0, n // SECTOR + 1)) * SECTOR
            _apply(files[path], ops[i], keep=cut)
    return {p: bytes(b) for p, b in files.items()}


@dataclass
class PowerLossStats:
    cuts: int = 0
    ops_recorded: int = 0
    fsyncs: int = 0
    actions_acked: int = 0  # acknowledged actions in the recorded session
    acked_at_cut: int = 0  # acknowledged events the cut points had to keep (summed)
    lost: int = 0
    false_alarms: int = 0  # read as corrupt, or as missing records, after a power cut
    reopen_failures: int = 0
    wrong_states: int = 0
    torn_cut: int = 0
    durable_unacked: int = 0
    tracebacks: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_session(
    work: Path, n_actions: int, seed: int, *, sync: bool = True
) -> tuple[Path, Path, WriteRecorder]:
    """A dataset, a log with a few events, then ``n_actions`` recorded random actions
    (``sync=False``: without the fsync per action, to show the harness finds losses)."""
    import curalog
    from curalog.errors import InvalidActionError
    from curalog.store.log import state_path

    folder = faultlib.make_dataset(work / "ds", 20_000, 30, seed)
    log = work / "rec" / "main.log"
    log.parent.mkdir(parents=True)
    with curalog.open(folder, log, author="power") as cur:
        cur.merge([1, 2])
    rng = np.random.default_rng(seed)
    rec = WriteRecorder([log, state_path(log)])
    with rec, curalog.open(folder, log, author="power", sync=sync) as cur:
        done = 0
        while done < n_actions:
            kind = rng.choice(["merge", "split", "label", "undo", "redo", "blob"])
            ids = cur.cluster_ids
            try:
                if kind == "merge":
                    cur.merge(rng.choice(ids, 2, replace=False).tolist())
                elif kind == "split":
                    sel = rng.choice(20_000, int(rng.integers(10, 6000)), replace=False)
                    cur.split(sel)
                elif kind == "label":
                    cur.label([int(rng.choice(ids))], group=str(rng.choice(["good", "mua"])))
                elif kind == "undo":
                    if cur.undo() is None:
                        continue
                elif kind == "redo":
                    if cur.redo() is None:
                        continue
                else:
                    cur.note("blob", "x", {"b": rng.bytes(int(rng.integers(1 << 12, 1 << 19)))})
            except InvalidActionError:
                continue
            rec.ack(cur.seq, cur.head_hash.hex(), faultlib.state_digest(cur))
            done += 1
    return folder, log, rec


def power_loss_campaign(
    work: str | os.PathLike[str],
    cuts: int,
    seed: int = 0,
    *,
    n_actions: int = 60,
    sync: bool = True,
) -> PowerLossStats:
    """Record one writer session, then ``cuts`` power cuts at random points (random models)."""
    import curalog
    from curalog.errors import CuralogError
    from curalog.store.log import read_log

    work = Path(work)
    folder, log, rec = record_session(work, n_actions, seed, sync=sync)
    st = PowerLossStats(ops_recorded=len(rec.ops))
    st.fsyncs = sum(1 for op in rec.ops if op[0] == "fsync")
    st.actions_acked = sum(1 for op in rec.ops if op[0] == "ack")
    with curalog.open(folder, log, readonly=True, upto=1) as cur:
        base = (1, cur.head_hash.hex(), faultlib.state_digest(cur))
    rng = np.random.default_rng(seed + 1)
    trial_dir = work / "trial"
    for t in range(cuts):
        k = int(rng.integers(0, len(rec.ops) + 1))
        model = MODELS[t % len(MODELS)]
        st.cuts += 1
        st.by_model[model] = st.by_model.get(model, 0) + 1
        acks = [op for op in rec.ops[:k] if op[0] == "ack"]
        expect = (acks[-1][1], acks[-1][2], acks[-1][3]) if acks else base
        known = {op[1]: op[2] for op in acks}
        shutil.rmtree(trial_dir, ignore_errors=True)
        trial_dir.mkdir()
        files = materialize(rec, k, model, rng)
        target = trial_dir / "main.log"
        for path, data in files.items():
            (trial_dir / Path(path).name).write_bytes(data)
        st.acked_at_cut += len(known) + 1
        try:
            scan = read_log(target)
            if scan.corruption:
                st.false_alarms += 1
                st.problems.append(f"cut {t} ({model}, op {k}): {scan.corruption}")
                continue
            with curalog.open(folder, target, author="after-power-cut") as cur:
                st.torn_cut += int(any("incomplete last record" in w for w in cur.warnings))
                for seq, head in known.items():
                    if seq > len(cur.events) or cur.events[seq - 1].hash.hex() != head:
                        st.lost += 1
                        st.problems.append(f"cut {t} ({model}): acknowledged event {seq} lost")
                extra = cur.seq - expect[0]
                if extra < 0 or extra > 1:
                    st.wrong_states += 1
                    st.problems.append(f"cut {t}: log at {cur.seq}, last ACK {expect[0]}")
                    continue
                st.durable_unacked += int(extra == 1)
                if extra == 0:
                    got = faultlib.state_digest(cur)
                else:
                    with curalog.open(folder, target, readonly=True, upto=expect[0]) as old:
                        got = faultlib.state_digest(old)
                if got != expect[2]:
                    st.wrong_states += 1
                    st.problems.append(f"cut {t} ({model}): state at {expect[0]} differs")
        except CuralogError as exc:
            st.reopen_failures += 1
            st.problems.append(f"cut {t} ({model}, op {k}): {exc}")
        except Exception as exc:  # a traceback: the defect this campaign looks for
            st.tracebacks += 1
            st.problems.append(f"cut {t} ({model}): {type(exc).__name__}: {exc}")
    with contextlib.suppress(OSError):
        shutil.rmtree(trial_dir)
    return st
