"""Quality metrics that need the raw recording: ``snr``, ``amplitude_median``, ``sd_ratio``.

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
    shift), in µV when the recording's gain is known (``params.py``'s ``uv_per_bit``, or
    a float file, which SpikeInterface and Kilosort 4 write in µV), else in file units, as
    SpikeInterface's ``return_in_uV``. SpikeInterface takes every spike; curalog the
    subsample above, so for a large cluster this is the median of 500 amplitudes.
raw_amplitude_uv (curalog's, not a SpikeInterface metric)
    The raw amplitude the table shows as ``amp[µV]`` and the detail panel as ``amp[µV]``:
    the peak-to-peak of that mean waveform on the best channel, in µV; None (empty) when
    the gain is unknown, never a guess.

sd_ratio
    SpikeInterface ``compute_sd_ratio`` (0.105 defaults: ``censored_period_ms=4``,
    ``correct_for_drift=True``, ``correct_for_template_itself=True``): spikes closer than
    4 ms to the previous *kept* spike are censored (``keep_first_iterative``, on the
    cluster's whole train); the unit's SD is ``std(diff(a)) / sqrt(2)`` of the kept
    spikes' amplitudes ``a`` in time order (differences of consecutive spikes cancel slow
    drift); the noise SD is SpikeInterface's ``get_noise_levels(method="std")`` on the best
    channel (the mean over the 20 chunks of each chunk's SD), less the variance the unit's
    own spikes add to the trace: with ``p = len(template) * n_spikes / n_samples``,
    ``noise^2 - (p * mean(t^2) - p^2 * mean(t)^2)``, ``t`` the mean waveform on the best
    channel. ``sd_ratio = unit SD / noise SD``; 0 for one kept spike, NaN for none.
    SpikeInterface takes every kept spike's amplitude; curalog at most ``max_spikes`` of
    them (the same hash subsample, drawn from the uncensored spikes), so a cluster of up
    to 500 spikes gets every spike, a larger one an SD from 500 amplitudes (relative
    standard error about ``1 / sqrt(2 * 500)``, 3 %).

Cost: one read of ``before + after + 2 * filter margin`` samples on one channel per
subsampled spike (about 1.8 k samples at 30 kHz), so at most ~1 M samples per cluster,
independent of its size; the noise pass reads 200 k samples x all channels once.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numba
import numpy as np

from curalog.analysis.stats.quality_pc import _below, _threshold

__all__ = ["RecordingMetrics", "MAD_TO_SD", "censor_keep_first"]

MAD_TO_SD = 0.6744897501960817


@numba.njit(cache=True, nogil=True)
def _censor_keep_first(times, period):  # pragma: no cover - numba
    keep = np.ones(times.shape[0], dtype=np.bool_)
    last = 0
    for i in range(1, times.shape[0]):
        if times[i] - times[last] <= period:
            keep[i] = False
        else:
            last = i
    return keep


def censor_keep_first(times: np.ndarray, period: int) -> np.ndarray:
    """Mask of the spikes kept when every spike within ``period`` samples of the previous
    kept one is dropped (SpikeInterface's ``find_duplicated_spikes(method=
    "keep_first_iterative")``, as a keep mask). ``times`` sorted."""
    return _censor_keep_first(np.ascontiguousarray(times, dtype=np.int64), int(period))


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
        censored_period_ms: float = 4.0,
    ):
        self.recording = recording
        self.max_spikes = int(max_spikes)
        fs = float(recording.sample_rate)
        self.before = int(ms_before * fs / 1000.0)
        self.after = int(ms_after * fs / 1000.0)
        self.n_chunks = int(n_chunks)
        self.chunk_size = int(chunk_size)
        self.seed = int(seed)
        self.censored_period = int(round(censored_period_ms * 1e-3 * fs))
        self._noise: np.ndarray | None = None
        self._noise_sd: np.ndarray | None = None
        self._lock = threading.Lock()

    def _chunks(self) -> list[np.ndarray]:
        rec = self.recording
        n = int(rec.n_samples)
        size = min(self.chunk_size, n)
        rng = np.random.default_rng(self.seed)
        starts = rng.integers(0, max(1, n - size + 1), self.n_chunks)
        return [rec.traces(int(s), int(s) + size) for s in np.sort(starts)]

    def noise_levels(self) -> np.ndarray:
        """MAD noise level of every template channel, and (:meth:`noise_sd`) the SD level,
        from one read of the noise chunks (both cached)."""
        with self._lock:
            if self._noise is not None:
                return self._noise
        chunks = self._chunks()
        data = np.concatenate(chunks)
        med = np.median(data, axis=0)
        noise = np.median(np.abs(data - med), axis=0) / MAD_TO_SD
        sd = np.mean([c.astype(np.float64).std(axis=0) for c in chunks], axis=0)
        with self._lock:
            self._noise = noise.astype(np.float64)
            self._noise_sd = sd
        return self._noise

    def noise_sd(self) -> np.ndarray:
        """SpikeInterface's ``method="std"`` noise level: the mean over chunks of each
        chunk's SD (cached with :meth:`noise_levels`)."""
        self.noise_levels()
        assert self._noise_sd is not None
        return self._noise_sd

    def spikes_used(self, spikes: np.ndarray) -> np.ndarray:
        p = _threshold(int(spikes.shape[0]), self.max_spikes)
        return _below(np.ascontiguousarray(spikes, dtype=np.int64), self.seed, p)

    def metrics(self, spikes: np.ndarray, times: np.ndarray, best_channel: int | None) -> dict:
        """``{"snr", "amplitude_median", "sd_ratio", "raw_amplitude_uv"}`` of one cluster
        (NaN without spikes or channel; ``raw_amplitude_uv`` None without a known gain)."""
        gain = getattr(self.recording, "uv_per_unit", None)
        out: dict[str, float | None] = {
            "snr": math.nan,
            "amplitude_median": math.nan,
            "sd_ratio": math.nan,
            "raw_amplitude_uv": None if gain is None else math.nan,
        }
        if best_channel is None or spikes.shape[0] == 0:
            return out
        rec = self.recording
        ch = int(best_channel)
        if not 0 <= ch < rec.n_channels:
            return out
        used = self.spikes_used(spikes)
        if used.shape[0] == 0:
            return out
        # times of the used spikes: spikes and times are aligned and sorted
        t = times[np.searchsorted(spikes, used)]
        snips = rec.snippets(t, np.array([ch]), self.before, self.after)[:, :, 0]
        mean = snips.astype(np.float64).mean(axis=0)
        noise = float(self.noise_levels()[ch])
        peak = int(np.argmax(np.abs(mean)))
        out["snr"] = float(abs(mean[peak])) / noise if noise > 0 else math.nan
        scale = 1.0 if gain is None else float(gain)
        out["amplitude_median"] = float(np.median(snips[:, peak].astype(np.float64))) * scale
        if gain is not None:
            out["raw_amplitude_uv"] = float(mean.max() - mean.min()) * scale
        out["sd_ratio"] = self._sd_ratio(spikes, times, used, snips, mean, peak, ch)
        return out

    def _sd_ratio(
        self,
        spikes: np.ndarray,
        times: np.ndarray,
        used: np.ndarray,
        snips: np.ndarray,
        mean: np.ndarray,
        peak: int,
        channel: int,
    ) -> float:
        keep = censor_keep_first(times, self.censored_period)
        if keep.all():
            amps = snips[:, peak].astype(np.float64)
        else:
            kept = np.ascontiguousarray(spikes[keep])
            kept_used = self.spikes_used(kept)
            if kept_used.shape[0] == 0:
                return math.nan
            # reuse the snippets already read; read the spikes the censored sample adds
            have = np.isin(kept_used, used, assume_unique=True)
            amps = np.empty(kept_used.shape[0], dtype=np.float64)
            amps[have] = snips[np.searchsorted(used, kept_used[have]), peak]
            if not have.all():
                tk = times[np.searchsorted(spikes, kept_used[~have])]
                extra = self.recording.snippets(tk, np.array([channel]), self.before, self.after)[
                    :, :, 0
                ]
                amps[~have] = extra[:, peak]
        if amps.shape[0] == 1:
            return 0.0
        unit_sd = float(np.std(np.diff(amps)) / math.sqrt(2.0))
        p = mean.shape[0] * spikes.shape[0] / float(self.recording.n_samples)
        template_var = p * float(np.mean(mean**2)) - p * p * float(np.mean(mean)) ** 2
        var = float(self.noise_sd()[channel]) ** 2 - template_var
        return unit_sd / math.sqrt(var) if var > 0 else math.nan
