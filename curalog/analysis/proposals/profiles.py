"""Per-cluster time profiles (counts, amplitude sums and per-spike position sums per template
and time bin) and the values derived from them; profiles add up on a merge."""

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
    possum: np.ndarray | None = None  # (k, nb, 2) sums of per-spike positions (or None)
    pos2sum: np.ndarray | None = None  # (k, nb) sums of their squared norms
    poscount: np.ndarray | None = None  # (k, nb) spikes in those sums (every stride-th)

    def rows(self, keep: np.ndarray) -> _Profile:
        """The profile of the templates ``keep`` (a boolean mask over ``tids``)."""
        return _Profile(
            self.tids[keep],
            self.counts[keep],
            self.ampsum[keep],
            int(self.counts[keep].sum()),
            None if self.possum is None else self.possum[keep],
            None if self.pos2sum is None else self.pos2sum[keep],
            None if self.poscount is None else self.poscount[keep],
        )

    @property
    def n(self) -> np.ndarray:
        return self.counts.sum(axis=0)


def _compose_profiles(profiles: Sequence[_Profile]) -> _Profile:
    tids = np.unique(np.concatenate([p.tids for p in profiles]))
    nb = profiles[0].counts.shape[1]
    counts = np.zeros((tids.shape[0], nb))
    ampsum = np.zeros((tids.shape[0], nb))
    with_pos = all(p.possum is not None for p in profiles)
    possum = np.zeros((tids.shape[0], nb, 2)) if with_pos else None
    pos2sum = np.zeros((tids.shape[0], nb)) if with_pos else None
    poscount = np.zeros((tids.shape[0], nb)) if with_pos else None
    for p in profiles:
        idx = np.searchsorted(tids, p.tids)
        counts[idx] += p.counts
        ampsum[idx] += p.ampsum
        if possum is not None and pos2sum is not None and poscount is not None:
            possum[idx] += p.possum
            pos2sum[idx] += p.pos2sum
            poscount[idx] += p.poscount
    n = sum(p.n_spikes for p in profiles)
    return _Profile(tids, counts, ampsum, n, possum, pos2sum, poscount)


@dataclass(frozen=True)
class _Derived:
    """Per-bin quantities of a profile used by the pair score."""

    n: np.ndarray  # spikes per bin
    loga: np.ndarray  # log mean true amplitude per bin (0 where empty)
    amp: np.ndarray  # mean true amplitude per bin (NaN where empty)
    ypos: np.ndarray  # mean template depth per bin (NaN where empty)
    present: np.ndarray  # bool per bin
    pos_mean: np.ndarray | None = None  # (nb, 2) mean per-spike position (0 where empty)
    pos_var: float = float("nan")  # within-bin variance of one spike's position (x + y)
    pos_n: np.ndarray | None = None  # spikes behind pos_mean per bin
