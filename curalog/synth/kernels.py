"""Numba kernels of the synthetic generator: per-source random streams (splitmix), windowed
spike generation, the bucket sort by time, and the per-template tallies."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
