"""Shared helpers for curalog's fault-injection and fuzz tests and ``bench/reliability.py``.

What lives here:

* small synthetic Kilosort/phy folders (:func:`make_dataset`) and a writable copy of the
  shared phy test data (:func:`copy_phy_template`);
* hand-built logs with valid checksums and hash chain but arbitrary (hostile) content
  (:func:`craft_log`), so that fuzzing reaches the decoder and replay, not only the CRCs;
* :func:`outcome`: the contract every fuzz target checks -- a clean result or a one-line
  :class:`~curalog.errors.CuralogError`, never any other exception;
* the SIGKILL campaigns (:func:`kill_writer_campaign`, :func:`kill_export_campaign`): a
  *zygote* process imports curalog once and forks one victim per run, so a run costs
  milliseconds instead of an interpreter start. The victim's stdout is a pipe; it writes
  ``ACK seq hash digest`` after each append returns, and the zygote kills it with SIGKILL
  at a random moment, then hands every line it printed back to the test;
* a small tmpfs for disk-full tests (:func:`small_tmpfs`, root only; skipped otherwise);
* hypothesis strategies and fuzz targets shared by the tests and the long mode.

Run as a script (``python tests/faultlib.py zygote``) it is the zygote; nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from curalog.io.phy import export_phy

ROOT = Path(__file__).resolve().parents[1]
PHY_TEMPLATE = Path(
    os.environ.get("CURALOG_PHY_TEMPLATE", ROOT.parent / "shared" / "data" / "phy-template")
)

PARAMS = (
    "dat_path = 'recording.dat'\n"
    "n_channels_dat = 4\n"
    "dtype = 'int16'\n"
    "offset = 0\n"
    "sample_rate = 30000.0\n"
    "hp_filtered = False\n"
)


# ---------------------------------------------------------------------- datasets
def make_dataset(
    folder: str | os.PathLike[str],
    n_spikes: int = 2000,
    n_templates: int = 20,
    seed: int = 0,
    *,
    amplitudes: bool = True,
    groups: bool = True,
) -> Path:
    """A minimal Kilosort-style folder: params.py, spike_times (int64, sorted), spike_templates
    (int32, every template used), optionally amplitudes and a cluster_group.tsv."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    (d / "params.py").write_text(PARAMS)
    times = np.sort(rng.integers(0, 30000 * 600, n_spikes)).astype(np.int64)
    templates = rng.integers(0, n_templates, n_spikes).astype(np.int32)
    m = min(n_spikes, n_templates)
    templates[rng.permutation(n_spikes)[:m]] = np.arange(m, dtype=np.int32)
    np.save(d / "spike_times.npy", times)
    np.save(d / "spike_templates.npy", templates)
    if amplitudes:
        np.save(d / "amplitudes.npy", rng.gamma(4.0, 5.0, n_spikes).astype(np.float32))
    if groups:
        rows = "".join(
            f"{c}\t{g}\r\n" for c, g in ((0, "good"), (1, "mua"), (2, "noise")) if c < n_templates
        )
        (d / "cluster_group.tsv").write_text("cluster_id\tgroup\r\n" + rows)
    return d


def copy_phy_template(dst: str | os.PathLike[str]) -> Path:
    """A writable copy of the shared (read-only) phy test dataset."""
    if not PHY_TEMPLATE.is_dir():
        raise FileNotFoundError(PHY_TEMPLATE)
    out = Path(dst)
    shutil.copytree(PHY_TEMPLATE, out)
    for p in [out, *out.iterdir()]:
        p.chmod(p.stat().st_mode | 0o200)
    return out


def snapshot_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), to prove nothing was written."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ---------------------------------------------------------------------- crafted logs
def _log_mod():
    from curalog.store import log

    return log


def header_for(folder: str | os.PathLike[str], **overrides: Any) -> dict[str, Any]:
    """The header map :func:`curalog.store.log.create_log` would write for this dataset."""
    from curalog.curation import make_header
    from curalog.dataset import load_dataset

    log = _log_mod()
    head = {
        "format": log.FORMAT_VERSION,
        "checksum": log.CHECKSUM,
        **make_header(load_dataset(folder), "fuzz"),
    }
    head.update(overrides)
    return head


def file_head(header_payload: bytes, fmt: int = 1) -> bytes:
    log = _log_mod()
    return (
        struct.pack("<8sHII", log.MAGIC, fmt, len(header_payload), log._crc(header_payload))
        + header_payload
    )


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def craft_log(
    path: str | os.PathLike[str] | None,
    header: dict[str, Any] | bytes,
    records: list[Any],
    *,
    fmt: int = 1,
) -> bytes:
    """A log with valid checksums and hash chain around arbitrary content.

    ``header`` is a map (packed here) or raw payload bytes. Each record is a ``(type, body)``
    pair (a well-formed envelope with the right seq and previous hash), a dict (an envelope:
    missing ``seq``/``prev`` are filled in, present ones kept as given) or raw payload bytes.
    """
    log = _log_mod()
    hp = header if isinstance(header, bytes) else pack(header)
    data = bytearray(file_head(hp, fmt))
    prev = hashlib.sha256(hp).digest()
    for i, rec in enumerate(records):
        if isinstance(rec, bytes):
            payload = rec
        else:
            if isinstance(rec, tuple):
                type_, body = rec
                env: dict[str, Any] = {
                    "v": 1,
                    "type": type_,
                    "time": 0,
                    "author": "fuzz",
                    "body": body,
                }
            else:
                env = dict(rec)
            env.setdefault("seq", i + 1)
            env.setdefault("prev", prev)
            payload = pack(env)
        data += log.encode_frame(payload)
        prev = hashlib.sha256(payload).digest()
    out = bytes(data)
    if path is not None:
        Path(path).write_bytes(out)
    return out


def packed(
    values: Any, dtype: str = "<u4", enc: str = "delta-zlib", n: int | None = None
) -> dict[str, Any]:
    """A packed array as stored in split/assign bodies (``n`` may lie on purpose)."""
    import zlib

    arr = np.asarray(values)
    if enc == "delta-zlib" and arr.size:
        arr = np.diff(arr.astype(np.int64), prepend=np.int64(0))
    raw = arr.astype(dtype).tobytes()
    return {
        "enc": enc,
        "dtype": dtype,
        "n": int(arr.size if n is None else n),
        "data": zlib.compress(raw, 1),
    }


