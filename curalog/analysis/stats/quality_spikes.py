"""Quality metrics from a cluster's spike train, amplitudes and spike depths (no raw data).

Each function re-implements, from its published definition, the metric of the same name in
SpikeInterface 0.105's ``compute_quality_metrics`` (``spikeinterface.metrics.quality``),
with its default parameters, so that values agree with what a SpikeInterface user computes
on the same folder (``tests/test_quality_interop.py`` checks each one). Inputs:

* ``times``: the cluster's spike times in samples, int64, sorted;
* ``amps``: its ``amplitudes.npy`` values in the same order (for Kilosort: template scaling
  factors, so amplitude metrics are in arbitrary units, as SpikeInterface's
  ``read_kilosort_as_analyzer`` also gives them);
* ``total_samples``, ``fs``: the recording's length (:mod:`curalog.analysis.stats.timebase`)
  and sampling rate.

Costs: every metric is ``O(N)`` in the cluster's spikes, except ``noise_cutoff`` and the
drift medians (``O(N)`` selection, numpy's introselect) and ``sliding_rp_violation``
(``O(N + pairs closer than 10 ms)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

__all__ = [
    "SpikeMetricParams",
    "firing_range",
    "amplitude_cv",
    "noise_cutoff",
    "sliding_rp_violation",
    "drift_metrics",
    "spike_train_metrics",
]


@dataclass(frozen=True)
class SpikeMetricParams:
    """SpikeInterface 0.105's default metric parameters."""

    firing_range_bin_s: float = 5.0
    firing_range_percentiles: tuple[float, float] = (5.0, 95.0)
    amp_cv_spikes_per_bin: int = 50
    amp_cv_percentiles: tuple[float, float] = (5.0, 95.0)
    amp_cv_min_num_bins: int = 10
    noise_high_quantile: float = 0.25
    noise_low_quantile: float = 0.1
    noise_n_bins: int = 100
    srp_bin_size_ms: float = 0.25
    srp_window_size_s: float = 1.0
    srp_exclude_ref_period_below_ms: float = 0.5
    srp_max_ref_period_ms: float = 10.0
    drift_interval_s: float = 60.0
    drift_min_spikes_per_interval: int = 100
    drift_min_fraction_valid_intervals: float = 0.5
    drift_min_num_bins: int = 2


