"""The recording's length, which every rate-like metric divides by.

``presence_ratio``, ``firing_rate``, ``isi_violations_ratio``, ``rp_contamination``,
``firing_range``, ``amplitude_cv`` and the drift bins all depend on the total duration ``T``.
Taking ``T`` as the last spike time (what curalog did before) makes it slightly *shorter*
than the recording: a 60 s SpikeInterface export whose last spike is at 59.998 s has no
complete 60 s presence bin, so every presence ratio was NaN, and ISI ratios were off by the
same factor. The rule now, in order:

1. **the raw file's size** when ``params.py``'s ``dat_path`` names file(s) that exist:
   ``n_samples = (bytes - offset) // (n_channels_dat * itemsize(dtype))`` summed over the
   files (this is what a SpikeInterface ``BinaryRecordingExtractor`` reports);
2. else **the last spike plus one second**, ``int((last_spike / fs + 1) * fs)`` samples:
   SpikeInterface's ``read_kilosort_as_analyzer`` gives a folder without recording a mock
   recording of exactly that length ("kilosort occasionally contains a few spikes just
   beyond the recording end point ... we pad the recording with an extra second"), so the
   metrics agree with what a SpikeInterface user gets from the same folder.

The chosen rule is reported as ``source`` ("raw file" or "last spike + 1 s").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Timebase", "recording_timebase"]

_SOURCE_RAW = "raw file"
_SOURCE_SPIKES = "last spike + 1 s"


@dataclass(frozen=True)
class Timebase:
    """Total samples of the recording, its duration in seconds and where they come from."""

    total_samples: int
    sample_rate: float
    source: str

    @property
    def duration(self) -> float:
        return self.total_samples / self.sample_rate


def _raw_paths(dataset: Any) -> list[Path]:
    params = getattr(dataset, "params", None) or {}
    dat = params.get("dat_path")
    if dat is None or dat == "None":
        return []
    items = dat if isinstance(dat, (list, tuple)) else [dat]
    folder = Path(getattr(dataset, "path", "."))
    out = []
    for item in items:
        if not isinstance(item, str) or not item or item == "None":
            return []
        p = Path(item)
        if not p.is_absolute():
            p = folder / p
        if not p.is_file():
            return []
        out.append(p)
    return out


def raw_file_samples(dataset: Any) -> int | None:
    """Samples of the raw file(s) named by ``params.py``, or None when unusable."""
    paths = _raw_paths(dataset)
    if not paths:
        return None
    params = dataset.params
    try:
        n_ch = int(params.get("n_channels_dat"))
        itemsize = np.dtype(str(params.get("dtype", "int16"))).itemsize
        offset = int(params.get("offset", 0) or 0)
    except (TypeError, ValueError):
        return None
    if n_ch <= 0:
        return None
    total = 0
    for p in paths:
        size = p.stat().st_size - offset
        if size < 0:
            return None
        total += size // (n_ch * itemsize)
    return int(total) if total > 0 else None


def recording_timebase(dataset: Any, recording: Any = None) -> Timebase:
    """The recording's length (see the module docstring for the rule).

    ``recording`` (a :class:`curalog.recording.Recording`, when one is open) wins: its
    ``n_samples`` is the raw file's length.
    """
    fs = float(dataset.sample_rate)
    n = getattr(recording, "n_samples", None) if recording is not None else None
    if n is None:
        n = raw_file_samples(dataset)
    times = dataset.spike_times
    last = int(times[-1]) if times.shape[0] else 0
    if n is not None and n > 0:
        return Timebase(max(int(n), last + 1), fs, _SOURCE_RAW)
    return Timebase(int((last / fs + 1.0) * fs), fs, _SOURCE_SPIKES)
