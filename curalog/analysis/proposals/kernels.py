"""Numba kernels of the proposal engine: the coincidence passes over all spikes or one
cluster's neighbourhood, per-template time histograms and the ``p_same`` posterior."""

from __future__ import annotations

import math

import numba
import numpy as np


# ---------------------------------------------------------------------- numba kernels
@numba.njit(cache=True, nogil=True)
def _hist_pass(clusters, templates, slot_of, hist):  # pragma: no cover - numba
    """``hist[slot, template]`` spike counts over all spikes."""
    for s in range(clusters.shape[0]):
        hist[slot_of[clusters[s]], templates[s]] += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_of(t, nb, total):  # pragma: no cover - numba
    b = (t * nb) // total
    if b < 0:
        return 0
    if b >= nb:
        return nb - 1
    return b


@numba.njit(cache=True, nogil=True)
def _full_pass(
    times,
    clusters,
    templates,
    amps,
    use_amp,
    pos,
    use_pos,
    pstride,
    slot_of,
    lut,
    nb,
    total,
    tau,
    censor,
    counts,
    ampsum,
    possum,
    pos2sum,
    poscount,
    coinc,
    dup,
    lo,
    hi,
):  # pragma: no cover - numba
    """Profiles of every live cluster, the coincidence and the duplicate matrices, in one
    pass over time.

    ``coinc[x, y]`` (``x <= y``; the upper triangle only, the caller mirrors it) counts
    pairs of spikes, one in each cluster, with ``censor <= |dt| <= tau``; ``dup[x, y]`` the
    pairs with ``|dt| < censor`` (duplicate detections); the diagonals count pairs within one
    cluster. Each pair is seen once, from its later spike (spike index order is time order).
    With ``use_pos``, ``possum[row, bin]`` sums the positions ``pos[s, :2]`` of the spikes in
    every ``pstride``-th block of 4096 (by index: ``(s >> 12) % pstride == 0``, so only those
    pages of the file are read), ``pos2sum`` their squared norms and ``poscount`` counts them. Only spikes ``lo <= s < hi`` are visited (their partners
    may lie before ``lo``), so disjoint ranges can run in parallel threads into separate
    outputs.
    """
    for s in range(lo, hi):
        t = times[s]
        cs = slot_of[clusters[s]]
        b = _bin_of(t, nb, total)
        combo = lut[cs, templates[s]]
        counts[combo, b] += 1.0
        if use_amp:
            ampsum[combo, b] += amps[s]
        if use_pos and (s >> 12) % pstride == 0:
            px = pos[s, 0]
            py = pos[s, 1]
            possum[combo, b, 0] += px
            possum[combo, b, 1] += py
            pos2sum[combo, b] += px * px + py * py
            poscount[combo, b] += 1.0
        j = s - 1
        while j >= 0:
            d = t - times[j]
            if d > tau:
                break
            cj = slot_of[clusters[j]]
            x, y = (cj, cs) if cj < cs else (cs, cj)
            if d >= censor:
                coinc[x, y] += 1
            else:
                dup[x, y] += 1
            j -= 1


@numba.njit(cache=True, nogil=True)
def _local_pass(
    spikes,
    times,
    clusters,
    templates,
    amps,
    use_amp,
    pos,
    use_pos,
    pstride,
    slot_of,
    own,
    lut,
    nb,
    total,
    tau,
    censor,
    counts,
    ampsum,
    possum,
    pos2sum,
    poscount,
    row,
    duprow,
):  # pragma: no cover - numba
    """Profile of one cluster (its sorted ``spikes``) and its coincidence and duplicate rows:
    for every spike, its neighbours within ``tau`` on both sides; pairs inside the cluster
    are counted once (from the later spike)."""
    n_all = times.shape[0]
    for k in range(spikes.shape[0]):
        s = spikes[k]
        t = times[s]
        b = _bin_of(t, nb, total)
        li = lut[templates[s]]
        counts[li, b] += 1.0
        if use_amp:
            ampsum[li, b] += amps[s]
        if use_pos and (s >> 12) % pstride == 0:
            px = pos[s, 0]
            py = pos[s, 1]
            possum[li, b, 0] += px
            possum[li, b, 1] += py
            pos2sum[li, b] += px * px + py * py
            poscount[li, b] += 1.0
        j = s - 1
        while j >= 0:
            d = t - times[j]
            if d > tau:
                break
            if d >= censor:
                row[slot_of[clusters[j]]] += 1
            else:
                duprow[slot_of[clusters[j]]] += 1
            j -= 1
        j = s + 1
        while j < n_all:
            d = times[j] - t
            if d > tau:
                break
            cj = slot_of[clusters[j]]
            if cj != own:
                if d >= censor:
                    row[cj] += 1
                else:
                    duprow[cj] += 1
            j += 1


@numba.njit(cache=True, nogil=True)
def _template_hist(spikes, templates, n_templates):  # pragma: no cover - numba
    out = np.zeros(n_templates, dtype=np.int64)
    for k in range(spikes.shape[0]):
        out[templates[spikes[k]]] += 1
    return out


@numba.njit(cache=True, nogil=True)
def _gamma_pq(a, x):  # pragma: no cover - numba
    """Regularised incomplete gamma ``(P(a, x), Q(a, x))``, ``a > 0, x >= 0``: the series
    for ``x < a + 1``, the continued fraction (modified Lentz) otherwise, the other one as
    the complement."""
    if x <= 0.0:
        return 0.0, 1.0
    lpre = -x + a * math.log(x) - math.lgamma(a)
    eps = 1e-15
    if x < a + 1.0:
        ap = a
        term = 1.0 / a
        total = term
        for _ in range(100000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * eps:
                break
        pv = total * math.exp(lpre)
        return pv, 1.0 - pv
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < eps:
            break
    qv = math.exp(lpre) * h
    return 1.0 - qv, qv


@numba.njit(cache=True, nogil=True)
def _band_mass(o, lo, hi):  # pragma: no cover - numba
    """``P(Pois(lo) <= o) - P(Pois(hi) <= o)`` (= the integral of the Poisson pmf of ``o``
    over means in ``[lo, hi]``), computed on the side that keeps its precision."""
    p_lo, q_lo = _gamma_pq(o + 1.0, lo)
    p_hi, q_hi = _gamma_pq(o + 1.0, hi)
    if q_lo < 0.5:
        return q_lo - q_hi
    return p_hi - p_lo


@numba.njit(cache=True, nogil=True)
def _p_same(o, e, same_max, diff_lo, diff_hi):  # pragma: no cover - numba
    """Posterior probability (prior 1/2) that cross coincidences ``o``, with ``e`` expected
    for independent neurons, come from one neuron: the contamination ``c`` (``o ~
    Poisson(c e)``) is uniform on ``[0, same_max]`` for one neuron and on ``[diff_lo,
    diff_hi]`` for two."""
    if e < 1e-6:
        return 0.5
    m_same = _band_mass(o, 0.0, same_max * e) / same_max
    m_diff = _band_mass(o, diff_lo * e, diff_hi * e) / (diff_hi - diff_lo)
    if m_same < 0.0:
        m_same = 0.0
    if m_diff < 0.0:
        m_diff = 0.0
    if m_same + m_diff <= 0.0:  # both beyond double precision: go by the estimate
        return 1.0 if o / e <= 0.5 * (same_max + diff_lo) else 0.0
    return m_same / (m_same + m_diff)