# ---------------------------------------------------------------------- outcomes
class Escaped(AssertionError):
    """An exception other than a CuralogError reached the caller (a defect)."""


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Run ``fn``; return ``"ok"`` or the CuralogError class name; anything else is a defect.

    A CuralogError's message must be one non-empty line (the CLI prints it as is).
    """
    from curalog.errors import CuralogError

    try:
        fn(*args, **kwargs)
    except CuralogError as exc:
        msg = str(exc)
        if not msg or "\n" in msg or "\r" in msg:
            raise Escaped(f"{type(exc).__name__} message is not one line: {msg!r}") from exc
        return type(exc).__name__
    except Exception as exc:  # the point: any other exception is a defect
        raise Escaped(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    return "ok"


def state_digest(cur: Any) -> str:
    """A digest of everything replay must reproduce: assignment, id counter, labels."""
    h = hashlib.blake2b(digest_size=10)
    h.update(np.ascontiguousarray(cur.state.spike_clusters, dtype=np.int32).tobytes())
    h.update(str(int(cur.state.counter)).encode())
    labels = sorted(
        (name, sorted(values.items())) for name, values in cur.labels.fields.items() if values
    )
    h.update(repr(labels).encode())
    return h.hexdigest()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m curalog ARGS`` in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "curalog", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def run_cli_many(
    calls: list[tuple[str, ...]], env: dict[str, str] | None = None, timeout: float = 180
) -> list[subprocess.CompletedProcess[str]]:
    """Several ``python -m curalog`` commands at once (interpreter start-up dominates)."""
    full_env = {**os.environ, **(env or {})}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "curalog", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        for args in calls
    ]
    out = []
    for args, p in zip(calls, procs, strict=True):
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(
            subprocess.CompletedProcess(
                [sys.executable, "-m", "curalog", *args], p.returncode, stdout, stderr
            )
        )
    return out


def assert_one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit status 2, exactly one line on stderr, no traceback; returns that line."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith("curalog: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ---------------------------------------------------------------------- disk full
class TmpfsUnavailable(RuntimeError):
    pass


@contextlib.contextmanager
def small_tmpfs(path: str | os.PathLike[str], size: str = "256k") -> Iterator[Path]:
    """Mount a tiny tmpfs on ``path`` (root only); raises TmpfsUnavailable otherwise."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        raise TmpfsUnavailable("needs root on Linux")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(p)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise TmpfsUnavailable(res.stderr.strip() or "mount failed")
    try:
        yield p
    finally:
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


