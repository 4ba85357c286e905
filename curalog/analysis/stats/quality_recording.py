"""Quality metrics that need the raw recording: ``snr`` and ``amplitude_median``.

Only computed when a recording is open (:mod:`curalog.recording`: the raw file of
``params.py`` or ``--raw``, high-pass filtered as phy does when it is not already); without
one the columns are empty (None), never estimated from the templates.

noise level (per channel)
    SpikeInterface ``get_noise_levels`` (``method="mad"``, the ``noise_levels`` extension
    ``snr`` depends on): ``median(|x - median(x)|) / 0.6744897501960817`` of the filtered
    traces over 20 chunks of 10,000 samples at fixed pseudo-random positions (seed 0),
    concatenated. Computed once per recording.
spikes used
    Up to ``max_spikes`` (500, the size of SpikeInterface's ``random_spikes``) of the
    cluster's spikes, chosen by the same fixed per-spike hash as the PC subsample
    (:func:`curalog.analysis.stats.quality_pc.spike_hash`), in time order.
snr
    SpikeInterface ``compute_snrs`` (``method="extremum"``): the mean waveform of those
    spikes (1 ms before, 2 ms after, SpikeInterface's template window) on the cluster's best
    channel (:class:`curalog.templates.TemplateGeometry`: the dominant template's largest
    peak-to-peak), ``|extremum| / noise[best]``.
amplitude_median
    SpikeInterface ``compute_amplitude_medians``: the median of the spikes' amplitudes,
    each the filtered trace on the best channel at the spike's sample shifted to the mean
    waveform's extremum (SpikeInterface's ``spike_amplitudes`` with its template peak
    shift), in the recording's units (µV when ``params.py`` gives
    ``uv_per_bit`` or the file is float). SpikeInterface takes every spike; curalog the
    subsample above, so for a large cluster this is the median of 500 amplitudes.

Cost: one read of ``before + after + 2 * filter margin`` samples on one channel per
subsampled spike (about 1.8 k samples at 30 kHz), so at most ~1 M samples per cluster,
independent of its size; the noise pass reads 200 k samples x all channels once.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from curalog.analysis.stats.quality_pc import _below, _threshold

__all__ = ["RecordingMetrics", "MAD_TO_SD"]

MAD_TO_SD = 0.6744897501960817


class RecordingMetrics:
    """``snr`` and ``amplitude_median`` of clusters on one recording (thread-safe)."""

    def __init__(
        self,
        recording: Any,
        *,
        max_spikes: int = 500,
        ms_before: float = 1.0,
        ms_after: float = 2.0,
        n_chunks: int = 20,
        chunk_size: int = 10_000,
        seed: int = 0,
    ):
        self.recording = recording
        self.max_spikes = int(max_spikes)
        fs = float(recording.sample_rate)
        self.before = int(ms_before * fs / 1000.0)
        self.after = int(ms_after * fs / 1000.0)
        self.n_chunks = int(n_chunks)
        self.chunk_size = int(chunk_size)
        self.seed = int(seed)
        self._noise: np.ndarray | None = None
        self._lock = threading.Lock()

    def noise_levels(self) -> np.ndarray:
        """MAD noise level of every template channel (cached)."""
        with self._lock:
            if self._noise is not None:
                return self._noise
        rec = self.recording
        n = int(rec.n_samples)
        size = min(self.chunk_size, n)
        rng = np.random.default_rng(self.seed)
        starts = rng.integers(0, max(1, n - size + 1), self.n_chunks)
        data = np.concatenate([rec.traces(int(s), int(s) + size) for s in np.sort(starts)])
        med = np.median(data, axis=0)
        noise = np.median(np.abs(data - med), axis=0) / MAD_TO_SD
        with self._lock:
            self._noise = noise.astype(np.float64)
        return self._noise

    def spikes_used(self, spikes: np.ndarray) -> np.ndarray:
        p = _threshold(int(spikes.shape[0]), self.max_spikes)
        return _below(np.ascontiguousarray(spikes, dtype=np.int64), self.seed, p)

    def metrics(self, spikes: np.ndarray, times: np.ndarray, best_channel: int | None) -> dict:
        """``{"snr", "amplitude_median"}`` of one cluster (NaN without spikes or channel)."""
        out = {"snr": math.nan, "amplitude_median": math.nan}
        if best_channel is None or spikes.shape[0] == 0:
            return out
        rec = self.recording
        if not 0 <= int(best_channel) < rec.n_channels:
            return out
        used = self.spikes_used(spikes)
        if used.shape[0] == 0:
            return out
        # times of the used spikes: spikes and times are aligned and sorted
        t = times[np.searchsorted(spikes, used)]
        snips = rec.snippets(t, np.array([int(best_channel)]), self.before, self.after)[:, :, 0]
        mean = snips.astype(np.float64).mean(axis=0)
        noise = float(self.noise_levels()[int(best_channel)])
        peak = int(np.argmax(np.abs(mean)))
        out["snr"] = float(abs(mean[peak])) / noise if noise > 0 else math.nan
        out["amplitude_median"] = float(np.median(snips[:, peak].astype(np.float64)))
        return out
