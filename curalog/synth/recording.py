"""The raw recording of a synthetic dataset: templates x amplitudes at the spike times, plus noise.

:func:`write_recording` reads the per-spike files the generator has just written
(``spike_times.npy``, ``spike_templates.npy``, ``amplitudes.npy``) and ``templates.npy``, and
streams ``raw.dat``: **int16**, ``n_channels`` interleaved channels, at **0.195 µV per bit**
(Intan's gain; ``params.py`` gets ``uv_per_bit = 0.195``), ``hp_filtered = False``. Sample
``s`` of channel ``c`` is, in µV,

    sum over spikes i with 0 <= s - t_i + ns // 2 < ns of
        UV_PER_TEMPLATE_UNIT * amplitude_i * templates[template_i, s - t_i + ns // 2, c]
    + white Gaussian noise (sd NOISE_UV) + a slow oscillation (LFP_UV at LFP_HZ, one phase per
      channel)

rounded to the nearest bit, i.e. template sample ``ns // 2`` sits on the spike sample, which is
where phylib's ``extract_waveforms`` centres its window, and ``UV_PER_TEMPLATE_UNIT = 20``
makes a typical unit 50-300 µV peak to peak. The noise is drawn once (a bank of 2^17 samples
per channel, from the seed) and read at a pseudo-random offset per block of 2^15 samples, so
writing costs little more than the file's bytes; the slow oscillation is what the high-pass
filter of :mod:`curalog.recording` removes. The file ends one template length after the last
spike, is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

from curalog.atomic import write_bytes_atomic
from curalog.dataset import read_params

__all__ = [
    "LFP_HZ",
    "LFP_UV",
    "NOISE_UV",
    "RAW_FILE",
    "UV_PER_BIT",
    "UV_PER_TEMPLATE_UNIT",
    "raw_bytes",
    "write_recording",
]

RAW_FILE = "raw.dat"
UV_PER_BIT = 0.195
UV_PER_TEMPLATE_UNIT = 20.0
NOISE_UV = 10.0
LFP_UV = 40.0
LFP_HZ = 3.0
_BLOCK = 1 << 15
_BANK = 1 << 17


def raw_bytes(n_samples: int, n_channels: int) -> int:
    """Bytes of the raw file for a recording of ``n_samples`` samples (int16)."""
    return int(n_samples) * int(n_channels) * 2


@numba.njit(cache=True, nogil=True)
def _add_spikes(buf, start, times, tpl, amps, templates, scale, half):  # pragma: no cover
    """Add ``scale * amp * template`` of every spike overlapping ``buf`` (rows start..)."""
    n_t, n_c = buf.shape
    ns = templates.shape[1]
    for i in range(times.shape[0]):
        first = times[i] - half - start  # buffer row of template sample 0
        j0 = max(0, -first)
        j1 = min(ns, n_t - first)
        k = scale * amps[i]
        tp = templates[tpl[i]]
        for j in range(j0, j1):
            row = buf[first + j]
            for c in range(n_c):
                row[c] += k * tp[j, c]


@numba.njit(cache=True, nogil=True)
def _to_bits(buf, sin_w, cos_w, cos_phi, sin_phi, lfp, to_bits, out):  # pragma: no cover
    """``out = round((buf + lfp sin(w + phi)) * to_bits)`` clipped to int16."""
    n_t, n_c = buf.shape
    for t in range(n_t):
        for c in range(n_c):
            v = (buf[t, c] + lfp * (sin_w[t] * cos_phi[c] + cos_w[t] * sin_phi[c])) * to_bits
            v = min(32767.0, max(-32768.0, np.rint(v)))
            out[t, c] = np.int16(v)


def write_recording(
    folder: str | Path,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``folder/raw.dat`` for the synthetic dataset in ``folder`` (module docstring).

    Returns the path. The per-spike files are read memory-mapped, a block at a time: memory
    stays at a few MB whatever the recording's length. ``params.py`` gets ``uv_per_bit``.
    """
    folder = Path(folder)
    times = np.load(folder / "spike_times.npy", mmap_mode="r").reshape(-1)
    tpl = np.load(folder / "spike_templates.npy", mmap_mode="r").reshape(-1)
    amps = np.load(folder / "amplitudes.npy", mmap_mode="r").reshape(-1)
    templates = np.ascontiguousarray(np.load(folder / "templates.npy"), dtype=np.float32)
    sample_rate = _sample_rate(folder)
    n_t, ns, n_ch = templates.shape
    half = ns // 2
    n_samples = (int(times[-1]) if times.shape[0] else 0) + ns
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A3D]))
    bank = (rng.standard_normal((_BANK, n_ch), dtype=np.float32) * np.float32(NOISE_UV)).astype(
        np.float32
    )
    phase = rng.uniform(0, 2 * math.pi, n_ch)
    offsets = rng.integers(0, _BANK - _BLOCK, size=n_samples // _BLOCK + 1)
    to_bits = 1.0 / UV_PER_BIT
    cos_phi, sin_phi = np.cos(phase), np.sin(phase)
    final = folder / RAW_FILE
    tmp = folder / f".{RAW_FILE}.partial"
    try:
        with open(tmp, "wb") as f:
            for b, start in enumerate(range(0, n_samples, _BLOCK)):
                stop = min(n_samples, start + _BLOCK)
                buf = bank[offsets[b] : offsets[b] + stop - start].copy()
                lo = int(np.searchsorted(times, start - ns, side="left"))
                hi = int(np.searchsorted(times, stop + ns, side="right"))
                _add_spikes(
                    buf,
                    start,
                    np.asarray(times[lo:hi], dtype=np.int64),
                    np.asarray(tpl[lo:hi], dtype=np.int64),
                    np.asarray(amps[lo:hi], dtype=np.float64),
                    templates,
                    UV_PER_TEMPLATE_UNIT,
                    half,
                )
                w = 2 * math.pi * LFP_HZ * np.arange(start, stop, dtype=np.float64) / sample_rate
                bits = np.empty(buf.shape, dtype="<i2")
                _to_bits(buf, np.sin(w), np.cos(w), cos_phi, sin_phi, LFP_UV, to_bits, bits)
                f.write(bits.tobytes())
                if progress is not None:
                    progress(stop, n_samples)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    params = folder / "params.py"
    text = params.read_text()
    if "uv_per_bit" not in text:
        write_bytes_atomic(params, (text + f"uv_per_bit = {UV_PER_BIT}\n").encode())
    return final


def _sample_rate(folder: Path) -> float:

    return float(read_params(folder / "params.py")["sample_rate"])