def fill_disk(path: Path) -> int:
    """Append zeros to ``path`` until the filesystem is full; returns bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    total = 0
    try:
        for chunk in (1 << 16, 4096, 512, 64, 8, 1):
            block = b"\0" * chunk
            while True:
                try:
                    total += os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return total


# ---------------------------------------------------------------------- victims (forked)
def _emit(fd: int, line: str) -> None:
    data = (line + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _replay_opts(req: dict[str, Any]) -> dict[str, Any]:
    """``verify=True`` (sequential replay of every event) when the request asks for it."""
    return {"verify": True} if req.get("verify") else {}


def _writer_loop(req: dict[str, Any], out_fd: int) -> None:
    """Random actions forever; ``ACK seq head digest kind`` after each append returns."""
    import curalog
    from curalog.errors import InvalidActionError

    rng = np.random.default_rng(req["seed"])
    cur = curalog.open(req["folder"], req["log"], author=f"kill-{req['seed']}", **_replay_opts(req))
    _emit(out_fd, f"READY {cur.seq} {cur.head_hash.hex()} {state_digest(cur)}")
    n = cur.dataset.n_spikes
    frac = float(req.get("max_split_frac", 0.5))
    kinds = ["merge", "split", "big-split", "label", "field", "undo", "redo", "blob"]
    weights = np.array([0.27, 0.21, 0.08, 0.12, 0.06, 0.15, 0.07, 0.04])
    while True:
        kind = kinds[rng.choice(len(kinds), p=weights)]
        try:
            ids = cur.cluster_ids
            if kind == "merge":
                if ids.size < 3:
                    kind = "big-split"
                else:
                    cur.merge(rng.choice(ids, size=int(rng.integers(2, 4)), replace=False).tolist())
            if kind == "split":
                c = int(rng.choice(ids))
                members = cur.spikes(c)
                k = int(rng.integers(1, max(2, members.size)))
                sel = rng.choice(members, size=k, replace=False)
                labels = rng.integers(0, 3, size=k) if rng.random() < 0.3 else None
                cur.split(sel, labels)
            elif kind == "big-split":
                k = int(n * rng.uniform(0.05, frac))
                sel = rng.choice(n, size=max(1, k), replace=False)
                labels = rng.integers(0, 4, size=sel.size) if rng.random() < 0.3 else None
                cur.split(sel, labels)
            elif kind == "label":
                cur.label(
                    [int(rng.choice(ids))],
                    group=str(rng.choice(["good", "mua", "noise", "unsorted"])),
                )
            elif kind == "field":
                value: Any = (
                    int(rng.integers(0, 5)) if rng.random() < 0.5 else f"q{int(rng.integers(0, 9))}"
                )
                cur.label(
                    rng.choice(ids, size=min(3, ids.size), replace=False).tolist(),
                    field="quality",
                    value=value,
                )
            elif kind == "undo":
                if cur.undo() is None:
                    continue
            elif kind == "redo" and cur.redo() is None:
                continue
            elif kind == "blob":  # a multi-megabyte record: a kill can land inside its write()
                size = int(rng.integers(1 << 20, int(req.get("max_blob", 8 << 20))))
                cur.note("blob", "provenance payload", {"bytes": rng.bytes(size)})
        except InvalidActionError:
            continue
        _emit(out_fd, f"ACK {cur.seq} {cur.head_hash.hex()} {state_digest(cur)} {kind}")


def _exporter_loop(req: dict[str, Any], out_fd: int) -> None:
    """Export the states at ``seqs`` in turn, forever; ``ACK seq`` after each export."""
    import curalog

    _emit(out_fd, "READY")
    seqs = req["seqs"]
    i = int(req.get("start", 0))
    while True:
        s = seqs[i % len(seqs)]
        with curalog.open(req["folder"], req["log"], readonly=True, upto=s) as cur:
            export_phy(cur, req["out"])
        _emit(out_fd, f"ACK {s}")
        i += 1


_VICTIMS = {"writer": _writer_loop, "export": _exporter_loop}


def _zygote_run(req: dict[str, Any]) -> dict[str, Any]:
    """Fork a victim, kill it with SIGKILL after ``delay`` s (from fork or from READY)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the victim
        code = 0
        try:
            os.close(r)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(w, 1)
            _VICTIMS[req["kind"]](req, 1)
        except BaseException as exc:
            code = 3
            with contextlib.suppress(BaseException):
                _emit(1, "ERROR " + f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500])
        os._exit(code)
    os.close(w)
    t0 = time.monotonic()
    deadline = t0 + req["delay"] if req.get("phase") == "start" else None
    hard_stop = t0 + float(req.get("max_wait", 60.0))
    buf = b""
    ready_at = None
    eof = False
    while not eof:
        now = time.monotonic()
        limit = min(hard_stop, deadline) if deadline is not None else hard_stop
        if now >= limit:
            break
        readable, _, _ = select.select([r], [], [], limit - now)
        if not readable:
            continue
        chunk = os.read(r, 1 << 16)
        if not chunk:
            eof = True
            break
        buf += chunk
        if deadline is None and b"READY" in buf:
            ready_at = time.monotonic()
            deadline = ready_at + req["delay"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while chunk := os.read(r, 1 << 16):
        buf += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return {
        "lines": buf.decode(errors="replace").splitlines(),
        "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "ready_after": None if ready_at is None else ready_at - t0,
        "alive_for": killed_at - t0,
    }


def _zygote_main() -> None:
    import curalog  # noqa: F401  (imported once, inherited by every victim)
    from curalog.clustering import ClusterState

    # Warm the numba kernels so victims do not compile them.
    ClusterState(np.array([0, 1, 1, 2], dtype=np.int32))
    with tempfile.TemporaryDirectory() as tmp:
        import curalog as cl

        d = make_dataset(Path(tmp) / "warm", 200, 5)
        with cl.open(d) as cur:
            cur.merge([0, 1])
            cur.split(np.arange(10))
    sys.stdout.write("ZYGOTE READY\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        resp = _zygote_run(json.loads(line))
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


class Zygote:
    """The parent's handle on a zygote subprocess (a context manager)."""

    def __init__(self, env: dict[str, str] | None = None):
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env={**os.environ, **(env or {})},
            text=True,
        )
        first = self._readline(120)
        if first.strip() != "ZYGOTE READY":
            raise RuntimeError(f"zygote failed to start: {first!r} {self.stderr()}")

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")[-4000:]

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not readable:
            raise TimeoutError(f"zygote did not answer in {timeout} s: {self.stderr()}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"zygote died: {self.stderr()}")
        return line

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._readline(float(req.get("max_wait", 60.0)) + 60))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- kill campaigns
@dataclass
class KillStats:
    runs: int = 0
    acked: int = 0  # acknowledged events (ACK lines) over all runs
    lost: int = 0  # acknowledged events missing or different after reopening
    reopen_failures: int = 0
    wrong_states: int = 0  # replayed state differs from what the victim acknowledged
    torn_found: int = 0  # the log ended in an incomplete record after the kill
    torn_cut: int = 0  # ... and the verifier's writable reopen cut it (else the next victim did)
    durable_unacked: int = 0  # an event on disk whose ACK was never printed (allowed: at most 1)
    killed_before_ready: int = 0
    victim_errors: int = 0
    events_verified: int = 0
    max_record: int = 0
    logs: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_acks(
    lines: list[str],
) -> tuple[tuple[int, str, str] | None, list[tuple[int, str, str]], list[str]]:
    ready = None
    acks = []
    errors = []
    for ln in lines:
        parts = ln.split()
        if not parts:
            continue
        if parts[0] == "READY" and len(parts) >= 4:
            ready = (int(parts[1]), parts[2], parts[3])
        elif parts[0] == "ACK" and len(parts) >= 4:
            acks.append((int(parts[1]), parts[2], parts[3]))
        elif parts[0] == "ERROR":
            errors.append(ln)
    return ready, acks, errors


def kill_writer_campaign(
    workdir: str | os.PathLike[str],
    runs: int,
    seed: int = 0,
    *,
    n_spikes: int = 60_000,
    n_templates: int = 60,
    max_delay: float = 0.25,
    rotate_every: int = 12,
    zygote: Zygote | None = None,
    progress: Callable[[int, KillStats], None] | None = None,
    verify_replay: bool = False,
) -> KillStats:
    """SIGKILL a writer ``runs`` times and check that no acknowledged event is ever lost.

    Each run forks a victim that reopens the current log (recovering a torn tail left by
    the previous kill) and performs random merges, splits (some of 5-50 % of all spikes),
    labels, undos and redos, printing an ACK after each append returns. After the kill the
    log is reopened -- writable on even runs (cutting a torn tail), read-only on odd runs
    (leaving the recovery to the next victim) -- and checked: every acknowledged event
    present with the same hash, the replayed state at the last ACK equal to the victim's,
    at most one durable event beyond it. ``verify_replay`` replays sequentially
    (``open(verify=True)``) everywhere, to tell replay defects from durability defects.
    """
    import curalog
    from curalog.errors import CuralogError

    rnd = np.random.default_rng(seed)
    work = Path(workdir)
    folder = make_dataset(work / "ds", n_spikes, n_templates, seed)
    stats = KillStats()
    own = zygote is None
    zyg = zygote or Zygote()
    known: dict[int, str] = {}
    log = work / "log-0.log"
    try:
        for i in range(runs):
            if i % rotate_every == 0:
                log = work / f"log-{i}.log"
                known = {}
                stats.logs += 1
            phase = "start" if rnd.random() < 0.15 else "ready"
            delay = float(rnd.uniform(0, 0.12 if phase == "start" else max_delay))
            req = {
                "kind": "writer",
                "folder": str(folder),
                "log": str(log),
                "seed": int(seed * 1_000_003 + i),
                "phase": phase,
                "delay": delay,
                "max_split_frac": 0.5,
                "verify": verify_replay,
            }
            opts = _replay_opts(req)
            resp = zyg.run(req)
            stats.runs += 1
            ready, acks, errors = _parse_acks(resp["lines"])
            if errors:
                stats.victim_errors += len(errors)
                stats.problems.append(f"run {i}: victim error {errors[0]}")
                if ready is None:
                    stats.reopen_failures += 1
            if ready is None:
                stats.killed_before_ready += 1
            stats.acked += len(acks)
            for seq, h, _ in acks:
                known[seq] = h
            expect = acks[-1] if acks else ready
            writable = i % 2 == 0
            with contextlib.suppress(CuralogError):
                if log.exists() and curalog.store.log.read_log(log).torn:
                    stats.torn_found += 1
            try:
                cur = curalog.open(folder, log, author="verifier", readonly=not writable, **opts)
            except CuralogError as exc:
                if not log.exists() and not known:
                    continue  # killed before the log was created: nothing acknowledged
                stats.reopen_failures += 1
                stats.problems.append(f"run {i}: reopen failed: {exc}")
                rotate = i + 1
                log = work / f"log-broken-{rotate}.log"
                known = {}
                continue
            try:
                if any("incomplete last record" in w for w in cur.warnings):
                    stats.torn_cut += 1
                    side = sorted(log.parent.glob(log.name + ".torn-*"))
                    if not side:
                        stats.problems.append(f"run {i}: torn tail cut but no side file kept")
                for seq, h in known.items():
                    if seq > len(cur.events) or cur.events[seq - 1].hash.hex() != h:
                        stats.lost += 1
                        stats.problems.append(f"run {i}: acknowledged event {seq} lost")
                stats.events_verified += len(known)
                if expect is not None:
                    seq, h, digest = expect
                    extra = cur.seq - seq
                    if extra < 0 or extra > 1:
                        stats.wrong_states += 1
                        stats.problems.append(f"run {i}: log at seq {cur.seq}, last ACK {seq}")
                    elif extra == 1:
                        stats.durable_unacked += 1
                    if extra == 0:
                        got = state_digest(cur)
                    else:
                        with curalog.open(folder, log, readonly=True, upto=seq, **opts) as old:
                            got = state_digest(old)
                    if got != digest:
                        stats.wrong_states += 1
                        stats.problems.append(
                            f"run {i}: state at seq {seq} differs from the acknowledged one"
                        )
            finally:
                cur.close()
            if log.exists():
                scan = curalog.store.log.read_log(log)
                ends = [*scan.offsets[1:], scan.good_end]
                if scan.offsets:
                    stats.max_record = max(
                        stats.max_record,
                        max(e - o for o, e in zip(scan.offsets, ends, strict=True)),
                    )
            if progress:
                progress(i, stats)
    finally:
        if own:
            zyg.close()
    return stats


@dataclass
class ExportKillStats:
    runs: int = 0
    exports_acked: int = 0
    files_checked: int = 0
    half_written: int = 0
    wrong_content: int = 0
    tmp_leftovers: int = 0
    victim_errors: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_export_fixture(work: Path, n_spikes: int, seed: int) -> tuple[Path, Path, list[int]]:
    """A dataset and a log whose states differ at each seq of the returned list."""
    import curalog

    folder = make_dataset(work / "ds", n_spikes, 40, seed, groups=False)
    log = work / "export.log"
    with curalog.open(folder, log) as cur:
        rng = np.random.default_rng(seed)
        cur.merge([1, 2])
        cur.label([3, 4], group="good")
        cur.split(rng.choice(n_spikes, n_spikes // 3, replace=False))
        cur.label(
            [int(cur.cluster_ids[-1])], group="mua"
        )  # group only: see test_export_own_label_files_*
        cur.merge(cur.cluster_ids[:4].tolist())
        cur.undo()
        cur.label(cur.cluster_ids[4:7].tolist(), group="noise")
    return folder, log, [1, 2, 3, 4, 5, 6, 7]


def expected_exports(
    folder: Path, log: Path, seqs: list[int], scratch: Path
) -> dict[str, set[str]]:
    """For each exported file name, the sha256 of every complete version it may hold."""
    import curalog

    out: dict[str, set[str]] = {}
    for s in seqs:
        d = scratch / f"s{s}"
        with curalog.open(folder, log, readonly=True, upto=s) as cur:
            res = export_phy(cur, d)
        for p in res.files:
            out.setdefault(p.name, set()).add(_sha(p.read_bytes()))
    return out


def check_export_dir(
    out: Path, expected: dict[str, set[str]], n_spikes: int
) -> tuple[int, list[str]]:
    """Every exported file is one complete version (np.load / TSV parse / hash)."""
    problems = []
    checked = 0
    for name, versions in expected.items():
        p = out / name
        if not p.exists():
            continue
        data = p.read_bytes()
        checked += 1
        if name.endswith(".npy"):
            try:
                arr = np.load(p, allow_pickle=False)
                if arr.shape != (n_spikes,) or arr.dtype != np.int32:
                    problems.append(f"{name}: shape {arr.shape} dtype {arr.dtype}")
            except Exception as exc:  # half-written .npy
                problems.append(f"{name}: np.load failed: {exc}")
        else:
            text = data.decode("utf-8", errors="replace")
            rows = text.split("\r\n")
            if not text.endswith("\r\n") or len({len(r.split("\t")) for r in rows[:-1]}) != 1:
                problems.append(f"{name}: not a complete TSV")
        if _sha(data) not in versions:
            problems.append(f"{name}: content matches no complete export")
    return checked, problems


def kill_export_campaign(
    workdir: str | os.PathLike[str],
    runs: int,
    seed: int = 0,
    *,
    n_spikes: int = 400_000,
    max_delay: float = 0.4,
    zygote: Zygote | None = None,
) -> ExportKillStats:
    """SIGKILL an exporter at random moments; every exported file must be a complete version."""
    work = Path(workdir)
    folder, log, seqs = build_export_fixture(work, n_spikes, seed)
    expected = expected_exports(folder, log, seqs, work / "expected")
    rnd = np.random.default_rng(seed)
    stats = ExportKillStats()
    outs = [work / "out", folder]  # a separate folder and, like phy, the dataset folder
    import curalog

    for out in outs:  # the previous export, complete
        with curalog.open(folder, log, readonly=True, upto=seqs[0]) as cur:
            export_phy(cur, out)
    own = zygote is None
    zyg = zygote or Zygote()
    try:
        for i in range(runs):
            out = outs[i % 2]
            req = {
                "kind": "export",
                "folder": str(folder),
                "log": str(log),
                "out": str(out),
                "seqs": seqs,
                "start": int(rnd.integers(0, len(seqs))),
                "phase": "ready",
                "delay": float(rnd.uniform(0, max_delay)),
            }
            resp = zyg.run(req)
            stats.runs += 1
            stats.exports_acked += sum(1 for ln in resp["lines"] if ln.startswith("ACK"))
            errs = [ln for ln in resp["lines"] if ln.startswith("ERROR")]
            if errs:
                stats.victim_errors += 1
                stats.problems.append(f"run {i}: {errs[0]}")
            checked, problems = check_export_dir(out, expected, n_spikes)
            stats.files_checked += checked
            for pr in problems:
                if "matches no complete" in pr:
                    stats.wrong_content += 1
                else:
                    stats.half_written += 1
                stats.problems.append(f"run {i}: {pr}")
            state = log.parent
            for d in {out, state}:
                leftovers = [p for p in d.iterdir() if p.name.endswith(".tmp")]
                stats.tmp_leftovers += len(leftovers)
                for p in leftovers:
                    p.unlink()
            rec = state / "exports.json"
            if rec.exists():
                try:
                    json.loads(rec.read_text())
                except ValueError:
                    stats.half_written += 1
                    stats.problems.append(f"run {i}: exports.json half-written")
    finally:
        if own:
            zyg.close()
    return stats


@dataclass
class ReaderStats:
    writer_acks: int = 0
    reads: int = 0  # scans of the log while it was being appended to
    replays: int = 0  # read-only opens (full replay) during the writes
    torn_seen: int = 0  # reads that saw a record being written (a valid prefix still)
    bad: int = 0  # corruption reported, or a prefix that is not a prefix of the final log
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def readers_during_writes(
    workdir: str | os.PathLike[str],
    duration: float,
    seed: int = 0,
    *,
    readers: int = 3,
    n_spikes: int = 60_000,
    zygote: Zygote | None = None,
) -> ReaderStats:
    """A victim writes for ``duration`` s (then SIGKILL) while reader threads scan and replay
    the log without any lock: every read must be a valid prefix of the final log, and every
    replayed state must equal the one the writer acknowledged at that seq."""
    import threading

    import curalog
    from curalog.errors import CuralogError

    work = Path(workdir)
    folder = make_dataset(work / "ds", n_spikes, 50, seed)
    log = work / "shared.log"
    with curalog.open(folder, log) as cur:
        cur.note("test", "created before the readers start")  # an empty log is not kept
    stats = ReaderStats()
    seen: list[tuple[int, str]] = []
    replayed: list[tuple[int, str]] = []
    lock = threading.Lock()
    done = threading.Event()

    def reader(k: int) -> None:
        n = 0
        while not done.is_set():
            n += 1
            try:
                scan = curalog.store.log.read_log(log)
                with lock:
                    stats.reads += 1
                    stats.torn_seen += int(scan.torn)
                    if scan.corruption:
                        stats.bad += 1
                        stats.problems.append(f"reader {k}: {scan.corruption}")
                    seen.append((len(scan.events), scan.head_hash.hex()))
                if n % 4 == 0:
                    with curalog.open(folder, log, readonly=True) as cur:
                        got = (cur.seq, state_digest(cur))
                    with lock:
                        stats.replays += 1
                        replayed.append(got)
            except CuralogError as exc:
                with lock:
                    stats.bad += 1
                    stats.problems.append(f"reader {k}: {exc}")

    threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(readers)]
    own = zygote is None
    zyg = zygote or Zygote()
    try:
        for t in threads:
            t.start()
        resp = zyg.run(
            {
                "kind": "writer",
                "folder": str(folder),
                "log": str(log),
                "seed": seed,
                "phase": "ready",
                "delay": duration,
                "max_split_frac": 0.3,
                "max_blob": 4 << 20,
            }
        )
    finally:
        done.set()
        for t in threads:
            t.join(60)
        if own:
            zyg.close()
    ready, acks, errors = _parse_acks(resp["lines"])
    stats.writer_acks = len(acks)
    if errors:
        stats.bad += 1
        stats.problems.append(f"writer: {errors[0]}")
    final = curalog.store.log.read_log(log)
    hashes = {0: final.header_hash.hex(), **{e.seq: e.hash.hex() for e in final.events}}
    digests = {seq: d for seq, _, d in acks}
    if ready is not None:
        digests.setdefault(ready[0], ready[2])
    for n, head in seen:
        if hashes.get(n) != head:
            stats.bad += 1
            stats.problems.append(
                f"a reader saw {n} events ending in {head[:12]}, not a prefix of the final log"
            )
    for seq, d in replayed:
        if seq in digests and digests[seq] != d:
            stats.bad += 1
            stats.problems.append(
                f"a reader replayed seq {seq} to a state the writer never acknowledged"
            )
    return stats


# ---------------------------------------------------------------------- flips and truncations
def build_small_log(work: Path) -> tuple[Path, Path, bytes]:
    """A small dataset and a log holding every event type (about 1.5 KB)."""
    import curalog

    folder = make_dataset(work / "small", 500, 8, 3)
    log = work / "small.log"
    with curalog.open(folder, log, author="flip") as cur:
        cur.merge([1, 2])
        cur.label([3, 4], group="good")
        cur.split(np.arange(0, 500, 7), np.arange(0, 500, 7) % 2)
        ids = cur.cluster_ids.tolist()
        cur.label(ids[:1], field="quality", value=2.5)
        cur.undo()
        cur.redo()
        cur.merge(ids[1:3])
        cur.note("proposal", "rejected a merge")
    return folder, log, log.read_bytes()


@dataclass
class FlipStats:
    cases: int = 0
    detected: int = 0  # LogError (header) or corruption reported
    torn: int = 0  # classified as a torn tail (would be cut silently): counted as undetected
    undetected: list[tuple[int, int]] = field(default_factory=list)


def flip_scan(
    data: bytes,
    values: range | tuple[int, ...] = (0x01, 0x80, 0xFF),
    *,
    mode: str = "xor",
    positions: range | list[int] | None = None,
) -> FlipStats:
    """Each position of ``data`` changed by each value (``xor`` mask, or ``set`` to the value):
    is it always detected by the reader?"""
    from curalog.errors import LogError
    from curalog.store.log import scan_bytes

    st = FlipStats()
    buf = bytearray(data)
    for pos in range(len(data)) if positions is None else positions:
        orig = buf[pos]
        for v in values:
            new = orig ^ v if mode == "xor" else v
            if new == orig:
                continue
            buf[pos] = new
            st.cases += 1
            try:
                res = scan_bytes(bytes(buf), "flip")
            except LogError:
                st.detected += 1
            else:
                if res.corruption:
                    st.detected += 1
                elif res.torn:
                    st.torn += 1
                    st.undetected.append((pos, new))
                else:
                    st.undetected.append((pos, new))
        buf[pos] = orig
    return st


def prefix_counts(data: bytes) -> tuple[int, list[int]]:
    """Header end and the end offset of every record of a valid log."""
    from curalog.store.log import scan_bytes

    res = scan_bytes(data, "ref")
    ends = [*res.offsets[1:], res.good_end]
    first = res.offsets[0] if res.offsets else res.good_end
    return first, ends


# ---------------------------------------------------------------------- hypothesis strategies
def msgpack_values(max_leaves: int = 20):
    """Any msgpack-encodable value (str keys in maps, as the log requires)."""
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=20)
        | st.binary(max_size=40)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def finite_msgpack_values(max_leaves: int = 20):
    """Like :func:`msgpack_values` without inf/NaN and with ints in the int64 range."""
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**40), max_value=2**40)
        | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
        | st.text(max_size=20)
        | st.binary(max_size=40)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def hostile_bodies(values, *, wide: bool = True):
    """Event bodies that look right at first sight: real keys, wrong or lying values.

    Not ``wide``: label events are well-typed with valid fields and values (the replay of
    hostile ones is the known defect D3 of RELIABILITY.md)."""
    from hypothesis import strategies as st

    small_ids = st.integers(min_value=-3, max_value=70)
    id_lists = st.lists(small_ids, max_size=6) | values
    arrays = st.builds(
        lambda vals, dtype, enc, lie: packed(
            np.abs(np.asarray(vals, dtype=np.int64)), dtype, enc, None if lie is None else lie
        ),
        st.lists(st.integers(min_value=0, max_value=2500), max_size=40),
        st.sampled_from(["<u4", "<u8", "<i8", "<i4", "f8"]),
        st.sampled_from(["delta-zlib", "zlib", "raw"]),
        st.none() | st.integers(min_value=-5, max_value=2**31),
    )
    maybe = lambda s: s | values  # noqa: E731
    label_ids = id_lists if wide else st.lists(small_ids, max_size=6)
    merge = st.fixed_dictionaries(
        {"clusters": id_lists, "new": maybe(small_ids), "n_spikes": maybe(small_ids)}
    )
    split = st.fixed_dictionaries(
        {
            "spikes": maybe(arrays),
            "added": id_lists,
            "deleted": id_lists,
            "n_spikes": maybe(small_ids),
        },
        optional={"labels": st.none() | maybe(arrays), "as_merge": values},
    )
    assign = st.fixed_dictionaries(
        {"spikes": maybe(arrays), "clusters": maybe(arrays), "added": id_lists, "deleted": id_lists}
    )
    if wide:
        fields = maybe(st.sampled_from(["group", "quality", "a\tb", "../x", ""]))
        label_values = maybe(st.sampled_from(["good", "mua", "bogus", "x\r\ny", 3, 2.5]))
    else:
        fields = st.sampled_from(["group", "quality"])
        label_values = st.sampled_from(["good", "mua", "noise", None, 3, 2.5, "ok"])
    label = st.fixed_dictionaries(
        {"clusters": label_ids, "field": fields, "value": label_values, "previous": values}
    )
    undo = st.fixed_dictionaries({"target": maybe(st.integers(-1, 8)), "kind": values})
    note = st.fixed_dictionaries({"kind": values, "text": values})
    return st.one_of(
        st.tuples(st.just("merge"), merge),
        st.tuples(st.just("split"), split),
        st.tuples(st.just("assign"), assign),
        st.tuples(st.just("label"), label),
        st.tuples(st.sampled_from(["undo", "redo"]), undo),
        st.tuples(st.just("note"), note),
        st.tuples(
            st.sampled_from(
                ["merge", "split", "undo", "frobnicate", ""] + (["label"] if wide else [])
            ),
            values,
        ),
    )


