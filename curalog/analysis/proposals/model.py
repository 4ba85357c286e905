"""Merge proposals: parameters, a scored proposal and its on-screen evidence (the maths is in
the package docstring, :mod:`curalog.analysis.proposals`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

PROPOSAL_NOTE_KIND = "merge-proposal"
ENGINE_VERSION = 2
#: The threshold documented in docs/PROPOSALS.md (on the real Kilosort 4 training run and the
#: realistic synthetic data: every piece of a neuron joined but a few, no impure merge).
DEFAULT_MIN_SCORE = 0.2
#: ``amplitude_mode`` values: phy's true amplitude (``amplitudes.npy`` x template
#: peak-to-peak, Kilosort 1-3), the amplitude as written (Kilosort 4: the L2 norm of the
#: spike's PC features), or decided from the folder (``absolute`` when it holds Kilosort 4's
#: ``spike_detection_templates.npy``).
AMPLITUDE_MODES = ("auto", "scaled", "absolute")

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
    #: coincidences closer than this are duplicate detections (one spike seen by two
    #: templates), not refractory violations (SpikeInterface censors 0.3 ms too)
    censored_ms: float = 0.33
    support_fraction: float = 0.1
    centroid_fraction: float = 0.3
    presence_fraction: float = 0.05
    similarity_floor: float = 0.5
    position_scale_um: float = 20.0
    #: with per-spike positions (Kilosort 4's spike_positions.npy): the scale of the position
    #: step at a handoff in units of the spikes' own position spread, and its time kernel
    position_scale_sd: float = 3.0
    position_kernel_bins: float = 1.0
    amplitude_scale: float = 0.3
    amplitude_mode: str = "auto"
    #: share of the smaller cluster's spikes that duplicate the other's above which the pair
    #: is one neuron detected twice (the duplicate factor rises from 0 here to 1 at 100 %)
    duplicate_floor: float = 0.5
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
        ``distance_um``, ``position_step`` (in spike-position spreads; NaN without per-spike
        positions), ``amplitude_jump``, ``gap_s``, ``overlap``, ``coincidences``,
        ``expected``, ``cross_contamination``, ``p_same``, ``duplicates``,
        ``duplicate_fraction``, ``isi_merged``, ``isi_a``, ``isi_b``, ``n_a``, ``n_b``,
        ``competitor`` (-1: none) and ``competitor_score``.
    factors : dict
        ``f_sim, f_pos, f_amp, f_ccg, f_gap, f_isi, f_dup, f_unique``.
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
