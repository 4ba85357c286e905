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
    q_lo, q_hi = _percentiles(rates, lo, hi)
    return float(q_hi - q_lo)


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
    q_lo, q_hi = _percentiles(spreads, lo, hi)
    return _median_of(spreads), float(q_hi - q_lo)


@numba.njit(cache=True, nogil=True)
def _order_stats(a, ks):
    """Exact order statistics ``sorted(a)[k]`` for ascending ``ks`` (``a`` without NaN):
    one 4096-bin counting pass over ``[min, max]``, then a sort of only the values in the
    bins holding a requested rank (what ``np.partition`` gives, without copying ``a``)."""
    n = a.shape[0]
    out = np.empty(ks.shape[0])
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        v = a[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    if lo == hi:
        out[:] = lo
        return out
    nb = 4096
    scale = nb / (hi - lo)
    if not np.isfinite(scale) or scale == 0:
        srt = np.sort(a)
        for q in range(ks.shape[0]):
            out[q] = srt[ks[q]]
        return out
    counts = np.zeros(nb, dtype=np.int64)
    for i in range(n):
        counts[min(int((a[i] - lo) * scale), nb - 1)] += 1
    starts = np.empty(nb + 1, dtype=np.int64)
    starts[0] = 0
    for b in range(nb):
        starts[b + 1] = starts[b] + counts[b]
    want = np.zeros(nb, dtype=np.bool_)
    for q in range(ks.shape[0]):
        b = np.searchsorted(starts, ks[q], side="right") - 1
        want[b] = True
    off = np.zeros(nb, dtype=np.int64)
    pos = 0
    for b in range(nb):
        if want[b]:
            off[b] = pos
            pos += counts[b]
    buf = np.empty(pos)
    fill = off.copy()
    for i in range(n):
        b = min(int((a[i] - lo) * scale), nb - 1)
        if want[b]:
            buf[fill[b]] = a[i]
            fill[b] += 1
    for b in range(nb):
        if want[b] and counts[b] > 1:
            buf[off[b] : off[b] + counts[b]] = np.sort(buf[off[b] : off[b] + counts[b]])
    for q in range(ks.shape[0]):
        b = np.searchsorted(starts, ks[q], side="right") - 1
        out[q] = buf[off[b] + ks[q] - starts[b]]
    return out


def _quantile_ranks(n: int, qs: tuple[float, ...]) -> set[int]:
    """The ranks ``np.quantile`` (linear) interpolates between for each of ``qs``."""
    prev = [min(max(int(np.floor((n - 1) * float(q))), 0), n - 1) for q in qs]
    return set(prev) | {min(p + 1, n - 1) for p in prev}


def _quantiles_from(n: int, qs: tuple[float, ...], vals: dict[int, float]) -> list[float]:
    """``np.quantile`` (linear) from the order statistics ``vals`` (rank -> value)."""
    vi = [(n - 1) * float(q) for q in qs]
    prev = [min(max(int(np.floor(v)), 0), n - 1) for v in vi]
    nxt = [min(p + 1, n - 1) for p in prev]
    out = []
    for v, p, q in zip(vi, prev, nxt, strict=True):
        lo, hi = vals[p], vals[q]
        t = v - np.floor(v)
        diff = hi - lo
        out.append(float(hi - diff * (1 - t)) if t >= 0.5 else float(lo + diff * t))
    return out


def quantiles(a: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``np.quantile(a, qs)`` (linear method), bit for bit, without sorting ``a``."""
    n = a.shape[0]
    ks = np.array(sorted(_quantile_ranks(n, qs)), dtype=np.int64)
    vals = dict(zip(ks.tolist(), _order_stats(a, ks).tolist(), strict=True))
    return _quantiles_from(n, qs, vals)


def _percentiles(a: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """``np.percentile(a, [lo, hi])``, bit for bit: the order-statistics kernel for finite
    values (no sort, no numpy call overhead: ~100 us a call on small arrays), numpy's own for
    empty or non-finite input (NaN propagation as numpy does it)."""
    a = np.asarray(a, dtype=np.float64)
    if a.shape[0] == 0 or not np.isfinite(a).all():
        q_lo, q_hi = np.percentile(a, [lo, hi])
        return float(q_lo), float(q_hi)
    q_lo, q_hi = quantiles(a, (lo / 100, hi / 100))  # numpy's percentile divides the same way
    return q_lo, q_hi


def _median_of(a: np.ndarray) -> float:
    """``np.median(a)`` as a float, bit for bit (:func:`median` for finite values)."""
    a = np.asarray(a, dtype=np.float64)
    if a.shape[0] == 0 or not np.isfinite(a).all():
        return float(np.median(a))
    return median(a)


def median(a: np.ndarray) -> float:
    """``np.median(a)`` exactly (the mean of the two middle values for even ``n``)."""
    n = a.shape[0]
    k1, k2 = (n - 1) // 2, n // 2
    v = _order_stats(a, np.array(sorted({k1, k2}), dtype=np.int64))
    return float(v[0]) if k1 == k2 else float((v[0] + v[1]) / 2)


@numba.njit(cache=True, nogil=True)
def _hist_uniform(a, n_bins):
    """``np.histogram(a, bins=n_bins)``: edges ``linspace(min, max, n_bins + 1)`` (numpy's
    uniform fast path: the computed index, corrected against the edges)."""
    lo = np.inf
    hi = -np.inf
    for i in range(a.shape[0]):
        v = a[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    if lo == hi:
        lo -= 0.5
        hi += 0.5
    edges = np.empty(n_bins + 1)
    step = (hi - lo) / n_bins
    for i in range(n_bins + 1):
        edges[i] = i * step + lo
    edges[n_bins] = hi
    counts = np.zeros(n_bins, dtype=np.int64)
    norm = n_bins / (hi - lo)
    for i in range(a.shape[0]):
        v = a[i]
        idx = int((v - lo) * norm)
        if idx == n_bins:
            idx -= 1
        if v < edges[idx]:
            idx -= 1
        elif idx != n_bins - 1 and v >= edges[idx + 1]:
            idx += 1
        counts[idx] += 1
    return counts, edges


def histogram(a: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(a, bins=n_bins)`` (numba's fast path; numpy's own when the range is
    so small that ``n_bins / (max - min)`` overflows)."""
    lo, hi = float(a.min()), float(a.max())
    if lo != hi and not np.isfinite(n_bins / (hi - lo)):
        return np.histogram(a, bins=n_bins)
    return _hist_uniform(a, n_bins)


def noise_cutoff(
    amps: np.ndarray, p: SpikeMetricParams = SpikeMetricParams()
) -> tuple[float, float]:
    """``(noise_cutoff, noise_ratio)`` of the amplitude distribution (IBL 2024).

    SpikeInterface ``compute_noise_cutoffs``: amplitudes negated when their median is
    negative; a 100-bin histogram over ``[min, max]``; *low* bins are those whose right
    edge is ``<=`` the 10 % quantile, *high* bins those whose left edge is ``>=`` the 75 %
    quantile (numpy's linear quantiles); ``noise_cutoff = (mean(low) - mean(high)) /
    std(high)``, ``noise_ratio = mean(low) / max(counts)``. NaN when no low bin (both), when
    fewer than two high bins or their counts are all equal (cutoff only). Non-finite
    amplitudes are left out (SpikeInterface's ``np.histogram`` would raise on them).
    """
    if amps is None or amps.shape[0] == 0:
        return math.nan, math.nan
    a = np.ascontiguousarray(amps, dtype=np.float64)
    if not np.isfinite(a).all():
        a = np.ascontiguousarray(a[np.isfinite(a)])  # a sorter may write NaN or inf
    n = a.shape[0]
    if n == 0:
        return math.nan, math.nan
    qs = (p.noise_low_quantile, 1 - p.noise_high_quantile)
    # one order-statistics pass for the median and the quantiles of a and of -a
    # (sorted(-a)[k] = -sorted(a)[n - 1 - k]), then the sign is known
    mid = {(n - 1) // 2, n // 2}
    qk = _quantile_ranks(n, qs)
    ks = np.array(sorted(mid | qk | {n - 1 - k for k in qk}), dtype=np.int64)
    stat = dict(zip(ks.tolist(), _order_stats(a, ks).tolist(), strict=True))
    med = (stat[(n - 1) // 2] + stat[n // 2]) / 2
    flip = med < 0
    if flip:
        a = -a
        stat = {n - 1 - k: -v for k, v in stat.items()}
    try:
        counts, edges = histogram(a, int(p.noise_n_bins))
    except ValueError:  # a range too small for 100 finite bins (numpy refuses it too)
        return math.nan, math.nan
    q_lo, q_hi = _quantiles_from(n, qs, stat)
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
    lut = np.empty(lim, dtype=np.int64)  # lag -> bin (no integer division in the loop)
    for d in range(lim):
        lut[d] = d // bin_size
    n = t.shape[0]
    for i in range(n):
        ti = t[i]
        j = i + 1
        while j < n:
            d = t[j] - ti
            if d >= lim:
                break
            out[lut[d]] += 1
            j += 1
    # a pair at the same sample counts in both orders: once more (bin 0); spike i pairs
    # with every earlier spike of its run of equal times
    run = 0
    for i in range(1, n):
        run = run + 1 if t[i] == t[i - 1] else 0
        out[0] += run
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
    ks = np.empty(2, dtype=np.int64)
    for k in range(bounds.shape[0] - 1):
        i0 = bounds[k]
        i1 = bounds[k + 1]
        n = i1 - i0
        if n >= min_count:
            ks[0] = (n - 1) // 2
            ks[1] = n // 2
            v = _order_stats(values[i0:i1], ks)
            out[k] = v[0] if ks[0] == ks[1] else (v[0] + v[1]) / 2
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
    if np.isnan(d).any():  # a spike without a depth (no positive PC weight): numpy's NaN
        return nan3
    bounds = np.searchsorted(times, edges, side="left")
    med = _medians_per_bin(d, bounds, int(p.drift_min_spikes_per_interval))
    diff = med - median(d)
    if np.count_nonzero(np.isnan(diff)) > p.drift_min_fraction_valid_intervals * diff.shape[0]:
        return nan3
    ok = diff[~np.isnan(diff)]
    return (
        float(ok.max() - ok.min()),
        float(np.std(ok)),
        _median_of(np.abs(ok - _median_of(ok))),
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