# ---------------------------------------------------------------------- fuzz targets
def fuzz_scan(data: bytes) -> str:
    """The log reader on arbitrary bytes: a ScanResult or a LogError."""
    from curalog.store.log import scan_bytes

    def run() -> None:
        res = scan_bytes(data, "fuzz")
        assert res.good_end <= len(data)
        assert len(res.events) == len(res.offsets)

    return outcome(run)


def fuzz_replay(folder: Path, log: Path, data: bytes) -> str:
    """A whole (crafted) log opened read-only and exported: clean, or a CuralogError."""
    import curalog

    log.write_bytes(data)
    out = log.parent / "fuzz-export"

    def run() -> None:
        with curalog.open(folder, log, readonly=True) as cur:
            state_digest(cur)
            export_phy(cur, out)
            for p in out.glob("*.tsv"):
                text = p.read_bytes().decode("utf-8", errors="replace")
                rows = text.split("\r\n")
                widths = {len(r.split("\t")) for r in rows[:-1]}
                if rows[-1] or "\n" in text.replace("\r\n", "") or len(widths) != 1:
                    raise AssertionError(
                        f"{p.name}: malformed TSV written from a replayed log: {text[:200]!r}"
                    )

    try:
        return outcome(run)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def fuzz_settings(default: int, **kwargs: Any):
    """Hypothesis settings for the fuzz tests: seeded (derandomized), no example database,
    ``CURALOG_FUZZ_EXAMPLES`` scales the number of examples, 10 s deadline per example."""
    import datetime

    from hypothesis import HealthCheck, settings

    n = int(os.environ.get("CURALOG_FUZZ_EXAMPLES", default))
    base = {
        "max_examples": n,
        "deadline": datetime.timedelta(seconds=10),
        "derandomize": True,
        "database": None,
        "suppress_health_check": [
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    }
    base.update(kwargs)
    return settings(**base)


# ---------------------------------------------------------------------- fuzz: log reader
def raw_logs():
    """Arbitrary bytes, half of them behind a valid magic and format."""
    from hypothesis import strategies as st

    log = _log_mod()
    tail = st.binary(max_size=3000)
    return st.one_of(
        tail, tail.map(lambda b: log.MAGIC + b"\x01\x00" + b), tail.map(lambda b: log.MAGIC + b)
    )


def mutations(size: int):
    """Edits of a valid log: flips, overwrites, insertions, deletions, truncation, record swap."""
    from hypothesis import strategies as st

    pos = st.integers(0, max(0, size - 1))
    op = st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(1, 255)),
        st.tuples(st.just("set"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("truncate"), pos, st.just(0)),
        st.tuples(st.just("dup"), pos, st.integers(1, 400)),
    )
    return st.lists(op, min_size=1, max_size=4)


