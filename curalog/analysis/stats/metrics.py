"""Per-cluster statistics computed from a Kilosort/phy folder alone (no raw data).

Everything here is a pure function of a cluster's spikes (sorted spike indices) and of the
dataset's files: spike times, spike templates, ``amplitudes.npy``, ``templates.npy`` (+
``whitening_mat_inv.npy``), the probe geometry. One numba pass over the cluster's spikes
(:func:`cluster_pass`) gathers what every metric needs; the formulas then follow their
published definitions, as SpikeInterface 0.105 implements them (docs/CURATION_ECOSYSTEM.md
section 4.2), re-written here from those definitions.

Notation: ``N`` spikes, ``fs`` sampling rate, ``T`` total duration in seconds (``T_s`` in
samples; by default the dataset's duration, i.e. the last spike time, at least 1 s).

Columns
-------
n_spikes
    ``N``.
template
    Dominant template: the most frequent ``spike_templates`` value among the cluster's
    spikes; ties go to the smaller template id (phy's ``get_template_for_cluster``).
best_channels, best_channel, ch, shank, depth, template_amplitude
    phy's Template-GUI rules applied to the dominant template (docs/PHY_SEMANTICS.md 1.4 and
    4.1): the template is unwhitened (``template @ whitening_mat_inv``; when the folder has
    no ``whitening_mat_inv.npy`` the inverse of ``whitening_mat.npy`` is used, and when it
    has neither the step is skipped, i.e. the identity: amplitudes are then in whitened units
    and the best channel is the whitened template's), the
    per-channel amplitude is the peak-to-peak ``max_t - min_t``. Dense templates: the best
    channel is the argmax; the channels are the ``n_closest_channels = 12`` channels nearest
    to it (Euclidean on ``channel_positions``; equidistant channels are cut by numpy's default
    ``argsort``, as phy does, so the sets agree with phy's) restricted to
    its shank, ordered by decreasing amplitude. Sparse templates (``template_ind.npy``): the
    template's own channels with signal (``max |w| > 1e-6`` of the template's maximum, id !=
    -1), unwhitened with the matching sub-matrix, ordered by decreasing amplitude (ties keep
    the lower position, so ``best_channels[0]`` is always the argmax). ``ch`` is
    ``str(channel_map[best])``, ``shank = channel_shanks[best]``, ``depth =
    channel_positions[best, 1]``, ``template_amplitude`` (phy's ``amp``) is the peak-to-peak
    on the best channel.
firing_rate
    ``N / T`` in Hz (SpikeInterface ``compute_firing_rates``; phy's ``fr`` is the same with
    ``T = max(1, duration)``).
isi_violations_ratio, isi_violations_count
    Hill et al. (2011) / UMS, as SpikeInterface ``isi_violations``: ``n_v`` = number of
    consecutive inter-spike intervals ``< t_r`` (``isi_threshold_ms``, 1.5 ms), computed on
    times in seconds ``t / fs``; ``ratio = (n_v / (2 N (t_r - t_min))) / (N / T)``, i.e.
    ``n_v T / (2 N^2 (t_r - t_min))`` (``t_min = min_isi_ms``, 0). Can exceed 1.
rp_contamination, rp_violations
    Llobet et al. (2022), as SpikeInterface ``compute_refrac_period_violations``:
    ``n_v`` = number of *pairs* ``i < j`` with ``t_j - t_i <= t_r`` samples,
    ``t_r = round(refractory_period_ms fs / 1000)``, ``t_c = round(censored_period_ms fs /
    1000)``; ``C = 1 - sqrt(1 - n_v (T_s - 2 N t_c) / (N^2 (t_r - t_c)))``, 1.0 when the
    radicand is negative, NaN when ``N <= 1``.
presence_ratio
    SpikeInterface ``compute_presence_ratios``: bins of ``B = int(bin_s fs)`` samples with
    edges ``0, B, ..., n B`` where ``n = T_s // B`` (the last, partial bin is dropped; a spike
    exactly on the last edge counts in the last bin, as ``np.histogram`` does); a bin is
    active when its count exceeds ``floor(N / T * bin_s * mean_fr_ratio_thresh)`` (0 by
    default: at least one spike); ``PR = active / n``; NaN when ``T_s < B``.
amplitude_median
    Median of ``amplitudes.npy`` over the cluster (IBL / SpikeInterface ``amplitude_median``;
    for Kilosort these are template scaling factors, arbitrary units, not µV).
amplitude_cutoff
    Hill et al. (2011) after the Allen Institute code, as SpikeInterface ``amplitude_cutoff``
    with the metric defaults: amplitudes negated if their median is negative; NaN when
    ``N / n_bins < min_ratio`` (100 bins, ratio 5); ``h`` = 100-bin histogram (numpy's
    binning), ``pdf`` = ``h`` smoothed by a Gaussian of sigma 3 bins (radius 12, edges
    repeated) and truncated to integers, exactly as ``scipy.ndimage.gaussian_filter1d`` does
    on SpikeInterface's integer histogram; ``G`` = last bin with ``pdf >= pdf[0]``;
    ``missed = sum(pdf[G+1:])``; ``fraction = min(missed / (N + missed), 0.5)``. With
    Kilosort scaling factors the values run higher than with raw amplitudes (SI docs).
peak_to_trough_ms
    Waveform duration of the dominant unwhitened template on its best channel, after
    bombcell's published definition: time from the main extremum (the trough for a negative
    spike, the peak when the positive peak is larger) to the opposite extremum after it.
fr_series, amp_series
    Firing rate (Hz) and mean spike amplitude in ``n_series_bins`` (40) equal bins over
    ``[0, T_s)``, for sparklines (NaN amplitude in an empty bin).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from curalog.analysis.stats.correlograms import (
    CorrelogramBins,
    acg_from_half,
    acg_half,
)
from curalog.analysis.stats.quality import QualityContext
from curalog.analysis.stats.timebase import recording_timebase
from curalog.templates import (  # noqa: F401  (moved; re-exported)
    TemplateChannels,
    TemplateGeometry,
    _peak_to_trough_ms,
    dominant_template,
)

__all__ = [
    "MetricParams",
    "TemplateChannels",
    "TemplateGeometry",
    "ClusterStats",
    "StatsContext",
    "cluster_pass",
    "compute_cluster_stats",
    "isi_violations_ratio",
    "rp_contamination",
    "presence_ratio_from_counts",
    "amplitude_cutoff",
    "gaussian_smooth_nearest",
    "dominant_template",
]


@dataclass(frozen=True)
class MetricParams:
    """Metric parameters (SpikeInterface's defaults)."""

    isi_threshold_ms: float = 1.5
    min_isi_ms: float = 0.0
    refractory_period_ms: float = 1.0
    censored_period_ms: float = 0.0
    presence_bin_s: float = 60.0
    presence_mean_fr_ratio_thresh: float = 0.0
    amp_cutoff_bins: int = 100
    amp_cutoff_smoothing: float = 3.0
    amp_cutoff_min_ratio: float = 5.0
    n_series_bins: int = 40
    n_closest_channels: int = 12


# ---------------------------------------------------------------------- formulas
def isi_violations_ratio(
    n_violations: int, n_spikes: int, duration_s: float, isi_threshold_s: float, min_isi_s: float
) -> float:
    """``(n_v / (2 N (t_r - t_min))) / (N / T)`` (Hill et al. 2011); NaN for ``N = 0``."""
    if n_spikes == 0:
        return math.nan
    violation_time = 2 * n_spikes * (isi_threshold_s - min_isi_s)
    total_rate = n_spikes / duration_s
    return float((n_violations / violation_time) / total_rate)


def rp_contamination(
    n_violations: int, n_spikes: int, total_samples: int, t_c: int, t_r: int
) -> float:
    """``1 - sqrt(1 - n_v (T_s - 2 N t_c) / (N^2 (t_r - t_c)))`` (Llobet et al. 2022).

    1.0 when the radicand is negative, NaN when ``N <= 1`` (or ``t_r <= t_c``).
    """
    if n_spikes <= 1 or t_r <= t_c:
        return math.nan
    denom = 1 - n_violations * (total_samples - 2 * n_spikes * t_c) / (n_spikes**2 * (t_r - t_c))
    if denom < 0:
        return 1.0
    return 1 - math.sqrt(denom)


def presence_ratio_from_counts(
    counts: np.ndarray,
    n_spikes: int,
    duration_s: float,
    bin_s: float,
    mean_fr_ratio_thresh: float = 0.0,
) -> float:
    """Fraction of bins whose count exceeds ``floor(N / T * bin_s * ratio)``; NaN if no bin."""
    if n_spikes == 0 or counts.shape[0] == 0:
        return math.nan
    thresh = math.floor(n_spikes / duration_s * bin_s * mean_fr_ratio_thresh)
    return float(np.count_nonzero(counts > thresh) / counts.shape[0])


def gaussian_smooth_nearest(h: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing with edge values repeated (``mode="nearest"``), float64 output.

    Kernel ``w[x] = exp(-x^2 / (2 sigma^2))``, ``|x| <= int(truncate sigma + 0.5)``,
    normalised to sum 1; the centre term is added first, then the symmetric pairs from the
    outermost in, which is the order ``scipy.ndimage.correlate1d`` uses for symmetric kernels
    (so that truncating the result to integers gives the same values).
    """
    return _smooth_kernel(
        np.ascontiguousarray(h, dtype=np.float64), _half_gaussian(float(sigma), truncate)
    )


@numba.njit(cache=True, nogil=True)
def _smooth_kernel(h: np.ndarray, half_w: np.ndarray) -> np.ndarray:
    n = h.shape[0]
    r = half_w.shape[0] - 1
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        acc = h[i] * half_w[0]
        for j in range(r, 0, -1):
            lo = i - j
            hi = i + j
            lo = 0 if lo < 0 else lo
            hi = n - 1 if hi > n - 1 else hi
            acc += (h[hi] + h[lo]) * half_w[j]
        out[i] = acc
    return out


@numba.njit(cache=True, nogil=True)
def _uniform_histogram(a: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(a, edges)`` for ``edges = linspace(min, max, n + 1)`` (numpy's fast path)."""
    n_bins = edges.shape[0] - 1
    first = edges[0]
    last = edges[-1]
    denom = last - first
    out = np.zeros(n_bins, dtype=np.int64)
    for k in range(a.shape[0]):
        v = a[k]
        if v < first or v > last:
            continue
        idx = int(((v - first) / denom) * n_bins)
        if idx == n_bins:
            idx -= 1
        if v < edges[idx]:
            idx -= 1
        if idx != n_bins - 1 and v >= edges[idx + 1]:
            idx += 1
        out[idx] += 1
    return out


@functools.lru_cache(maxsize=8)
def _half_gaussian(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Right half (centre first) of scipy's normalised Gaussian kernel for ``sigma``."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 / (float(sigma) * float(sigma)) * x.astype(np.float64) ** 2)
    w = w / w.sum()
    return w[radius:].copy()


@numba.njit(cache=True, nogil=True)
def _middle_bins(counts, k1, k2):
    """Bins holding the order statistics ``k1 <= k2`` of a histogram's values.

    Returns ``(b1, b2, before, acc)``: the bins of ``k1`` and ``k2``, the number of values
    in bins below ``b1``, and the number in bins below ``b2``.
    """
    acc = 0
    b1 = -1
    b2 = -1
    before = 0
    for b in range(counts.shape[0]):
        if b1 < 0 and acc + counts[b] > k1:
            b1 = b
            before = acc
        if acc + counts[b] > k2:
            b2 = b
            break
        acc += counts[b]
    return b1, b2, before, acc


@numba.njit(cache=True, nogil=True)
def _select_median(a, lo, hi):
    """Exact median (numpy's: the middle value, or the mean of the two middle values) by a
    4096-bin counting pass over ``[lo, hi]`` and a sort of the one or two bins holding the
    middle order statistics only. ``a`` has no NaN."""
    n = a.shape[0]
    if lo == hi:
        return lo
    nb = 4096
    scale = nb / (hi - lo)
    k1 = (n - 1) // 2
    k2 = n // 2
    if not np.isfinite(scale) or not np.isfinite(hi - lo) or scale == 0:  # subnormal or huge range
        srt = np.sort(a)
        return srt[k1] if k1 == k2 else (srt[k1] + srt[k2]) / 2
    counts = np.zeros(nb, dtype=np.int64)
    for k in range(n):
        b = int((a[k] - lo) * scale)
        counts[min(b, nb - 1)] += 1
    b1, b2, before, acc = _middle_bins(counts, k1, k2)
    buf = np.empty(n if n < 64 else max(64, acc + counts[b2] - before), dtype=np.float64)
    m = 0
    for k in range(n):
        b = min(int((a[k] - lo) * scale), nb - 1)
        if b1 <= b <= b2:
            buf[m] = a[k]
            m += 1
    sel = np.sort(buf[:m])
    v1 = sel[k1 - before]
    v2 = sel[k2 - before]
    if k1 == k2:
        return v1
    return (v1 + v2) / 2


@numba.njit(cache=True, nogil=True)
def _min_max_nan(amps):
    """``(min, max, has_nan)`` in one pass without an early exit (so it vectorises)."""
    lo = np.inf
    hi = -np.inf
    bad = False
    for k in range(amps.shape[0]):
        v = amps[k]
        bad |= v != v
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi, bad


@numba.njit(cache=True, nogil=True)
def _linspace_edges(lo, hi, n_bins):
    """``np.linspace(lo, hi, n_bins + 1)``: ``i * step + lo``, the last edge exactly ``hi``."""
    edges = np.empty(n_bins + 1, dtype=np.float64)
    step = (hi - lo) / n_bins
    for i in range(n_bins + 1):
        if step == 0:
            edges[i] = (i / n_bins) * (hi - lo) + lo
        else:
            edges[i] = i * step + lo
    edges[n_bins] = hi
    return edges


@numba.njit(cache=True, nogil=True)
def _numpy_bin(v, first, denom, n_bins, edges):
    """The bin ``np.histogram`` gives ``v`` (``first <= v <= last``) for uniform ``edges``."""
    idx = int(((v - first) / denom) * n_bins)
    if idx == n_bins:
        idx -= 1
    if v < edges[idx]:
        idx -= 1
    if idx != n_bins - 1 and v >= edges[idx + 1]:
        idx += 1
    return idx


@numba.njit(cache=True, nogil=True)
def _cutoff_from_hist(h, n, half_w):
    pdf = np.trunc(_smooth_kernel(h, half_w))
    n_bins = h.shape[0]
    g = 0
    for i in range(n_bins):
        if pdf[i] >= pdf[0]:
            g = i
    missed = 0.0
    for i in range(g + 1, n_bins):
        missed += pdf[i]
    frac = missed / (n + missed)
    return min(frac, 0.5)


#: Fine bins per histogram bin in :func:`_amp_kernel_two_pass`.
_FINE = 40


@numba.njit(cache=True, nogil=True)
def _amp_kernel_two_pass(amps, lo, hi, n_bins, half_w):
    """(median, cutoff) of non-negative amplitudes in two passes after the min/max one.

    Pass 1 counts ``n_bins * F`` fine bins over ``[lo, hi]``; they locate the middle order
    statistics (as :func:`_select_median` does) and give the 100-bin histogram by groups of
    F. A fine bin that touches a histogram edge may hold values numpy puts on the other side
    of that edge, so in pass 2 (which also collects the median's candidates) exactly those
    values are binned again with numpy's rule. Any other fine bin lies at least one fine bin
    (1/F of a histogram bin) away from every edge, far beyond the rounding of either binning
    (the caller guarantees ``hi - lo`` is not tiny relative to ``|hi|``).
    """
    n = amps.shape[0]
    nf = n_bins * _FINE
    scale = nf / (hi - lo)
    fine = np.zeros(nf, dtype=np.int64)
    for k in range(n):
        fine[min(int((amps[k] - lo) * scale), nf - 1)] += 1
    k1 = (n - 1) // 2
    k2 = n // 2
    b1, b2, before, acc = _middle_bins(fine, k1, k2)
    h = np.zeros(n_bins, dtype=np.float64)
    for b in range(nf):
        h[b // _FINE] += fine[b]
    edges = _linspace_edges(lo, hi, n_bins)
    denom = hi - lo
    # code[b]: 1 = holds a middle order statistic, 2 = touches a histogram edge
    code = np.zeros(nf, dtype=np.uint8)
    for b in range(b1, b2 + 1):
        code[b] = 1
    for c in range(n_bins):
        code[c * _FINE] |= 2
        code[c * _FINE + _FINE - 1] |= 2
    buf = np.empty(max(acc + fine[b2] - before, 1), dtype=np.float64)
    m = 0
    for k in range(n):
        v = amps[k]
        b = min(int((v - lo) * scale), nf - 1)
        flag = code[b]
        if flag != 0:
            if flag & 1:
                buf[m] = v
                m += 1
            if flag & 2:
                exact = _numpy_bin(v, lo, denom, n_bins, edges)
                c = b // _FINE
                if exact != c:
                    h[c] -= 1
                    h[exact] += 1
    sel = np.sort(buf[:m])
    med = sel[k1 - before] if k1 == k2 else (sel[k1 - before] + sel[k2 - before]) / 2
    return med, _cutoff_from_hist(h, n, half_w)


@numba.njit(cache=True, nogil=True)
def _amp_kernel(amps, n_bins, half_w, min_ratio):
    """(median, amplitude cutoff) of one cluster's amplitudes (see the module docstring)."""
    n = amps.shape[0]
    if n == 0:
        return np.nan, np.nan
    lo, hi, bad = _min_max_nan(amps)
    if bad:
        return np.nan, np.nan
    want_cutoff = not (n / n_bins < min_ratio) and np.isfinite(lo) and np.isfinite(hi)
    if want_cutoff and lo >= 0 and hi - lo > 1e-6 * hi:
        # The usual case (Kilosort's amplitudes are positive scalings): two passes.
        return _amp_kernel_two_pass(amps, lo, hi, n_bins, half_w)
    med = _select_median(amps, lo, hi)
    if not want_cutoff:
        return med, np.nan
    if med < 0:
        a = -amps
        lo, hi = -hi, -lo
    else:
        a = amps
    if lo == hi:
        lo -= 0.5
        hi += 0.5
    edges = _linspace_edges(lo, hi, n_bins)
    h = _uniform_histogram(a, edges).astype(np.float64)
    return med, _cutoff_from_hist(h, n, half_w)


def amplitude_cutoff(
    amplitudes: np.ndarray,
    num_histogram_bins: int = 100,
    histogram_smoothing_value: float = 3.0,
    amplitudes_bins_min_ratio: float = 5.0,
) -> float:
    """Estimated fraction of spikes missing below the detection threshold (Hill et al. 2011).

    See the module docstring for the exact steps; NaN when ``N / bins < min_ratio``.
    """
    amps = np.ascontiguousarray(amplitudes, dtype=np.float64)
    return float(
        _amp_kernel(
            amps,
            int(num_histogram_bins),
            _half_gaussian(float(histogram_smoothing_value)),
            float(amplitudes_bins_min_ratio),
        )[1]
    )


# ---------------------------------------------------------------------- the spike pass
@numba.njit(cache=True, nogil=True)
def _gather_kernel(times, spikes, amplitudes, use_amp, spike_templates, n_templates):
    """Spike times, amplitudes (float64) and the template histogram of a cluster."""
    n = spikes.shape[0]
    t = np.empty(n, dtype=np.int64)
    amps = np.empty(n if use_amp else 0, dtype=np.float64)
    tcounts = np.zeros(n_templates, dtype=np.int64)
    if use_amp:  # one pass: the three reads of a spike are in flight together
        for k in range(n):
            s = spikes[k]
            t[k] = times[s]
            amps[k] = amplitudes[s]
            tcounts[spike_templates[s]] += 1
    else:
        for k in range(n):
            s = spikes[k]
            t[k] = times[s]
            tcounts[spike_templates[s]] += 1
    return t, amps, tcounts


@numba.njit(cache=True, nogil=True)
def _core_kernel(t, amps, use_amp, fs, isi_thr_s, t_r, pr_bin, pr_nbins, n_series, total_samples):
    """ISI and refractory-period counts, presence and sparkline bins of sorted times ``t``.

    One pass in which nothing waits on memory: the per-bin counts are index differences
    taken when a bin closes (times are sorted, so bins only move forward), the sparkline
    amplitude sums accumulate in a register (same additions in the same order), the ISI
    test is branch-free, and the refractory pairs of a spike are counted four at a time.
    """
    n = t.shape[0]
    pr_counts = np.zeros(pr_nbins, dtype=np.int64)
    s_counts = np.zeros(n_series, dtype=np.int64)
    s_amp = np.zeros(n_series, dtype=np.float64)
    s_edges = np.empty(n_series + 1, dtype=np.int64)
    for b in range(n_series + 1):
        s_edges[b] = (b * total_samples + n_series - 1) // n_series
    big = np.iinfo(np.int64).max
    last_edge = pr_nbins * pr_bin
    pb = 0
    pr_next = pr_bin if pr_nbins > 0 else big
    pr_start = 0  # index of the first spike of presence bin pb
    sb = 0
    s_next = s_edges[1] if n_series > 1 else big
    s_start = 0
    amp_acc = 0.0
    isi_v = 0
    rp = 0
    prev = 0.0
    for k in range(n):
        tk = t[k]
        cur = tk / fs
        isi_v += (k > 0) & ((cur - prev) < isi_thr_s)
        prev = cur
        if tk >= pr_next:  # rare: close presence bins
            if tk >= last_edge:
                if pb < pr_nbins:
                    pr_counts[pb] += k - pr_start
                    pb = pr_nbins
                pr_next = big
            else:
                pr_counts[pb] += k - pr_start
                pr_start = k
                while tk >= pr_next:
                    pb += 1
                    pr_next += pr_bin
            if tk == last_edge and pr_nbins > 0:
                pr_counts[pr_nbins - 1] += 1
        elif pb == pr_nbins and tk == last_edge and pr_nbins > 0:
            pr_counts[pr_nbins - 1] += 1
        if tk >= s_next:  # rare: close sparkline bins
            s_counts[sb] += k - s_start
            s_amp[sb] += amp_acc
            amp_acc = 0.0
            s_start = k
            while tk >= s_next:
                sb += 1
                s_next = s_edges[sb + 1] if sb < n_series - 1 else big
        if use_amp:
            amp_acc += amps[k]
        # refractory pairs (k, j > k) with t_j - t_k <= t_r: four candidates without a branch
        lim = tk + t_r
        if k + 4 < n:
            c = (t[k + 1] <= lim) + (t[k + 2] <= lim) + (t[k + 3] <= lim) + (t[k + 4] <= lim)
            rp += c
            if c == 4:
                j = k + 5
                while j < n and t[j] <= lim:
                    j += 1
                rp += j - k - 5
        else:
            j = k + 1
            while j < n and t[j] <= lim:
                j += 1
            rp += j - k - 1
    if pb < pr_nbins:
        pr_counts[pb] += n - pr_start
    s_counts[sb] += n - s_start
    s_amp[sb] += amp_acc
    return pr_counts, s_counts, s_amp, isi_v, rp


@numba.njit(cache=True, nogil=True)
def _merge_gathered(ia, ta, aa, ib, tb, ab, use_amp, want_idx):
    """Merge two clusters' gathered (spike index, time, amplitude) arrays in index order.

    One branch-free merge walk: at every step both heads are compared and the smaller
    one's values are selected (no rank arrays, no data-dependent branch). The merged
    indices are only written when asked for (a chain of more than two parents)."""
    na = ia.shape[0]
    nb = ib.shape[0]
    n = na + nb
    idx = np.empty(n if want_idx else 0, dtype=np.int64)
    t = np.empty(n, dtype=np.int64)
    amps = np.empty(n if use_amp else 0, dtype=np.float64)
    p = 0
    q = 0
    k = 0
    while p < na and q < nb:
        x = ia[p]
        y = ib[q]
        a_first = x < y
        t[k] = ta[p] if a_first else tb[q]
        if use_amp:
            amps[k] = aa[p] if a_first else ab[q]
        if want_idx:
            idx[k] = x if a_first else y
        p += np.int64(a_first)
        q += 1 - np.int64(a_first)
        k += 1
    while p < na:
        t[k] = ta[p]
        if use_amp:
            amps[k] = aa[p]
        if want_idx:
            idx[k] = ia[p]
        p += 1
        k += 1
    while q < nb:
        t[k] = tb[q]
        if use_amp:
            amps[k] = ab[q]
        if want_idx:
            idx[k] = ib[q]
        q += 1
        k += 1
    return idx, t, amps


@dataclass(frozen=True)
class PassResult:
    """What one pass over a cluster's spikes gathers."""

    times: np.ndarray  # int64 sorted spike times
    amplitudes: np.ndarray | None  # float64, spike order
    template_ids: np.ndarray  # int32 ascending, templates with count > 0
    template_counts: np.ndarray  # int64
    presence_counts: np.ndarray  # int64 per presence bin
    series_counts: np.ndarray  # int64 per sparkline bin
    series_amp_sum: np.ndarray  # float64 per sparkline bin
    isi_violations: int
    rp_violations: int


def cluster_pass(ctx: StatsContext, spikes: np.ndarray) -> PassResult:
    """One numba pass over ``spikes`` (sorted spike indices) gathering every metric's input."""
    sp = np.ascontiguousarray(spikes)
    amps = ctx.amplitudes
    use_amp = amps is not None
    t, a, tc = _gather_kernel(
        ctx.spike_times,
        sp,
        amps if use_amp else _EMPTY_F8,
        use_amp,
        ctx.spike_templates,
        ctx.n_templates,
    )
    tids = np.flatnonzero(tc).astype(np.int32)
    return pass_from_arrays(ctx, t, a if use_amp else None, tids, tc[tids])


def pass_from_arrays(
    ctx: StatsContext,
    times: np.ndarray,
    amplitudes: np.ndarray | None,
    template_ids: np.ndarray,
    template_counts: np.ndarray,
) -> PassResult:
    """The pass on already gathered (or merged) arrays: ``times`` sorted, in spike order."""
    use_amp = amplitudes is not None
    prc, sc, sa, isi_v, rp = _core_kernel(
        times,
        amplitudes if use_amp else _EMPTY_F8,
        use_amp,
        ctx.sample_rate,
        ctx.params.isi_threshold_ms / 1000.0,
        ctx.t_r,
        ctx.presence_bin_samples,
        ctx.presence_n_bins,
        ctx.params.n_series_bins,
        ctx.total_samples,
    )
    return PassResult(
        times, amplitudes, template_ids, template_counts, prc, sc, sa, int(isi_v), int(rp)
    )


def merge_passes(
    spikes: list[np.ndarray], gathered: list[tuple[np.ndarray, np.ndarray | None]]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Merged (times, amplitudes) of disjoint clusters from their gathered arrays, in spike
    order - what :func:`cluster_pass` would gather for the union, without touching the
    dataset's arrays."""
    use_amp = gathered[0][1] is not None
    idx = np.ascontiguousarray(spikes[0])
    t, a = gathered[0][0], gathered[0][1] if use_amp else _EMPTY_F8
    last = len(spikes) - 1
    for k, (sp, (tb, ab)) in enumerate(zip(spikes[1:], gathered[1:], strict=True), 1):
        idx, t, a = _merge_gathered(
            idx,
            t,
            a,
            np.ascontiguousarray(sp),
            tb,
            ab if use_amp else _EMPTY_F8,
            use_amp,
            k < last,
        )
    return t, (a if use_amp else None)


_EMPTY_F8 = np.zeros(0, dtype=np.float64)


# ---------------------------------------------------------------------- context and stats
class StatsContext:
    """The dataset-wide inputs of the statistics, resolved once.

    Parameters
    ----------
    dataset
        A :class:`curalog.dataset.Dataset` or any object with the same attributes
        (``spike_times``, ``spike_templates``, ``sample_rate``, ``duration``, ``n_templates``,
        ``amplitudes``, ``templates``, ``template_channels``, ``channel_map``,
        ``channel_positions``, ``channel_shanks``, ``similar_templates``).
    bins : CorrelogramBins
    params : MetricParams
    duration : float, optional
        Recording duration in seconds (default: the recording's length, see
        :mod:`curalog.analysis.stats.timebase`).
    recording : curalog.recording.Recording, optional
        The raw recording (its length, ``snr``, ``amplitude_median``).
    """

    def __init__(
        self,
        dataset: Any,
        bins: CorrelogramBins,
        params: MetricParams | None = None,
        duration: float | None = None,
        recording: Any = None,
    ):
        self.dataset = dataset
        self.bins = bins
        self.params = params or MetricParams()
        self.spike_times = dataset.spike_times
        self.spike_templates = dataset.spike_templates
        self.sample_rate = float(dataset.sample_rate)
        self.n_templates = int(dataset.n_templates)
        amps = getattr(dataset, "amplitudes", None)
        self.amplitudes = None if amps is None else np.asarray(amps).reshape(-1)
        if duration is not None:
            self.total_samples = max(1, int(round(float(duration) * self.sample_rate)))
            self.duration_source = "given"
        else:  # the recording's length (see curalog.analysis.stats.timebase)
            tb = recording_timebase(dataset, recording)
            self.total_samples = max(1, tb.total_samples)
            self.duration_source = tb.source
        self.duration = self.total_samples / self.sample_rate
        p = self.params
        self.t_r = int(round(p.refractory_period_ms * self.sample_rate * 1e-3))
        self.t_c = int(round(p.censored_period_ms * self.sample_rate * 1e-3))
        self.presence_bin_samples = max(1, int(p.presence_bin_s * self.sample_rate))
        self.presence_n_bins = self.total_samples // self.presence_bin_samples
        self.geometry = TemplateGeometry(dataset, p.n_closest_channels)
        self.channel_map = np.asarray(dataset.channel_map)
        self.channel_positions = np.asarray(dataset.channel_positions)
        self.channel_shanks = np.asarray(dataset.channel_shanks)
        cols = getattr(dataset, "sorter_columns", None)
        self.sorter_columns: dict[str, dict[int, Any]] = dict(cols) if cols else {}
        self.quality = QualityContext(dataset, self.geometry, self.total_samples)
        if recording is not None:
            self.quality.set_recording(recording)


@dataclass
class ClusterStats:
    """Every statistic of one cluster. Immutable by convention once cached.

    ``acg_half`` is the directed half ``H`` (see :mod:`curalog.analysis.stats.correlograms`), ``acg``
    the symmetric ``W``-bin autocorrelogram. ``spikes`` keeps a reference (not a copy) to the
    cluster's spike-index array, so a merge can be composed from cached parents.
    """

    cluster_id: int
    n_spikes: int
    spikes: np.ndarray = field(repr=False)
    template_ids: np.ndarray = field(repr=False)
    template_counts: np.ndarray = field(repr=False)
    template: int | None
    best_channels: np.ndarray | None = field(repr=False)
    best_channel: int | None
    ch: str | None
    shank: int | None
    depth: float
    template_amplitude: float
    peak_to_trough_ms: float
    firing_rate: float
    isi_violations_ratio: float
    isi_violations_count: int
    rp_contamination: float
    rp_violations: int
    presence_ratio: float
    amplitude_median: float
    amplitude_cutoff: float
    acg_half: np.ndarray = field(repr=False)
    presence_counts: np.ndarray = field(repr=False)
    series_counts: np.ndarray = field(repr=False)
    fr_series: np.ndarray = field(repr=False)
    amp_series: np.ndarray = field(repr=False)
    sorter: dict[str, Any] = field(default_factory=dict)
    how: str = "computed"  # or "composed"

    @property
    def acg(self) -> np.ndarray:
        """Symmetric autocorrelogram, ``W`` int64 counts (phy's ACG)."""
        return acg_from_half(self.acg_half)

    def row(self) -> dict[str, Any]:
        """Column values for a table (see :data:`curalog.analysis.stats.engine.TABLE_COLUMNS`)."""
        out: dict[str, Any] = {
            "id": self.cluster_id,
            "n_spikes": self.n_spikes,
            "template": self.template,
            "ch": self.ch,
            "best_channel": self.best_channel,
            "shank": self.shank,
            "depth": self.depth,
            "firing_rate": self.firing_rate,
            "template_amplitude": self.template_amplitude,
            "amplitude_median_npy": self.amplitude_median,
            "isi_violations_ratio": self.isi_violations_ratio,
            "isi_violations_count": self.isi_violations_count,
            "rp_contamination": self.rp_contamination,
            "rp_violations": self.rp_violations,
            "presence_ratio": self.presence_ratio,
            "amplitude_cutoff": self.amplitude_cutoff,
            "peak_to_trough_ms": self.peak_to_trough_ms,
        }
        out.update(sorter_row(self.sorter, out))
        return out


def sorter_row(sorter: dict[str, Any], computed: Any) -> dict[str, Any]:
    """The sorter's own columns (``cluster_<name>.tsv``) under names that never replace a
    computed one: always as ``sorter.<name>``, and under the bare name too when curalog
    computes no column of that name (so ``KSLabel`` and ``ContamPct`` keep working, while a
    folder's ``cluster_isi_violations_ratio.tsv`` is only ``sorter.isi_violations_ratio``)."""
    out: dict[str, Any] = {}
    for name, value in sorter.items():
        out[f"sorter.{name}"] = value
        if name not in computed:
            out[name] = value
    return out


def _series(
    ctx: StatsContext, counts: np.ndarray, amp_sum: np.ndarray, has_amp: bool
) -> tuple[np.ndarray, np.ndarray]:
    nb = ctx.params.n_series_bins
    bin_s = ctx.duration / nb
    fr = counts / bin_s
    if has_amp:
        with np.errstate(invalid="ignore", divide="ignore"):
            amp = np.where(counts > 0, amp_sum / np.maximum(counts, 1), np.nan)
    else:
        amp = np.full(nb, np.nan)
    return fr, amp


def compute_cluster_stats(
    ctx: StatsContext,
    cid: int,
    spikes: np.ndarray,
    *,
    acg_half_override: np.ndarray | None = None,
    pass_result: PassResult | None = None,
    parents: list[ClusterStats] | None = None,  # noqa: ARG001 (kept for callers)
) -> ClusterStats:
    """All statistics of cluster ``cid`` from its spikes.

    ``acg_half_override`` lets the engine pass an ACG composed from cached parents instead
    of running the ACG kernel, and ``pass_result`` the pass computed from the parents'
    gathered arrays (:func:`merge_passes`, :func:`pass_from_arrays`); both are exactly what
    the from-scratch path computes.
    """
    p = ctx.params
    res = pass_result if pass_result is not None else cluster_pass(ctx, spikes)
    n = int(spikes.shape[0])
    tmpl = dominant_template(res.template_ids, res.template_counts)
    info = ctx.geometry.get(tmpl)
    if info is not None:
        best: int | None = info.best_channel
        ch: str | None = (
            str(ctx.channel_map[best]) if best < ctx.channel_map.shape[0] else str(best)
        )
        shank: int | None = (
            int(ctx.channel_shanks[best]) if best < ctx.channel_shanks.shape[0] else None
        )
        depth = (
            float(ctx.channel_positions[best, 1])
            if best < ctx.channel_positions.shape[0]
            else math.nan
        )
        t_amp = info.amplitude
        ptt = info.peak_to_trough_ms
        best_channels: np.ndarray | None = info.channels
    else:
        best, ch, shank, depth, t_amp, ptt, best_channels = (
            None,
            None,
            None,
            math.nan,
            math.nan,
            math.nan,
            None,
        )
    if res.amplitudes is not None and n:
        med, cut = _amp_kernel(
            res.amplitudes,
            int(p.amp_cutoff_bins),
            _half_gaussian(float(p.amp_cutoff_smoothing)),
            float(p.amp_cutoff_min_ratio),
        )
        amp_med, amp_cut = float(med), float(cut)
    else:
        amp_med = amp_cut = math.nan
    h = acg_half_override if acg_half_override is not None else acg_half(res.times, ctx.bins)
    if ctx.total_samples < ctx.presence_bin_samples:
        pr = math.nan
    else:
        pr = presence_ratio_from_counts(
            res.presence_counts, n, ctx.duration, p.presence_bin_s, p.presence_mean_fr_ratio_thresh
        )
    fr_s, amp_s = _series(ctx, res.series_counts, res.series_amp_sum, res.amplitudes is not None)
    sorter = {}
    if 0 <= cid < ctx.n_templates:  # sorter columns stay with the sorter's own clusters
        for name, values in ctx.sorter_columns.items():
            if cid in values:
                sorter[name] = values[cid]
    return ClusterStats(
        cluster_id=int(cid),
        n_spikes=n,
        spikes=spikes,
        template_ids=res.template_ids,
        template_counts=res.template_counts,
        template=tmpl,
        best_channels=best_channels,
        best_channel=best,
        ch=ch,
        shank=shank,
        depth=depth,
        template_amplitude=t_amp,
        peak_to_trough_ms=ptt,
        firing_rate=n / ctx.duration,
        isi_violations_ratio=isi_violations_ratio(
            res.isi_violations, n, ctx.duration, p.isi_threshold_ms / 1000.0, p.min_isi_ms / 1000.0
        ),
        isi_violations_count=res.isi_violations if n else -1,
        rp_contamination=rp_contamination(
            res.rp_violations, n, ctx.total_samples, ctx.t_c, ctx.t_r
        ),
        rp_violations=res.rp_violations if n else -1,
        presence_ratio=pr,
        amplitude_median=amp_med,
        amplitude_cutoff=amp_cut,
        acg_half=h,
        presence_counts=res.presence_counts,
        series_counts=res.series_counts,
        fr_series=fr_s,
        amp_series=amp_s,
        sorter=sorter,
        how="computed" if acg_half_override is None else "composed",
    )
