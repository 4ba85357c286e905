"""The issue-13 cases as campaigns (used by ``bench/reliability.py``; the fast checks are in
``tests/test_issue13_*.py``): aliases of a held log, cuts at record boundaries, damage at
every record and in the header, planted symlinks, hostile names, encodings, ids, nesting,
terminal escapes and ``curalog serve`` probes. Each returns counts; a ``traceback`` is any
exception other than a one-line CuralogError."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import faultlib


@dataclass
class Tally:
    cases: int = 0
    ok: int = 0  # behaved as required (refused, detected, recovered, ...)
    bad: int = 0  # did not
    tracebacks: int = 0
    details: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def count(self, key: str, n: int = 1) -> None:
        self.details[key] = self.details.get(key, 0) + n

    def check(self, good: bool, problem: str) -> None:
        self.cases += 1
        if good:
            self.ok += 1
        else:
            self.bad += 1
            if len(self.problems) < 20:
                self.problems.append(problem)

    def run(self, fn: Callable[[], Any], problem: str) -> Any:
        """``fn()``; a non-CuralogError exception is counted as a traceback."""
        from curalog.errors import CuralogError

        try:
            return fn()
        except CuralogError as exc:
            return exc
        except Exception as exc:  # the defect class these campaigns look for
            self.tracebacks += 1
            self.problems.append(f"{problem}: {type(exc).__name__}: {exc}"[:300])
            return exc


def _aliases(work: Path, log: Path) -> list[Path]:
    sym = work / "sym.log"
    hard = work / "hard.log"
    dirlink = work / "dirlink"
    for p in (sym, hard, dirlink):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    sym.symlink_to(log)
    os.link(log, hard)
    dirlink.symlink_to(log.parent, target_is_directory=True)
    dotted = log.parent / ".." / log.parent.name / log.name
    return [log, sym, hard, dirlink / log.name, dotted]


def alias_writers(work: Path, rounds: int, proc_rounds: int, zyg: faultlib.Zygote) -> Tally:
    """Threads racing through five paths to one log (itself, a symlink, a hard link, a path
    through a symlinked folder, a path with ``..``): exactly one may win each round; and a
    second process through each alias while a victim appends: refused."""
    import curalog
    from curalog.errors import LogLockedError

    t = Tally()
    folder = faultlib.make_dataset(work / "ds", 2000, 20)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
    log = curalog.default_log_path(folder)
    paths = _aliases(work, log)
    for _ in range(rounds):
        barrier = threading.Barrier(len(paths))
        results: list[str] = []
        opened: list[Any] = []

        def worker(p: Path, barrier=barrier, results=results, opened=opened) -> None:
            barrier.wait()
            try:
                opened.append(curalog.open(folder, p))
                results.append("ok")
            except LogLockedError:
                results.append("locked")
            except Exception as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=worker, args=(p,)) for p in paths]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for c in opened:
            c.close()
        t.check(sorted(results) == ["locked"] * (len(paths) - 1) + ["ok"], f"round: {results}")
        t.count("thread rounds")
    for i in range(proc_rounds):
        holder = paths[i % len(paths)]
        contender = paths[(i + 1 + i // len(paths)) % len(paths)]
        if contender == holder:
            contender = paths[(i + 2) % len(paths)]
        done = threading.Event()

        def hold(holder=holder, i=i, done=done) -> None:
            zyg.run(
                {
                    "kind": "writer",
                    "folder": str(folder),
                    "log": str(holder),
                    "seed": i,
                    "phase": "ready",
                    "delay": 2.0,
                    "max_split_frac": 0.1,
                    "max_blob": 1 << 18,
                }
            )
            done.set()

        th = threading.Thread(target=hold)
        n0 = len(curalog.store.log.read_log(log).events)
        th.start()
        refused = None
        while not done.is_set():
            try:
                if len(curalog.store.log.read_log(log).events) > n0:  # the victim appends
                    break
            except Exception:
                pass
        at_attempt = len(curalog.store.log.read_log(log).events)
        try:
            curalog.open(folder, contender).close()
            refused = False
        except LogLockedError:
            refused = True
        except Exception as exc:
            refused = False
            t.problems.append(f"process round {i}: {type(exc).__name__}: {exc}")
        th.join()
        # The victim holds the lock from its open to its kill: if it appended after our
        # attempt, it held the lock during it. Otherwise it may have been killed already
        # (its time is up): the round says nothing.
        held = len(curalog.store.log.read_log(log).events) > at_attempt
        if not held and not refused:
            t.count("process rounds inconclusive (victim already killed)")
            continue
        t.check(bool(refused), f"process round {i}: {contender} not refused while {holder} held")
        t.count("process rounds")
        scan = curalog.store.log.read_log(log)
        if scan.corruption:  # the victim was killed mid-append: its torn tail is fine
            t.problems.append(f"after process round {i}: {scan.corruption}")
    return t


def boundary_cuts(work: Path) -> Tally:
    """Every cut of a log with its tail state: detected (records missing) unless it is the
    whole file; and the same cuts with no tail state (a log copied alone): undetectable."""
    import curalog
    from curalog.store.log import read_log, state_path

    t = Tally()
    folder, log, data = faultlib.build_small_log(work / "cuts")
    state = state_path(log).read_bytes()
    first, ends = faultlib.prefix_counts(data)
    target = work / "cuts" / "c.log"
    for with_state in (True, False):
        for n in range(first, len(data) + 1):
            target.write_bytes(data[:n])
            lock = state_path(target)
            if with_state:
                lock.write_bytes(state)
            else:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
            scan = t.run(lambda: read_log(target), f"cut {n}")
            if not hasattr(scan, "events"):
                continue
            if n == len(data):
                t.check(
                    scan.corruption is None, f"the whole log read as damaged: {scan.corruption}"
                )
                continue
            boundary = n in ends or n == first
            key = ("at a record boundary" if boundary else "inside a record") + (
                ", with tail state" if with_state else ", log alone"
            )
            t.count(key)
            if with_state:
                t.check(scan.lost is not None, f"cut at {n} not detected")
                t.count(f"{key}: detected", int(scan.lost is not None))
                opened = t.run(lambda: curalog.open(folder, target).close(), f"open cut {n}")
                t.check(opened is not None, f"cut at {n} opened for writing")
            else:
                t.count(f"{key}: detected", int(scan.lost is not None or not boundary))
    return t


def damage_and_repair(work: Path, flips_per_record: int = 3) -> Tally:
    """A byte flipped inside each record of a 12-event log: fsck counts the intact records
    after it, repair keeps the prefix and sets exactly those aside; a byte flipped at each
    position of the file head and header: repair recovers every event."""
    import curalog
    from curalog.binding import make_header
    from curalog.dataset import load_dataset
    from curalog.store.log import read_log
    from curalog.store.repair import inspect_log, read_salvage, repair_log

    t = Tally()
    folder = faultlib.make_dataset(work / "rep" / "ds", 3000, 30)
    log = work / "rep" / "good.log"
    with curalog.open(folder, log) as cur:
        for k in range(12):
            if k % 3:
                cur.merge([2 * k + 1, 2 * k + 2])
            else:
                cur.label([2 * k + 1], group="good")
        digest = faultlib.state_digest(cur)
    data = log.read_bytes()
    scan = read_log(log)
    ends = [*scan.offsets[1:], scan.good_end]
    target = work / "rep" / "t.log"
    rng = np.random.default_rng(0)
    n = len(scan.events)
    for k, (start, end) in enumerate(zip(scan.offsets, ends, strict=True)):
        for _ in range(flips_per_record):
            buf = bytearray(data)
            buf[int(rng.integers(start, end))] ^= 1 << int(rng.integers(0, 8))
            target.write_bytes(bytes(buf))
            for p in target.parent.glob("t.log.*"):
                p.unlink()
            ins = t.run(lambda: inspect_log(target), f"inspect record {k + 1}")
            if not hasattr(ins, "intact_after"):
                continue
            t.check(
                len(ins.intact_after) == n - k - 1,
                f"record {k + 1}: intact after {len(ins.intact_after)}",
            )
            res = t.run(lambda: repair_log(target), f"repair record {k + 1}")
            if not hasattr(res, "kept"):
                continue
            salvage = read_salvage(res.side) if res.side else []
            recs = [i for i in salvage if i.get("kind") == "record"]
            t.check(
                res.kept == k
                and len(recs) == n - k - 1
                and salvage[-1]["data"] == bytes(buf)[start:],
                f"record {k + 1}: kept {res.kept}, set aside {len(recs)}",
            )
            t.count("record flips")
            t.count("intact records set aside", len(recs))
    header_end = scan.offsets[0]
    for pos in range(header_end):
        buf = bytearray(data)
        buf[pos] ^= 0x20
        target.write_bytes(bytes(buf))
        for p in target.parent.glob("t.log.*"):
            p.unlink()
        detected = t.run(lambda: read_log(target), f"header flip {pos}")
        detected = not hasattr(detected, "events") or bool(detected.corruption)
        t.count("header flips")
        t.count("header flips detected", int(detected))
        if not detected:
            continue  # (a flip that leaves an equivalent header, e.g. in a msgpack pad)
        res = t.run(
            lambda: repair_log(target, lambda: make_header(load_dataset(folder), "repair")),
            f"header repair {pos}",
        )
        if not hasattr(res, "kept"):
            t.check(False, f"header flip at {pos}: not recovered ({res})")
            continue

        def state_after():
            with curalog.open(folder, target, readonly=True) as cur:
                return cur.seq, faultlib.state_digest(cur)

        got = t.run(state_after, f"open after header repair {pos}")
        t.check(got == (n, digest), f"header flip at {pos}: {got}")
        t.count("header flips recovered with every event", int(got == (n, digest)))
    return t


def planted_links(work: Path) -> Tally:
    """Symlinks planted at the lock file and at every side-file name curalog creates
    (torn-tail and salvage files, with their time stamp pinned): the target is never written."""
    import time as time_mod

    import curalog
    from curalog.store import log as logmod
    from curalog.store import repair as repmod

    t = Tally()
    victim = work / "precious.txt"
    folder = faultlib.make_dataset(work / "links" / "ds", 2000, 20)
    real = time_mod.strftime
    for case in ("lock", "torn", "salvage", "lock-hardlink"):
        victim.write_text("keep me")
        log = work / "links" / f"{case}.log"
        with curalog.open(folder, log) as cur:
            cur.merge([1, 2])
            cur.merge([3, 4])
        data = log.read_bytes()
        lock = logmod.state_path(log)
        try:
            logmod.time.strftime = lambda *a: "T"  # predictable side-file names
            if case == "lock":
                lock.unlink()
                lock.symlink_to(victim)
                t.run(lambda log=log: curalog.open(folder, log).close(), case)
            elif case == "lock-hardlink":
                lock.unlink()
                os.link(victim, lock)
                t.run(lambda log=log: curalog.open(folder, log).close(), case)
            elif case == "torn":
                last = curalog.store.log.read_log(log).offsets[-1]
                log.write_bytes(data + data[last:-5])
                (log.parent / f"{log.name}.torn-T-{os.getpid()}").symlink_to(victim)
                t.run(lambda log=log: curalog.open(folder, log).close(), case)
            else:
                buf = bytearray(data)
                buf[curalog.store.log.read_log(log).offsets[1] + 20] ^= 1
                log.write_bytes(bytes(buf))
                (log.parent / f"{log.name}.salvage-T-{os.getpid()}").symlink_to(victim)
                t.run(lambda log=log: repmod.repair_log(log), case)
        finally:
            logmod.time.strftime = real
        t.check(victim.read_text() == "keep me", f"{case}: the symlink target was written")
    return t


CONTROL = [chr(c) for c in [*range(0, 32), 127]] + ["\u202e", "\u200b", "\u2066"]


def hostile_inputs(work: Path) -> Tally:
    """Field names with every control character and the sorter's column names (API, replay,
    fsck and export agree), TSV encodings, odd ids, nested rules, terminal escapes."""
    import curalog
    from curalog.analysis.autolabel import RuleError, parse_rule
    from curalog.cli import main
    from curalog.errors import CuralogError, InvalidActionError

    t = Tally()
    folder = faultlib.make_dataset(work / "hostile" / "ds", 2000, 20)
    header = faultlib.header_for(folder)

    def quiet_main(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return code, out.getvalue(), err.getvalue()

    names = [f"a{c}b" for c in CONTROL] + [
        "KSLabel",
        "contampct",
        "Amplitude",
        "..",
        "a/b",
        "n_spikes",
    ]
    for name in names:
        with curalog.open(folder) as cur:
            api = t.run(lambda cur=cur, name=name: cur.label([5], field=name, value="x"), "api")
        log = work / "hostile" / "n.log"
        body = {"clusters": [5], "field": name, "value": "x", "previous": [[5, None]]}
        faultlib.craft_log(log, header, [("label", body)])
        replay = t.run(lambda log=log: curalog.open(folder, log, readonly=True).close(), "replay")
        code, _, _ = t.run(
            lambda log=log: quiet_main("fsck", str(folder), "--log", str(log)), "fsck"
        )
        t.check(
            isinstance(api, InvalidActionError) and isinstance(replay, CuralogError) and code == 1,
            f"field {name!r}: api {api!r}, replay {replay!r}, fsck {code}",
        )
        t.count("field names")
    groups = "cluster_id\tgroup\r\n0\tgood\r\n1\tmua\r\n"
    encodings = {
        "utf-8-sig": (groups.encode("utf-8-sig"), True),
        "utf-16": (groups.encode("utf-16"), True),
        "utf-16-be+bom": (b"\xfe\xff" + groups.encode("utf-16-be"), True),
        "utf-32": (groups.encode("utf-32"), True),
        "latin-1": (("cluster_id\tgroup\r\n0\tgoo\xe9\r\n").encode("latin-1"), False),
        "utf-16 no bom": (groups.encode("utf-16-le"), False),
        "full-width id": ("cluster_id\tgroup\r\n\uff11\tgood\r\n".encode(), False),
    }
    for name, (raw, readable) in encodings.items():
        d = faultlib.make_dataset(work / "hostile" / f"enc-{name}", 500, 5, groups=False)
        (d / "cluster_group.tsv").write_bytes(raw)
        res = t.run(lambda d=d: curalog.open(d, readonly=True), f"encoding {name}")
        if readable:
            ok = hasattr(res, "group") and res.group(0) == "good" and res.group(1) == "mua"
        else:
            ok = isinstance(res, CuralogError) and "line" in str(res)
        if hasattr(res, "close"):
            res.close()
        t.check(ok, f"encoding {name}: {res!r}")
        t.count("TSV encodings")
    for bad in (" 1", "\uff11", "1 ", "+1", "1_0", "0x1", "١"):
        code, _, err = quiet_main("merge", str(folder), bad, "2")
        t.check(code == 2 and len(err.strip().splitlines()) == 1, f"id {bad!r}: {code}")
        t.count("odd ids")
    for depth in (51, 200, 1000, 5000):
        for text in (
            "(" * depth + "fr > 1" + ")" * depth + " -> good",
            "not " * depth + "fr > 1 -> good",
            "-" * depth + "fr > 1 -> good",
            "abs(" * depth + "fr" + ")" * depth + " > 1 -> good",
        ):
            try:
                parse_rule(text)
                res: Any = None
            except RuleError as exc:  # (its second line is a caret under the column)
                res = exc
            except Exception as exc:
                t.tracebacks += 1
                res = exc
            t.check(
                isinstance(res, RuleError) and "nested" in str(res).splitlines()[0],
                f"depth {depth}: {res!r}"[:200],
            )
            t.count("nested rules")
    esc = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u202e"
    with curalog.open(folder, author=f"eve{esc}") as cur:
        cur.label([6], group="good", reason=f"why{esc}")
        cur.note("x", f"note{esc}")
    for cmd in ("log", "info"):
        code, out, err = quiet_main(cmd, str(folder))
        t.check("\x1b" not in out + err and "\u202e" not in out + err, f"{cmd}: raw escape printed")
        t.count("escape outputs")
    with curalog.open(folder, readonly=True) as cur:
        t.check(any(esc in e.author for e in cur.events), "escapes not kept in the log")
    return t


def serve_probes() -> Tally:
    """Requests to a served UI with and without the token, from other origins and hosts."""
    import asyncio

    from aiohttp import WSServerHandshakeError
    from aiohttp.test_utils import TestClient, TestServer

    from curalog_tui.serve_auth import COOKIE, guard_for, make_server_class

    t = Tally()
    token = "campaign-token-0123456789"
    Server = make_server_class()
    server = Server("true", guard=guard_for("127.0.0.1", token, allow_remote=False))

    async def quiet(app) -> None:  # (textual-serve's start-up banner)
        return None

    server.on_startup = quiet
    origins = ["http://evil.example.com", "null", "", "http://127.0.0.1:1", "https://HOST.evil"]
    hosts = ["evil.example.com:8000", "127.0.0.1.nip.io", "10.0.0.1:8000"]

    async def probe():
        app = await server._make_app()
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            here = f"{client.host}:{client.port}"
            for params in ({}, {"token": "x"}, {"token": token[:-1]}, {"token": token}):
                r = await client.get("/", params=params)
                want = 200 if params.get("token") == token else 403
                t.check(r.status == want, f"page {params}: {r.status}")
                t.count("page requests")
            for host in hosts:
                r = await client.get("/", params={"token": token}, headers={"Host": host})
                t.check(r.status == 403, f"host {host}: {r.status}")
                t.count("foreign Host headers")
            for origin in origins:
                for auth in ({"Cookie": f"{COOKIE}={token}"}, {}):
                    headers = {**auth}
                    if origin:
                        headers["Origin"] = origin.replace("HOST", here)
                    try:
                        ws = await client.ws_connect(
                            "/ws", headers=headers, params={"token": token} if not auth else None
                        )
                        await ws.close()
                        status = 101
                    except WSServerHandshakeError as exc:
                        status = exc.status
                    t.check(status == 403, f"socket from {origin!r}: {status}")
                    t.count("foreign-origin sockets")
            client.session.cookie_jar.clear()  # another browser: no cookie from the page
            for headers in ({"Origin": f"http://{here}"},):
                try:
                    ws = await client.ws_connect("/ws", headers=headers)
                    await ws.close()
                    status = 101
                except WSServerHandshakeError as exc:
                    status = exc.status
                t.check(status == 403, f"socket without token: {status}")
                t.count("tokenless sockets")

    asyncio.run(probe())
    return t