def apply_mutations(data: bytes, ops: list[tuple[str, int, Any]]) -> bytes:
    buf = bytearray(data)
    for kind, p, arg in ops:
        p = min(p, max(0, len(buf) - 1))
        if kind == "flip" and buf:
            buf[p] ^= arg
        elif kind == "set":
            buf[p : p + len(arg)] = arg
        elif kind == "insert":
            buf[p:p] = arg
        elif kind == "delete":
            del buf[p : p + arg]
        elif kind == "truncate":
            del buf[p:]
        elif kind == "dup":
            buf[p:p] = buf[p : p + arg]
    return bytes(buf)


def fuzz_mutation(base: bytes, ops: list[tuple[str, int, Any]]) -> str:
    """A damaged log: an error, or a valid *prefix* of the original events (never other events)."""
    from curalog.store.log import scan_bytes

    ref = [e.hash for e in scan_bytes(base, "ref").events]
    data = apply_mutations(base, ops)

    def run() -> None:
        res = scan_bytes(data, "fuzz")
        got = [e.hash for e in res.events]
        if got != ref[: len(got)]:
            raise AssertionError(f"mutated log read as other events: {ops}")

    return outcome(run)


def hostile_payloads():
    """msgpack (or not) payloads: random values, lying container headers, deep nesting, ext."""
    from hypothesis import strategies as st

    lies = st.sampled_from(
        [
            b"\xdd\xff\xff\xff\xff",
            b"\xdf\xff\xff\xff\xff",
            b"\xdb\xff\xff\xff\xff",
            b"\xc6\xff\xff\xff\xff",
            b"\xc9\xff\xff\xff\xff\x01",
            b"\xdc\xff\xff",
            b"\xde\xff\xff",
            b"\xc1",
            b"\xd9\x20abc",
            b"\x81\xa1v\xdd\x7f\xff\xff\xff",
        ]
    )
    nested = st.integers(1, 5000).map(lambda d: b"\x91" * d + b"\xc0")
    nested_maps = st.integers(1, 3000).map(lambda d: b"\x81\xa1a" * d + b"\xc0")
    return st.one_of(
        st.binary(max_size=200),
        msgpack_values().map(pack),
        lies,
        nested,
        nested_maps,
        st.tuples(lies, st.binary(max_size=50)).map(lambda t: t[0] + t[1]),
    )


