"""Waveform metrics on a cluster's mean template: peak-to-trough duration, half widths,
repolarisation slope.

The waveform is the cluster's *mean template* on its best channel: the spike-count-weighted
mean of its member templates (``spike_templates`` histogram), each unwhitened with
``whitening_mat_inv.npy`` (docs/CURATION_ECOSYSTEM.md 4.5: the folder-only approximation of the
mean raw waveform; for a sorter's own cluster it is its template). The metrics follow
SpikeInterface 0.105's ``compute_template_metrics`` single-channel definitions
(``spikeinterface.metrics.template.metrics``) with its defaults, re-implemented:

1. the waveform is upsampled 10x (polyphase, ``scipy.signal.resample_poly``), so times
   have a resolution of ``1 / (10 fs)``;
2. **trough**: on ``-w``, inside the window that excludes ``int(0.09 ms * fs_up)`` samples at
   each edge, ``scipy.signal.find_peaks`` with prominence ``>= 0.3 max|w|``; the most
   prominent; if none, the most prominent at half that prominence; if still none, the
   window's minimum;
3. **peak before / after**: the same search on ``w`` before ``trough - m`` and after
   ``trough + m``, ``m = max(3, int(0.2 * trough half width in samples))``;
4. half width of an extremum ``e``: the threshold ``w[e] / 2``; the last sample before ``e``
   and the first at or after ``e`` where ``w >= threshold`` flips (``np.diff``); their
   distance in seconds (NaN without both crossings).

Columns (SpikeInterface's names and units):

peak_to_trough_duration
    ``(peak_after - trough) / fs_up`` in seconds (SpikeInterface's deprecated name for it:
    ``peak_to_valley``).
trough_half_width, peak_half_width
    Half widths in seconds of the trough (on ``-w``) and of the larger of the two peaks.
repolarization_slope
    Least-squares slope (units per second, ``scipy.stats.linregress``'s) of ``w`` from the trough to the first sample at or
    after it where ``w >= 0`` (NaN when that is closer than 3 samples, or never).

Cost: ``O(n_samples * upsampling)`` per cluster, once per dominant template mix; a merge
combines the parents' template histograms (no spike pass).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["TEMPLATE_COLUMNS", "template_waveform_metrics", "mean_template"]

TEMPLATE_COLUMNS = (
    "peak_to_trough_duration",
    "trough_half_width",
    "peak_half_width",
    "repolarization_slope",
)

_UPSAMPLING = 10
_MIN_THRESH = 0.3
_EDGE_MS = 0.09
_MIN_RATIO = 0.2
_MIN_DIST = 3


def mean_template(
    geometry, template_ids: np.ndarray, template_counts: np.ndarray, channel: int
) -> np.ndarray | None:
    """Spike-count-weighted mean of the unwhitened templates on one channel row."""
    acc = None
    total = 0
    for t, n in zip(template_ids.tolist(), template_counts.tolist(), strict=True):
        got = geometry.unwhitened(int(t))
        if got is None:
            continue
        w, chans = got
        hit = np.flatnonzero(chans == channel)
        col = w[:, hit[0]] if hit.shape[0] else np.zeros(w.shape[0])
        acc = col * n if acc is None else acc + col * n
        total += n
    if acc is None or total == 0:
        return None
    return acc / total


@functools.lru_cache(maxsize=1)
def _upsampling_filter() -> np.ndarray:
    """The low-pass FIR that ``resample_poly(up=10)`` designs by default (Kaiser, beta 5,
    cutoff 1/up, 2 * 10 * up + 1 taps), designed once instead of per cluster."""
    from scipy.signal import firwin

    h = firwin(2 * 10 * _UPSAMPLING + 1, 1.0 / _UPSAMPLING, window=("kaiser", 5.0))
    h.setflags(write=False)  # resample_poly copies it
    return h


def _half_width(w: np.ndarray, e: int, fs: float) -> tuple[float, int, int]:
    if e < 0:
        return math.nan, -1, -1
    thr = 0.5 * w[e]
    cross = np.flatnonzero(np.diff(w >= thr))
    before = cross[cross < e]
    after = cross[cross >= e]
    if before.shape[0] == 0 or after.shape[0] == 0:
        return math.nan, -1, -1
    return (int(after[0]) - int(before[-1])) / fs, int(before[-1]), int(after[0])


def _extremum(w: np.ndarray, prominence: float, start: int, end: int) -> int:
    """Index of the main maximum of ``w`` in ``[start, end)`` (see the module docstring)."""
    from scipy.signal import find_peaks

    if not (end > start and start > 0):
        return -1
    seg = w[start:end]
    locs, props = find_peaks(seg, prominence=prominence, width=0)
    if locs.shape[0] == 0:
        locs, props = find_peaks(seg, prominence=0.5 * prominence, width=0)
        if locs.shape[0] == 0:
            return start + int(np.argmax(seg))
    prom = props.get("prominences")
    best = int(np.nanargmax(prom)) if prom is not None and np.any(~np.isnan(prom)) else 0
    return start + int(locs[best])


def template_waveform_metrics(wave: np.ndarray | None, fs: float) -> dict[str, float]:
    """The four columns for one 1-D waveform (NaN for a missing or flat one)."""
    out = dict.fromkeys(TEMPLATE_COLUMNS, math.nan)
    if wave is None or wave.shape[0] < 4 or not np.any(wave):
        return out
    from scipy.signal import resample_poly

    w = resample_poly(
        np.asarray(wave, dtype=np.float64), up=_UPSAMPLING, down=1, window=_upsampling_filter()
    )
    fs_up = fs * _UPSAMPLING
    n = w.shape[0]
    prominence = _MIN_THRESH * float(np.nanmax(np.abs(w)))
    edge = int(_EDGE_MS / 1000 * fs_up)
    left, right = (edge, n - edge) if edge > 0 else (0, n)
    trough = _extremum(-w, prominence, left, right)
    _, hl, hr = _half_width(-w, trough, fs_up)
    dist = max(_MIN_DIST, int(_MIN_RATIO * (hr - hl))) if hl >= 0 and hr >= 0 else _MIN_DIST
    before = _extremum(w, prominence, left, trough - dist)
    after = _extremum(w, prominence, trough + dist, right)
    if trough >= 0 and after >= 0:
        out["peak_to_trough_duration"] = (after - trough) / fs_up
    out["trough_half_width"] = _half_width(-w, trough, fs_up)[0]
    peaks = [p for p in (after, before) if p >= 0]
    if peaks:
        peak = after if (after >= 0 and (before < 0 or w[after] >= w[before])) else before
        out["peak_half_width"] = _half_width(w, peak, fs_up)[0]
    if trough > 0:
        back = np.flatnonzero(w[trough:] >= 0)
        if back.shape[0] and back[0] >= 3:
            end = trough + int(back[0])
            t = np.arange(trough, end) / fs_up
            y = w[trough:end]
            tc = t - t.mean()  # least-squares slope (scipy.stats.linregress's)
            out["repolarization_slope"] = float(np.sum(tc * (y - y.mean())) / np.sum(tc * tc))
    return out
