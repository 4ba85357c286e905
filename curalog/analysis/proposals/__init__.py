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
ties by ascending id. The candidate set is the union of those pairs and of the *duplicate
pairs* (below: clusters that see the same spikes, whatever their similarity); it defines
each cluster's *neighbours* (the candidate graph).

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
``position_step``
    With per-spike positions (Kilosort 4's ``spike_positions.npy``; profiles then also sum
    the positions and their squared norms per template and bin): the mean positions
    ``mu_c(i)`` and the pooled within-bin variance ``s_c^2`` of one spike, and, with
    ``w'_ij = n_a(i) n_b(j) K'_ij`` (``K'`` the kernel with ``lambda = position_kernel_bins``,
    1: the same or the next bin), ``step^2 = (sum_ij w'_ij (|mu_a(i) - mu_b(j)|^2 - s_a^2 /
    n_a(i) - s_b^2 / n_b(j)) / sum w'_ij) / min(s_a^2, s_b^2)``: how far the two clusters'
    spikes are apart where one piece hands over to the other, beyond their own scatter, in
    units of the tighter cluster's scatter (0 = continuous). Real drift leaves a registered
    unit's position continuous across its pieces; two neurons at one spot are a few
    scatters apart.
``amplitude_jump``
    ``sqrt(sum_ij w_ij (log m_a(i) - log m_b(j))^2 / Z)``: amplitude continuity, in log
    units (0.1 = about 10 %). ``m`` is the true amplitude (``amplitude_mode`` ``scaled``:
    ``amplitudes.npy`` x template peak-to-peak, Kilosort 1-3) or, for Kilosort 4
    (``absolute``, chosen when the folder has ``spike_detection_templates.npy``), the
    amplitude as written: Kilosort 4's ``amplitudes.npy`` is the L2 norm of the spike's PC
    features, and multiplying it by the template's peak-to-peak makes one neuron's amplitude
    jump by up to 2x where its pieces hand over (measured on the real training run).
``gap_s``
    Time between the two clusters' presence, 0 when they touch or overlap (``gap_bins``
    in bins); ``overlap = sum_i min(n_a(i) / N_a, n_b(i) / N_b)`` (0 = they tile time, 1 =
    the same time course).

Refractory evidence
-------------------
``O`` (``coincidences``) counts cross pairs (one spike of each) with
``censored <= |t_a - t_b| <= tau`` (``tau = refractory_ms``): the zero-lag bins of the
cross-correlogram. Closer pairs (``|dt| < censored``, 1/3 ms) are *duplicates*, ``D``: one
spike detected by two templates (Kilosort 4 does it, at lags of 0-9 samples on the training
run), not a refractory violation. Independent neurons would give ``E = sum_i n_a(i) n_b(i) w / L``
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

``duplicate_fraction`` ``q = min(1, D / min(N_a, N_b))``: the share of the smaller
cluster's spikes that the other cluster also detected. A *duplicate pair* has ``q >=
duplicate_floor`` (1/2). When a merge joins a cluster that is mostly duplicates of the other
(the smaller side's ``q >= duplicate_floor``), its templates become *shadows* of the merged
cluster: the shape, position, amplitude, presence and ``E`` evidence of the merged cluster
comes from its other templates only (a shadow sits on other channels and would blur them),
while the spike counts and the coincidences count every spike.

``isi_merged`` is the merged cluster's refractory-period contamination (Llobet et al. 2022,
:func:`curalog.analysis.stats.metrics.rp_contamination` with ``t_r = tau``): with ``v_c`` the pairs of
one cluster's own spikes within ``tau``, ``n_v = v_a + v_b + O`` and
``C = 1 - sqrt(1 - n_v (T_s - 2 N t_c) / (N^2 (t_r - t_c)))``; ``isi_a``, ``isi_b`` are
the parents' own values.

Score
-----
The pair's own (*base*) score is the better of two explanations, each a product of factors
in [0, 1]: pieces of one neuron (continuity) or one neuron detected twice (duplicates)::

    f_sim = clip((similarity - similarity_floor) / (1 - similarity_floor), 0, 1) ** 2
    f_pos = exp(-(position_step / position_scale_sd) ** 2 / 2)     with per-spike positions
          = exp(-(distance_um / position_scale_um) ** 2 / 2)       without
    f_amp = exp(-(amplitude_jump / amplitude_scale) ** 2 / 2)
    f_ccg = p_same
    f_gap = exp(-gap_bins / gap_scale_bins)
    f_isi = exp(-max(0, isi_merged - max(isi_a, isi_b)) / isi_scale)
    f_dup = clip((q - duplicate_floor) / (1 - duplicate_floor), 0, 1) ** 2
    base  = max(f_sim * f_pos * f_amp * f_ccg * f_gap * f_isi,  f_dup * f_ccg * f_isi)

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

Limits. Shadows are known for the merges the engine composed itself; an engine started on a
log that already joined a duplicate detection scores the merged cluster with all its
templates (its evidence then differs from the engine that saw the merge).

Decisions
---------
A rejected pair is recorded in the log as a note (``kind = "merge-proposal"``, data
``{"decision": "reject", "clusters": [a, b]}``; ``"unreject"`` takes it back), read back on
open, so it is never proposed again, nor is any pair of clusters merged from both sides.
Accepting is an ordinary merge event with ``meta = {"proposal": {...}}``.
"""

from curalog.analysis.proposals.engine import ProposalEngine
from curalog.analysis.proposals.model import (
    DEFAULT_MIN_SCORE,
    ENGINE_VERSION,
    PROPOSAL_NOTE_KIND,
    Evidence,
    Proposal,
    ProposalParams,
)

__all__ = [
    "DEFAULT_MIN_SCORE",
    "PROPOSAL_NOTE_KIND",
    "ENGINE_VERSION",
    "ProposalParams",
    "Proposal",
    "Evidence",
    "ProposalEngine",
]
