"""Merge proposals: which clusters are pieces of one neuron, with the evidence and a reason.

On drifting recordings a sorter splits one neuron into many pieces along the drift. phy
only ranks similar clusters; :class:`ProposalEngine` scores candidate pairs on evidence that
needs no raw data and that a curator can check on screen, proposes the pairs that are one
neuron, and stays up to date incrementally as merges, splits, undos and redos happen.

Candidates
----------
For every live cluster ``c``, its ``top_k`` most similar live clusters by phy's similarity
``sim(c, d) = max_{i in T(c), j in T(d)} S[i, j]`` (:mod:`curalog.analysis.stats.similarity`, ``S``
from ``similar_templates.npy`` or the template cosine), keeping ``sim >= min_similarity``;
ties by ascending id. The candidate set is the union of those pairs; it defines each
cluster's *neighbours* (the candidate graph).

Per-cluster profiles
--------------------
Time is cut into ``n_time_bins`` equal bins ``i`` over the recording. For cluster ``c`` and
each of its templates ``p``, ``C_c[p, i]`` counts its spikes of template ``p`` in bin ``i``
and ``A_c[p, i]`` sums their amplitude scalings (``amplitudes.npy``). Per template (the
unwhitened template, see :class:`curalog.analysis.stats.metrics.TemplateGeometry`):

* ``P_p`` the peak-to-peak on its best channel; a spike's *true amplitude* is
  ``amplitude x P_p`` (what phy plots as the template amplitude);
* ``r_p = (x_p, y_p)`` its position, the amplitude-weighted centroid
  ``r_p = sum_ch ptp_ch pos_ch / sum_ch ptp_ch`` over its channels with
  ``ptp_ch >= centroid_fraction * P_p``;
* its support: channels with ``ptp_ch >= support_fraction * P_p``.

Per bin, ``n_c(i) = sum_p C_c[p, i]`` and the mean true amplitude
``m_c(i) = sum_p A_c[p, i] P_p / n_c(i)``; the cluster is *present* in bins with
``n_c(i) >= presence_fraction * mean(n_c over occupied bins)``. Profiles add up on a merge.

Time adjacency
--------------
Evidence compares *what happens near in time*: spikes of ``a`` in bin ``i`` and of ``b`` in
bin ``j`` are weighted by ``w_ij = n_a(i) n_b(j) K_ij`` with ``K_ij = exp(-|i - j| / lambda)``
(``lambda = time_kernel_bins``), normalised by ``Z = sum_ij w_ij``. For pieces that tile time
the weight concentrates where one hands over to the other; for concurrent pieces, on the
shared bins. With ``G = C_a K C_b^T`` (a ``k_a x k_b`` matrix of template-pair weights):

``similarity``
    ``sum_pq G[p, q] S'[p, q] / Z``: the time-adjacent template similarity, where
    ``S'[p, q]`` is the cosine of the two unwhitened templates on their *shared channels*
    (the union of the two supports; other channels ignored).
``distance_um``
    ``sqrt(sum_pq G[p, q] |r_p - r_q|^2 / sum_pq G[p, q])``: how far apart the two
    templates sit where one piece ends and the other begins (position continuity).
``amplitude_jump``
    ``sqrt(sum_ij w_ij (log m_a(i) - log m_b(j))^2 / Z)``: amplitude continuity, in log
    units (0.1 = about 10 %).
``gap_s``
    Time between the two clusters' presence, 0 when they touch or overlap (``gap_bins``
    in bins); ``overlap = sum_i min(n_a(i) / N_a, n_b(i) / N_b)`` (0 = they tile time, 1 =
    the same time course).

Refractory evidence
-------------------
``O`` (``coincidences``) counts cross pairs (one spike of each) with
``censored <= |t_a - t_b| <= tau`` (``tau = refractory_ms``): the zero-lag bins of the
cross-correlogram. Independent neurons would give ``E = sum_i n_a(i) n_b(i) w / L``
(``expected``), with ``w`` the number of lags in the window and ``L`` the bin length in
samples: the rate product bin by bin, so slow rate changes do not fake a dip.
``cross_contamination = O / E`` (0 = a perfect refractory dip, 1 = no dip).

``p_same`` is the posterior probability (prior 1/2) that ``O`` comes from one neuron, with
``O ~ Poisson(c E)`` and the contamination ``c`` uniform on ``[0, same_max_contamination]``
for one neuron and on ``diff_contamination = [c_lo, c_hi]`` for two::

    M(lo, hi) = (F(O, lo E) - F(O, hi E)) / (hi - lo)        F(k, mu) = P(Poisson(mu) <= k)
    p_same = M(0, c_same) / (M(0, c_same) + M(c_lo, c_hi))

(``F(k, mu) = Q(k + 1, mu)``, the regularised upper incomplete gamma function). Without
overlap in time (``E = 0``) ``p_same = 1/2``: the correlogram cannot tell. A few
coincidences where a few were expected are strong evidence of two neurons; no coincidence
where many were expected, of one.

``isi_merged`` is the merged cluster's refractory-period contamination (Llobet et al. 2022,
:func:`curalog.analysis.stats.metrics.rp_contamination` with ``t_r = tau``): with ``v_c`` the pairs of
one cluster's own spikes within ``tau``, ``n_v = v_a + v_b + O`` and
``C = 1 - sqrt(1 - n_v (T_s - 2 N t_c) / (N^2 (t_r - t_c)))``; ``isi_a``, ``isi_b`` are
the parents' own values.

Score
-----
The pair's own (*base*) score is a product of factors in [0, 1]::

    f_sim = clip((similarity - similarity_floor) / (1 - similarity_floor), 0, 1) ** 2
    f_pos = exp(-(distance_um / position_scale_um) ** 2 / 2)
    f_amp = exp(-(amplitude_jump / amplitude_scale) ** 2 / 2)
    f_ccg = p_same
    f_gap = exp(-gap_bins / gap_scale_bins)
    f_isi = exp(-max(0, isi_merged - max(isi_a, isi_b)) / isi_scale)
    base  = f_sim * f_pos * f_amp * f_ccg * f_gap * f_isi

Uniqueness. A piece that fits two neurons equally well must not be merged with either. A
*competitor* of the pair ``(a, b)`` is a neighbour ``z`` of ``a`` that is another neuron
than ``b`` claiming the same time, weighted by ``conflict(b, z) = concurrency(b, z)^2 *
(1 - p_same(b, z))`` (``concurrency``: the larger of the two fractions of one cluster's
spikes in bins where the other is present; pieces that follow each other in time do not
compete), and the same from ``b``'s side::

    c       = max( max_z base(a, z) conflict(b, z), max_w base(b, w) conflict(a, w) )
    f_unique = 1 / (1 + (c / (ambiguity_ratio * base)) ** ambiguity_power)
    score   = base * f_unique

so a pair is only proposed with confidence when it beats every competing explanation by
``1 / ambiguity_ratio`` (2 by default). The factors and evidence come with the pair
(``Proposal.factors``, ``Proposal.evidence``) and a one-line summary (``Proposal.reason``).

Accepting everything above a threshold is greedy (:meth:`ProposalEngine.accept_all`): the
best proposal is merged, the proposals are updated, repeat. The sequence of merges does not
depend on the threshold, which only decides where to stop. ``DEFAULT_MIN_SCORE`` (0.2) is
the threshold documented in ``docs/PROPOSALS.md``.

Incremental updates
-------------------
A base score and a conflict are functions of the two clusters' spikes only, and cluster ids
are never reused, so they are cached by ids forever; a uniqueness-adjusted score is kept
while the neighbours of both clusters stay the same. Profiles, the coincidence counts and
phy's similarity (matrices over live clusters, the diagonal of the coincidences holding
``v_c``) *compose* on a merge (``C_ab = C_a + C_b``, ``O(x, ab) = O(x, a) + O(x, b)``,
``v_ab = v_a + v_b + O(a, b)``, ``sim(ab, x) = max(sim(a, x), sim(b, x))``), and only the
top-k lists that held a merged cluster (or that the new cluster enters) are re-ranked, so an
accepted merge scores only the new pairs that involve the merged cluster (and the rare
pairs that enter a re-ranked top-k list). Clusters that are not a merge of known clusters
(split children, clusters restored by an undo) get a local pass over their own spikes and
their neighbours within ``tau``. ``engine.counters`` proves it: ``pairs_scored``,
``profiles_computed``, ``profiles_composed``, ``rows_composed``, ``rows_computed``,
``full_passes`` (the one pass over all spikes on first use).

Decisions
---------
A rejected pair is recorded in the log as a note (``kind = "merge-proposal"``, data
``{"decision": "reject", "clusters": [a, b]}``; ``"unreject"`` takes it back), read back on
open, so it is never proposed again, nor is any pair of clusters merged from both sides.
Accepting is an ordinary merge event with ``meta = {"proposal": {...}}``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numba
import numpy as np

from curalog.analysis.stats.metrics import rp_contamination
from curalog.analysis.stats.similarity import template_row
from curalog.errors import InvalidActionError

__all__ = [
    "DEFAULT_MIN_SCORE",
    "PROPOSAL_NOTE_KIND",
    "ENGINE_VERSION",
    "ProposalParams",
    "Proposal",
    "Evidence",
    "ProposalEngine",
]

PROPOSAL_NOTE_KIND = "merge-proposal"
ENGINE_VERSION = 1
#: The threshold documented in docs/PROPOSALS.md (at most 10 % more clusters than true units
#: and no impure merge on the realistic synthetic data).
DEFAULT_MIN_SCORE = 0.2

_COUNTER_NAMES = (
    "pairs_scored",
    "pair_cache_hits",
    "profiles_computed",
    "profiles_composed",
    "rows_composed",
    "rows_computed",
    "full_passes",
    "candidate_refreshes",
    "template_pairs",
)


@dataclass(frozen=True)
class ProposalParams:
    """Parameters of the proposal engine (see the module docstring for the formulas)."""

    top_k: int = 6
    min_similarity: float = 0.5
    n_time_bins: int = 128
    time_kernel_bins: float = 2.0
    refractory_ms: float = 1.5
    censored_ms: float = 0.0
    support_fraction: float = 0.1
    centroid_fraction: float = 0.3
    presence_fraction: float = 0.05
    similarity_floor: float = 0.5
    position_scale_um: float = 20.0
    amplitude_scale: float = 0.3
    same_max_contamination: float = 0.2
    diff_contamination: tuple[float, float] = (0.5, 1.5)
    gap_scale_bins: float = 2.0
    isi_scale: float = 0.1
    ambiguity_ratio: float = 0.5
    ambiguity_power: float = 4.0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Proposal:
    """A proposed merge of clusters ``a < b``.

    Attributes
    ----------
    a, b : int
        The clusters (ascending).
    score : float
        In [0, 1]; the product of ``factors``.
    evidence : dict
        The measured evidence (module docstring): ``similarity``, ``phy_similarity``,
        ``distance_um``, ``amplitude_jump``, ``gap_s``, ``overlap``, ``coincidences``,
        ``expected``, ``cross_contamination``, ``p_same``, ``isi_merged``, ``isi_a``,
        ``isi_b``, ``n_a``, ``n_b``, ``competitor`` (-1: none) and ``competitor_score``.
    factors : dict
        ``f_sim, f_pos, f_amp, f_ccg, f_gap, f_isi, f_unique``.
    reason : str
        One line for a curator.
    params : dict
        The engine parameters that differ from the defaults (recorded in provenance).
    """

    a: int
    b: int
    score: float
    evidence: dict[str, float] = field(repr=False)
    factors: dict[str, float] = field(repr=False)
    reason: str = ""
    params: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def pair(self) -> tuple[int, int]:
        return (self.a, self.b)

    def provenance(self) -> dict[str, Any]:
        """What a merge event records about the proposal (``meta["proposal"]``)."""
        return {
            "engine": "curalog.analysis.proposals",
            "version": ENGINE_VERSION,
            "clusters": [self.a, self.b],
            "score": round(self.score, 4),
            "evidence": {k: _round(v) for k, v in self.evidence.items()},
            "factors": {k: round(v, 4) for k, v in self.factors.items()},
            "reason": self.reason,
            **({"params": self.params} if self.params else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "score": round(self.score, 4),
            "reason": self.reason,
            "evidence": {k: _round(v) for k, v in self.evidence.items()},
            "factors": {k: round(v, 4) for k, v in self.factors.items()},
        }


def _round(v: float) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(round(v, 4))


@dataclass
class Evidence:
    """Arrays a review screen plots for one pair (all per-bin arrays have ``n_time_bins``).

    ``ccg`` is phy's symmetrised cross-correlogram (positive lags: ``b`` after ``a``) on
    ``lags_ms`` (left bin edges); ``acg_a``/``acg_b`` the autocorrelograms; ``rate_*`` in Hz,
    ``amplitude_*`` the mean true amplitude and ``position_*`` the mean template depth (µm)
    per time bin (NaN where the cluster has no spike); ``template_*`` the spike-count-weighted
    mean unwhitened template of each cluster on ``channels`` (the union of both clusters'
    best channels, by decreasing amplitude), shape ``(n_samples, len(channels))``.
    """

    proposal: Proposal
    lags_ms: np.ndarray
    ccg: np.ndarray
    acg_a: np.ndarray
    acg_b: np.ndarray
    refractory_ms: float
    time_s: np.ndarray
    rate_a: np.ndarray
    rate_b: np.ndarray
    amplitude_a: np.ndarray
    amplitude_b: np.ndarray
    position_a: np.ndarray
    position_b: np.ndarray
    channels: np.ndarray
    channel_positions: np.ndarray
    template_a: np.ndarray
    template_b: np.ndarray


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
    slot_of,
    lut,
    nb,
    total,
    tau,
    censor,
    counts,
    ampsum,
    coinc,
    lo,
    hi,
):  # pragma: no cover - numba
    """Profiles of every live cluster and the coincidence matrix, in one pass over time.

    ``coinc[x, y]`` (``x <= y``; the upper triangle only, the caller mirrors it) counts
    pairs of spikes, one in each cluster, with ``censor <= |dt| <= tau``; ``coinc[x, x]``
    counts pairs within one cluster. Each pair is seen once, from its later spike (spike
    index order is time order). Only spikes ``lo <= s < hi`` are visited (their partners may
    lie before ``lo``), so disjoint ranges can run in parallel threads into separate outputs.
    """
    for s in range(lo, hi):
        t = times[s]
        cs = slot_of[clusters[s]]
        b = _bin_of(t, nb, total)
        combo = lut[cs, templates[s]]
        counts[combo, b] += 1.0
        if use_amp:
            ampsum[combo, b] += amps[s]
        j = s - 1
        while j >= 0:
            d = t - times[j]
            if d > tau:
                break
            if d >= censor:
                cj = slot_of[clusters[j]]
                if cj < cs:
                    coinc[cj, cs] += 1
                else:
                    coinc[cs, cj] += 1
            j -= 1


@numba.njit(cache=True, nogil=True)
def _local_pass(
    spikes,
    times,
    clusters,
    templates,
    amps,
    use_amp,
    slot_of,
    own,
    lut,
    nb,
    total,
    tau,
    censor,
    counts,
    ampsum,
    row,
):  # pragma: no cover - numba
    """Profile of one cluster (its sorted ``spikes``) and its coincidence row: for every
    spike, its neighbours within ``tau`` on both sides; pairs inside the cluster are counted
    once (from the later spike)."""
    n_all = times.shape[0]
    for k in range(spikes.shape[0]):
        s = spikes[k]
        t = times[s]
        b = _bin_of(t, nb, total)
        li = lut[templates[s]]
        counts[li, b] += 1.0
        if use_amp:
            ampsum[li, b] += amps[s]
        j = s - 1
        while j >= 0:
            d = t - times[j]
            if d > tau:
                break
            if d >= censor:
                row[slot_of[clusters[j]]] += 1
            j -= 1
        j = s + 1
        while j < n_all:
            d = times[j] - t
            if d > tau:
                break
            if d >= censor:
                cj = slot_of[clusters[j]]
                if cj != own:
                    row[cj] += 1
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


# ---------------------------------------------------------------------- per-template data
@dataclass(frozen=True)
class _TemplateInfo:
    channels: np.ndarray  # extended support (ptp >= 2 % of max), channel rows ascending
    waves: np.ndarray  # (n_samples, len(channels)) float64, unwhitened
    support: np.ndarray  # bool, len(channels): ptp >= support_fraction * max
    ptp: float  # peak-to-peak on the best channel
    position: np.ndarray  # (2,) centroid in µm (NaN for an empty template)
    best: np.ndarray  # channel rows by decreasing ptp (at most 8)


class _Templates:
    """Per-template geometry and shared-channel similarities, computed lazily and cached."""

    def __init__(
        self,
        geometry: Any,
        channel_positions: np.ndarray,
        params: ProposalParams,
        n_templates: int,
        counters: dict[str, int],
        fallback: Callable[[], np.ndarray | None] | None = None,
    ):
        self.geometry = geometry
        self.fallback = fallback
        self.pos = np.asarray(channel_positions, dtype=np.float64)
        self.params = params
        self.n_templates = n_templates
        self._info: dict[int, _TemplateInfo] = {}
        self._sim: dict[tuple[int, int], float] = {}
        self._counters = counters
        self._ptp: np.ndarray | None = None
        self._xy: np.ndarray | None = None

    def info(self, t: int) -> _TemplateInfo:
        got = self._info.get(t)
        if got is None:
            got = self._compute(t)
            self._info[t] = got
        return got

    def _compute(self, t: int) -> _TemplateInfo:
        got = self.geometry.unwhitened(int(t)) if self.geometry is not None else None
        if got is None or got[0].shape[1] == 0:
            return _TemplateInfo(
                np.zeros(0, np.int64),
                np.zeros((1, 0)),
                np.zeros(0, bool),
                0.0,
                np.array([np.nan, np.nan]),
                np.zeros(0, np.int64),
            )
        w, chans = got
        w = np.asarray(w, dtype=np.float64)
        chans = np.asarray(chans, dtype=np.int64)
        ptp = w.max(axis=0) - w.min(axis=0)
        mx = float(ptp.max())
        if not mx > 0:
            return _TemplateInfo(
                np.zeros(0, np.int64),
                np.zeros((w.shape[0], 0)),
                np.zeros(0, bool),
                0.0,
                np.array([np.nan, np.nan]),
                np.zeros(0, np.int64),
            )
        ext = ptp >= 0.02 * mx
        order = np.argsort(chans[ext], kind="stable")
        ch = chans[ext][order]
        waves = w[:, ext][:, order]
        p = ptp[ext][order]
        support = p >= self.params.support_fraction * mx
        cen = ptp >= self.params.centroid_fraction * mx
        ok = chans[cen] < self.pos.shape[0]
        wts = ptp[cen][ok]
        xy = (
            (self.pos[chans[cen][ok]] * wts[:, None]).sum(axis=0) / wts.sum()
            if wts.size
            else np.array([np.nan, np.nan])
        )
        best = chans[np.argsort(-ptp, kind="stable")[:8]]
        return _TemplateInfo(ch, waves, support, mx, xy, best)

    def ptp_all(self) -> np.ndarray:
        if self._ptp is None:
            self._ptp = np.array(
                [self.info(t).ptp for t in range(self.n_templates)], dtype=np.float64
            )
        return self._ptp

    def xy_all(self) -> np.ndarray:
        if self._xy is None:
            self._xy = np.array(
                [self.info(t).position for t in range(self.n_templates)], dtype=np.float64
            ).reshape(self.n_templates, 2)
        return self._xy

    def similarity(self, p: int, q: int) -> float:
        """Cosine of two unwhitened templates on the union of their supports (phy's
        similarity when a template is missing)."""
        if p == q:
            return 1.0
        key = (p, q) if p < q else (q, p)
        got = self._sim.get(key)
        if got is not None:
            return got
        a, b = self.info(key[0]), self.info(key[1])
        union = np.union1d(a.channels[a.support], b.channels[b.support])
        if a.channels.size == 0 or b.channels.size == 0:  # no template: phy's similarity
            fb = self.fallback() if self.fallback is not None else None
            val = float(max(fb[p, q], fb[q, p])) if fb is not None else 0.0
        elif union.size == 0:
            val = 0.0
        else:
            va = _on_channels(a, union)
            vb = _on_channels(b, union)
            na, nb = float(np.sqrt((va * va).sum())), float(np.sqrt((vb * vb).sum()))
            val = float((va * vb).sum() / (na * nb)) if na > 0 and nb > 0 else 0.0
        self._sim[key] = val
        self._counters["template_pairs"] += 1
        return val

    def similarity_matrix(self, ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
        return np.array(
            [[self.similarity(int(p), int(q)) for q in tb] for p in ta], dtype=np.float64
        )


def _on_channels(info: _TemplateInfo, chans: np.ndarray) -> np.ndarray:
    """The template's waveform on ``chans`` (zeros where it has no signal)."""
    out = np.zeros((info.waves.shape[0], chans.shape[0]), dtype=np.float64)
    pos = np.searchsorted(info.channels, chans)
    pos[pos >= info.channels.shape[0]] = 0
    hit = info.channels.shape[0] > 0
    if hit:
        m = info.channels[pos] == chans
        out[:, m] = info.waves[:, pos[m]]
    return out


