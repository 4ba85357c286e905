"""Per-cluster time profiles (counts and amplitude sums per template and time bin) and the
values derived from them; profiles add up on a merge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