def _aligned_edges(total_samples: int, bin_samples: int) -> np.ndarray:
    """SpikeInterface's bin edges over one segment: ``0, B, ..., kB`` with ``k = T // B``."""
    return np.arange(0, total_samples // bin_samples * bin_samples + 1, bin_samples)


def firing_range(
    times: np.ndarray, fs: float, total_samples: int, p: SpikeMetricParams = SpikeMetricParams()
) -> float:
    """Range between the 5th and 95th percentile of the firing rate in 5 s bins.

    SpikeInterface ``compute_firing_ranges`` (S. Musall; IBL / Steinmetz lab): counts in
    bins with edges ``0, B, ..., kB`` (``B = int(5 fs)``, ``k = T // B``; the last bin
    includes its right edge, as ``np.histogram``), divided by 5 s; ``percentile(95) -
    percentile(5)`` with numpy's linear interpolation. NaN without spikes or when the
    recording is shorter than one bin.
    """
    b = int(p.firing_range_bin_s * fs)
    if times.shape[0] == 0 or b <= 0 or total_samples < b:
        return math.nan
    edges = _aligned_edges(total_samples, b)
    bounds = np.searchsorted(times, edges, side="left")
    counts = np.diff(bounds)
    counts[-1] += int(np.count_nonzero(times[bounds[-1] :] == edges[-1]))
    rates = counts / p.firing_range_bin_s
    lo, hi = p.firing_range_percentiles
    return float(np.percentile(rates, hi) - np.percentile(rates, lo))


@numba.njit(cache=True, nogil=True)
def _bin_std(amps, bounds):
    out = np.empty(bounds.shape[0] - 1, dtype=np.float64)
    for k in range(bounds.shape[0] - 1):
        i0 = bounds[k]
        i1 = bounds[k + 1]
        n = i1 - i0
        if n == 0:
            out[k] = np.nan
            continue
        s = 0.0
        for i in range(i0, i1):
            s += amps[i]
        m = s / n
        v = 0.0
        for i in range(i0, i1):
            d = amps[i] - m
            v += d * d
        out[k] = math.sqrt(v / n)
    return out


def amplitude_cv(
    times: np.ndarray,
    amps: np.ndarray,
    fs: float,
    total_samples: int,
    p: SpikeMetricParams = SpikeMetricParams(),
) -> tuple[float, float]:
    """``(amplitude_cv_median, amplitude_cv_range)``.

    SpikeInterface ``compute_amplitude_cv_metrics`` (S. Musall, A. Buccino): temporal bins
    of ``int(50 / fr * fs)`` samples (about 50 spikes each; ``fr = N / T``), edges
    ``0, L, 2L, ... <= T``; in each bin ``std(a) / |mean(a over the whole cluster)|``
    (population std; an empty bin gives NaN, and a NaN makes the median NaN, as in
    SpikeInterface); the median and the 95th - 5th percentile range of those values. NaN
    with fewer than 10 bins.
    """
    n = times.shape[0]
    if n == 0 or amps is None:
        return math.nan, math.nan
    fr = n / (total_samples / fs)
    bin_samples = int((p.amp_cv_spikes_per_bin / fr) * fs)
    if bin_samples <= 0:
        return math.nan, math.nan
    edges = np.arange(0, total_samples + 1, bin_samples)
    if edges.shape[0] - 1 < p.amp_cv_min_num_bins:
        return math.nan, math.nan
    a = np.ascontiguousarray(amps, dtype=np.float64)
    bounds = np.searchsorted(times, edges, side="left")
    mean_abs = abs(float(np.mean(a)))
    spreads = _bin_std(a, bounds) / mean_abs
    lo, hi = p.amp_cv_percentiles
    return (
        float(np.median(spreads)),
        float(np.percentile(spreads, hi) - np.percentile(spreads, lo)),
    )


def noise_cutoff(
    amps: np.ndarray, p: SpikeMetricParams = SpikeMetricParams()
) -> tuple[float, float]:
    """``(noise_cutoff, noise_ratio)`` of the amplitude distribution (IBL 2024).

    SpikeInterface ``compute_noise_cutoffs``: amplitudes negated when their median is
    negative; a 100-bin histogram over ``[min, max]``; *low* bins are those whose right
    edge is ``<=`` the 10 % quantile, *high* bins those whose left edge is ``>=`` the 75 %
    quantile (numpy's linear quantiles); ``noise_cutoff = (mean(low) - mean(high)) /
    std(high)``, ``noise_ratio = mean(low) / max(counts)``. NaN when no low bin (both), when
    fewer than two high bins or their counts are all equal (cutoff only).
    """
    if amps is None or amps.shape[0] == 0:
        return math.nan, math.nan
    a = np.asarray(amps, dtype=np.float64)
    a = a[np.isfinite(a)]  # a sorter may write NaN or inf amplitudes: they carry no shape
    if a.shape[0] == 0:
        return math.nan, math.nan
    if np.median(a) < 0:
        a = -a
    counts, edges = np.histogram(a, bins=p.noise_n_bins)
    q_lo, q_hi = np.quantile(a, [p.noise_low_quantile, 1 - p.noise_high_quantile])
    low = np.flatnonzero(edges[1:] <= q_lo)
    if low.shape[0] == 0:
        return math.nan, math.nan
    high = np.flatnonzero(edges[:-1] >= q_hi)
    mean_low = float(np.mean(counts[low]))
    ratio = mean_low / float(np.max(counts))
    if high.shape[0] < 2:
        return math.nan, ratio
    hc = counts[high]
    sd = float(np.std(hc))
    if sd == 0:
        return math.nan, ratio
    return (mean_low - float(np.mean(hc))) / sd, ratio


@numba.njit(cache=True, nogil=True)
def _short_lag_hist(t, bin_size, n_bins):
    """Positive-lag autocorrelogram of sorted ``t`` up to ``n_bins * bin_size`` samples.

    SpikeInterface's correlogram convention: ordered pairs ``i != j`` with ``d = t_i - t_j
    >= 0`` go to bin ``d // bin_size``, so a pair at distinct times counts once and a pair
    at the same sample twice (both orders have ``d = 0``)."""
    out = np.zeros(n_bins, dtype=np.int64)
    lim = n_bins * bin_size
    n = t.shape[0]
    for i in range(n):
        j = i + 1
        while j < n:
            d = t[j] - t[i]
            if d >= lim:
                break
            out[d // bin_size] += 2 if d == 0 else 1
            j += 1
    return out


def _srp_grid(fs: float, p: SpikeMetricParams) -> tuple[int, np.ndarray, np.ndarray]:
    """Bin size (samples), refractory-period edges (s) and centres, as SpikeInterface."""
    window_ms = 2 * p.srp_window_size_s * 1000.0
    w = int(round(fs * window_ms / 2 * 1e-3))
    b = int(round(fs * p.srp_bin_size_ms * 1e-3))
    w -= w % b
    edges_ms = np.arange(-w, w + b, b) * 1e3 / fs
    half = (2 * (w // b)) // 2
    pos = edges_ms[half:] / 1000
    actual = pos[1] - pos[0]
    n_rp = int(p.srp_max_ref_period_ms / 1000 / actual)
    rp_edges = pos[: n_rp + 1]
    centers = (rp_edges[:-1] + rp_edges[1:]) / 2
    return b, rp_edges, centers


def sliding_rp_violation(
    times: np.ndarray, fs: float, total_samples: int, p: SpikeMetricParams = SpikeMetricParams()
) -> float:
    """Minimum contamination with 90 % confidence, sliding refractory period (IBL).

    SpikeInterface ``compute_sliding_rp_violations`` after Steinmetz lab's slidingRefractory
    (Llobet et al. 2022 expected-violation count): autocorrelogram in bins of
    ``round(0.25 ms fs)`` samples; for each candidate refractory period ``tau_k`` (bin right
    edges up to 10 ms) the observed violations are the cumulative count of the positive
    half up to ``tau_k``; for each contamination ``C`` in 0.5 %, 1 %, ..., 35 % the expected
    count is ``2 tau / T N_c (N_b + (N_c - 1) / 2)`` with ``N_c = C N``, ``N_b = (1 - C) N``,
    ``T = N / fr``; confidence ``1 - PoissonCDF(observed; expected)``; the result is the
    smallest ``C`` with confidence > 0.9 at some ``tau`` whose bin centre exceeds 0.5 ms,
    NaN if none. Only the first 10 ms of the correlogram matter, so only those lags are
    counted (the 2 s window of SpikeInterface changes nothing).
    """
    from scipy.special import pdtr

    n = times.shape[0]
    if n == 0 or int(round(fs * p.srp_bin_size_ms * 1e-3)) < 1:  # no sub-ms bins
        return math.nan
    b, rp_edges, centers = _srp_grid(fs, p)
    if centers.shape[0] == 0:
        return math.nan
    hist = _short_lag_hist(np.ascontiguousarray(times, dtype=np.int64), b, centers.shape[0])
    obs = np.cumsum(hist)[np.newaxis, :]
    duration_s = total_samples / fs
    fr = n / duration_s
    cont = (np.arange(0.5, 35.5, 0.5) / 100)[:, np.newaxis]
    n_c = n * cont
    n_b = n * (1 - cont)
    dur = n / fr
    expected = 2 * rp_edges[1:][np.newaxis, :] / dur * n_c * (n_b + (n_c - 1) / 2)
    conf = 1 - pdtr(obs, expected)
    mask = centers > p.srp_exclude_ref_period_below_ms / 1000.0
    rows = np.flatnonzero((conf[:, mask] > 0.9).any(axis=1))
    if rows.shape[0] == 0:
        return math.nan
    return float(cont[rows[0], 0])


@numba.njit(cache=True, nogil=True)
def _medians_per_bin(values, bounds, min_count):
    out = np.full(bounds.shape[0] - 1, np.nan)
    for k in range(bounds.shape[0] - 1):
        i0 = bounds[k]
        i1 = bounds[k + 1]
        if i1 - i0 >= min_count:
            out[k] = np.median(values[i0:i1])
    return out


def drift_metrics(
    times: np.ndarray,
    depths: np.ndarray | None,
    fs: float,
    total_samples: int,
    p: SpikeMetricParams = SpikeMetricParams(),
) -> tuple[float, float, float]:
    """``(drift_ptp, drift_std, drift_mad)`` in µm from the spikes' depths (``y``).

    SpikeInterface ``compute_drift_metrics`` (default ``direction="y"``): 60 s intervals
    with edges ``0, B, ..., kB`` (``k = T // B``; a spike on the last edge is outside every
    interval); the median depth of each interval with at least 100 spikes (NaN otherwise)
    minus the median depth of all the cluster's spikes is the drift signal; NaN when fewer
    than 2 intervals or when more than half are NaN; else ``ptp = max - min``, ``std``
    (population) and ``mad = median |d - median d|`` over the valid intervals.
    """
    nan3 = (math.nan, math.nan, math.nan)
    if depths is None or times.shape[0] == 0:
        return nan3
    b = int(p.drift_interval_s * fs)
    if b <= 0:
        return nan3
    edges = _aligned_edges(total_samples, b)
    if edges.shape[0] - 1 < p.drift_min_num_bins:
        return nan3
    d = np.ascontiguousarray(depths, dtype=np.float64)
    bounds = np.searchsorted(times, edges, side="left")
    med = _medians_per_bin(d, bounds, int(p.drift_min_spikes_per_interval))
    diff = med - float(np.median(d))
    if np.count_nonzero(np.isnan(diff)) > p.drift_min_fraction_valid_intervals * diff.shape[0]:
        return nan3
    ok = diff[~np.isnan(diff)]
    return (
        float(ok.max() - ok.min()),
        float(np.std(ok)),
        float(np.median(np.abs(ok - np.median(ok)))),
    )


def spike_train_metrics(
    times: np.ndarray,
    amps: np.ndarray | None,
    depths: np.ndarray | None,
    fs: float,
    total_samples: int,
    p: SpikeMetricParams = SpikeMetricParams(),
) -> dict[str, float]:
    """Every metric of this module for one cluster, under SpikeInterface's column names."""
    cv_med, cv_range = (
        amplitude_cv(times, amps, fs, total_samples, p) if amps is not None else (math.nan,) * 2
    )
    nc, nr = noise_cutoff(amps, p) if amps is not None else (math.nan, math.nan)
    ptp, std, mad = drift_metrics(times, depths, fs, total_samples, p)
    return {
        "firing_range": firing_range(times, fs, total_samples, p),
        "amplitude_cv_median": cv_med,
        "amplitude_cv_range": cv_range,
        "noise_cutoff": nc,
        "noise_ratio": nr,
        "sliding_rp_violation": sliding_rp_violation(times, fs, total_samples, p),
        "drift_ptp": ptp,
        "drift_std": std,
        "drift_mad": mad,
    }