def fuzz_payload(header: dict[str, Any], payload: bytes, *, as_header: bool = False) -> str:
    """A hostile payload inside a frame with valid checksums (as a record, or as the header)."""
    data = craft_log(None, payload, []) if as_header else craft_log(None, header, [payload])
    return fuzz_scan(data)


def hostile_envelopes(values=None):
    """Envelopes with the right keys and wrong, lying or extra values."""
    from hypothesis import strategies as st

    values = values if values is not None else msgpack_values(8)
    maybe = lambda good: good | values  # noqa: E731
    return st.fixed_dictionaries(
        {
            "v": maybe(st.integers(-2, 3)),
            "type": maybe(st.sampled_from(["merge", "split", "label", "undo", "x", ""])),
            "time": maybe(st.integers(0, 2**63 - 1)),
            "author": maybe(st.text(max_size=10)),
            "body": maybe(st.just({})),
        },
        optional={
            "seq": maybe(st.integers(-1, 3)),
            "prev": maybe(st.binary(min_size=32, max_size=32)),
            "extra": values,
        },
    )


def fuzz_envelope(header: dict[str, Any], env: dict[str, Any]) -> str:
    from curalog.events.envelope import decode_envelope

    outcome(decode_envelope, env, b"", "fuzz")
    return fuzz_scan(craft_log(None, header, [env]))


def hostile_arrays():
    """Packed arrays with lying sizes, wrong encodings and dtypes, garbage or bomb data."""
    import zlib

    from hypothesis import strategies as st

    honest = st.builds(
        lambda vals, dtype, enc, lie: packed(np.asarray(vals, dtype=np.int64), dtype, enc, lie),
        st.lists(st.integers(0, 2**31), max_size=50),
        st.sampled_from(["<u4", "<u8", "<i8", "<i4", ">u4", "f8"]),
        st.sampled_from(["delta-zlib", "zlib", "raw", ""]),
        st.none() | st.integers(-5, 2**40),
    )
    bomb = st.integers(1, 1 << 22).map(
        lambda n: {
            "enc": "zlib",
            "dtype": "<i8",
            "n": n,
            "data": zlib.compress(b"\0" * min(n * 8, 1 << 20), 9),
        }
    )
    garbage = st.fixed_dictionaries(
        {
            "enc": st.sampled_from(["zlib", "delta-zlib"]),
            "dtype": st.sampled_from(["<u4", "<i8"]),
            "n": st.integers(0, 100),
            "data": st.binary(max_size=64),
        }
    )
    return st.one_of(honest, bomb, garbage, msgpack_values(6))