# ---------------------------------------------------------------------- per-cluster profiles
@dataclass(frozen=True)
class _Profile:
    tids: np.ndarray  # (k,) int64 ascending
    counts: np.ndarray  # (k, nb) float64
    ampsum: np.ndarray  # (k, nb) float64
    n_spikes: int

    @property
    def n(self) -> np.ndarray:
        return self.counts.sum(axis=0)


def _compose_profiles(profiles: Sequence[_Profile]) -> _Profile:
    tids = np.unique(np.concatenate([p.tids for p in profiles]))
    nb = profiles[0].counts.shape[1]
    counts = np.zeros((tids.shape[0], nb))
    ampsum = np.zeros((tids.shape[0], nb))
    for p in profiles:
        idx = np.searchsorted(tids, p.tids)
        counts[idx] += p.counts
        ampsum[idx] += p.ampsum
    return _Profile(tids, counts, ampsum, sum(p.n_spikes for p in profiles))


@dataclass(frozen=True)
class _Derived:
    """Per-bin quantities of a profile used by the pair score."""

    n: np.ndarray  # spikes per bin
    loga: np.ndarray  # log mean true amplitude per bin (0 where empty)
    amp: np.ndarray  # mean true amplitude per bin (NaN where empty)
    ypos: np.ndarray  # mean template depth per bin (NaN where empty)
    present: np.ndarray  # bool per bin


