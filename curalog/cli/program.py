"""The ``curalog`` command.

Every subcommand takes the dataset folder first and ``--log PATH`` (default
``DIR/.curalog/main.log``) so that read-only dataset folders work too. Bad input prints one
line to stderr and exits with status 2, having written nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curalog._version import __version__
from curalog.atomic import save_npy_atomic
from curalog.binding import make_header
from curalog.cli import autolabel as autolabel_cli
from curalog.cli import clusters as clusters_cli
from curalog.cli import history as history_cli
from curalog.cli import proposals as proposals_cli
from curalog.cli import ui as ui_cli
from curalog.cli import warmup as warmup_cli
from curalog.cli import waveforms as waveforms_cli
from curalog.cli.demo import run_demo
from curalog.cli.progress import progress_bar
from curalog.cli.safe_text import printable
from curalog.cli.waveforms import add_raw_argument
from curalog.curation import Curation, default_log_path, open_curation
from curalog.dataset import load_dataset, parse_value
from curalog.errors import CuralogError
from curalog.events import RedoBody, UndoBody
from curalog.io.phy import export_phy, export_status
from curalog.io.spikeinterface import export_curation
from curalog.store.log import RECOVERY_HANDLERS, default_author, read_state
from curalog.store.repair import inspect_log, repair_log
from curalog.synth.generator import synthesize

EXIT_USAGE = 2


class CliError(CuralogError):
    """A bad command-line argument."""


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _err(message: str) -> None:
    print(f"curalog: error: {printable(message)}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"curalog: warning: {printable(message)}", file=sys.stderr)


#: Exit status of a command that did its work on a damaged log (``log``, ``info``, ``fsck``):
#: the output is the valid part only (docs/LOG_FORMAT.md "Exit status").
EXIT_DAMAGED = 1


def _damage_warning(cur: Curation) -> int:
    """One line on stderr when the log read is damaged; the exit status to return."""
    if not cur.corruption:
        return 0
    _warn(
        f"the log is damaged; shown: its {len(cur.events)} valid events ({cur.corruption}); "
        "see curalog fsck"
    )
    return EXIT_DAMAGED


_ID_RE = re.compile(r"[0-9]+")


def _ids(values: Sequence[str]) -> list[int]:
    """Cluster ids from arguments: ``3 7``, ``3,7`` or ``3-5`` (ASCII digits only: ``' 1'``
    or a full-width ``１`` is refused, not read as 1)."""
    out: list[int] = []
    for raw in values:
        for part in str(raw).split(","):
            if not part:
                continue
            lo, dash, hi = part.partition("-")
            if not _ID_RE.fullmatch(lo) or (dash and not _ID_RE.fullmatch(hi)):
                raise CliError(f"not a cluster id: {part!r}")
            if dash:
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(lo))
    return out


def _load_npy_arg(path: str, what: str) -> np.ndarray:
    """A 1-D integer array from a ``.npy`` file (an ``(n, 1)`` column is accepted)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise CliError(f"{what} {p}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{what} {p}: is a folder, not a .npy file") from None
    except OSError as exc:
        raise CliError(f"{what} {p}: cannot be read ({exc.strerror})") from None
    if magic != b"\x93NUMPY":
        raise CliError(f"{what} {p}: not a .npy file (write it with numpy.save(path, indices))")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if "pickle" in first:
            first = "it holds Python objects, not numbers"
        raise CliError(f"{what} {p}: not a readable .npy file ({first})") from None
    if not isinstance(arr, np.ndarray):
        raise CliError(f"{what} {p}: not a single array")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise CliError(f"{what} {p}: expected a 1-D array of indices, got shape {arr.shape}")
    return arr


def _open(args: argparse.Namespace, *, readonly: bool = False, upto: int | None = None) -> Curation:
    return open_curation(
        args.dir, args.log, author=getattr(args, "author", None), readonly=readonly, upto=upto
    )