def fuzz_array(obj: Any) -> str:
    from curalog.events.envelope import unpack_array

    def run() -> None:
        arr = unpack_array(obj, "fuzz")
        if arr.dtype != np.int64 or arr.shape != (obj["n"],):
            raise AssertionError(
                f"unpack_array returned {arr.dtype} {arr.shape} for n={obj.get('n')}"
            )

    return outcome(run)


def hostile_records(wide: bool):
    """Lists of hostile (type, body) records. Not ``wide``: values that avoid the known defect
    D3 of RELIABILITY.md (non-finite floats and ints beyond int64 where ids are expected; label events whose
    cluster list is not a list of ints, or whose field or value holds tabs, line breaks or
    slashes)."""
    from hypothesis import strategies as st

    values = msgpack_values(8) if wide else finite_msgpack_values(8)
    return st.lists(hostile_bodies(values, wide=wide), min_size=1, max_size=4)


def hostile_headers(good: dict[str, Any], wide: bool):
    """The dataset's real header with some keys replaced, dropped or nested wrongly. Not ``wide``:
    ``base_groups`` and ``sorter_columns`` are left alone and fingerprint values stay finite
    (defect D2)."""
    from hypothesis import strategies as st

    values = msgpack_values(6) if wide else finite_msgpack_values(6)
    keys = sorted(good) if wide else sorted(set(good) - {"base_groups", "sorter_columns"})
    fp_keys = sorted(good.get("dataset", {}))

    def build(changes, drops, fp_changes):
        h = dict(good)
        for k, v in changes:
            h[k] = v
        for k in drops:
            h.pop(k, None)
        if fp_changes and isinstance(h.get("dataset"), dict):
            h["dataset"] = {**h["dataset"], **dict(fp_changes)}
        return h

    fp_values = (
        values if wide else (st.integers(-(2**40), 2**40) | st.text(max_size=10) | st.none())
    )
    return st.builds(
        build,
        st.lists(st.tuples(st.sampled_from(keys), values), max_size=3),
        st.lists(st.sampled_from(sorted(good)), max_size=2),
        st.lists(st.tuples(st.sampled_from(fp_keys), fp_values), max_size=2),
    )


class FuzzContext:
    """A scratch folder with a small dataset, its header and a valid log (for the targets)."""

    def __init__(self, work: str | os.PathLike[str]):
        self.work = Path(work)
        self.folder, self.log, self.base = build_small_log(self.work)
        self.header = header_for(self.folder)
        self.crafted = self.work / "crafted.log"

    def replay(self, records: list[Any], header: dict[str, Any] | None = None) -> str:
        return fuzz_replay(
            self.folder, self.crafted, craft_log(None, header or self.header, records)
        )


# ---------------------------------------------------------------------- fuzz: dataset loader
NPY_FILES = (
    "spike_times.npy",
    "spike_templates.npy",
    "amplitudes.npy",
    "templates.npy",
    "channel_map.npy",
    "channel_positions.npy",
    "similar_templates.npy",
    "template_ind.npy",
    "spike_clusters.npy",
)


def npy_bytes(header: str, body: bytes = b"", version: int = 1) -> bytes:
    """A .npy file with an arbitrary header text (padded as numpy does)."""
    hb = header.encode("latin1", errors="replace")
    if version == 1:
        pad = (64 - (10 + len(hb) + 1) % 64) % 64
        hb = hb + b" " * pad + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hb) & 0xFFFF) + hb + body
    pad = (64 - (12 + len(hb) + 1) % 64) % 64
    hb = hb + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(hb)) + hb + body


def dataset_specs(wide: bool):
    """What to break in a small Kilosort folder. Not ``wide``: avoids the known loader defects
    (D4 of RELIABILITY.md: huge int sample_rate, params.py a folder, parser overflow, unbalanced brackets in a
    .npy header, shapes declaring more than the file holds, 'inf' ids or huge cells in TSVs))."""
    from hypothesis import strategies as st

    n = st.integers(0, 40)
    times_kind = st.sampled_from(
        [
            "ok",
            "ok",
            "unsorted",
            "negative",
            "float",
            "float_nan",
            "uint64",
            "int32",
            "col",
            "row",
            "2col",
            "bool",
            "complex",
            "str",
            "scalar",
            "empty",
            "huge_uint64",
        ]
    )
    tmpl_kind = st.sampled_from(
        [
            "ok",
            "ok",
            "uint32",
            "int64_big",
            "negative",
            "float",
            "float_nan",
            "float_frac",
            "col",
            "row",
            "2col",
            "bool",
            "complex",
            "str",
            "scalar",
            "empty",
            "uint64_huge",
        ]
    )
    amp_kind = st.sampled_from([None, "ok", "nan", "inf", "short", "str", "2d", "int"])
    sr_good = [
        "30000.0",
        "'30000'",
        "3e4",
        "-1",
        "0",
        "float('nan')",
        "1e400",
        "'abc'",
        "[30000]",
        "None",
        "True",
        "{'a': 1}",
        "30000j",
    ]
    sr_wide = ["1" + "0" * 400]
    params_kind = st.one_of(
        st.sampled_from(sr_good + (sr_wide if wide else [])).map(lambda v: f"sample_rate = {v}\n"),
        st.text(max_size=200).map(lambda t: PARAMS + t),
        st.text(max_size=200),
        st.just("x = " + "-" * 20000 + "1\nsample_rate = 1\n")
        if wide
        else st.just("dat_path = ''\n"),
        st.just("DIR") if wide else st.just(""),
    )
    safe_header_text = st.text(
        alphabet=st.characters(codec="latin-1", exclude_characters="([{"), max_size=120
    )
    header_text = (
        st.text(alphabet=st.characters(codec="latin-1"), max_size=120) if wide else safe_header_text
    )
    descr = st.sampled_from(
        [
            "<i4",
            "<i8",
            "<u4",
            "<f4",
            "<f8",
            "|b1",
            "<c8",
            "<U3",
            "|S4",
            "<M8[ns]",
            "|V4",
            "O",
            ">i4",
        ]
    )
    shape = st.one_of(
        st.integers(-1, 60).map(lambda k: f"({k},)"),
        st.just("(10, 2)"),
        st.just("()"),
        st.just("(5, 0)"),
        st.just("(3, 4, 5)"),
    )
    if wide:
        shape = shape | st.sampled_from(
            ["(68719476736,)", "(4611686018427387904, 4)", "(1099511627776,)"]
        )
    crafted_header = st.builds(
        lambda d, f, s: f"{{'descr': '{d}', 'fortran_order': {f}, 'shape': {s}, }}",
        descr,
        st.sampled_from(["False", "True", "1", "'x'"]),
        shape,
    )
    npy_damage = st.one_of(
        st.none(),
        st.tuples(st.just("truncate"), st.sampled_from(NPY_FILES), st.integers(0, 200)),
        st.tuples(st.just("header"), st.sampled_from(NPY_FILES), crafted_header | header_text),
        st.tuples(st.just("garbage"), st.sampled_from(NPY_FILES), st.binary(max_size=300)),
    )
    tsv_cells = st.sampled_from(
        ["1", "0", "-1", "2.0", "nan", "x", "", "good", "999999999999", "1e3"]
        + (["inf", "1e400", "x" * 200_000] if wide else [])
    )
    tsv = st.one_of(
        st.none(),
        st.text(max_size=300),
        st.lists(st.tuples(tsv_cells, tsv_cells), max_size=6).map(
            lambda rows: "cluster_id\tgroup\n" + "".join(f"{a}\t{b}\n" for a, b in rows)
        ),
    )
    return st.fixed_dictionaries(
        {
            "n": n,
            "times": times_kind,
            "templates": tmpl_kind,
            "length_delta": st.integers(-2, 2),
            "templates_rows": st.none() | st.integers(0, 12),
            "amplitudes": amp_kind,
            "params": params_kind,
            "npy_damage": npy_damage,
            "cluster_group": tsv,
            "extra_tsv": tsv,
            "channel_map": st.none() | st.sampled_from(["ok", "float", "2d", "nan"]),
        }
    )


