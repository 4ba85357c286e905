"""``curalog waveforms``: a cluster's raw spike waveforms from the recording, to a .npz file.

Reads the raw file named by ``params.py`` (or ``--raw PATH``), high-pass filtered when the file
is not (phy's 150 Hz Butterworth; :mod:`curalog.recording`), and writes ``waveforms``
``(n_spikes, n_samples, n_channels)`` float32, ``spike_ids``, ``channel_ids`` (rows of the raw
file) and ``channels`` (template channels), ``mean``, ``amplitudes`` (peak-to-peak on the best
channel), ``before`` / ``after`` (samples around the spike) and ``uv_per_unit`` (NaN when the
file's units are unknown). Rules for the channels and spikes: :mod:`curalog.waveforms`.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from curalog.atomic import write_bytes_atomic
from curalog.curation import open_curation
from curalog.errors import CuralogError


class WaveformsCliError(CuralogError):
    """A bad argument to ``curalog waveforms``."""


def cmd_waveforms(args: argparse.Namespace) -> int:
    from rich.console import Console

    if args.n < 1:
        raise WaveformsCliError(f"--n must be at least 1 (got {args.n})")
    if args.channels is not None and args.channels < 1:
        raise WaveformsCliError(f"--channels must be at least 1 (got {args.channels})")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix != ".npz":
        raise WaveformsCliError(f"--out {out}: give a .npz file name")
    if out is not None and not out.parent.is_dir():
        raise WaveformsCliError(f"--out {out}: no such folder {out.parent}")
    with open_curation(args.dir, args.log, readonly=True, raw=args.raw) as cur:
        cur.require_intact()
        if cur.recording is None:
            raise WaveformsCliError(str(cur.recording_error))
        wf = cur.waveforms(args.cluster, n=args.n, channels=args.channels)
        rec = cur.recording
    if out is not None:
        buf = io.BytesIO()
        wf.to_npz(buf)
        write_bytes_atomic(out, buf.getvalue())
    amps = wf.amplitudes
    unit = "file units"
    if wf.uv_per_unit is not None:
        amps = amps * wf.uv_per_unit
        unit = "µV"
    con = Console(highlight=False, soft_wrap=True)
    med = float(np.median(amps)) if amps.size else float("nan")
    con.print(
        f"cluster {wf.cluster_id}: {wf.n_spikes} of {wf.n_cluster_spikes:,} spikes, "
        f"{wf.before}+{wf.after} samples, {len(wf.channels)} channels "
        f"(raw {', '.join(str(int(c)) for c in wf.channel_ids[:8])}"
        f"{', ...' if len(wf.channel_ids) > 8 else ''}); "
        f"peak-to-peak on channel {int(wf.channel_ids[0])}: median {med:.1f} {unit}"
    )
    con.print(f"recording: {rec.describe()}")
    if out is not None:
        con.print(f"wrote {out}")
    return 0


def add_raw_argument(p: argparse.ArgumentParser) -> None:
    """``--raw PATH`` (repeatable: files concatenated in time), overriding dat_path."""
    p.add_argument(
        "--raw",
        action="append",
        metavar="PATH",
        help="raw recording, overriding params.py's dat_path (repeat for files "
        "concatenated in time); n_channels_dat, dtype, offset still come from params.py",
    )


def register(add: Callable[..., Any]) -> None:
    """Add the ``waveforms`` subcommand to curalog's parser."""
    p = add(
        "waveforms",
        cmd_waveforms,
        "a cluster's raw spike waveforms (filtered as phy does) on its best channels",
    )
    p.add_argument("cluster", type=int, metavar="CLUSTER", help="cluster id")
    p.add_argument(
        "--n", type=int, default=100, help="spikes, spread over the whole recording (default 100)"
    )
    p.add_argument(
        "--channels",
        type=int,
        metavar="K",
        help="best channels to extract (default: the template's, up to 12)",
    )
    p.add_argument("--out", metavar="F.npz", help="write the waveforms here")
    add_raw_argument(p)