# ---------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace) -> int:
    from rich.markup import escape

    log_path = Path(args.log) if args.log else default_log_path(args.dir)
    with open_curation(args.dir, args.log, readonly=True) as cur:
        ds = cur.dataset
        groups = Counter(g or "unsorted" for g in cur.groups().values())
        info: dict[str, Any] = {
            "dataset": ds.describe(),
            "fingerprint": ds.fingerprint.short(),
            "log": str(log_path),
            "log_exists": log_path.exists(),
            "events": len(cur.events),
            "seq": cur.seq,
            "head": cur.head_hash.hex()[:12] if cur.events else None,
            "authors": sorted({e.author for e in cur.events}),
            "clusters": cur.n_clusters,
            "groups": dict(sorted(groups.items())),
            "undo_depth": cur.undo_depth,
            "export": export_status(cur) if log_path.exists() else "never exported",
            "corruption": cur.corruption,
        }
        phy = ds.phy_spike_clusters()
        if phy is None:
            info["spike_clusters.npy"] = "absent"
        elif np.array_equal(phy, cur.state.spike_clusters):
            info["spike_clusters.npy"] = "matches the log"
        elif np.array_equal(phy, ds.spike_templates):
            info["spike_clusters.npy"] = "the sorter's output (uncurated)"
        else:
            n_diff = int(np.count_nonzero(phy != cur.state.spike_clusters))
            info["spike_clusters.npy"] = (
                f"differs from the log on {n_diff} spikes (edited by phy? see curalog import --from-phy)"
            )
    status = EXIT_DAMAGED if info["corruption"] else 0
    if args.json:
        print(json.dumps(info, indent=1))
        return status
    con = _console()
    d = info["dataset"]
    con.print(
        f"[bold]{d['path']}[/bold]  {d['n_spikes']:,} spikes, {d['n_templates']} templates, "
        f"{d['sample_rate']:g} Hz, {d['duration_s']:.1f} s  (fingerprint {info['fingerprint']})"
    )
    if not info["log_exists"]:
        con.print(f"log: {info['log']} (not created yet: the first action creates it)")
    else:
        con.print(
            f"log: {info['log']}  {info['events']} events, seq {info['seq']}, head {info['head']}, "
            f"undo depth {info['undo_depth']}, export {info['export']}"
        )
        if info["authors"]:
            con.print(f"authors: {', '.join(map(printable, info['authors']))}", markup=False)
    con.print(
        f"clusters: {info['clusters']}  " + "  ".join(f"{k} {v}" for k, v in info["groups"].items())
    )
    con.print(f"spike_clusters.npy: {info['spike_clusters.npy']}")
    if info["corruption"]:
        con.print(
            f"[red]log damaged: {escape(printable(info['corruption']))}[/red] (curalog fsck --repair)"
        )
    return status


def cmd_merge(args: argparse.Namespace) -> int:
    ids = _ids(args.clusters)
    with _open(args) as cur:
        new = cur.merge(ids, meta={"source": "cli"})
    print(new)
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    spikes = _load_npy_arg(args.spikes, "--spikes")
    labels = _load_npy_arg(args.labels, "--labels") if args.labels else None
    with _open(args) as cur:
        new = cur.split(spikes, labels, meta={"source": "cli", "file": str(args.spikes)})
    print(" ".join(map(str, new)))
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    ids = _ids(args.clusters)
    if (args.group is None) == (args.field is None):
        raise CliError("give either --group or --field NAME --value VALUE")
    with _open(args) as cur:
        if args.group is not None:
            cur.label(ids, group=args.group, reason=args.reason)
        else:
            if args.value is None:
                raise CliError("--field needs --value (use --value '' to clear)")

            value = None if args.value == "" else parse_value(args.value)
            cur.label(ids, field=args.field, value=value, reason=args.reason)
    return 0


