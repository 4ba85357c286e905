"""Synthetic Kilosort-style output folders: demo, test and benchmark data for curalog.

:func:`synthesize` writes a complete folder that phy / phylib, SpikeInterface and curalog read
like a real Kilosort 2/3 output (``params.py``, ``spike_times.npy``, ``spike_templates.npy``,
``amplitudes.npy``, ``templates.npy``, channel files, ``similar_templates.npy``, whitening
matrices and the sorter's ``cluster_*.tsv`` columns), plus a ground-truth file
``synth_truth.json`` that phylib does not pick up.

The generative model
--------------------
*Probe.* A Neuropixels-1.0-like layout: two channels per row, 20 µm vertical pitch, the four
staggered columns x = 43, 11, 59, 27 µm (channel ``i`` sits at ``x = (43, 11, 59, 27)[i % 4]``,
``y = 20 * (i // 2 + 1)``), one shank, identity whitening.

*Units.* True units sit at a random position along the probe. Each has a log-normal firing
rate (median 5 Hz, clipped to 0.5–40 Hz), a log-normal mean amplitude scaling (median 25) and a
waveform: a difference of Gaussians in time (a sharp negative trough followed by a broad
positive rebound), scaled on every channel by a Gaussian spatial footprint of the distance to
the unit (σ = 18–30 µm, exactly zero beyond 100 µm, so about a dozen channels carry signal),
with a small propagation delay and a rebound that grows with distance.

*The "sorter".* About a third of the units are over-split into 2–4 templates. A split unit
deals its spikes to its templates either by time segment (drift-like: the recording is cut into
segments of at least 15 % of its length, with a soft, randomly jittered boundary) or by
amplitude (equal-probability amplitude quantiles). The templates of a split unit are copies of
the unit's waveform with a few µm of position shift, a few % of width change and (amplitude
splits) ±6 % amplitude, so their similarity is > 0.9. About 7.5 % of the templates are *noise*:
low-amplitude, oscillatory waveforms with a broad footprint, firing as Poisson processes
without refractoriness. Template ids are a random permutation (the sorter's ids carry no
ground-truth order).

*Spike trains.* Each true unit (and each noise template) is an independent renewal process in
integer samples: ISI = R + floor(E) with R = ceil(2 ms · sample_rate) (1 sample for noise) and E
exponential, its mean chosen so the process has exactly the unit's rate, started in its
stationary state at time 0. A unit therefore never has an ISI below 2 ms, whichever templates
its spikes were dealt to. The amplitude scaling factor of every spike is ~ N(mean_u,
0.15 · mean_u), clipped to > 0. Each source has its own counter-based random stream
(splitmix64) seeded from ``seed``, so every spike train is a deterministic function of the
seed that does not depend on how the recording is cut into chunks. The output is the merge of
all trains in (time, template id) order, cut to exactly ``n_spikes`` spikes; the recording
duration is the time of the last spike (about ``n_spikes / total rate``).

*Sorter columns.* ``cluster_ContamPct.tsv`` is the template's 1.5 ms ISI-violation count
relative to a Poisson process of the same rate (≈ 0 for real units, ≈ 100 for noise, clipped
to 100), ``cluster_KSLabel.tsv`` says ``good`` below 10 % and ``mua`` otherwise,
``cluster_Amplitude.tsv`` is the mean amplitude scaling times the template's peak-to-peak, and
``cluster_group.tsv`` is a copy of KSLabel, as Kilosort writes it.

*Features* (``pc_features=True``). ``pc_feature_ind`` holds the 12 channels nearest to the
template's peak channel (peak first), ``pc_features`` the projection of the template on those
channels onto the 3 leading temporal principal components of all templates, times the spike's
amplitude, plus Gaussian noise; ``template_features`` are the spike's amplitude times the
similarity to the 8 most similar templates (itself first), plus noise.

Drift (``drift=True``): realistic over-splitting
------------------------------------------------
A separate model (the default one above is unchanged bit for bit) for the merge proposals
(:mod:`curalog.analysis.proposals`), after what drifting Neuropixels recordings do to a sorter:

*Motion.* The probe moves: a smooth random trajectory (a linear trend plus three slow
sinusoids, often back and forth) with a peak-to-peak range of 25-50 µm over the recording.
Every unit follows it, scaled by ``1 + 0.3 (depth / probe length - 1/2)`` (non-rigid motion),
plus a 0.5-2 µm wobble of its own. Trajectories are piecewise linear with 256 knots.

*Pieces.* 30 % of the units are kept whole (one template at their median position); 8 % sit
in a stable spot and are split by amplitude into 2-3 concurrent pieces (as above); the rest
are split *along the drift*: one piece per ``w`` µm of the unit's range (``w`` log-uniform
in 1.5-16 µm, so 2 to 32 pieces, tens for some units). Piece ``j`` covers the ``j``-th
``1/k`` quantile range of the unit's positions (equal shares of its spikes); its template is
the unit's waveform at the middle of that range. A spike goes to the piece of its position
``p(t) + N(0, s^2)`` (``s`` 0.5-2 µm: the sorter's uncertainty, so neighbouring pieces mix
where one hands over to the next) and its amplitude scaling is multiplied by a slow gain
(``exp`` of a smooth curve, 10-40 % peak to peak) and by ``P(p) / P_j``, the template
peak-to-peak interpolated at ``p`` over that of its piece, so that the true amplitude
(scaling times template) is continuous across a handoff. Pieces of a unit whose drift goes
back and forth appear in several time intervals.

*Near-duplicate neighbours.* 25 % of the units are followed by a *twin*: a different unit
15-30 µm away along the probe (and up to 12 µm across), with the same waveform parameters
within 4 %, a peak amplitude within 15 %, its own rate and its own pieces. Twins drift
together, so a twin's piece can sit where the unit was a while ago: similar templates at
similar positions, but two neurons firing at the same time. They must not be merged.

*Truth.* ``synth_truth.json`` gets, besides ``unit_of_template``: per unit ``split`` (none,
drift, amplitude), ``twin_of`` (the unit it duplicates, or null), ``drift_um`` (its range)
and ``jitter_um`` (``s``), ``templates`` in position order for drift splits; and the keys
``drift`` (range, knots, the probe motion in µm at every knot) and ``near_duplicates``
(the ``[unit, twin]`` pairs).

Streaming
---------
Time windows expected to hold ``2**19`` spikes are generated by a numba kernel (source after
source), sorted by an O(n) bucket sort and appended by a writer thread to ``.npy`` files whose
header was written first, so memory stays bounded (a few tens of MB beyond the templates) at
any size: 50 M spikes and 1,000 templates take about 8 s on 2 cores. ``spike_times.npy`` is
written under a temporary name and renamed last, so an interrupted run never looks like a
complete dataset.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, BinaryIO

import numpy as np
from numba import njit

__all__ = ["SynthInfo", "synthesize", "channel_positions_np1"]

TRUTH_FILE = "synth_truth.json"
TRUTH_FORMAT = "curalog-synth-truth"
TRUTH_VERSION = 1

_CHUNK = 1 << 19  # spikes per streamed chunk (buffers stay cache-resident)
_CAP_HEADROOM = 1.3  # window buffers: capacity = headroom * expected spikes + extra
_CAP_EXTRA = 4096
_FEATURE_BLOCK = 1 << 16  # spikes per feature block (bounds the temporaries)
_NP1_X = np.array([43.0, 11.0, 59.0, 27.0])
_REFRACTORY_S = 0.002
_VIOLATION_S = 0.0015
_AMP_CV = 0.15
_NOISE_FRACTION = 0.075
_SPLIT_FRACTION = 1.0 / 3.0
_FOOTPRINT_CUTOFF_UM = 100.0

_MODE_SINGLE = 0
_MODE_DRIFT = 1
_MODE_AMPLITUDE = 2


@dataclass(frozen=True)
class SynthInfo:
    """Summary of a synthesized dataset.

    Attributes
    ----------
    path : Path
        The dataset folder.
    n_spikes, n_templates, n_units, n_channels : int
        Sizes. ``n_units`` counts true units only (not noise templates).
    sample_rate : float
        Samples per second.
    duration : float
        Recording duration in seconds: ``(last spike sample + 1) / sample_rate``.
    unit_of_template : np.ndarray
        ``(n_templates,)`` int64, the true unit of every template, -1 for noise templates.
    """

    path: Path
    n_spikes: int
    n_templates: int
    n_units: int
    n_channels: int
    sample_rate: float
    duration: float
    unit_of_template: np.ndarray


# --------------------------------------------------------------------------------------------
# numba kernels: per-source random streams, windowed generation, bucket sort
# --------------------------------------------------------------------------------------------

_SM_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SM_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SM_M2 = np.uint64(0x94D049BB133111EB)
_U30 = np.uint64(30)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U11 = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0


@njit(cache=True, inline="always")
def _splitmix(state):  # pragma: no cover - numba
    """One splitmix64 step: ``(new state, double in [0, 1))``."""
    state = state + _SM_GAMMA
    z = (state ^ (state >> _U30)) * _SM_M1
    z = (z ^ (z >> _U27)) * _SM_M2
    z = z ^ (z >> _U31)
    return state, float(z >> _U11) * _INV_2_53


@njit(cache=True, inline="always")
def _next_event(
    st,
    t,
    refr,
    isi_mean,
    amp_mean,
    amp_cv,
    mode,
    b,
    k,
    jitter,
    cuts,
    tpl_flat,
    mot,
    gain,
    knot_dt,
    cpos,
    cptp,
):  # pragma: no cover - numba
    """The event following time ``t`` of one source: ``(rng state, time, template, amp)``.

    ISI = ``refr + floor(Exp(isi_mean))``; amplitude ``amp_mean * (1 + amp_cv * z)``, z
    standard normal (Box-Muller); the template is the source's ``j``-th (``tpl_flat[b + j]``)
    with ``j`` the number of ``cuts[b:b + k - 1]`` below the jittered time (drift mode),
    below ``z`` (amplitude mode) or below the jittered position (position-drift mode 3).

    Mode 3 (``drift=True`` datasets): the unit's position ``p(t)`` and amplitude gain
    ``g(t)`` are the linear interpolations of the source's knots ``mot`` / ``gain`` (one
    knot every ``knot_dt`` samples, clamped at the ends); the spike's position is
    ``p(t) + jitter * z'`` (z' standard normal); ``j`` counts the position cuts below it, and
    the amplitude is multiplied by ``g(t) * P(p) / P_j``, where ``P_j = cptp[b + j]`` is the
    peak-to-peak of piece ``j``'s template and ``P(p)`` interpolates it linearly between the
    pieces' centre positions ``cpos``: the true amplitude (scaling times template) is then
    continuous where one piece hands over to the next.
    """
    st, u = _splitmix(st)
    tn = t + refr + np.int64(math.floor(-math.log(1.0 - u) * isi_mean))
    st, u1 = _splitmix(st)
    st, u2 = _splitmix(st)
    z = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
    a = amp_mean * (1.0 + amp_cv * z)
    if a < 0.01 * amp_mean:
        a = 0.01 * amp_mean
    j = 0
    if mode == 1:  # drift-like: segment of a jittered time
        st, u = _splitmix(st)
        tj = tn + (2.0 * u - 1.0) * jitter
        for i in range(k - 1):
            if cuts[b + i] < tj:
                j += 1
    elif mode == 2:  # amplitude quantile
        for i in range(k - 1):
            if cuts[b + i] < z:
                j += 1
    elif mode == 3:  # position drift: piece of the jittered position
        nk = mot.shape[0]
        x = tn / knot_dt
        i0 = int(math.floor(x))
        if i0 < 0:
            i0 = 0
        if i0 > nk - 2:
            i0 = nk - 2
        f = x - i0
        if f < 0.0:
            f = 0.0
        if f > 1.0:
            f = 1.0
        p = mot[i0] + f * (mot[i0 + 1] - mot[i0])
        g = gain[i0] + f * (gain[i0 + 1] - gain[i0])
        st, u3 = _splitmix(st)
        st, u4 = _splitmix(st)
        p += jitter * math.sqrt(-2.0 * math.log(1.0 - u3)) * math.cos(2.0 * math.pi * u4)
        for i in range(k - 1):
            if cuts[b + i] < p:
                j += 1
        j2 = j
        if p >= cpos[b + j] and j < k - 1:
            j2 = j + 1
        elif p < cpos[b + j] and j > 0:
            j2 = j - 1
        ratio = 1.0
        if j2 != j:
            w = (p - cpos[b + j]) / (cpos[b + j2] - cpos[b + j])
            if w > 1.0:
                w = 1.0
            ratio = (cptp[b + j] + w * (cptp[b + j2] - cptp[b + j])) / cptp[b + j]
        a *= g * ratio
    return st, tn, tpl_flat[b + j], a


@njit(cache=True)
def _init_sources(
    rng,
    refr,
    isi_mean,
    mode,
    start,
    k,
    amp_mean,
    amp_cv,
    jitter,
    cuts,
    tpl_flat,
    mot,
    gain,
    knot_dt,
    cpos,
    cptp,
    next_t,
    next_tpl,
    next_amp,
):  # pragma: no cover - numba
    """Draw the first event of every source, from the stationary renewal process."""
    for s in range(next_t.shape[0]):
        # time 0 falls in the refractory part of an ISI with probability R / (R + m), then the
        # rest of it is uniform; the exponential part is memoryless.
        r = refr[s]
        st, u = _splitmix(rng[s])
        st, u2 = _splitmix(st)
        rest = np.int64(math.floor(u2 * r)) if u * (r + isi_mean[s]) < r else np.int64(0)
        st, t, tp, a = _next_event(
            st,
            rest - r,
            r,
            isi_mean[s],
            amp_mean[s],
            amp_cv,
            mode[s],
            start[s],
            k[s],
            jitter[s],
            cuts,
            tpl_flat,
            mot[s],
            gain[s],
            knot_dt,
            cpos,
            cptp,
        )
        rng[s] = st
        next_t[s] = t
        next_tpl[s] = tp
        next_amp[s] = a


@njit(cache=True, nogil=True)
def _gen_window(
    t1,
    out_t,
    out_tpl,
    out_amp,
    rng,
    refr,
    isi_mean,
    mode,
    start,
    k,
    amp_mean,
    amp_cv,
    jitter,
    cuts,
    tpl_flat,
    mot,
    gain,
    knot_dt,
    cpos,
    cptp,
    next_t,
    next_tpl,
    next_amp,
):  # pragma: no cover
    """Emit every event before sample ``t1`` of every source, source after source.

    Returns the number of events, or -1 if the output buffers are too small (the source
    states are then partly advanced: the caller restores them).
    """
    cap = out_t.shape[0]
    n = 0
    for s in range(next_t.shape[0]):
        st = rng[s]
        t = next_t[s]
        tp = next_tpl[s]
        a = next_amp[s]
        r = refr[s]
        im = isi_mean[s]
        am = amp_mean[s]
        md = mode[s]
        b = start[s]
        ks = k[s]
        jt = jitter[s]
        ms = mot[s]
        gs = gain[s]
        while t < t1:
            if n == cap:
                return -1
            out_t[n] = t
            out_tpl[n] = tp
            out_amp[n] = a
            n += 1
            st, t, tp, a = _next_event(
                st, t, r, im, am, amp_cv, md, b, ks, jt, cuts, tpl_flat, ms, gs, knot_dt, cpos, cptp
            )
        rng[s] = st
        next_t[s] = t
        next_tpl[s] = tp
        next_amp[s] = a
    return n


@njit(cache=True, nogil=True)
def _sort_window(
    n, t0, t1, in_t, in_tpl, in_amp, out_t, out_tpl, out_amp, hist
):  # pragma: no cover - numba
    """Sort ``n`` events of ``[t0, t1)`` by (time, template): bucket sort, O(n).

    Buckets of ``2**shift`` samples, about one event per bucket (``hist`` holds at least
    ``n + 1`` counters), then an insertion sort inside every bucket.
    """
    nb = hist.shape[0] - 1
    span = t1 - t0
    shift = 0
    while (span >> shift) >= nb:
        shift += 1
    n_buckets = ((span - 1) >> shift) + 1
    for i in range(n_buckets + 1):
        hist[i] = 0
    for i in range(n):
        hist[((in_t[i] - t0) >> shift) + 1] += 1
    for i in range(n_buckets):
        hist[i + 1] += hist[i]
    for i in range(n):
        bk = (in_t[i] - t0) >> shift
        j = hist[bk]
        hist[bk] = j + 1
        out_t[j] = in_t[i]
        out_tpl[j] = in_tpl[i]
        out_amp[j] = in_amp[i]
    # after the scatter, hist[b] is the end of bucket b (= start of bucket b + 1)
    lo = 0
    for bk in range(n_buckets):
        hi = hist[bk]
        for i in range(lo + 1, hi):
            t = out_t[i]
            tp = out_tpl[i]
            a = out_amp[i]
            j = i - 1
            while j >= lo and (out_t[j] > t or (out_t[j] == t and out_tpl[j] > tp)):
                out_t[j + 1] = out_t[j]
                out_tpl[j + 1] = out_tpl[j]
                out_amp[j + 1] = out_amp[j]
                j -= 1
            out_t[j + 1] = t
            out_tpl[j + 1] = tp
            out_amp[j + 1] = a
        lo = hi


@njit(cache=True, nogil=True)
def _accumulate(n, t, tpl, amp, count, amp_sum, last_t, viol, viol_win):  # pragma: no cover - numba
    """Per-template spike counts, amplitude sums and ISI violations (ISI < ``viol_win``)."""
    for i in range(n):
        tp = tpl[i]
        count[tp] += 1
        amp_sum[tp] += amp[i]
        lt = last_t[tp]
        if lt >= 0 and t[i] - lt < viol_win:
            viol[tp] += 1
        last_t[tp] = t[i]


# --------------------------------------------------------------------------------------------
# model construction (small, vectorised numpy)
# --------------------------------------------------------------------------------------------


def channel_positions_np1(n_channels: int) -> np.ndarray:
    """Neuropixels-1.0-like staggered positions ``(n_channels, 2)`` float64, in µm."""
    i = np.arange(n_channels)
    return np.column_stack([_NP1_X[i % 4], 20.0 * (i // 2 + 1)]).astype(np.float64)


@dataclass
class _Model:
    """Everything drawn before the spikes: units, templates, sources."""

    unit_of_template: np.ndarray  # (n_t,) int64
    templates: np.ndarray  # (n_t, ns, nc) float32
    units: list[dict[str, Any]]
    noise_templates: list[int]
    # sources = true units then noise templates
    refr: np.ndarray
    isi_mean: np.ndarray
    mode: np.ndarray
    start: np.ndarray
    k: np.ndarray
    amp_mean: np.ndarray
    jitter: np.ndarray
    cuts: np.ndarray
    tpl_flat: np.ndarray
    total_rate: float  # spikes per second, all sources
    # position-drift sources (mode 3, ``drift=True``); None in the default model
    mot: np.ndarray | None = None  # (n_src, n_knots) unit position along the probe, µm
    gain: np.ndarray | None = None  # (n_src, n_knots) amplitude gain
    knot_dt: float = 1.0  # samples between knots
    cpos: np.ndarray | None = None  # (n_templates,) per slot: the piece's centre position, µm
    cptp: np.ndarray | None = None  # (n_templates,) per slot: the piece's template peak-to-peak
    truth_extra: dict[str, Any] | None = None  # extra keys of synth_truth.json

    def drift_arrays(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
        """``(mot, gain, knot_dt, cpos, cptp)`` for the kernels (dummies without drift)."""
        n_src = self.refr.shape[0]
        n_t = self.tpl_flat.shape[0]
        mot = self.mot if self.mot is not None else np.zeros((n_src, 2))
        gain = self.gain if self.gain is not None else np.ones((n_src, 2))
        cpos = self.cpos if self.cpos is not None else np.zeros(n_t)
        cptp = self.cptp if self.cptp is not None else np.ones(n_t)
        return (
            np.ascontiguousarray(mot, dtype=np.float64),
            np.ascontiguousarray(gain, dtype=np.float64),
            float(self.knot_dt),
            np.ascontiguousarray(cpos, dtype=np.float64),
            np.ascontiguousarray(cptp, dtype=np.float64),
        )


def _isi_mean_for_rate(rate: np.ndarray, refr: np.ndarray, sample_rate: float) -> np.ndarray:
    """Mean ``m`` of E so that ISI = refr + floor(E), E ~ Exp(m), has mean ``sample_rate/rate``.

    E[floor(E)] = 1 / (exp(1/m) - 1) =: K, hence m = 1 / log1p(1 / K).
    """
    kk = sample_rate / rate - refr
    kk = np.maximum(kk, 1e-3)
    return 1.0 / np.log1p(1.0 / kk)


def _waveform(
    ns: int,
    trough: float,
    sr_scale: float,
    s1: float,
    s2: float,
    d: float,
    r: np.ndarray,
    delay: np.ndarray,
) -> np.ndarray:
    """Difference-of-Gaussians spike waveform on several channels, ``(ns, n_ch)``.

    Trough of depth 1 at ``trough + delay`` (σ ``s1``), rebound ``r`` at ``+d`` (σ ``s2``);
    all times in 30 kHz samples, scaled by ``sr_scale``.
    """
    t = (np.arange(ns, dtype=np.float64)[:, None] - trough - delay[None, :]) / sr_scale
    return -np.exp(-0.5 * (t / s1) ** 2) + r[None, :] * np.exp(-0.5 * ((t - d) / s2) ** 2)


def _write_noise_template(
    out: np.ndarray,
    rng: np.random.Generator,
    pos: np.ndarray,
    y_top: float,
    trough: int,
    sr_scale: float,
) -> None:
    """A noise template into ``out`` (n_samples, n_channels): a low, broad, oscillating
    footprint at a random place (the random draws in a fixed order: datasets stay the same)."""
    n_samples = out.shape[0]
    x = rng.uniform(0.0, 70.0)
    y = rng.uniform(0.0, y_top)
    sig_space = rng.uniform(60.0, 150.0)
    dist = np.hypot(pos[:, 0] - x, pos[:, 1] - y)
    near = dist <= 3.0 * sig_space
    if not near.any():
        near = dist == dist.min()
    f = rng.uniform(0.02, 0.08)
    phase = rng.uniform(0.0, 2 * math.pi)
    sw = rng.uniform(6.0, 14.0)
    tt = (np.arange(n_samples) - trough) / sr_scale
    w = np.exp(-0.5 * (tt / sw) ** 2) * np.sin(2 * math.pi * f * tt + phase)
    w /= max(np.abs(w).max(), 1e-12)
    fp = np.exp(-0.5 * (dist[near] / sig_space) ** 2)
    out[:, near] = rng.uniform(0.02, 0.05) * w[:, None] * fp[None, :]


def _probe_geometry(
    n_channels: int, sample_rate: float, n_samples: int
) -> tuple[np.ndarray, float, float, int]:
    """Channel positions, the probe's top (µm), the time scale vs 30 kHz and the trough sample."""
    pos = channel_positions_np1(n_channels)
    return pos, float(pos[:, 1].max()) + 20.0, sample_rate / 30_000.0, round(n_samples * 40 / 82)