def _vector(kind: str, base: np.ndarray, dtype: Any) -> np.ndarray:
    conv = {
        "ok": lambda b: b.astype(dtype),
        "unsorted": lambda b: b[::-1].astype(dtype),
        "negative": lambda b: (b - 5).astype(np.int64),
        "float": lambda b: b.astype(np.float64),
        "float_nan": lambda b: np.where(np.arange(b.size) == 1, np.nan, b.astype(np.float64)),
        "float_frac": lambda b: b.astype(np.float64) + 0.5,
        "uint64": lambda b: b.astype(np.uint64),
        "uint32": lambda b: b.astype(np.uint32),
        "int32": lambda b: b.astype(np.int32),
        "int64_big": lambda b: b.astype(np.int64) + 2**40,
        "uint64_huge": lambda b: b.astype(np.uint64) + np.uint64(2**63),
        "huge_uint64": lambda b: b.astype(np.uint64) + np.uint64(2**63),
        "col": lambda b: b.astype(dtype).reshape(-1, 1),
        "row": lambda b: b.astype(dtype).reshape(1, -1),
        "2col": lambda b: np.stack([b, b], axis=1).astype(dtype),
        "bool": lambda b: (b % 2).astype(bool),
        "complex": lambda b: b.astype(np.complex64),
        "str": lambda b: b.astype(str),
        "scalar": lambda b: np.array(b[0] if b.size else 0, dtype=dtype),
        "empty": lambda b: b[:0].astype(dtype),
    }
    return conv[kind](base)


def build_dataset(folder: Path, spec: dict[str, Any]) -> Path:
    """Write the (possibly broken) folder a :func:`dataset_specs` value describes."""
    folder.mkdir(parents=True, exist_ok=True)
    n = spec["n"]
    rng = np.random.default_rng(n)
    times = np.sort(rng.integers(0, 10**6, n)).astype(np.int64)
    templ = rng.integers(0, 6, n).astype(np.int64)
    if spec["params"] == "DIR":
        (folder / "params.py").mkdir()
    else:
        (folder / "params.py").write_text(spec["params"])
    np.save(folder / "spike_times.npy", _vector(spec["times"], times, np.int64))
    m = max(0, n + spec["length_delta"])
    tm = np.resize(templ, m) if n else templ[:0]
    np.save(folder / "spike_templates.npy", _vector(spec["templates"], tm, np.int32))
    if spec["templates_rows"] is not None:
        np.save(
            folder / "templates.npy",
            rng.normal(size=(spec["templates_rows"], 5, 3)).astype(np.float32),
        )
    amp = spec["amplitudes"]
    if amp is not None:
        a = rng.gamma(2.0, 3.0, n).astype(np.float32)
        a = {
            "ok": a,
            "nan": np.full(n, np.nan, np.float32),
            "inf": np.where(a > 5, np.inf, a),
            "short": a[:-1],
            "str": a.astype(str),
            "2d": np.stack([a, a], 1),
            "int": a.astype(np.int16),
        }[amp]
        np.save(folder / "amplitudes.npy", a)
    cm = spec["channel_map"]
    if cm is not None:
        c = np.arange(3)
        c = {
            "ok": c,
            "float": c.astype(float),
            "2d": c.reshape(1, 3, 1),
            "nan": np.array([0, np.nan, 2]),
        }[cm]
        np.save(folder / "channel_map.npy", c)
    if spec["cluster_group"] is not None:
        (folder / "cluster_group.tsv").write_text(
            spec["cluster_group"], encoding="utf-8", errors="surrogateescape"
        )
    if spec["extra_tsv"] is not None:
        (folder / "cluster_KSLabel.tsv").write_text(
            spec["extra_tsv"], encoding="utf-8", errors="surrogateescape"
        )
    dmg = spec["npy_damage"]
    if dmg is not None:
        kind, name, arg = dmg
        path = folder / name
        if kind == "truncate":
            data = (
                path.read_bytes()
                if path.exists()
                else npy_bytes(
                    "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", bytes(24)
                )
            )
            path.write_bytes(data[:arg])
        elif kind == "header":
            path.write_bytes(npy_bytes(arg, bytes(64)))
        else:
            path.write_bytes(arg)
    return folder


def touch_dataset(folder: Path, scratch: Path) -> None:
    """Everything a session reads: loader, lazy files, fingerprint, open, stats, export."""
    import curalog
    from curalog.dataset import load_dataset

    ds = load_dataset(folder)
    for name in (
        "amplitudes",
        "templates",
        "template_channels",
        "channel_map",
        "channel_positions",
        "channel_shanks",
        "similar_templates",
        "sorter_metadata",
        "base_groups",
        "sorter_columns",
    ):
        getattr(ds, name)
    _ = ds.fingerprint
    ds.phy_spike_clusters()
    with curalog.open(folder, scratch / "fuzz.log") as cur:
        if cur.n_clusters >= 2:
            cur.merge(cur.cluster_ids[:2].tolist())
        try:
            from curalog.analysis.stats import StatsEngine
        except ImportError:
            StatsEngine = None  # noqa: N806
        if StatsEngine is not None and cur.n_clusters:
            StatsEngine(cur.dataset, cur.state).get(int(cur.cluster_ids[0]))
        export_phy(cur, scratch / "export")


def fuzz_dataset(spec: dict[str, Any], work: Path | None = None) -> str:
    """Build the folder ``spec`` describes and touch it: clean, or a CuralogError."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        folder = build_dataset(Path(tmp) / "ds", spec)
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        return outcome(touch_dataset, folder, scratch)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["zygote"]:
        _zygote_main()
        return 0
    print("usage: faultlib.py zygote", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))


__all__ = [
    "Counter",
    "Escaped",
    "KillStats",
    "Zygote",
    "craft_log",
    "fill_disk",
    "kill_export_campaign",
    "kill_writer_campaign",
    "make_dataset",
    "outcome",
    "small_tmpfs",
    "state_digest",
]