def _undo_or_redo(args: argparse.Namespace, verb: str) -> int:
    with _open(args) as cur:
        update = cur.undo() if verb == "undo" else cur.redo()
        if update is None:
            print(f"nothing to {verb}")
            return 0
        move = cur.events[-1].data
        assert isinstance(move, UndoBody | RedoBody)
        target = move.target
        print(f"{verb} #{target}: {cur.events[target - 1].summary()}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    return _undo_or_redo(args, "undo")


def cmd_redo(args: argparse.Namespace) -> int:
    return _undo_or_redo(args, "redo")


def cmd_log(args: argparse.Namespace) -> int:
    import datetime as dt

    with _open(args, readonly=True) as cur:
        events = cur.history
        if args.json:
            for e in events:
                body = {
                    k: v
                    for k, v in e.body.items()
                    if not isinstance(v, (bytes, dict)) or k == "meta"
                }
                print(
                    json.dumps(
                        {
                            "seq": e.seq,
                            "type": e.type,
                            "time": e.time_ns / 1e9,
                            "author": e.author,
                            "hash": e.hash.hex(),
                            "summary": e.summary(),
                            "body": body,
                        },
                        default=str,
                    )
                )
            return _damage_warning(cur)
        con = _console()
        for e in events:
            when = dt.datetime.fromtimestamp(e.time_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")
            con.print(
                f"{e.seq:>5}  {when}  {e.short_hash}  {printable(e.author):<18}  "
                f"{printable(e.summary())}",
                markup=False,
            )
        if not events:
            con.print("(no events)")
        return _damage_warning(cur)


def cmd_replay(args: argparse.Namespace) -> int:

    with _open(args, readonly=True, upto=args.upto) as cur:
        cur.require_intact(args.upto)
        if args.upto is not None and args.upto > len(cur.events) and args.upto > cur.seq:
            raise CliError(f"--upto {args.upto}: the log has only {cur.seq} events")
        save_npy_atomic(args.out, np.ascontiguousarray(cur.state.spike_clusters, dtype=np.int32))
        print(f"wrote {args.out}: state at seq {cur.seq}, {cur.n_clusters} clusters")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format
    with open_curation(args.dir, args.log, readonly=True, raw=args.raw) as cur:
        if args.raw and cur.recording is None:
            raise CliError(f"--raw: {cur.recording_error}")
        if fmt == "phy":
            res = _export_with_progress(cur, args.out, metrics=not args.no_metrics)
            for b in res.backups:
                print(f"kept the previous {b.name.split('-')[0]} in {b}")
            print(
                f"exported seq {res.seq} ({cur.n_clusters} clusters) to {res.out}: "
                + ", ".join(p.name for p in res.files)
            )
        else:
            if not args.out:
                raise CliError("--format spikeinterface needs --out FILE.json")
            path = export_curation(cur, args.out)
            print(f"wrote {path}")
    return 0


def _export_with_progress(cur: Curation, out: str | None, *, metrics: bool) -> Any:
    """:func:`export_phy` with a progress bar on stderr while the metrics compute."""
    label = "computing metrics for cluster_info.tsv"
    with progress_bar(label, cur.n_clusters, show=metrics) as progress:
        return export_phy(cur, out, metrics=metrics, progress=progress)


def cmd_fsck(args: argparse.Namespace) -> int:
    """Exit status: 0 intact (or repaired), 1 damage found, 2 the log cannot be checked."""

    log_path = Path(args.log) if args.log else default_log_path(args.dir)
    ins = inspect_log(log_path)
    damaged = False
    torn = False
    if ins.scan is None:
        damaged = True
        print(f"DAMAGED header: {printable(ins.header_error)}")
        if ins.intact_after:
            print(f"{len(ins.intact_after)} intact records follow (events {ins.intact_seqs})")
        if ins.header_fix:
            print(f"--repair: {ins.header_fix}")
        elif ins.intact_after or ins.curalog_magic:
            print(
                "--repair: rebuilds the header from DIR's dataset and re-chains the intact "
                "records (the head hash changes)"
            )
        else:
            print("--repair: nothing to recover (no curalog header, no intact record)")
    else:
        scan = ins.scan
        torn = scan.torn
        print(f"{log_path}: {len(scan.events)} valid events, head {scan.head_hash.hex()[:12]}")
        if scan.torn:
            print(
                f"torn last record at byte {scan.good_end}: an interrupted write, never "
                "acknowledged (cut off and kept in a side file on the next writable open)"
            )
        if scan.corruption:
            damaged = True
            print(f"DAMAGED: {printable(scan.corruption)}")
            if ins.damage_at is not None:
                print(
                    f"{len(ins.intact_after)} intact record(s) follow the damage"
                    + (f" (events {ins.intact_seqs})" if ins.intact_after else "")
                    + "; --repair keeps the valid prefix and sets them aside in a salvage file"
                )
        if read_state(log_path) is None:
            print(
                "note: no tail state beside the log (its .lock file): a cut exactly at a record "
                "boundary cannot be detected"
            )
        try:
            with open_curation(args.dir, log_path, readonly=True, verify=True) as cur:
                print(
                    f"replay OK (every event re-resolved and checked): seq {cur.seq}, "
                    f"{cur.n_clusters} clusters"
                    + (" (the valid prefix)" if scan.corruption or scan.torn else "")
                )
        except CuralogError as exc:
            print(f"replay FAILED: {printable(exc)}")
            damaged = True
    if args.repair and (damaged or torn):
        res = repair_log(
            log_path,
            rebuild_header=lambda: make_header(load_dataset(args.dir), default_author()),
        )
        print(f"repaired: {printable(res.summary(log_path))}")
        return 0
    return EXIT_DAMAGED if damaged else 0


def cmd_synth(args: argparse.Namespace) -> int:

    out = Path(args.out)
    if (out / "spike_times.npy").exists():
        raise CliError(f"{out}: already holds a dataset (spike_times.npy); choose another folder")
    if args.spikes <= 0 or args.templates <= 0:
        raise CliError("--spikes and --templates must be positive")
    with progress_bar(f"writing {args.spikes:,} spikes", percent=True) as cb:
        info = synthesize(
            args.out,
            n_spikes=args.spikes,
            n_templates=args.templates,
            seed=args.seed,
            n_channels=args.channels,
            legacy_quirks=args.legacy,
            pc_features=args.features,
            drift=args.drift,
            progress=cb,
            recording=args.recording,
            recording_progress=cb,
        )
    print(
        f"wrote {info.path}: {info.n_spikes:,} spikes, {info.n_templates} templates "
        f"({info.n_units} true units), {info.duration:.1f} s"
    )
    size = f"{info.recording_bytes / 1e9:.2f} GB"
    if info.recording is not None:
        print(f"raw recording {info.recording.name}: {size}, int16, 0.195 µV per bit")
    elif args.recording is None:
        print(f"no raw recording: it would take {size} (--recording writes it anyway)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:

    return run_demo(
        Path(args.dir), n_spikes=args.spikes, n_templates=args.templates, seed=args.seed
    )


# ---------------------------------------------------------------------- parser
HELP = """\
curalog: curate Kilosort/phy spike sorting with an append-only, crash-safe history.

Every merge, split and label is an event in DIR/.curalog/main.log (or --log PATH);
replaying the log over spike_templates.npy rebuilds spike_clusters.npy exactly as phy
would. Start with `curalog demo` or `curalog info DIR`.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with curalog's error convention: one line on stderr, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        hint = f" (see {self.prog} --help)"
        _err(message.replace("\n", " ") + hint)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="curalog", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"curalog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help_: str,
        *,
        dataset: bool = True,
        author: bool = False,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        if dataset:
            p.add_argument("dir", metavar="DIR", help="Kilosort/phy output folder")
            p.add_argument(
                "--log", metavar="PATH", help="curation log (default: DIR/.curalog/main.log)"
            )
        if author:
            p.add_argument(
                "--author", help="recorded in the event (default: $CURALOG_AUTHOR or user@host)"
            )
        p.set_defaults(func=func)
        return p

    p = add("info", cmd_info, "summarise the dataset and its curation history")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("merge", cmd_merge, "merge clusters; prints the new cluster id", author=True)
    p.add_argument(
        "clusters", nargs="+", metavar="C", help="two or more cluster ids (3 7, 3,7 or 3-5)"
    )

    p = add(
        "split",
        cmd_split,
        "split spikes off their clusters (phy's split); prints the new ids",
        author=True,
    )
    p.add_argument("--spikes", required=True, metavar="FILE.npy", help="absolute spike indices")
    p.add_argument(
        "--labels", metavar="FILE.npy", help="relative labels, one per spike (phy's assign)"
    )

    p = add(
        "label",
        cmd_label,
        "label clusters: --group good|mua|noise|unsorted, or --field NAME --value V",
        author=True,
    )
    p.add_argument("clusters", nargs="+", metavar="C", help="cluster ids")
    p.add_argument("--group", choices=["good", "mua", "noise", "unsorted"])
    p.add_argument("--field", help="a free label field (e.g. comment, quality)")
    p.add_argument("--value", help="the field's value (numbers are stored as numbers; '' clears)")
    p.add_argument("--reason", help="why (kept in the log)")

    add(
        "undo",
        cmd_undo,
        "undo the latest action (recorded as an event; nothing is erased)",
        author=True,
    )
    add("redo", cmd_redo, "redo the latest undone action with the same cluster ids", author=True)

    p = add("log", cmd_log, "show the history, one line per event")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = add("replay", cmd_replay, "write spike_clusters at any point of history")
    p.add_argument(
        "--upto",
        type=int,
        metavar="SEQ",
        help="replay events up to this sequence number (default: all)",
    )
    p.add_argument(
        "--out", required=True, metavar="FILE.npy", help="output file (int32, like phy's)"
    )

    p = add(
        "export",
        cmd_export,
        "write spike_clusters.npy, cluster_group.tsv, cluster_<field>.tsv, cluster_info.tsv",
    )
    p.add_argument(
        "--out",
        metavar="OUTDIR",
        help="output folder (default: DIR itself, as phy does; an "
        "unexplained existing spike_clusters.npy is backed up first)",
    )
    p.add_argument("--format", choices=["phy", "spikeinterface"], default="phy")
    p.add_argument(
        "--no-metrics",
        action="store_true",
        help="leave the quality-metric columns out of cluster_info.tsv (phy's own columns "
        "stay; much faster on big sortings: the metrics are the long part of an export)",
    )
    add_raw_argument(p)

    p = add(
        "fsck",
        cmd_fsck,
        "verify the log (checksums, hash chain, replay); --repair cuts a damaged tail",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="cut the log after its last valid event (the rest is kept in a side file)",
    )

    p = add(
        "synth",
        cmd_synth,
        "write a synthetic Kilosort-style dataset (demo, tests, benchmarks)",
        dataset=False,
    )
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--spikes", type=int, default=200_000)
    p.add_argument("--templates", type=int, default=64)
    p.add_argument("--channels", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--legacy",
        action="store_true",
        help="old-Kilosort quirks: (n,1) shapes, unsigned dtypes, templates_ind.npy",
    )
    p.add_argument(
        "--features",
        action="store_true",
        help="also write pc_features and template_features (small datasets)",
    )
    p.add_argument(
        "--drift",
        action="store_true",
        help="realistic over-splitting: units drift and are split along "
        "the drift, with near-duplicate neighbours (ground truth in synth_truth.json)",
    )
    p.add_argument(
        "--recording",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the raw recording raw.dat (templates x amplitudes at the spike times, plus "
        "noise; int16). Default: when it takes at most 1 GiB",
    )

    p = add(
        "demo", cmd_demo, "generate a demo dataset and run a scripted curation on it", dataset=False
    )
    p.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        default="curalog-demo",
        help="where to put it (default ./curalog-demo)",
    )
    p.add_argument("--spikes", type=int, default=75_000)
    p.add_argument("--templates", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)

    ui_cli.register(add)  # tui, serve: the one module that imports curalog_tui
    for module in (
        history_cli,
        autolabel_cli,
        proposals_cli,
        waveforms_cli,
        clusters_cli,
        warmup_cli,
    ):
        module.register(add)
    return parser


def _recovered(message: str) -> None:
    print(f"curalog: recovered: {printable(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE

    handle = args.command not in ("tui", "serve")  # the UI shows recoveries itself
    if handle:
        RECOVERY_HANDLERS.append(_recovered)
    try:
        return int(args.func(args) or 0)
    except CuralogError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except PermissionError as exc:
        _err(
            f"{exc.filename or ''}: permission denied"
            + ("" if args.command == "export" else " (use --log PATH for read-only folders)")
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; every acknowledged action is already in the log")
        return 130
    except BrokenPipeError:
        os._exit(0)
    finally:
        if handle:
            RECOVERY_HANDLERS.remove(_recovered)


if __name__ == "__main__":
    sys.exit(main())