def _noise_count(n_templates: int) -> int:
    """How many templates are noise (at least one from 4 templates on)."""
    n_noise = int(round(_NOISE_FRACTION * n_templates))
    return max(1, n_noise) if n_templates >= 4 else n_noise


def _build_model(
    n_spikes: int, n_templates: int, seed: int, n_channels: int, sample_rate: float, n_samples: int
) -> tuple[_Model, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    pos, y_top, sr_scale, trough = _probe_geometry(n_channels, sample_rate, n_samples)

    # -- how many noise templates, how templates are dealt to units
    n_noise = _noise_count(n_templates)
    n_real = n_templates - n_noise
    ks: list[int] = []
    left = n_real
    while left > 0:
        if left >= 2 and rng.random() < _SPLIT_FRACTION:
            k = int(rng.integers(2, min(4, left) + 1))
        else:
            k = 1
        ks.append(k)
        left -= k
    n_units = len(ks)
    ids = rng.permutation(n_templates)  # sorter's template ids carry no ground-truth order
    unit_of_template = np.full(n_templates, -1, dtype=np.int64)

    rates = np.clip(np.exp(rng.normal(math.log(5.0), 0.85, n_units)), 0.5, 40.0)
    amps = np.clip(np.exp(rng.normal(math.log(25.0), 0.35, n_units)), 8.0, 80.0)
    noise_rates = np.clip(np.exp(rng.normal(math.log(8.0), 0.6, n_noise)), 1.0, 60.0)
    noise_amps = rng.uniform(6.0, 14.0, n_noise)
    total_rate = float(rates.sum() + noise_rates.sum())
    t_nominal = n_spikes / total_rate * sample_rate  # expected duration, samples

    templates = np.zeros((n_templates, n_samples, n_channels), dtype=np.float32)
    n_src = n_units + n_noise
    refr_samples = int(math.ceil(_REFRACTORY_S * sample_rate - 1e-9))
    refr = np.zeros(n_src, dtype=np.int64)
    refr[:n_units] = refr_samples
    refr[n_units:] = 1  # noise: Poisson-like, but never two spikes in one sample
    mode = np.zeros(n_src, dtype=np.int64)
    start = np.zeros(n_src, dtype=np.int64)
    kk = np.ones(n_src, dtype=np.int64)
    jitter = np.zeros(n_src, dtype=np.float64)
    cuts = np.zeros(n_templates, dtype=np.float64)
    tpl_flat = np.zeros(n_templates, dtype=np.int32)
    units: list[dict[str, Any]] = []

    slot = 0
    for u, k in enumerate(ks):
        x = rng.uniform(0.0, 70.0)
        y = rng.uniform(0.0, y_top)
        sig_space = rng.uniform(18.0, 30.0)
        s1 = rng.uniform(2.5, 4.5)
        s2 = rng.uniform(5.0, 9.0)
        d = rng.uniform(8.0, 14.0)
        reb = rng.uniform(0.25, 0.55)
        speed = rng.uniform(30.0, 60.0)  # µm per sample
        peak = rng.uniform(0.08, 0.3)
        m = _MODE_SINGLE if k == 1 else int(rng.choice([_MODE_DRIFT, _MODE_AMPLITUDE]))
        if m == _MODE_DRIFT:
            seg = 0.15 + (1.0 - 0.15 * k) * rng.dirichlet(np.ones(k))
            cuts[slot : slot + k - 1] = np.cumsum(seg)[:-1] * t_nominal
            jitter[u] = rng.uniform(0.01, 0.04) * t_nominal
            step = rng.uniform(1.5, 2.5) * (1 if rng.random() < 0.5 else -1)
            dys = (np.arange(k) - (k - 1) / 2) * step
            dxs = np.zeros(k)
            gains = np.ones(k)
        elif m == _MODE_AMPLITUDE:
            nd = NormalDist()
            cuts[slot : slot + k - 1] = [nd.inv_cdf(j / k) for j in range(1, k)]
            dys = rng.uniform(-1.5, 1.5, k)
            dxs = rng.uniform(-1.0, 1.0, k)
            gains = 1.0 + 0.06 * (np.arange(k) - (k - 1) / 2)
        else:
            dys = dxs = np.zeros(1)
            gains = np.ones(1)
        tids = ids[slot : slot + k]
        for j, t in enumerate(tids):
            dist = np.hypot(pos[:, 0] - (x + dxs[j]), pos[:, 1] - (y + dys[j]))
            near = dist <= _FOOTPRINT_CUTOFF_UM
            if not near.any():  # unit beyond the probe's ends: use the nearest channel
                near = dist == dist.min()
            dn = dist[near]
            wj = 1.0 + (rng.uniform(-0.03, 0.03) if k > 1 else 0.0)
            w = _waveform(
                n_samples,
                trough,
                sr_scale,
                s1 * wj,
                s2 * wj,
                d,
                reb * (1.0 + 0.5 * dn / 100.0),
                dn / speed,
            )
            templates[t][:, near] = (peak * gains[j]) * w * np.exp(-0.5 * (dn / sig_space) ** 2)
            unit_of_template[t] = u
        tpl_flat[slot : slot + k] = tids
        mode[u] = m
        start[u] = slot
        kk[u] = k
        units.append(
            {
                "unit": u,
                "templates": [int(t) for t in tids],
                "rate_hz": float(rates[u]),
                "depth_um": float(y),
                "x_um": float(x),
                "amplitude_mean": float(amps[u]),
                "split": ["none", "drift", "amplitude"][m],
            }
        )
        slot += k

    noise_templates: list[int] = []
    for i in range(n_noise):
        t = int(ids[slot])
        _write_noise_template(templates[t], rng, pos, y_top, trough, sr_scale)
        src = n_units + i
        tpl_flat[slot] = t
        start[src] = slot
        noise_templates.append(t)
        slot += 1

    amp_mean = np.concatenate([amps, noise_amps]).astype(np.float64)
    isi_mean = _isi_mean_for_rate(np.concatenate([rates, noise_rates]), refr, sample_rate)
    model = _Model(
        unit_of_template,
        templates,
        units,
        sorted(noise_templates),
        refr,
        isi_mean,
        mode,
        start,
        kk,
        amp_mean,
        jitter,
        cuts,
        tpl_flat,
        total_rate,
    )
    return model, pos


# --------------------------------------------------------------------------------------------
# the realistic over-splitting model (drift=True)
# --------------------------------------------------------------------------------------------

_DRIFT_KNOTS = 256  # knots of every unit's position and gain trajectory
_DRIFT_RANGE_UM = (25.0, 50.0)  # peak-to-peak probe motion over the recording
_DRIFT_SINGLE = 0.30  # units the sorter keeps whole (one template for the whole drift)
_DRIFT_AMP_SPLIT = 0.08  # units in a stable spot, split by amplitude (concurrent pieces)
_DRIFT_PIECE_UM = (1.5, 16.0)  # drift-split units: one piece per this many µm (log-uniform)
_DRIFT_MAX_PIECES = 32
_TWIN_FRACTION = 0.25  # units followed by a near-duplicate neighbour
_TWIN_DY_UM = (15.0, 30.0)


def _smooth_curve(rng: np.random.Generator, tau: np.ndarray, n_harm: int = 3) -> np.ndarray:
    """A smooth random curve on ``tau`` in [0, 1]: a linear trend plus ``n_harm`` slow
    sinusoids (amplitude 1/h), centred, scaled to a peak-to-peak range of 1."""
    c = rng.uniform(-1.0, 1.0) * (tau - 0.5)
    for h in range(1, n_harm + 1):
        c = c + rng.normal(0.0, 1.0) / h * np.sin(
            2.0 * math.pi * h * rng.uniform(0.5, 1.0) * tau + rng.uniform(0.0, 2.0 * math.pi)
        )
    c = c - c.mean()
    return c / max(float(c.max() - c.min()), 1e-9)


def _build_model_drift(
    n_spikes: int, n_templates: int, seed: int, n_channels: int, sample_rate: float, n_samples: int
) -> tuple[_Model, np.ndarray]:
    """The realistic over-splitting model (module docstring, "Drift")."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD51F7]))
    pos, y_top, sr_scale, trough = _probe_geometry(n_channels, sample_rate, n_samples)

    n_noise = _noise_count(n_templates)
    n_real = n_templates - n_noise
    ids = rng.permutation(n_templates)
    unit_of_template = np.full(n_templates, -1, dtype=np.int64)
    noise_rates = np.clip(np.exp(rng.normal(math.log(8.0), 0.6, n_noise)), 1.0, 60.0)
    noise_amps = rng.uniform(6.0, 14.0, n_noise)
    # the recording's length is set by the total rate, known once the units are drawn: the
    # trajectories are drawn on normalised time and the knots placed afterwards
    tau_k = np.linspace(0.0, 1.0, _DRIFT_KNOTS)
    tau_g = np.linspace(0.0, 1.0 / 1.05, 4096)  # the recording, for the piece boundaries
    drift_range = float(rng.uniform(*_DRIFT_RANGE_UM))
    motion = drift_range * _smooth_curve(rng, tau_k)  # the probe's motion, shared by all units

    templates = np.zeros((n_templates, n_samples, n_channels), dtype=np.float32)
    cuts = np.zeros(n_templates, dtype=np.float64)
    tpl_flat = np.zeros(n_templates, dtype=np.int32)
    cpos = np.zeros(n_templates, dtype=np.float64)
    cptp = np.ones(n_templates, dtype=np.float64)
    u_mode: list[int] = []
    u_start: list[int] = []
    u_k: list[int] = []
    u_jitter: list[float] = []
    u_mot: list[np.ndarray] = []
    u_gain: list[np.ndarray] = []
    rates: list[float] = []
    amps: list[float] = []
    units: list[dict[str, Any]] = []
    shapes: list[dict[str, float]] = []
    near_duplicates: list[list[int]] = []

    def template_at(
        x: float, y: float, sh: dict[str, float], gain_: float, wj: float
    ) -> np.ndarray:
        dist = np.hypot(pos[:, 0] - x, pos[:, 1] - y)
        near = dist <= _FOOTPRINT_CUTOFF_UM
        if not near.any():
            near = dist == dist.min()
        dn = dist[near]
        w = _waveform(
            n_samples,
            trough,
            sr_scale,
            sh["s1"] * wj,
            sh["s2"] * wj,
            sh["d"],
            sh["reb"] * (1.0 + 0.5 * dn / 100.0),
            dn / sh["speed"],
        )
        full = np.zeros((n_samples, n_channels), dtype=np.float64)
        full[:, near] = (sh["peak"] * gain_) * w * np.exp(-0.5 * (dn / sh["sig"]) ** 2)
        return full

    slot = 0
    while slot < n_real:
        u = len(units)
        left = n_real - slot
        twin_of = -1
        if units and units[-1]["twin_of"] is None and rng.random() < _TWIN_FRACTION:
            twin_of = u - 1
        rate = float(np.clip(np.exp(rng.normal(math.log(5.0), 0.85)), 0.5, 40.0))
        if twin_of >= 0:  # a different unit close by, with nearly the same waveform
            base = shapes[twin_of]
            sh = {key: v * (1.0 + rng.uniform(-0.04, 0.04)) for key, v in base.items()}
            sh["peak"] = base["peak"] * rng.uniform(0.85, 1.15)
            sh["x"] = float(np.clip(base["x"] + rng.uniform(-12.0, 12.0), 0.0, 70.0))
            dy = rng.uniform(*_TWIN_DY_UM) * (1.0 if rng.random() < 0.5 else -1.0)
            sh["y"] = float(np.clip(base["y"] + dy, 0.0, y_top))
            amp = float(np.clip(amps[twin_of] * rng.uniform(0.85, 1.15), 8.0, 80.0))
            near_duplicates.append([twin_of, u])
        else:
            sh = {
                "x": rng.uniform(0.0, 70.0),
                "y": rng.uniform(0.0, y_top),
                "sig": rng.uniform(18.0, 30.0),
                "s1": rng.uniform(2.5, 4.5),
                "s2": rng.uniform(5.0, 9.0),
                "d": rng.uniform(8.0, 14.0),
                "reb": rng.uniform(0.25, 0.55),
                "speed": rng.uniform(30.0, 60.0),
                "peak": rng.uniform(0.08, 0.3),
            }
            amp = float(np.clip(np.exp(rng.normal(math.log(25.0), 0.35)), 8.0, 80.0))
        shapes.append(sh)
        # non-rigid motion: scaled with depth, plus a small wobble of the unit's own
        traj = (
            sh["y"]
            + motion * (1.0 + 0.3 * (sh["y"] / y_top - 0.5))
            + rng.uniform(0.5, 2.0) * _smooth_curve(rng, tau_k)
        )
        g_u = np.exp(rng.uniform(0.1, 0.4) * _smooth_curve(rng, tau_k))
        y_g = np.interp(tau_g, tau_k, traj)
        span = float(y_g.max() - y_g.min())
        r = rng.random()
        piece_um = math.exp(rng.uniform(math.log(_DRIFT_PIECE_UM[0]), math.log(_DRIFT_PIECE_UM[1])))
        if r < _DRIFT_SINGLE:
            m, k = 3, 1
        elif r < _DRIFT_SINGLE + _DRIFT_AMP_SPLIT:
            m, k = _MODE_AMPLITUDE, int(rng.integers(2, 4))
        else:
            m, k = 3, int(np.clip(round(span / piece_um), 2, _DRIFT_MAX_PIECES))
        k = max(1, min(k, left))
        if k == 1:
            m = 3
        tids = ids[slot : slot + k]
        info: dict[str, Any] = {}
        jit = 0.0
        if m == _MODE_AMPLITUDE:
            nd = NormalDist()
            cuts[slot : slot + k - 1] = [nd.inv_cdf(j / k) for j in range(1, k)]
            gains = 1.0 + 0.06 * (np.arange(k) - (k - 1) / 2)
            for j, t in enumerate(tids):
                templates[t] = template_at(
                    sh["x"] + rng.uniform(-1.0, 1.0),
                    sh["y"] + rng.uniform(-1.5, 1.5),
                    sh,
                    float(gains[j]),
                    1.0 + rng.uniform(-0.03, 0.03),
                )
        else:  # position drift: pieces are position quantiles of the trajectory
            if k > 1:
                cuts[slot : slot + k - 1] = np.quantile(y_g, np.arange(1, k) / k)
            centres = np.quantile(y_g, (np.arange(k) + 0.5) / k)
            for j, t in enumerate(tids):
                w = template_at(sh["x"], float(centres[j]), sh, 1.0, 1.0)
                templates[t] = w
                cpos[slot + j] = centres[j]
                cptp[slot + j] = float((w.max(axis=0) - w.min(axis=0)).max()) or 1.0
            jit = float(rng.uniform(0.5, 2.0))
            info = {"drift_um": span, "jitter_um": jit}
        unit_of_template[tids] = u
        tpl_flat[slot : slot + k] = tids
        u_mode.append(m)
        u_start.append(slot)
        u_k.append(k)
        u_jitter.append(jit)
        u_mot.append(traj if m == 3 else np.zeros(_DRIFT_KNOTS))
        u_gain.append(g_u if m == 3 else np.ones(_DRIFT_KNOTS))
        rates.append(rate)
        amps.append(amp)
        units.append(
            {
                "unit": u,
                "templates": [int(t) for t in tids],
                "rate_hz": rate,
                "depth_um": float(sh["y"]),
                "x_um": float(sh["x"]),
                "amplitude_mean": amp,
                "split": "none" if k == 1 else ("amplitude" if m == _MODE_AMPLITUDE else "drift"),
                "twin_of": None if twin_of < 0 else int(twin_of),
                **info,
            }
        )
        slot += k

    n_units = len(units)
    n_src = n_units + n_noise
    noise_templates: list[int] = []
    for _ in range(n_noise):
        t = int(ids[slot])
        _write_noise_template(templates[t], rng, pos, y_top, trough, sr_scale)
        tpl_flat[slot] = t
        u_start.append(slot)
        noise_templates.append(t)
        slot += 1

    refr = np.ones(n_src, dtype=np.int64)
    refr[:n_units] = int(math.ceil(_REFRACTORY_S * sample_rate - 1e-9))
    mode = np.zeros(n_src, dtype=np.int64)
    mode[:n_units] = u_mode
    kk = np.ones(n_src, dtype=np.int64)
    kk[:n_units] = u_k
    jitter = np.zeros(n_src, dtype=np.float64)
    jitter[:n_units] = u_jitter
    mot = np.zeros((n_src, _DRIFT_KNOTS), dtype=np.float64)
    gain = np.ones((n_src, _DRIFT_KNOTS), dtype=np.float64)
    if n_units:
        mot[:n_units] = np.vstack(u_mot)
        gain[:n_units] = np.vstack(u_gain)
    all_rates = np.concatenate([np.asarray(rates), noise_rates])
    total_rate = float(all_rates.sum())
    t_nominal = n_spikes / total_rate * sample_rate
    knot_dt = 1.05 * t_nominal / (_DRIFT_KNOTS - 1)  # the knots cover the recording + 5 %
    amp_mean = np.concatenate([np.asarray(amps), noise_amps]).astype(np.float64)
    isi_mean = _isi_mean_for_rate(all_rates, refr, sample_rate)
    extra = {
        "drift": {
            "range_um": drift_range,
            "knots": _DRIFT_KNOTS,
            "knot_s": knot_dt / sample_rate,
            "motion_um": [round(float(v), 3) for v in motion],
        },
        "near_duplicates": near_duplicates,
    }
    model = _Model(
        unit_of_template,
        templates,
        units,
        sorted(noise_templates),
        refr,
        isi_mean,
        mode,
        np.asarray(u_start, dtype=np.int64),
        kk,
        amp_mean,
        jitter,
        cuts,
        tpl_flat,
        total_rate,
        mot=mot,
        gain=gain,
        knot_dt=knot_dt,
        cpos=cpos,
        cptp=cptp,
        truth_extra=extra,
    )
    return model, pos


def _similarity(templates: np.ndarray) -> np.ndarray:
    """Cosine similarity of flattened templates, clipped to [0, 1], unit diagonal (float32)."""
    x = templates.reshape(templates.shape[0], -1)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)
    xn = x / np.maximum(norms, 1e-12)[:, None]
    sim = xn @ xn.T
    np.clip(sim, 0.0, 1.0, out=sim)
    np.fill_diagonal(sim, 1.0)
    return sim.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


class _NpyWriter:
    """Append rows to a ``.npy`` file whose header (final shape) is written up front."""

    def __init__(self, path: Path, dtype: np.dtype | type, shape: tuple[int, ...]):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.rows = 0
        self._f: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(self._f, header)

    def write(self, rows: np.ndarray) -> None:
        a = np.ascontiguousarray(rows, dtype=self.dtype)
        if a.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: rows of shape {a.shape[1:]}, expected {self.shape[1:]}")
        self._f.write(memoryview(a).cast("B"))
        self.rows += a.shape[0]

    def close(self) -> None:
        self._f.close()
        if self.rows != self.shape[0]:
            raise RuntimeError(f"{self.path}: wrote {self.rows} rows, expected {self.shape[0]}")

    def abort(self) -> None:
        self._f.close()


def _write_tsv(path: Path, field: str, values: list[str]) -> None:
    lines = [f"cluster_id\t{field}"] + [f"{i}\t{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def _pc_setup(
    templates: np.ndarray, pos: np.ndarray, sim: np.ndarray, n_pc_ch: int, n_tf: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature channel sets, mean PC projections and template-feature neighbours."""
    n_t = templates.shape[0]
    ptp = templates.max(axis=1) - templates.min(axis=1)  # (n_t, nc)
    peak = ptp.argmax(axis=1)
    d = np.hypot(pos[peak, 0][:, None] - pos[None, :, 0], pos[peak, 1][:, None] - pos[None, :, 1])
    pc_ind = np.argsort(d, axis=1, kind="stable")[:, :n_pc_ch]
    wav = np.take_along_axis(templates, pc_ind[:, None, :], axis=2)  # (n_t, ns, n_pc_ch)
    flat = wav.transpose(0, 2, 1).reshape(-1, templates.shape[1]).astype(np.float64)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    pcs = np.zeros((3, templates.shape[1]))  # (3, ns) temporal principal components
    pcs[: min(3, vt.shape[0])] = vt[:3]  # (zero-padded if there are fewer than 3)
    proj = np.einsum("ps,tsc->tpc", pcs, wav.astype(np.float64))  # (n_t, 3, n_pc_ch)
    s = sim.astype(np.float64).copy()
    np.fill_diagonal(s, 2.0)  # itself first
    tf_ind = np.argsort(-s, axis=1, kind="stable")[:, :n_tf]
    tf_mean = np.take_along_axis(sim, tf_ind, axis=1).astype(np.float64)  # (n_t, n_tf)
    assert tf_ind.shape == (n_t, n_tf)
    return pc_ind, proj, tf_ind, tf_mean


def synthesize(
    out: str | Path,
    n_spikes: int = 200_000,
    n_templates: int = 64,
    seed: int = 0,
    *,
    n_channels: int = 96,
    sample_rate: float = 30_000.0,
    n_samples: int = 82,
    legacy_quirks: bool = False,
    pc_features: bool = False,
    drift: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthInfo:
    """Write a synthetic Kilosort-style output folder (see the module docstring for the model).

    Parameters
    ----------
    out : str or Path
        Folder to write into; created if missing.
    n_spikes : int
        Exact number of spikes.
    n_templates : int
        Number of templates (true units' templates plus ~7.5 % noise templates).
    seed : int
        Seed: the whole dataset is a deterministic function of the arguments.
    n_channels : int
        Channels of the Neuropixels-1.0-like probe.
    sample_rate : float
        Samples per second.
    n_samples : int
        Samples per template (82 as Kilosort 2/3, 61 as Kilosort 4).
    legacy_quirks : bool
        Write old-Kilosort shapes and dtypes: ``(n, 1)`` uint64 spike times, uint32 spike
        templates, float64 amplitudes, ``(n_ch, 1)`` channel map, and ``templates_ind.npy``
        (float64, ``arange(n_channels)`` on every row, ignored by phylib like Kilosort's).
    pc_features : bool
        Also write ``pc_features.npy`` float32 ``(n, 3, 12)``, ``pc_feature_ind.npy`` uint32
        ``(n_templates, 12)``, ``template_features.npy`` float32 ``(n, 8)`` and
        ``template_feature_ind.npy`` uint32 ``(n_templates, 8)`` (12 and 8 become
        ``n_channels`` / ``n_templates`` when smaller). Only sensible for small datasets:
        176 bytes per spike.
    drift : bool
        The realistic over-splitting model (module docstring, "Drift"): units drift with the
        probe and are split by the "sorter" into pieces along the drift (tens of pieces for
        some), some units have a near-duplicate neighbour (a different unit on nearby
        channels with a nearly identical waveform), and the truth file records both. The
        default (False) is the original model, unchanged bit for bit.
    progress : callable, optional
        Called as ``progress(done_spikes, n_spikes)`` after every written chunk.

    Returns
    -------
    SynthInfo

    Raises
    ------
    FileExistsError
        If ``out`` already contains ``spike_times.npy``.
    ValueError
        For non-positive sizes.

    Notes
    -----
    ``spike_times`` are sorted by (time, template id): ties in time are allowed (different
    templates) and ordered by template id. No template has two spikes in one sample.
    With few spikes per template (below a few hundred on average) a low-rate template can end
    up with no spike at all; a warning is issued then.
    """
    n_spikes = int(n_spikes)
    n_templates = int(n_templates)
    n_channels = int(n_channels)
    n_samples = int(n_samples)
    sample_rate = float(sample_rate)
    if n_spikes < 1 or n_templates < 1 or n_channels < 1 or n_samples < 8 or sample_rate <= 0:
        raise ValueError(
            "n_spikes, n_templates, n_channels >= 1, n_samples >= 8, sample_rate > 0 required"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "spike_times.npy").exists():
        raise FileExistsError(f"{out} already contains a dataset (spike_times.npy)")

    build = _build_model_drift if drift else _build_model
    model, pos = build(n_spikes, n_templates, seed, n_channels, sample_rate, n_samples)
    templates = model.templates
    sim = _similarity(templates)

    # -- static files
    (out / "params.py").write_text(
        "dat_path = 'raw.dat'\n"
        f"n_channels_dat = {n_channels}\n"
        "dtype = 'int16'\n"
        "offset = 0\n"
        f"sample_rate = {sample_rate!r}\n"
        "hp_filtered = False\n"
    )
    np.save(out / "templates.npy", templates)
    cmap = np.arange(n_channels, dtype=np.int32)
    np.save(out / "channel_map.npy", cmap[:, None] if legacy_quirks else cmap)
    np.save(out / "channel_positions.npy", pos)
    np.save(out / "channel_shanks.npy", np.zeros(n_channels, dtype=np.int32))
    np.save(out / "similar_templates.npy", sim)
    np.save(out / "whitening_mat.npy", np.eye(n_channels, dtype=np.float64))
    np.save(out / "whitening_mat_inv.npy", np.eye(n_channels, dtype=np.float64))
    if legacy_quirks:
        np.save(
            out / "templates_ind.npy",
            np.tile(np.arange(n_channels, dtype=np.float64), (n_templates, 1)),
        )

    # -- streamed per-spike files
    col = (n_spikes, 1) if legacy_quirks else (n_spikes,)
    tmp_times = out / ".spike_times.npy.partial"
    writers = [
        _NpyWriter(tmp_times, np.uint64 if legacy_quirks else np.int64, col),
        _NpyWriter(out / "spike_templates.npy", np.uint32 if legacy_quirks else np.int32, col),
        _NpyWriter(out / "amplitudes.npy", np.float64 if legacy_quirks else np.float32, col),
    ]
    n_pc_ch = min(12, n_channels)
    n_tf = min(8, n_templates)
    if pc_features:
        pc_ind, proj, tf_ind, tf_mean = _pc_setup(templates, pos, sim, n_pc_ch, n_tf)
        np.save(out / "pc_feature_ind.npy", pc_ind.astype(np.uint32))
        np.save(out / "template_feature_ind.npy", tf_ind.astype(np.uint32))
        # mean amplitude scaling of every template's source sets the feature noise scale
        amp_t = np.repeat(model.amp_mean, model.k)[np.argsort(model.tpl_flat)]
        pc_sd = 0.08 * amp_t * np.abs(proj).max(axis=(1, 2)) + 1e-3
        tf_sd = 0.05 * amp_t + 1e-3
        writers.append(_NpyWriter(out / "pc_features.npy", np.float32, (n_spikes, 3, n_pc_ch)))
        writers.append(_NpyWriter(out / "template_features.npy", np.float32, (n_spikes, n_tf)))

    n_src = model.refr.shape[0]
    rng_state = np.random.SeedSequence([seed, 0x591C3]).generate_state(n_src, dtype=np.uint64)
    next_t = np.zeros(n_src, dtype=np.int64)
    next_tpl = np.zeros(n_src, dtype=np.int32)
    next_amp = np.zeros(n_src, dtype=np.float64)
    count = np.zeros(n_templates, dtype=np.int64)
    amp_sum = np.zeros(n_templates, dtype=np.float64)
    last_t = np.full(n_templates, -1, dtype=np.int64)
    viol = np.zeros(n_templates, dtype=np.int64)
    viol_win = int(round(_VIOLATION_S * sample_rate))
    src = (
        rng_state,
        model.refr,
        model.isi_mean,
        model.mode,
        model.start,
        model.k,
        model.amp_mean,
        _AMP_CV,
        model.jitter,
        model.cuts,
        model.tpl_flat,
        *model.drift_arrays(),
    )
    state = (next_t, next_tpl, next_amp)
    _init_sources(*src, *state)

    # time windows expected to hold `target` spikes; buffers with ample headroom (a window
    # that overflows them is retried at half its length)
    target = min(_CHUNK, n_spikes)
    window = max(1, int(math.ceil((1.02 * target + 64) / model.total_rate * sample_rate)))
    cap = int(_CAP_HEADROOM * target) + _CAP_EXTRA
    gen = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.float64))
    # two sorted buffers: a writer thread writes chunk i while chunk i + 1 is generated
    srts = [
        (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.float64))
        for _ in range(2)
    ]
    hist = np.empty(cap + 1, dtype=np.int64)
    shape1 = (lambda m: (m, 1)) if legacy_quirks else (lambda m: (m,))

    def write_chunk(i_chunk: int, m: int, srt: tuple[np.ndarray, ...]) -> None:
        st, stpl, samp = srt[0][:m], srt[1][:m], srt[2][:m]
        writers[0].write(st.reshape(shape1(m)))
        writers[1].write(stpl.reshape(shape1(m)))
        writers[2].write(samp.reshape(shape1(m)))
        if pc_features:
            _write_features(
                writers[3], writers[4], i_chunk, stpl, samp, proj, pc_sd, tf_mean, tf_sd, seed
            )

    done = 0
    written = 0
    t0 = 0
    i_chunk = 0
    last_sample = 0
    pending: tuple[Future[None], int] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            while done < n_spikes:
                saved = (rng_state.copy(), *(a.copy() for a in state))
                while True:
                    n = _gen_window(t0 + window, *gen, *src, *state)
                    if n >= 0:
                        break
                    for dst, val in zip((rng_state, *state), saved, strict=True):
                        dst[:] = val
                    window = max(1, window // 2)
                t1 = t0 + window
                # this buffer's previous write (chunk i - 2) was awaited during chunk i - 1
                srt = srts[i_chunk % 2]
                _sort_window(n, t0, t1, *gen, *srt, hist)
                m = min(n, n_spikes - done)
                _accumulate(m, srt[0], srt[1], srt[2], count, amp_sum, last_t, viol, viol_win)
                if m:
                    last_sample = int(srt[0][m - 1])
                    done += m
                if pending is not None:
                    pending[0].result()
                    written += pending[1]
                    if progress is not None:
                        progress(written, n_spikes)
                pending = (pool.submit(write_chunk, i_chunk, m, srt), m) if m else None
                t0 = t1
                i_chunk += 1
            if pending is not None:
                pending[0].result()
                written += pending[1]
                if progress is not None:
                    progress(written, n_spikes)
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            w.abort()
        raise
    os.replace(tmp_times, out / "spike_times.npy")

    # -- sorter columns
    duration_samples = last_sample + 1
    ptp_max = (templates.max(axis=1) - templates.min(axis=1)).max(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_amp = np.where(count > 0, amp_sum / np.maximum(count, 1), 0.0)
        contam = np.where(
            count > 1,
            100.0 * viol * duration_samples / (count.astype(np.float64) ** 2 * viol_win),
            100.0,
        )
    contam = np.minimum(contam, 100.0)
    ks_label = ["good" if c < 10.0 else "mua" for c in contam]
    _write_tsv(out / "cluster_KSLabel.tsv", "KSLabel", ks_label)
    _write_tsv(out / "cluster_group.tsv", "group", ks_label)
    _write_tsv(out / "cluster_ContamPct.tsv", "ContamPct", [f"{c:.1f}" for c in contam])
    _write_tsv(out / "cluster_Amplitude.tsv", "Amplitude", [f"{a:.1f}" for a in mean_amp * ptp_max])

    truth = {
        "format": TRUTH_FORMAT,
        "version": TRUTH_VERSION,
        "seed": int(seed),
        "n_spikes": n_spikes,
        "sample_rate": sample_rate,
        "refractory_ms": _REFRACTORY_S * 1e3,
        "unit_of_template": [int(u) for u in model.unit_of_template],
        "noise_templates": model.noise_templates,
        "units": model.units,
    }
    if model.truth_extra:
        truth.update(model.truth_extra)
    (out / TRUTH_FILE).write_text(json.dumps(truth, indent=1) + "\n")

    empty = np.flatnonzero(count == 0)
    if empty.size:
        warnings.warn(
            f"{empty.size} template(s) got no spike (too few spikes per template)",
            RuntimeWarning,
            stacklevel=2,
        )
    return SynthInfo(
        path=out,
        n_spikes=n_spikes,
        n_templates=n_templates,
        n_units=len(model.units),
        n_channels=n_channels,
        sample_rate=sample_rate,
        duration=duration_samples / sample_rate,
        unit_of_template=model.unit_of_template.copy(),
    )


def _write_features(
    pc_writer: _NpyWriter,
    tf_writer: _NpyWriter,
    i_chunk: int,
    tpl: np.ndarray,
    amp: np.ndarray,
    proj: np.ndarray,
    pc_sd: np.ndarray,
    tf_mean: np.ndarray,
    tf_sd: np.ndarray,
    seed: int,
) -> None:
    """PC and template features of one chunk of spikes, appended to the writers.

    A spike's features are its template's mean features scaled by its amplitude, plus
    Gaussian noise (``pc_sd`` / ``tf_sd`` per template), from a stream seeded by
    ``(seed, chunk, block)``; blocks of ``_FEATURE_BLOCK`` spikes bound the temporaries.
    """
    n = tpl.shape[0]
    for i in range(0, n, _FEATURE_BLOCK):
        end = min(n, i + _FEATURE_BLOCK)
        r = np.random.default_rng(np.random.SeedSequence([seed, 0xFEA7, i_chunk, i]))
        t = tpl[i:end]
        a = amp[i:end]
        pcn = r.standard_normal((end - i,) + proj.shape[1:], dtype=np.float32)
        pc = proj[t] * a[:, None, None] + pcn * pc_sd[t][:, None, None]
        tfn = r.standard_normal((end - i, tf_mean.shape[1]), dtype=np.float32)
        tf = tf_mean[t] * a[:, None] + tfn * tf_sd[t][:, None]
        pc_writer.write(pc.astype(np.float32))
        tf_writer.write(tf.astype(np.float32))
