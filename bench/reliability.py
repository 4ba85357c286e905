#!/usr/bin/env python3
"""curalog's reliability campaign: fault injection and fuzzing, with figures.

Runs the same harness as ``tests/test_faults_*.py`` and ``tests/test_fuzz_*.py``
(``tests/faultlib.py``), many more times, and prints the table recorded in RELIABILITY.md::

    .venv/bin/python bench/reliability.py            # quick pass (about a minute)
    .venv/bin/python bench/reliability.py --long     # the recorded campaign (several minutes)
    .venv/bin/python bench/reliability.py --long --only kill,fuzz --seed 7
    .venv/bin/python bench/reliability.py --atheris scan -- -runs=200000   # coverage-guided (optional)

Everything is seeded (``--seed``), except the kill moments' interplay with the scheduler.
The fuzz rows use the *wide* input space; their "escapes" column counts inputs that end in
an exception other than CuralogError (0 since defects D2-D4 were fixed).
Exit status: 1 if any acknowledged event was lost, a log failed to reopen, a wrong state
was replayed or a half-written file was seen; 0 otherwise (fuzz escapes are reported).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

import curalog  # noqa: E402
from curalog.errors import CuralogError, LogError, LogLockedError  # noqa: E402

import attacks  # noqa: E402
import faultlib  # noqa: E402
import powerloss  # noqa: E402

SECTIONS = (
    "kill",
    "export",
    "readers",
    "disk",
    "flips",
    "truncation",
    "writers",
    "fingerprint",
    "fuzz",
    "cli",
    "powerloss",
    "aliases",
    "cuts",
    "repair",
    "links",
    "hostile",
    "serve",
)


@dataclass
class Row:
    campaign: str
    runs: str
    events: str
    lost: str
    detected: str
    escapes: str = "0"
    seconds: float = 0.0
    bad: bool = False
    notes: list[str] = field(default_factory=list)


ROWS: list[Row] = []


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def section(name: str):
    def deco(fn):
        fn.section = name
        return fn

    return deco


# ---------------------------------------------------------------------- kills
@section("kill")
def run_kill(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    runs = 300 if long else 40  # a few hundred kills: 2 vCPUs shared with 7 other jobs
    t0 = time.time()

    def progress(i, st):
        if (i + 1) % 50 == 0:
            log(f"  kill writer: {i + 1}/{runs} runs, {st.acked} acknowledged, {st.lost} lost")

    st = faultlib.kill_writer_campaign(work / "kill", runs, seed, zygote=zyg, progress=progress)
    bad = st.lost or st.reopen_failures or st.wrong_states or st.victim_errors
    ROWS.append(
        Row(
            "SIGKILL of a writer at random moments (merges, splits of 5-50 % of 60 k spikes, labels, undo/redo, "
            f"1-8 MB records; {st.logs} logs)",
            f"{st.runs} runs ({st.killed_before_ready} killed while opening)",
            f"{st.acked} acknowledged; {st.events_verified} re-verified; {st.durable_unacked} durable before their ACK; "
            f"largest record {st.max_record / 2**20:.1f} MiB",
            f"{st.lost} lost, {st.wrong_states} wrong states, {st.reopen_failures} reopen failures",
            f"{st.torn_found} torn tails found and cut",
            str(st.victim_errors),
            time.time() - t0,
            bool(bad),
            st.problems[:5],
        )
    )


@section("export")
def run_export(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    runs = 150 if long else 20
    t0 = time.time()
    # an export now also computes cluster_info.tsv's quality columns (0.3-0.7 s here): the
    # kill moment is drawn from 0-1.5 s so that exports complete between kills
    st = faultlib.kill_export_campaign(
        work / "export", runs, seed, n_spikes=400_000, max_delay=1.5, zygote=zyg
    )
    bad = st.half_written or st.wrong_content or st.victim_errors
    ROWS.append(
        Row(
            "SIGKILL during export (400 k spikes; into an output folder and into the dataset folder)",
            f"{st.runs} runs",
            f"{st.exports_acked} exports completed; {st.files_checked} files checked "
            f"(np.load / TSV parse / sha256 against every complete version)",
            f"{st.half_written} half-written, {st.wrong_content} unknown content",
            f"{st.tmp_leftovers} temp files left behind (harmless, removed)",
            str(st.victim_errors),
            time.time() - t0,
            bool(bad),
            st.problems[:5],
        )
    )


@section("readers")
def run_readers(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    st = faultlib.readers_during_writes(
        work / "readers", 30.0 if long else 3.0, seed, readers=3, zygote=zyg
    )
    ROWS.append(
        Row(
            "3 reader threads (scan + full replay, no lock) during a writer's appends",
            f"{st.reads} reads, {st.replays} replays",
            f"{st.writer_acks} events appended meanwhile",
            f"{st.bad} not a valid prefix / wrong state",
            f"{st.torn_seen} reads saw a record in flight",
            "0",
            time.time() - t0,
            bool(st.bad),
            st.problems[:5],
        )
    )


# ---------------------------------------------------------------------- disk full
@section("disk")
def run_disk(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    folder = faultlib.make_dataset(work / "disk" / "ds", 20_000, 30, seed)
    cases = refused = identical = other = 0
    rng = np.random.default_rng(seed)
    real_write = os.write
    for action in ("merge", "split", "label", "undo", "note"):
        log_path = work / "disk" / f"{action}.log"
        with curalog.open(folder, log_path) as cur:
            cur.merge([1, 2])
            cur.label([3], group="good")
            sel = np.sort(rng.choice(20_000, 5000, replace=False))
            acts = {
                "merge": lambda cur=cur: cur.merge(cur.cluster_ids[:2].tolist()),
                "split": lambda cur=cur, sel=sel: cur.split(sel),
                "label": lambda cur=cur: cur.label(cur.cluster_ids[:3].tolist(), group="mua"),
                "undo": lambda cur=cur: cur.undo(),
                "note": lambda cur=cur: cur.note("n", "x" * 300),
            }
            probe = log_path.stat().st_size
            acts[action]()
            size = log_path.stat().st_size - probe
            if action == "undo":
                cur.redo()
            else:
                cur.undo()
            cuts = range(size) if long else sorted({0, 1, 11, 12, 13, size // 2, size - 1})
            for cut in cuts:
                for err in (errno.ENOSPC, errno.EIO):
                    before, digest = log_path.read_bytes(), faultlib.state_digest(cur)
                    calls = {"n": 0}

                    def failing(fd, data, cut=cut, err=err, calls=calls):
                        calls["n"] += 1
                        if calls["n"] == 1 and cut:
                            real_write(fd, bytes(data)[:cut])
                        raise OSError(err, os.strerror(err))

                    cases += 1
                    os.write = failing
                    try:
                        acts[action]()
                        other += 1
                    except LogError as exc:
                        refused += int(os.strerror(err) in str(exc) and "\n" not in str(exc))
                    finally:
                        os.write = real_write
                    identical += int(
                        log_path.read_bytes() == before and faultlib.state_digest(cur) == digest
                    )
    ROWS.append(
        Row(
            "write() failing with ENOSPC / EIO after 0..n bytes of the record (every cut point)",
            f"{cases} cases",
            "merge, split (5 k spikes), label, undo, note",
            f"{cases - identical} logs or states changed",
            f"{refused} refused with the error named",
            str(other),
            time.time() - t0,
            bool(cases - identical or cases - refused),
        )
    )
    t0 = time.time()
    try:
        tm = _tmpfs_campaign(work / "tmpfs", long, seed)
    except faultlib.TmpfsUnavailable as exc:
        ROWS.append(Row("real full disk (256 KiB tmpfs)", "skipped", str(exc), "-", "-"))
        return
    ROWS.append(
        Row(
            "real full disk: 256 KiB tmpfs filled to 0..64 KiB free, then a split of 1-50 % of 100 k spikes",
            f"{tm['cases']} cases",
            f"{tm['ok']} fitted and were durable, {tm['refused']} refused",
            f"{tm['changed']} logs changed by a refused action, {tm['reopen']} reopen failures",
            f"{tm['refused_named']} refusals named 'No space left on device'",
            "0",
            time.time() - t0,
            bool(tm["changed"] or tm["reopen"] or tm["refused"] - tm["refused_named"]),
        )
    )


def _tmpfs_campaign(mnt: Path, long: bool, seed: int) -> dict[str, int]:
    out = Counter()
    rng = np.random.default_rng(seed)
    folder = faultlib.make_dataset(mnt.parent / "tmpfs-ds", 100_000, 50, seed)
    levels = [0, 1, 100, 1000, 4096, 8192, 16384, 32768, 65536]
    reps = 6 if long else 1
    with faultlib.small_tmpfs(mnt, "256k"):
        for _ in range(reps):
            for free in levels:
                log_path = mnt / "main.log"
                for p in mnt.iterdir():
                    p.unlink()
                with curalog.open(folder, log_path) as cur:
                    cur.merge([1, 2])
                faultlib.fill_disk(mnt / "filler")
                if free:
                    os.truncate(mnt / "filler", max(0, (mnt / "filler").stat().st_size - free))
                frac = rng.uniform(0.01, 0.5)
                sel = np.sort(rng.choice(100_000, int(100_000 * frac), replace=False))
                before = log_path.read_bytes()
                out["cases"] += 1
                try:
                    with curalog.open(folder, log_path) as cur:
                        cur.split(sel)
                        want = faultlib.state_digest(cur)
                    out["ok"] += 1
                    with curalog.open(folder, log_path, readonly=True) as cur:
                        out["reopen"] += int(faultlib.state_digest(cur) != want)
                except CuralogError as exc:
                    out["refused"] += 1
                    out["refused_named"] += int("No space left on device" in str(exc))
                    out["changed"] += int(log_path.read_bytes() != before)
                    try:
                        with curalog.open(folder, log_path, readonly=True) as cur:
                            assert cur.seq == 1
                    except (CuralogError, AssertionError):
                        out["reopen"] += 1
    return dict(out)


# ---------------------------------------------------------------------- flips and truncations
@section("flips")
def run_flips(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    folder, log_path, data = faultlib.build_small_log(work / "flips")
    values = range(1, 256) if long else (0x01, 0x02, 0x10, 0x80, 0xFF)
    st = faultlib.flip_scan(data, values)
    fmt = [(p, v) for p, v in st.undetected if p in (8, 9)]
    rest = [(p, v) for p, v in st.undetected if p not in (8, 9)]
    # writer-level: every position, xor 0xFF: refused and left untouched
    target = work / "flips" / "f.log"
    opened = untouched = 0
    for pos in range(len(data)) if long else range(0, len(data), 5):
        if pos in (8, 9):
            continue
        buf = bytearray(data)
        buf[pos] ^= 0xFF
        target.write_bytes(bytes(buf))
        opened += 1
        try:
            curalog.open(folder, target).close()
        except LogError:
            untouched += int(target.read_bytes() == bytes(buf))
    ROWS.append(
        Row(
            f"single-byte changes of a {len(data)}-byte log with every event type "
            f"({'all 255 values' if long else '5 masks'} at every position)",
            f"{st.cases} cases + {opened} writable opens",
            "-",
            f"{len(rest)} undetected outside the format field; {st.torn} taken for a torn tail",
            f"{st.detected} detected; {untouched}/{opened} refused for writing, file untouched; "
            f"format field (bytes 8-9): {len(fmt)} undetected (D5, fixed)",
            "0",
            time.time() - t0,
            bool(rest or st.torn or untouched != opened),
        )
    )


@section("truncation")
def run_truncation(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    folder, log_path, data = faultlib.build_small_log(work / "trunc")
    first, ends = faultlib.prefix_counts(data)
    digests = {}
    for k in range(len(ends) + 1):
        with curalog.open(folder, log_path, readonly=True, upto=k) as cur:
            digests[k] = faultlib.state_digest(cur)
    wrong = cases = 0
    points = range(first, len(data)) if long else range(first, len(data), 7)
    for n in points:
        cases += 1
        target = work / "trunc" / f"t{n}.log"
        target.write_bytes(data[:n])
        k = sum(1 for e in ends if e <= n)
        try:
            with curalog.open(folder, target) as cur:
                ok = cur.seq == k and faultlib.state_digest(cur) == digests[k]
            ok = ok and target.read_bytes() == data[: (ends[k - 1] if k else first)]
        except CuralogError:
            ok = False
        wrong += int(not ok)
        for p in target.parent.glob(target.name + "*"):
            p.unlink()
    ROWS.append(
        Row(
            "every truncation point of the same log, reopened for writing",
            f"{cases} cases",
            "-",
            f"{wrong} wrong prefix or state",
            f"{cases - wrong} cut to the last whole record, state exact",
            "0",
            time.time() - t0,
            bool(wrong),
        )
    )


# ---------------------------------------------------------------------- writers
@section("writers")
def run_writers(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    folder = faultlib.make_dataset(work / "writers" / "ds", 2000, 20, seed)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
    rounds = 200 if long else 20
    good = 0
    for _ in range(rounds):
        barrier = threading.Barrier(6)
        results, opened = [], []

        def worker(barrier=barrier, results=results, opened=opened):
            barrier.wait()
            try:
                opened.append(curalog.open(folder))
                results.append("ok")
            except LogLockedError:
                results.append("locked")
            except LogError as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in opened:
            c.close()
        good += int(sorted(results) == ["locked"] * 5 + ["ok"])
    # processes: a victim appends (holding the lock); the parent tries while it writes
    proc_ok = proc_rounds = 0
    lock_file = curalog.default_log_path(folder).with_name("main.log.lock")
    for i in range(20 if long else 3):
        proc_rounds += 1

        def hold(i=i):
            zyg.run(
                {
                    "kind": "writer",
                    "folder": str(folder),
                    "log": str(curalog.default_log_path(folder)),
                    "seed": seed + i,
                    "phase": "ready",
                    "delay": 1.5,
                    "max_split_frac": 0.1,
                    "max_blob": 1 << 20,
                }
            )

        stale = (
            lock_file.read_text() if lock_file.exists() else ""
        )  # a killed holder's text stays behind
        th = threading.Thread(target=hold)
        th.start()
        refused = False
        deadline = time.time() + 10
        while time.time() < deadline:
            holder = lock_file.read_text() if lock_file.exists() else ""
            if " pid " in holder and holder != stale and f" pid {os.getpid()} " not in holder:
                break
            time.sleep(0.01)
        try:
            curalog.open(folder).close()
        except LogLockedError as exc:
            refused = " pid " in str(exc) and f" pid {os.getpid()} " not in str(exc)
        th.join()
        proc_ok += int(refused)
    ROWS.append(
        Row(
            "two writers: 6 threads racing for one log; a second process while a writer appends",
            f"{rounds} thread rounds, {proc_rounds} process rounds",
            "-",
            f"{rounds - good} rounds with 0 or 2+ winners or another error",
            f"{good}/{rounds} exactly one winner + LogLockedError; {proc_ok}/{proc_rounds} refused naming the pid",
            "0",
            time.time() - t0,
            bool(rounds - good or proc_rounds - proc_ok),
        )
    )


@section("fingerprint")
def run_fingerprint(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    base = work / "fp"
    cases = refused = 0
    kinds = (
        "other dataset",
        "templates rolled",
        "times shifted",
        "one more spike",
        "one template id changed",
    )
    reps = 20 if long else 2
    for rep in range(reps):
        for kind in kinds:
            d = faultlib.make_dataset(base / f"{rep}-{kind}", 3000, 20, seed + rep)
            with curalog.open(d) as cur:
                cur.merge([1, 2])
            logp = curalog.default_log_path(d)
            t = np.load(d / "spike_templates.npy")
            times = np.load(d / "spike_times.npy")
            if kind == "other dataset":
                d = faultlib.make_dataset(base / f"{rep}-other", 3000, 20, seed + rep + 1000)
            elif kind == "templates rolled":
                np.save(d / "spike_templates.npy", np.roll(t, 1))
            elif kind == "times shifted":
                np.save(d / "spike_times.npy", times + 1)
            elif kind == "one more spike":
                np.save(d / "spike_templates.npy", np.append(t, t[-1]))
                np.save(d / "spike_times.npy", np.append(times, times[-1] + 1))
            else:
                t2 = t.copy()
                t2[rep % t.size] = (t2[rep % t.size] + 1) % 20
                np.save(d / "spike_templates.npy", t2)
            for kwargs in ({}, {"readonly": True}):
                cases += 1
                try:
                    curalog.open(d, logp, **kwargs).close()
                except curalog.errors.FingerprintMismatchError:
                    refused += 1
                except CuralogError:
                    pass
    ROWS.append(
        Row(
            "log replayed onto another dataset, or the dataset rewritten after logging",
            f"{cases} cases",
            ", ".join(kinds),
            f"{cases - refused} replayed anyway",
            f"{refused} refused (FingerprintMismatchError)",
            "0",
            time.time() - t0,
            bool(cases - refused),
        )
    )


# ---------------------------------------------------------------------- fuzz
def _fuzz(name: str, strategy, target, n: int, seed: int) -> tuple[Counter, Counter, float]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    counts: Counter = Counter()
    escapes: Counter = Counter()
    t0 = time.time()

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(value):
        try:
            counts[target(value)] += 1
        except faultlib.Escaped as exc:
            counts["escaped"] += 1
            escapes[str(exc).split(":")[0]] += 1

    run()
    log(f"  fuzz {name}: {sum(counts.values())} cases {dict(counts)} escapes {dict(escapes)}")
    return counts, escapes, time.time() - t0


@section("fuzz")
def run_fuzz(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    ctx = faultlib.FuzzContext(work / "fuzz")
    big = 5000 if long else 300
    mid = 1500 if long else 100
    targets = [
        ("log reader: arbitrary bytes", faultlib.raw_logs(), faultlib.fuzz_scan, big),
        (
            "log reader: damaged valid logs (must read a true prefix or fail)",
            faultlib.mutations(len(ctx.base)),
            lambda ops: faultlib.fuzz_mutation(ctx.base, ops),
            big,
        ),
        (
            "decoder: hostile msgpack in valid frames (huge lengths, 5000-deep nesting)",
            faultlib.hostile_payloads(),
            lambda p: faultlib.fuzz_payload(ctx.header, p),
            big,
        ),
        (
            "decoder: hostile msgpack as the header",
            faultlib.hostile_payloads(),
            lambda p: faultlib.fuzz_payload(ctx.header, p, as_header=True),
            big,
        ),
        (
            "decoder: envelopes with wrong types / unknown types and versions",
            faultlib.hostile_envelopes(),
            lambda e: faultlib.fuzz_envelope(ctx.header, e),
            big,
        ),
        (
            "decoder: packed arrays with lying sizes, bombs",
            faultlib.hostile_arrays(),
            faultlib.fuzz_array,
            big,
        ),
        (
            "replay + export of hostile bodies (wide)",
            faultlib.hostile_records(True),
            ctx.replay,
            mid,
        ),
        (
            "replay of hostile headers (wide)",
            faultlib.hostile_headers(ctx.header, True),
            lambda h: ctx.replay([], h),
            mid,
        ),
        (
            "dataset loader: broken folders (wide)",
            faultlib.dataset_specs(True),
            faultlib.fuzz_dataset,
            mid,
        ),
    ]
    for i, (name, strategy, target, n) in enumerate(targets):
        counts, escapes, secs = _fuzz(name, strategy, target, n, seed + i)
        total = sum(counts.values())
        clean = ", ".join(f"{v} {k}" for k, v in counts.most_common() if k != "escaped")
        ROWS.append(
            Row(
                f"fuzz {name}",
                f"{total} cases",
                clean,
                "-",
                "-",
                f"{counts['escaped']}"
                + (
                    f" ({', '.join(f'{k} x{v}' for k, v in escapes.most_common())})"
                    if escapes
                    else ""
                ),
                secs,
                False,
            )
        )


@section("cli")
def run_cli(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    folder = faultlib.make_dataset(work / "cli" / "ds", 3000, 20, seed)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
    ctx = faultlib.FuzzContext(work / "cli" / "fz")
    garbage = work / "cli" / "garbage.log"
    garbage.write_bytes(os.urandom(3000))
    trunc = faultlib.make_dataset(work / "cli" / "trunc", 100, 5)
    (trunc / "spike_times.npy").write_bytes((trunc / "spike_times.npy").read_bytes()[:90])
    newer = work / "cli" / "newer.log"
    faultlib.craft_log(newer, ctx.header, [("regroup", {})])
    calls = [
        ("info", str(work / "nowhere")),
        ("merge", str(trunc), "1", "2"),
        ("log", str(folder), "--log", str(garbage)),
        ("merge", str(folder), "999", "1000"),
        ("log", str(ctx.folder), "--log", str(newer)),
        ("replay", str(folder), "--upto", "99", "--out", str(work / "cli" / "r.npy")),
        ("label", str(folder), "3", "--field", "a/b", "--value", "1"),
    ]
    before = faultlib.snapshot_files(folder)
    good = 0
    for res in faultlib.run_cli_many(calls):
        try:
            faultlib.assert_one_line_error(res)
            good += 1
        except AssertionError:
            pass
    unchanged = faultlib.snapshot_files(folder) == before
    ROWS.append(
        Row(
            "command line on bad input (python -m curalog, real subprocesses)",
            f"{len(calls)} cases",
            "-",
            "0" if unchanged else "dataset or log written",
            f"{good}/{len(calls)} one line on stderr, exit 2",
            str(len(calls) - good),
            time.time() - t0,
            bool(len(calls) - good or not unchanged),
        )
    )


# ---------------------------------------------------------------------- issue 13
@section("powerloss")
def run_powerloss(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    cuts = 400 if long else 40
    st = powerloss.power_loss_campaign(work / "power", cuts, seed, n_actions=80 if long else 30)
    models = ", ".join(f"{k} {v}" for k, v in sorted(st.by_model.items()))
    bad = st.lost or st.false_alarms or st.reopen_failures or st.wrong_states or st.tracebacks
    ROWS.append(
        Row(
            "power loss: one writer's recorded write stream (merges, splits of up to 6 k of 20 k "
            "spikes, labels, undo/redo, 4-512 KiB notes) replayed up to a random point; after "
            "each file's last fsync the writes are dropped / partly kept / cut at a sector / zeros",
            f"{st.cuts} power cuts ({models}) in a stream of {st.ops_recorded} operations, "
            f"{st.fsyncs} fsyncs",
            f"{st.actions_acked} actions acknowledged in the stream; {st.acked_at_cut} acknowledged "
            f"events due at the cuts; {st.durable_unacked} durable before their ACK",
            f"{st.lost} lost, {st.wrong_states} wrong states, {st.reopen_failures} reopen failures, "
            f"{st.false_alarms} false damage alarms",
            f"{st.torn_cut} torn tails cut and kept",
            str(st.tracebacks),
            time.time() - t0,
            bool(bad),
            st.problems[:5],
        )
    )


def _tally_row(name: str, t: attacks.Tally, secs: float, what: str) -> Row:
    details = "; ".join(f"{k} {v}" for k, v in t.details.items()) or "-"
    return Row(
        name,
        f"{t.cases} cases",
        details,
        f"{t.bad} not as required",
        f"{t.ok}/{t.cases} {what}",
        str(t.tracebacks),
        secs,
        bool(t.bad or t.tracebacks),
        t.problems[:5],
    )


@section("aliases")
def run_aliases(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    t = attacks.alias_writers(work / "aliases", 100 if long else 10, 20 if long else 5, zyg)
    ROWS.append(
        _tally_row(
            "second writers through aliases of a held log (symlink, hard link, symlinked "
            "folder, '..' path): threads racing; a process while a victim appends",
            t,
            time.time() - t0,
            "exactly one writer (the others refused)",
        )
    )


@section("cuts")
def run_cuts(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    t = attacks.boundary_cuts(work / "cuts")
    ROWS.append(
        _tally_row(
            "every cut of a log, with its tail state (.lock) beside it, and alone (copied "
            "without it: a cut at a record boundary is then undetectable)",
            t,
            time.time() - t0,
            "detected with the tail state / whole log read intact",
        )
    )


@section("repair")
def run_repair(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    t = attacks.damage_and_repair(work / "repair", 6 if long else 2)
    ROWS.append(
        _tally_row(
            "fsck / --repair: a bit flipped inside each record of a 12-event log; a byte "
            "flipped at every position of the file head and header",
            t,
            time.time() - t0,
            "intact records after the damage counted and set aside / every event recovered",
        )
    )


@section("links")
def run_links(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    t = attacks.planted_links(work / "links")
    ROWS.append(
        _tally_row(
            "symlinks / hard links planted at the lock file and the side-file names",
            t,
            time.time() - t0,
            "target untouched",
        )
    )


@section("hostile")
def run_hostile(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    t = attacks.hostile_inputs(work / "hostile")
    ROWS.append(
        _tally_row(
            "hostile inputs: field names with each control character or a sorter column's name "
            "(API, replay, fsck), TSV encodings, odd ids, nested rules, terminal escapes",
            t,
            time.time() - t0,
            "refused / decoded / escaped as required",
        )
    )


@section("serve")
def run_serve(work: Path, long: bool, seed: int, zyg: faultlib.Zygote) -> None:
    t0 = time.time()
    try:
        t = attacks.serve_probes()
    except ImportError as exc:
        log(f"  serve: skipped ({exc})")
        return
    ROWS.append(
        _tally_row(
            "curalog serve: page and WebSocket requests without / with a wrong token, from "
            "other origins and Host names",
            t,
            time.time() - t0,
            "answered as required (403 unless the token and origin are right)",
        )
    )


# ---------------------------------------------------------------------- atheris
def _instrument_curalog(atheris) -> int:
    """Coverage-instrument curalog's plain Python functions in place. Not atheris.instrument_all():
    it rewrites the bytecode numba compiles, which then fails to type."""
    import importlib
    import inspect
    import pkgutil

    count = 0
    for info in pkgutil.walk_packages(curalog.__path__, "curalog."):
        if info.name.endswith("__main__"):
            continue
        try:
            mod = importlib.import_module(info.name)
        except ImportError:
            continue
        objs = [o for o in vars(mod).values() if getattr(o, "__module__", None) == mod.__name__]
        funcs = [o for o in objs if inspect.isfunction(o)]
        for cls in (o for o in objs if inspect.isclass(o)):
            funcs += [f for f in vars(cls).values() if inspect.isfunction(f)]
        for f in funcs:
            with contextlib.suppress(Exception):
                atheris.instrument_func(f)
                count += 1
    return count


def run_atheris(target: str, argv: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install atheris", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="curalog-atheris-"))
    ctx = faultlib.FuzzContext(work)
    print(
        f"atheris: instrumented {_instrument_curalog(atheris)} curalog functions (numba kernels excluded)",
        file=sys.stderr,
    )

    def one(data: bytes) -> None:
        if target == "scan":
            faultlib.fuzz_scan(data)
        elif target == "record":
            faultlib.fuzz_payload(ctx.header, data)
        elif target == "header":
            faultlib.fuzz_payload(ctx.header, data, as_header=True)
        elif target == "replay":  # the bytes are the msgpack body of a merge/split/label record
            try:
                body = faultlib.msgpack.unpackb(data, raw=False, strict_map_key=False)
            except Exception:
                return
            kind = ("merge", "split", "label", "undo", "assign")[len(data) % 5]
            ctx.replay([(kind, body)])
        elif target == "npy":
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                d = faultlib.make_dataset(Path(tmp) / "ds", 50, 4)
                (d / "spike_templates.npy").write_bytes(data)
                faultlib.outcome(faultlib.touch_dataset, d, Path(tmp))
        else:
            raise SystemExit(
                f"unknown atheris target {target!r} (scan, record, header, replay, npy)"
            )

    corpus = work / "corpus"  # seeds: libFuzzer mutates real logs and files from there
    corpus.mkdir()
    from curalog.store.log import scan_bytes

    events = scan_bytes(ctx.base, "seed").events
    seeds = {
        "scan": [ctx.base],
        "record": [faultlib.pack(e.body) for e in events],
        "header": [faultlib.pack(ctx.header)],
        "replay": [faultlib.pack(e.body) for e in events],
        "npy": [(ctx.folder / "spike_templates.npy").read_bytes()],
    }.get(target, [])
    for i, seed_bytes in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(seed_bytes)
    if not any(not a.startswith("-") for a in argv):
        argv = [*argv, str(corpus)]
    if not any(a.startswith("-artifact_prefix=") for a in argv):
        argv = [
            f"-artifact_prefix={work}/",
            *argv,
        ]  # crash files go to the scratch folder, not the cwd
        print(f"atheris: corpus and crash files in {work}", file=sys.stderr)
    atheris.Setup([sys.argv[0], *argv], one)
    atheris.Fuzz()
    return 0


# ---------------------------------------------------------------------- main
def print_table(seconds: float, args: argparse.Namespace) -> None:
    print(
        f"\n## curalog reliability campaign ({'long' if args.long else 'quick'} mode, seed {args.seed})\n"
    )
    print(
        f"curalog {curalog.__version__}, Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}, {os.cpu_count()} CPUs; {seconds / 60:.1f} min.\n"
    )
    print(
        "| campaign | runs / cases | events and details | lost / wrong | detected / refused | escapes | s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in ROWS:
        print(
            f"| {r.campaign} | {r.runs} | {r.events} | {r.lost} | {r.detected} | {r.escapes} | {r.seconds:.0f} |"
        )
    problems = [(r.campaign, n) for r in ROWS for n in r.notes]
    if problems:
        print("\nProblems:")
        for c, n in problems:
            print(f"- {c}: {n}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--atheris"]:
        if len(argv) < 2:
            print(
                "usage: reliability.py --atheris {scan,record,header,replay,npy} [-- atheris options]",
                file=sys.stderr,
            )
            return 2
        rest = argv[2:]
        return run_atheris(argv[1], rest[1:] if rest[:1] == ["--"] else rest)
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--long", action="store_true", help="the recorded campaign (several minutes)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="curalog-reliability-"))
    os.environ.setdefault("CURALOG_CACHE_DIR", str(work / "fp-cache"))
    t0 = time.time()
    runners = [
        run_kill,
        run_export,
        run_readers,
        run_disk,
        run_flips,
        run_truncation,
        run_writers,
        run_fingerprint,
        run_fuzz,
        run_cli,
        run_powerloss,
        run_aliases,
        run_cuts,
        run_repair,
        run_links,
        run_hostile,
        run_serve,
    ]
    try:
        with faultlib.Zygote() as zyg:
            for fn in runners:
                if fn.section in only:
                    log(f"[{fn.section}] ...")
                    t = time.time()
                    fn(work, args.long, args.seed, zyg)
                    log(f"[{fn.section}] done in {time.time() - t:.0f} s")
    finally:
        if not args.keep:
            import shutil

            with contextlib.suppress(Exception):
                shutil.rmtree(work)
    print_table(time.time() - t0, args)
    return 1 if any(r.bad for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