# ---------------------------------------------------------------------- the engine
class ProposalEngine:
    """Merge proposals over a curation's live state, kept up to date incrementally.

    Parameters
    ----------
    source
        A :class:`curalog.curation.Curation` (then rejections are read from and written to
        its log, ``accept``/``reject`` work, and the engine subscribes to its updates), or a
        ``(dataset, state)`` pair (read-only use; call :meth:`on_update` yourself).
    stats : StatsEngine, optional
        The statistics engine to share (similarity rows, template sets, correlograms for
        :meth:`evidence`). Created (and subscribed) when omitted; when given, the caller
        subscribes it to the curation (before this engine, as the UI does).
    params : ProposalParams, optional
    subscribe : bool
        Subscribe :meth:`on_update` to the curation (default True).
    n_threads : int, optional
        Threads for the first pass over all spikes (default: the CPU count, at most 4).

    Notes
    -----
    Thread-safe: every public method takes the engine's lock. Work is lazy: an update is only
    recorded, and processed on the next query.
    """

    def __init__(
        self,
        source: Any,
        stats: Any = None,
        params: ProposalParams | None = None,
        *,
        subscribe: bool = True,
        n_threads: int | None = None,
    ):
        from curalog.analysis.stats.engine import StatsEngine

        self.curation: Any
        if isinstance(source, tuple):
            self.curation = None
            self.dataset, self._state = source
        else:
            self.curation = source
            self.dataset, self._state = source.dataset, source.state
        self.params = params or ProposalParams()
        own_stats = stats is None
        self.stats = stats if stats is not None else StatsEngine(self.dataset, self.state)
        self._lock = threading.RLock()
        self._counters = dict.fromkeys(_COUNTER_NAMES, 0)
        #: Pairs whose base score was computed, in order (see :meth:`reset_counters`).
        self.score_log: list[tuple[int, int]] = []
        self.n_threads = int(n_threads) if n_threads else min(4, os.cpu_count() or 1)
        defaults = ProposalParams().to_dict()
        self._changed_params = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in self.params.to_dict().items()
            if defaults[k] != v
        }
        ctx = self.stats.ctx
        self.sample_rate = float(ctx.sample_rate)
        self.total_samples = int(ctx.total_samples)
        self.n_templates = int(ctx.n_templates)
        p = self.params
        self.nb = int(p.n_time_bins)
        self.tau = int(round(p.refractory_ms * self.sample_rate / 1000.0))
        self.censor = int(round(p.censored_ms * self.sample_rate / 1000.0))
        self.bin_samples = self.total_samples / self.nb
        n_lags = 2 * self.tau + 1 if self.censor == 0 else 2 * (self.tau - self.censor + 1)
        self._lag_fraction = max(n_lags, 0) / self.bin_samples
        i = np.arange(self.nb)
        self._kernel = np.exp(-np.abs(i[:, None] - i[None, :]) / float(p.time_kernel_bins))
        self.templates = _Templates(
            ctx.geometry,
            ctx.channel_positions,
            p,
            self.n_templates,
            self._counters,
            lambda: self.stats.similarity_matrix,
        )
        amps = getattr(self.dataset, "amplitudes", None)
        self._amps = None if amps is None else np.asarray(amps).reshape(-1)
        self._profiles: dict[int, _Profile] = {}
        self._derived: dict[int, _Derived] = {}
        self._slot: dict[int, int] = {}
        self._coinc = np.zeros((0, 0), dtype=np.int64)
        self._free: list[int] = []
        self._parents: dict[int, tuple[int, ...]] = {}
        self._msim = np.zeros((0, 0))
        self._pairs: dict[tuple[int, int], Proposal] = {}  # base scores: pure, never stale
        self._conflicts: dict[tuple[int, int], float] = {}  # pure, never stale
        self._adjusted: dict[tuple[int, int], Proposal] = {}  # valid while neighbours are
        self._topk: dict[int, tuple[int, ...]] = {}
        self._kth: dict[int, float] = {}
        self._nbrs: dict[int, frozenset[int]] = {}
        self._cand: dict[tuple[int, int], float] = {}
        self._pending = False
        self._initialised = False
        self._rejected: set[tuple[int, int]] = set()
        self._partners: dict[int, frozenset[int]] | None = None
        self._ancestors: dict[int, frozenset[int]] = {}
        if self.curation is not None:
            self._read_history(self.curation.history)
            if subscribe:
                if own_stats:
                    self.curation.subscribe(self.stats.on_update)
                self.curation.subscribe(self.on_update)

    @property
    def state(self) -> Any:
        """The live cluster state (the curation's current one: an undo that replays the log
        replaces it)."""
        return self.curation.state if self.curation is not None else self._state

    # ------------------------------------------------------------------ counters
    @property
    def counters(self) -> dict[str, int]:
        """A snapshot of the work counters (module docstring)."""
        with self._lock:
            return dict(self._counters)

    def reset_counters(self) -> None:
        """Zero the counters and clear :attr:`score_log`."""
        with self._lock:
            for k in self._counters:
                self._counters[k] = 0
            self.score_log.clear()

    # ------------------------------------------------------------------ history
    def _read_history(self, events: Iterable[Any]) -> None:
        """Merge ancestry and rejections from the log (after a restart)."""
        from curalog.events.envelope import MERGE, NOTE

        for e in events:
            body = e.body if isinstance(e.body, dict) else {}
            if e.type == MERGE:
                try:
                    self._parents[int(body["new"])] = tuple(
                        sorted(int(c) for c in body["clusters"])
                    )
                except (KeyError, TypeError, ValueError):
                    continue
            elif e.type == NOTE and body.get("kind") == PROPOSAL_NOTE_KIND:
                data = body.get("data") or {}
                try:
                    a, b = sorted(int(c) for c in data["clusters"])
                except (KeyError, TypeError, ValueError):
                    continue
                if data.get("decision") == "reject":
                    self._rejected.add((a, b))
                elif data.get("decision") == "unreject":
                    self._rejected.discard((a, b))
                self._partners = None

    def _ancestry(self, cid: int) -> frozenset[int]:
        """The cluster and every cluster merged into it (recursively)."""
        got = self._ancestors.get(cid)
        if got is None:
            out = {cid}
            for p in self._parents.get(cid, ()):
                out |= self._ancestry(p)
            got = frozenset(out)
            self._ancestors[cid] = got
        return got

    def is_rejected(self, a: int, b: int) -> bool:
        """True when the pair, or a pair of clusters merged into them, was rejected."""
        with self._lock:
            if not self._rejected:
                return False
            a, b = int(a), int(b)
            if (min(a, b), max(a, b)) in self._rejected:
                return True
            anc_a, anc_b = self._ancestry(a), self._ancestry(b)
            if len(anc_a) > len(anc_b):
                anc_a, anc_b = anc_b, anc_a
            partners = self._rejected_partners()
            return any(not partners.get(x, frozenset()).isdisjoint(anc_b) for x in anc_a)

    def _rejected_partners(self) -> dict[int, frozenset[int]]:
        """``x -> {y : (x, y) rejected}``, both ways (rebuilt when the rejections change)."""
        if self._partners is None:
            out: dict[int, set[int]] = {}
            for x, y in self._rejected:
                out.setdefault(x, set()).add(y)
                out.setdefault(y, set()).add(x)
            self._partners = {k: frozenset(v) for k, v in out.items()}
        return self._partners

    @property
    def rejected_pairs(self) -> list[tuple[int, int]]:
        with self._lock:
            return sorted(self._rejected)

    # ------------------------------------------------------------------ updates
    def on_update(self, update: Any) -> None:
        """Take note of an action, undo or redo; the work happens at the next query."""
        added = tuple(int(c) for c in getattr(update, "added", ()))
        deleted = tuple(int(c) for c in getattr(update, "deleted", ()))
        desc = tuple(getattr(update, "descendants", ()))
        with self._lock:
            olds = {int(old) for old, _ in desc}
            if (
                len(added) == 1
                and desc
                and all(int(new) == added[0] for _, new in desc)
                and olds == set(deleted)
                and len(olds) >= 2
                and added[0] not in self._parents
            ):
                self._parents[added[0]] = tuple(sorted(olds))
                self._ancestors.clear()  # an older id may have gained parents (undo of a split)
            if added or deleted:
                self._pending = True

    def _sync(self) -> None:
        """Bring slots, profiles, coincidences, similarities and candidates up to the live
        state (lazily, on a query)."""
        if not self._initialised:
            self._initialise()
            self._initialised = True
            self._pending = False
            return
        if not self._pending:
            return
        self._pending = False
        live = [int(c) for c in self.state.cluster_ids]
        live_set = set(live)
        gone = [c for c in self._slot if c not in live_set]
        new = sorted(c for c in live if c not in self._slot)
        if not gone and not new:
            return
        local: list[int] = []
        for c in new:
            parents = self._parents.get(c)
            if parents and all(p in self._slot for p in parents) and self._is_union(c, parents):
                self._compose_row(c, parents)
            else:
                local.append(c)
        if local:
            for c in local:
                self._alloc(c)
            slot_of = self._slot_lut()
            clusters = self.state.spike_clusters
            for c in local:
                self._local(c, slot_of, clusters)
            for c in local:
                self._similarity_rows(c)
        gone_set = set(gone)
        for c in gone:
            self._release(c)
            self._topk.pop(c, None)
            self._kth.pop(c, None)
        # re-rank the clusters whose top-k may have changed
        ids = np.asarray(self.state.cluster_ids, dtype=np.int64)
        slots = np.array([self._slot[int(c)] for c in ids], dtype=np.int64)
        new_slots = np.array([self._slot[c] for c in new], dtype=np.int64)
        rerank = set(new)
        if new_slots.size:
            best_new = self._msim[np.ix_(slots, new_slots)].max(axis=1)
        else:
            best_new = np.full(ids.shape[0], -np.inf)
        for i, c in enumerate(ids.tolist()):
            if c in rerank:
                continue
            if gone_set.intersection(self._topk.get(c, ())) or best_new[i] >= self._kth.get(
                c, -np.inf
            ):
                rerank.add(c)
        for c in sorted(rerank):
            self._rank(c, ids, slots)
        self._rebuild_candidates()

    def _is_union(self, c: int, parents: Sequence[int]) -> bool:
        try:
            n = self.state.n_spikes_of(c)
        except InvalidActionError:
            return False
        return sum(self._profile_n(p) for p in parents) == n

    def _profile_n(self, c: int) -> int:
        prof = self._profiles.get(c)
        return prof.n_spikes if prof is not None else -1

    # -- slots of the coincidence and similarity matrices
    def _alloc(self, c: int) -> int:
        if self._free:
            s = self._free.pop()
        else:
            s = len(self._slot)
            cap = self._coinc.shape[0]
            if s >= cap:
                new_cap = max(64, 2 * cap, s + 1)
                grown = np.zeros((new_cap, new_cap), dtype=np.int64)
                grown[:cap, :cap] = self._coinc
                self._coinc = grown
                sim = np.full((new_cap, new_cap), -np.inf)
                sim[:cap, :cap] = self._msim
                self._msim = sim
        self._coinc[s, :] = 0
        self._coinc[:, s] = 0
        self._msim[s, :] = -np.inf
        self._msim[:, s] = -np.inf
        self._slot[c] = s
        return s

    def _release(self, c: int) -> None:
        s = self._slot.pop(c)
        self._free.append(s)

    def _slot_lut(self) -> np.ndarray:
        top = (
            max(max(self._slot) + 1, int(self.state.counter))
            if self._slot
            else int(self.state.counter)
        )
        lut = np.full(top + 1, -1, dtype=np.int64)
        for c, s in self._slot.items():
            lut[c] = s
        return lut

    def _compose_row(self, c: int, parents: Sequence[int]) -> None:
        """A merge of slotted clusters: every per-cluster quantity composes exactly."""
        s = self._alloc(c)  # first: it may grow the matrices
        ps = [self._slot[p] for p in parents]
        row = self._coinc[ps].sum(axis=0)
        diag = int(sum(self._coinc[q, q] for q in ps))
        for i in range(len(ps)):
            for j in range(i + 1, len(ps)):
                diag += int(self._coinc[ps[i], ps[j]])
        srow = self._msim[ps].max(axis=0)  # sim(c, x) = max(sim(a, x), sim(b, x))
        scol = self._msim[:, ps].max(axis=1)
        self._coinc[s, :] = row
        self._coinc[:, s] = row
        self._coinc[s, s] = diag
        self._msim[s, :] = srow
        self._msim[:, s] = scol
        self._msim[s, s] = -np.inf
        for p in ps:  # the parents' columns are not live any more
            self._msim[s, p] = -np.inf
            self._msim[p, s] = -np.inf
        self._counters["rows_composed"] += 1
        if c not in self._profiles:
            self._profiles[c] = _compose_profiles([self._profiles[p] for p in parents])
            self._counters["profiles_composed"] += 1

    def _similarity_rows(self, c: int) -> None:
        """phy's similarity between a new (not composed) cluster and every slotted cluster."""
        sim = self.stats.similarity_matrix
        if sim is None:
            return
        s = self._slot[c]
        tc = self._profiles[c].tids
        row = template_row(sim, tc)
        for x, sx in self._slot.items():
            if x == c:
                continue
            tx = self._profiles[x].tids
            self._msim[s, sx] = float(row[tx].max()) if tx.size else -np.inf
            self._msim[sx, s] = float(sim[np.ix_(tx, tc)].max()) if tx.size and tc.size else -np.inf

    def _local(self, c: int, slot_of: np.ndarray, clusters: np.ndarray) -> None:
        spikes = np.ascontiguousarray(self.state.spikes(c))
        templates = self.dataset.spike_templates
        hist = _template_hist(spikes, templates, self.n_templates)
        tids = np.flatnonzero(hist).astype(np.int64)
        lut = np.full(self.n_templates, -1, dtype=np.int64)
        lut[tids] = np.arange(tids.shape[0])
        counts = np.zeros((tids.shape[0], self.nb))
        ampsum = np.zeros((tids.shape[0], self.nb))
        row = np.zeros(self._coinc.shape[0], dtype=np.int64)
        use_amp = self._amps is not None
        amps = self._amps if use_amp else np.zeros(1, dtype=np.float32)
        own = self._slot[c]
        _local_pass(
            spikes,
            self.dataset.spike_times,
            clusters,
            templates,
            amps,
            use_amp,
            slot_of,
            own,
            lut,
            self.nb,
            self.total_samples,
            self.tau,
            self.censor,
            counts,
            ampsum,
            row,
        )
        diag = row[own]
        self._coinc[own, :] = row
        self._coinc[:, own] = row
        self._coinc[own, own] = diag
        self._counters["rows_computed"] += 1
        if c not in self._profiles:
            self._profiles[c] = _Profile(tids, counts, ampsum, int(spikes.shape[0]))
            self._counters["profiles_computed"] += 1

    def _initialise(self) -> None:
        """Profiles and coincidences of every live cluster in one pass over all spikes, the
        similarity table, every top-k list and the candidates."""
        live = [int(c) for c in self.state.cluster_ids]
        self._slot = {}
        self._free = []
        cap = max(64, len(live) + 64)
        self._coinc = np.zeros((cap, cap), dtype=np.int64)
        self._msim = np.full((cap, cap), -np.inf)
        for c in live:
            self._alloc(c)
        slot_of = self._slot_lut()
        clusters = self.state.spike_clusters
        templates = self.dataset.spike_templates
        n_live = len(live)
        hist = np.zeros((n_live, self.n_templates), dtype=np.int64)
        if n_live:
            _hist_pass(clusters, templates, slot_of, hist)
        nz = np.flatnonzero(hist.ravel())
        lut = np.full(hist.shape, -1, dtype=np.int64)
        lut.ravel()[nz] = np.arange(nz.shape[0])
        use_amp = self._amps is not None
        amps = self._amps if use_amp else np.zeros(1, dtype=np.float32)
        n_spikes = int(clusters.shape[0])
        # one private output per thread: no more threads than spikes (1 M per thread) or
        # memory (256 MB of coincidence matrices) justify
        by_memory = max(1, (256 << 20) // max(1, 4 * n_live * n_live))
        n_chunks = max(1, min(self.n_threads, n_spikes // 1_000_000 + 1, by_memory))
        parts = [
            (
                np.zeros((nz.shape[0], self.nb)),
                np.zeros((nz.shape[0], self.nb)),
                np.zeros((n_live, n_live), dtype=np.int32),
            )
            for _ in range(n_chunks)
        ]
        bounds = [n_spikes * i // n_chunks for i in range(n_chunks + 1)]

        def run(i: int) -> None:
            c_, a_, u_ = parts[i]
            _full_pass(
                self.dataset.spike_times,
                clusters,
                templates,
                amps,
                use_amp,
                slot_of,
                lut,
                self.nb,
                self.total_samples,
                self.tau,
                self.censor,
                c_,
                a_,
                u_,
                bounds[i],
                bounds[i + 1],
            )

        if n_live:
            if n_chunks == 1:
                run(0)
            else:  # the kernel releases the GIL: time ranges in parallel threads
                with ThreadPoolExecutor(max_workers=n_chunks) as pool:
                    list(pool.map(run, range(n_chunks)))
        counts, ampsum, upper = parts[0]
        for c_, a_, u_ in parts[1:]:
            counts += c_
            ampsum += a_
            upper += u_
        if n_live:
            full = upper.astype(np.int64)
            full += full.T
            full[np.diag_indices(n_live)] //= 2
            self._coinc[:n_live, :n_live] = full
        rows, tcols = np.divmod(nz, self.n_templates)
        starts = np.searchsorted(rows, np.arange(n_live + 1))
        for k, c in enumerate(live):
            lo, hi = starts[k], starts[k + 1]
            if c in self._profiles:
                continue
            self._profiles[c] = _Profile(
                tcols[lo:hi].astype(np.int64), counts[lo:hi], ampsum[lo:hi], int(hist[k].sum())
            )
            self._counters["profiles_computed"] += 1
        self._counters["full_passes"] += 1
        ids, m = self._similarity_table()
        self._msim[:n_live, :n_live] = m  # slots 0..n-1 are the live ids in ascending order
        slots = np.arange(n_live, dtype=np.int64)
        self._topk, self._kth = {}, {}
        for c in live:
            self._rank(c, ids, slots)
        self._rebuild_candidates()

    # ------------------------------------------------------------------ candidates
    def _similarity_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, M)``: phy's cluster similarity ``M[i, j] = sim(ids[i], ids[j])`` between
        every pair of live clusters (``-inf`` on the diagonal)."""
        ids = np.asarray(self.state.cluster_ids, dtype=np.int64)
        if ids.shape[0] == 0:
            return ids, np.zeros((0, 0))
        sim = self.stats.similarity_matrix
        if sim is None:
            return ids, np.full((ids.shape[0], ids.shape[0]), -np.inf)
        sets = [self._profiles[int(c)].tids for c in ids]
        r = np.vstack([template_row(sim, t) for t in sets]).astype(np.float64, copy=False)
        lengths = np.fromiter((s.shape[0] for s in sets), dtype=np.int64, count=len(sets))
        concat = np.concatenate(sets).astype(np.int64, copy=False)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        m = np.maximum.reduceat(r[:, concat], offsets, axis=1)
        np.fill_diagonal(m, -np.inf)
        return ids, m

    def similarity_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, M)``: phy's similarity ``M[i, j] = sim(ids[i], ids[j])`` between the live
        clusters (ascending ids; ``-inf`` on the diagonal)."""
        with self._lock:
            self._sync()
            ids = np.asarray(self.state.cluster_ids, dtype=np.int64)
            slots = np.array([self._slot[int(c)] for c in ids], dtype=np.int64)
            m = self._msim[np.ix_(slots, slots)].copy()
            np.fill_diagonal(m, -np.inf)
            return ids, m

    def _rank(self, c: int, ids: np.ndarray, slots: np.ndarray) -> None:
        """Top-k partners of ``c``: descending similarity, ties by ascending id."""
        p = self.params
        v = self._msim[self._slot[c], slots]
        keep = ids != c
        v, cand = v[keep], ids[keep]
        order = np.lexsort((cand, -v))
        k = min(p.top_k, order.shape[0])
        top = order[:k]
        self._kth[c] = float(v[top[-1]]) if k == p.top_k and k > 0 else -np.inf
        self._topk[c] = tuple(int(cand[j]) for j in top if v[j] >= p.min_similarity)

    def _rebuild_candidates(self) -> None:
        """The union of the top-k pairs; clusters whose neighbours changed lose their
        competition-adjusted proposals (base scores stay cached)."""
        cand: dict[tuple[int, int], float] = {}
        nbrs: dict[int, set[int]] = {}
        for c, top in self._topk.items():
            sc = self._slot[c]
            for d in top:
                key = (c, d) if c < d else (d, c)
                if key not in cand:
                    sd = self._slot[d]
                    cand[key] = float(max(self._msim[sc, sd], self._msim[sd, sc]))
                    nbrs.setdefault(c, set()).add(d)
                    nbrs.setdefault(d, set()).add(c)
        frozen = {c: frozenset(v) for c, v in nbrs.items()}
        changed = {c for c in set(frozen) | set(self._nbrs) if frozen.get(c) != self._nbrs.get(c)}
        self._nbrs = frozen
        self._cand = dict(sorted(cand.items()))
        self._counters["candidate_refreshes"] += 1
        if changed:
            self._adjusted = {
                k: v
                for k, v in self._adjusted.items()
                if k[0] not in changed and k[1] not in changed
            }

    def candidates(self) -> list[tuple[int, int, float]]:
        """Candidate pairs ``(a, b, phy_similarity)``, ``a < b``, ascending."""
        with self._lock:
            self._sync()
            return [(a, b, s) for (a, b), s in self._cand.items()]

    # ------------------------------------------------------------------ scoring
    def _derive(self, c: int) -> _Derived:
        got = self._derived.get(c)
        if got is not None:
            return got
        prof = self._profiles[c]
        n = prof.counts.sum(axis=0)
        ptp = self.templates.ptp_all()[prof.tids]
        ys = self.templates.xy_all()[prof.tids, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            amp = (
                (prof.ampsum * ptp[:, None]).sum(axis=0) / n
                if self._amps is not None
                else np.full(self.nb, np.nan)
            )
            ok_y = np.isfinite(ys)
            ypos = (prof.counts[ok_y] * ys[ok_y, None]).sum(axis=0) / prof.counts[ok_y].sum(axis=0)
            loga = np.where((n > 0) & (amp > 0), np.log(np.where(amp > 0, amp, 1.0)), 0.0)
        amp = np.where(n > 0, amp, np.nan)
        ypos = np.where(n > 0, ypos, np.nan)
        occupied = n[n > 0]
        thresh = self.params.presence_fraction * (float(occupied.mean()) if occupied.size else 0.0)
        present = (n > 0) & (n >= thresh)
        got = _Derived(n, loga, amp, ypos, present)
        self._derived[c] = got
        return got

    def _contamination(self, n_v: int, n: int) -> float:
        t_r = max(self.tau, self.censor + 1)
        return rp_contamination(int(n_v), int(n), self.total_samples, self.censor, t_r)

    def score(self, a: int, b: int) -> Proposal:
        """Score a pair of live clusters, candidate or not (cached by ids)."""
        with self._lock:
            self._sync()
            a, b = sorted((int(a), int(b)))
            if a == b:
                raise InvalidActionError("a proposal needs two different clusters")
            for c in (a, b):
                if c not in self._slot:
                    raise InvalidActionError(f"cluster {c} does not exist")
            return self._adjust(a, b)

    def _base(self, a: int, b: int) -> Proposal:
        """The pair's own score (a pure function of the two clusters: cached forever)."""
        got = self._pairs.get((a, b))
        if got is not None:
            self._counters["pair_cache_hits"] += 1
            return got
        prop = self._score(a, b)
        self._pairs[(a, b)] = prop
        self.score_log.append((a, b))
        return prop

    def _conflict(self, x: int, y: int) -> float:
        """How sure we are that ``x`` and ``y`` are two neurons *claiming the same time*:
        ``concurrency^2 * (1 - p_same)``, where ``concurrency`` is the larger of the two
        fractions of a cluster's spikes that fall in bins where the other is present (pieces
        that follow each other in time do not compete), and ``p_same`` the correlogram's
        posterior (1/2 when it cannot tell)."""
        key = (x, y) if x < y else (y, x)
        got = self._conflicts.get(key)
        if got is None:
            dx, dy = self._derive(x), self._derive(y)
            e = float((dx.n * dy.n).sum() * self._lag_fraction)
            o = float(self._coinc[self._slot[x], self._slot[y]])
            nx, ny = float(dx.n.sum()), float(dy.n.sum())
            conc = max(
                float(dx.n[dy.present].sum()) / nx if nx else 0.0,
                float(dy.n[dx.present].sum()) / ny if ny else 0.0,
            )
            got = conc * conc * (1.0 - self._posterior(o, e))
            self._conflicts[key] = got
        return got

    def _posterior(self, o: float, e: float) -> float:
        p = self.params
        lo, hi = p.diff_contamination
        return float(
            _p_same(float(o), float(e), float(p.same_max_contamination), float(lo), float(hi))
        )

    def _adjust(self, a: int, b: int) -> Proposal:
        """The base score times the uniqueness factor
        ``f_unique = 1 / (1 + (c / (ambiguity_ratio * s)) ** ambiguity_power)``, where ``c``
        is the strongest competing explanation: a neighbour ``z`` of ``a`` (in the candidate
        graph) that is another neuron than ``b`` claiming the same time, scored
        ``base(a, z) * conflict(b, z)``, or the same from ``b``'s side."""
        got = self._adjusted.get((a, b))
        if got is not None:
            return got
        base = self._base(a, b)
        comp, who = 0.0, -1
        for x, y in ((a, b), (b, a)):
            for z in sorted(self._nbrs.get(x, ())):
                if z == y:
                    continue
                k = (x, z) if x < z else (z, x)
                s = self._base(*k).score
                if s <= comp:
                    continue
                s *= self._conflict(y, z)
                if s > comp:
                    comp, who = s, z
        s0 = base.score
        pr = self.params
        if comp <= 0.0:
            f = 1.0
        elif s0 <= comp * 1e-6:
            f = 0.0
        else:
            f = 1.0 / (1.0 + (comp / (pr.ambiguity_ratio * s0)) ** pr.ambiguity_power)
        evidence = dict(base.evidence)
        evidence["competitor"] = float(who)
        evidence["competitor_score"] = comp
        factors = dict(base.factors)
        factors["f_unique"] = f
        reason = base.reason
        if f < 0.75:
            reason += f"; ambiguous: {who} is another neuron that fits as well ({comp:.2f})"
        prop = Proposal(a, b, s0 * f, evidence, factors, reason, self._changed_params)
        self._adjusted[(a, b)] = prop
        return prop

    def _score(self, a: int, b: int) -> Proposal:
        p = self.params
        pa, pb = self._profiles[a], self._profiles[b]
        da, db = self._derive(a), self._derive(b)
        kern = self._kernel
        kb = kern @ db.n
        z = float(da.n @ kb)
        # template-pair weights of time-adjacent spikes, G = C_a K C_b^T
        g = pa.counts @ kern @ pb.counts.T
        s_ab = self.templates.similarity_matrix(pa.tids, pb.tids)
        xy = self.templates.xy_all()
        ra, rb = xy[pa.tids], xy[pb.tids]
        d2 = ((ra[:, None, :] - rb[None, :, :]) ** 2).sum(axis=2)
        if z > 0:
            sim = float((g * s_ab).sum() / z)
            ok = np.isfinite(d2)
            dist = (
                math.sqrt(float((g[ok] * d2[ok]).sum() / max(g[ok].sum(), 1e-300)))
                if ok.any()
                else math.nan
            )
            if self._amps is not None:
                la, lb = da.loga, db.loga
                ka = kern.T @ da.n
                num = float(
                    (da.n * la * la) @ kb
                    + (db.n * lb * lb) @ ka
                    - 2.0 * (da.n * la) @ kern @ (db.n * lb)
                )
                amp_jump = math.sqrt(max(num, 0.0) / z)
            else:
                amp_jump = math.nan
        else:
            sim, dist, amp_jump = math.nan, math.nan, math.nan
        # presence: overlap and gap
        na, nb_ = pa.n_spikes, pb.n_spikes
        overlap = float(np.minimum(da.n / max(na, 1), db.n / max(nb_, 1)).sum())
        ia, ib = np.flatnonzero(da.present), np.flatnonzero(db.present)
        if ia.size and ib.size:
            pos = np.searchsorted(ib, ia)
            left = np.abs(ia - ib[np.clip(pos - 1, 0, ib.size - 1)])
            right = np.abs(ib[np.clip(pos, 0, ib.size - 1)] - ia)
            gap_bins = max(int(np.minimum(left, right).min()) - 1, 0)
        else:
            gap_bins = self.nb
        gap_s = gap_bins * self.bin_samples / self.sample_rate
        # refractory evidence
        sa, sb = self._slot[a], self._slot[b]
        obs = int(self._coinc[sa, sb])
        exp_ = float((da.n * db.n).sum() * self._lag_fraction)
        contam = obs / exp_ if exp_ > 0 else math.nan
        p_same = self._posterior(obs, exp_)
        va, vb = int(self._coinc[sa, sa]), int(self._coinc[sb, sb])
        isi_a = self._contamination(va, na)
        isi_b = self._contamination(vb, nb_)
        isi_m = self._contamination(va + vb + obs, na + nb_)
        phy_sim = float(max(self._msim[sa, sb], self._msim[sb, sa]))
        # factors
        f_sim = (
            0.0
            if not math.isfinite(sim)
            else min(max((sim - p.similarity_floor) / (1.0 - p.similarity_floor), 0.0), 1.0) ** 2
        )
        f_pos = (
            1.0 if not math.isfinite(dist) else math.exp(-0.5 * (dist / p.position_scale_um) ** 2)
        )
        f_amp = (
            1.0
            if not math.isfinite(amp_jump)
            else math.exp(-0.5 * (amp_jump / p.amplitude_scale) ** 2)
        )
        f_ccg = p_same
        f_gap = math.exp(-gap_bins / p.gap_scale_bins)
        worst = max((v for v in (isi_a, isi_b) if math.isfinite(v)), default=0.0)
        f_isi = math.exp(-max(0.0, (isi_m if math.isfinite(isi_m) else 0.0) - worst) / p.isi_scale)
        score = f_sim * f_pos * f_amp * f_ccg * f_gap * f_isi
        evidence = {
            "similarity": sim,
            "phy_similarity": float(phy_sim),
            "distance_um": dist,
            "amplitude_jump": amp_jump,
            "gap_s": gap_s,
            "overlap": overlap,
            "coincidences": float(obs),
            "expected": exp_,
            "cross_contamination": contam,
            "p_same": p_same,
            "isi_merged": isi_m,
            "isi_a": isi_a,
            "isi_b": isi_b,
            "n_a": float(na),
            "n_b": float(nb_),
        }
        factors = {
            "f_sim": f_sim,
            "f_pos": f_pos,
            "f_amp": f_amp,
            "f_ccg": f_ccg,
            "f_gap": f_gap,
            "f_isi": f_isi,
        }
        self._counters["pairs_scored"] += 1
        return Proposal(a, b, float(score), evidence, factors, _reason(evidence, factors, score))

    # ------------------------------------------------------------------ queries
    def proposals(
        self, min_score: float = 0.0, limit: int | None = None, *, include_rejected: bool = False
    ) -> list[Proposal]:
        """Candidate pairs with ``score >= min_score``, best first (ties: ascending ids);
        rejected pairs are left out unless ``include_rejected``."""
        with self._lock:
            self._sync()
            out = []
            for a, b in self._cand:
                prop = self._adjust(a, b)
                if prop.score < min_score:
                    continue
                if not include_rejected and self.is_rejected(a, b):
                    continue
                out.append(prop)
            out.sort(key=lambda q: (-q.score, q.a, q.b))
            return out[:limit] if limit is not None else out

    def next(
        self, min_score: float = 0.0, exclude: Iterable[tuple[int, int]] = ()
    ) -> Proposal | None:
        """The best proposal not rejected and not in ``exclude`` (pairs skipped by the
        curator), or None."""
        skip = {(min(a, b), max(a, b)) for a, b in exclude}
        for prop in self.proposals(min_score):
            if prop.pair not in skip:
                return prop
        return None

    # ------------------------------------------------------------------ decisions
    def _require_curation(self) -> Any:
        if self.curation is None:
            raise InvalidActionError("this proposal engine has no curation to write to")
        return self.curation

    def accept(self, proposal: Proposal) -> int:
        """Merge the pair (an ordinary merge event, ``meta={"proposal": ...}``); returns the
        new cluster id."""
        cur = self._require_curation()
        return int(cur.merge([proposal.a, proposal.b], meta={"proposal": proposal.provenance()}))

    def reject(self, proposal: Proposal | tuple[int, int], text: str = "") -> Any:
        """Record that the pair is not one neuron (a note in the log); it is not proposed
        again, nor any pair of clusters merged from both sides. Returns the note event."""
        cur = self._require_curation()
        a, b = _pair_of(proposal)
        data: dict[str, Any] = {"decision": "reject", "clusters": [a, b]}
        if isinstance(proposal, Proposal):
            data["score"] = round(proposal.score, 4)
        event = cur.note(PROPOSAL_NOTE_KIND, text or f"rejected merge proposal {a} + {b}", data)
        with self._lock:
            self._rejected.add((a, b))
            self._partners = None
        return event

    def unreject(self, proposal: Proposal | tuple[int, int], text: str = "") -> Any:
        """Take a rejection back (another note); the pair can be proposed again."""
        cur = self._require_curation()
        a, b = _pair_of(proposal)
        event = cur.note(
            PROPOSAL_NOTE_KIND,
            text or f"withdrew the rejection of {a} + {b}",
            {"decision": "unreject", "clusters": [a, b]},
        )
        with self._lock:
            self._rejected.discard((a, b))
            self._partners = None
        return event

    def accept_all(
        self,
        min_score: float,
        *,
        max_merges: int | None = None,
        callback: Callable[[Proposal, int], None] | None = None,
    ) -> list[tuple[Proposal, int]]:
        """Accept proposals greedily, best first, re-scoring after every merge, until none
        reaches ``min_score``. Returns ``[(proposal, new id), ...]`` in order.

        The sequence does not depend on ``min_score`` (it only decides where to stop), so a
        lower threshold continues the run of a higher one.
        """
        done: list[tuple[Proposal, int]] = []
        while max_merges is None or len(done) < max_merges:
            prop = self.next(min_score)
            if prop is None:
                break
            new = self.accept(prop)
            done.append((prop, new))
            if callback is not None:
                callback(prop, new)
        return done

    # ------------------------------------------------------------------ evidence
    def evidence(self, a: int | Proposal, b: int | None = None) -> Evidence:
        """Everything a review screen plots for a pair (see :class:`Evidence`)."""
        if isinstance(a, Proposal):
            prop = a
        else:
            assert b is not None
            prop = self.score(int(a), int(b))
        with self._lock:
            self._sync()
            da, db = self._derive(prop.a), self._derive(prop.b)
            pa, pb = self._profiles[prop.a], self._profiles[prop.b]
        bin_s = self.bin_samples / self.sample_rate
        time_s = (np.arange(self.nb) + 0.5) * bin_s
        ccg = self.stats.ccg(prop.a, prop.b)
        acg_a, acg_b = self.stats.acg(prop.a), self.stats.acg(prop.b)
        chans = self._overlay_channels(pa, pb)
        return Evidence(
            proposal=prop,
            lags_ms=self.stats.bins.lags_ms(),
            ccg=ccg,
            acg_a=acg_a,
            acg_b=acg_b,
            refractory_ms=self.params.refractory_ms,
            time_s=time_s,
            rate_a=da.n / bin_s,
            rate_b=db.n / bin_s,
            amplitude_a=da.amp.copy(),
            amplitude_b=db.amp.copy(),
            position_a=da.ypos.copy(),
            position_b=db.ypos.copy(),
            channels=chans,
            channel_positions=self.templates.pos[chans] if chans.size else np.zeros((0, 2)),
            template_a=self._mean_template(pa, chans),
            template_b=self._mean_template(pb, chans),
        )

    def _overlay_channels(self, pa: _Profile, pb: _Profile, n: int = 8) -> np.ndarray:
        """The ``n`` channels where either cluster's mean template is largest (each
        normalised by its own peak), over the union of both clusters' channels."""
        union = np.union1d(self._mean_template(pa, None)[1], self._mean_template(pb, None)[1])
        amp = np.zeros(union.shape[0])
        for prof in (pa, pb):
            w = self._mean_template(prof, union)
            if w.size:
                ptp = w.max(axis=0) - w.min(axis=0)
                amp = np.maximum(amp, ptp / max(float(ptp.max()), 1e-300))
        return union[np.argsort(-amp, kind="stable")[:n]]

    def _mean_template(self, prof: _Profile, chans: np.ndarray | None) -> Any:
        infos = [self.templates.info(int(t)) for t in prof.tids]
        weights = prof.counts.sum(axis=1)
        if chans is None:
            union = np.unique(np.concatenate([i.channels for i in infos] + [np.zeros(0, np.int64)]))
            return _weighted(infos, weights, union), union
        return _weighted(infos, weights, chans)


def _weighted(infos: list[_TemplateInfo], weights: np.ndarray, chans: np.ndarray) -> np.ndarray:
    ns = max((i.waves.shape[0] for i in infos), default=1)
    out = np.zeros((ns, chans.shape[0]))
    tot = float(weights.sum())
    for info, w in zip(infos, weights, strict=True):
        if info.waves.shape[0] == ns and tot > 0:
            out += (w / tot) * _on_channels(info, chans)
    return out


def _pair_of(p: Proposal | tuple[int, int]) -> tuple[int, int]:
    if isinstance(p, Proposal):
        return p.a, p.b
    a, b = sorted(int(c) for c in p)
    return a, b


def _reason(ev: dict[str, float], fac: dict[str, float], score: float) -> str:
    """One line: how the pieces sit in time, the refractory evidence, shape and continuity."""
    parts: list[str] = []
    ov, gap = ev["overlap"], ev["gap_s"]
    if gap > 0:
        parts.append(f"{gap / 60:.0f} min apart in time")
    elif ov < 0.2:
        parts.append("tile time")
    elif ov > 0.6:
        parts.append("fire together")
    else:
        parts.append(f"overlap {ov:.0%} in time")
    o, e = ev["coincidences"], ev["expected"]
    if e < 1.0:
        parts.append("no overlap to test the refractory period")
    elif o <= 0.2 * e:
        parts.append(f"refractory dip ({o:.0f} of {e:.0f} expected coincidences)")
    else:
        parts.append(f"NO refractory dip ({o:.0f} of {e:.0f} expected)")
    sim = ev["similarity"]
    parts.append(f"template similarity {sim:.2f}" if math.isfinite(sim) else "no template")
    d = ev["distance_um"]
    if math.isfinite(d):
        parts.append(f"{d:.0f} µm apart")
    j = ev["amplitude_jump"]
    if math.isfinite(j):
        parts.append(f"amplitude step {100 * (math.exp(j) - 1):.0f} %")
    weakest = min(fac, key=lambda k: fac[k])
    if fac[weakest] < 0.5:
        parts.append(f"weakest: {weakest[2:]}")
    return "; ".join(parts)
