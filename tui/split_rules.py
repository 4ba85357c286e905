"""Keyboard-friendly split rules: each turns one cluster's spikes into labelled pieces.

A :class:`SplitPlan` holds the exact spike ids (all spikes of the cluster, sorted) and a
dense piece label per spike (0..k-1, no empty piece), so committing it is one ordinary
``cur.split(plan.spike_ids, plan.labels, meta=plan.meta)`` whose new ids are ``N + label``.
The plan's ``meta`` records the rule and its parameters for provenance.

Rules: amplitude threshold (phy's rule: spikes strictly below the threshold form a piece;
non-finite amplitudes stay above), the sorter's original templates, a time range, and a
seeded k-means (numpy only) on a feature matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SplitPlan:
    cluster_id: int
    spike_ids: np.ndarray  # sorted absolute spike indices (every spike of the cluster)
    labels: np.ndarray  # dense piece index per spike
    rule: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        if self.labels.size == 0:
            return []
        return [int(c) for c in np.bincount(self.labels)]

    @property
    def n_pieces(self) -> int:
        return len(self.sizes)

    @property
    def valid(self) -> bool:
        """At least two non-empty pieces (a one-piece split would change nothing)."""
        return self.n_pieces >= 2

    @property
    def problem(self) -> str | None:
        if self.spike_ids.size == 0:
            return "the cluster has no spikes"
        if not self.valid:
            return "this rule leaves the cluster in one piece; change the parameters"
        return None

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "cluster": int(self.cluster_id),
            **self.params,
            "pieces": self.sizes,
        }

    def describe(self) -> str:
        sizes = ", ".join(f"{s:,}" for s in self.sizes)
        return f"{self.n_pieces} pieces: {sizes} spikes"


def dense_labels(raw: np.ndarray) -> np.ndarray:
    """Relabel to 0..k-1 in ascending order of the raw labels (empty labels disappear)."""
    _, inv = np.unique(np.asarray(raw), return_inverse=True)
    return inv.astype(np.int64).reshape(-1)


def by_amplitude(
    cid: int, spikes: np.ndarray, amplitudes: np.ndarray, threshold: float
) -> SplitPlan:
    """Piece 0: amplitude strictly below ``threshold``; piece 1: the rest (incl. NaN)."""
    amps = np.asarray(amplitudes, dtype=np.float64)
    below = np.isfinite(amps) & (amps < threshold)
    raw = np.where(below, 0, 1)
    return SplitPlan(
        cid,
        spikes,
        dense_labels(raw),
        "amplitude_threshold",
        {"threshold": float(threshold), "below": int(below.sum())},
    )


def by_templates(cid: int, spikes: np.ndarray, templates: np.ndarray) -> SplitPlan:
    """One piece per original (sorter) template, in ascending template order."""
    t = np.asarray(templates, dtype=np.int64)
    uniq = [int(x) for x in np.unique(t)]
    return SplitPlan(cid, spikes, dense_labels(t), "original_templates", {"templates": uniq})


def by_time(cid: int, spikes: np.ndarray, times_s: np.ndarray, t0: float, t1: float) -> SplitPlan:
    """Piece 0: spikes with ``t0 <= t < t1`` seconds; piece 1: the others."""
    t = np.asarray(times_s, dtype=np.float64)
    inside = (t >= t0) & (t < t1)
    raw = np.where(inside, 0, 1)
    return SplitPlan(
        cid,
        spikes,
        dense_labels(raw),
        "time_range",
        {"t0": float(t0), "t1": float(t1), "inside": int(inside.sum())},
    )


def kmeans(
    features: np.ndarray,
    k: int,
    seed: int = 0,
    *,
    n_iter: int = 50,
    max_fit: int = 50_000,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Seeded k-means (k-means++ init, Lloyd iterations) on standardised features.

    ``weights`` multiply the standardised columns (a column of weight 0.25 counts 1/16 as
    much in the squared distances), e.g. to keep time from dominating amplitude.

    Fits on at most ``max_fit`` spikes (a seeded subsample), then assigns every spike to the
    nearest centre. Pieces are numbered by decreasing size (ties: lower first centre).
    Deterministic for a given ``(features, k, seed)``.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    x = np.nan_to_num(x)
    n = x.shape[0]
    k = int(max(1, min(k, n)))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if weights is not None:
        x = x * np.asarray(weights, dtype=np.float64)[None, :]
    rng = np.random.default_rng(seed)
    fit = x if n <= max_fit else x[np.sort(rng.choice(n, max_fit, replace=False))]
    centres = np.empty((k, x.shape[1]))
    centres[0] = fit[rng.integers(fit.shape[0])]
    d2 = ((fit - centres[0]) ** 2).sum(axis=1)
    for j in range(1, k):
        total = d2.sum()
        idx = rng.integers(fit.shape[0]) if total <= 0 else rng.choice(fit.shape[0], p=d2 / total)
        centres[j] = fit[idx]
        d2 = np.minimum(d2, ((fit - centres[j]) ** 2).sum(axis=1))

    def assign(pts: np.ndarray) -> np.ndarray:
        dist = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(dist, axis=1)

    labels = assign(fit)
    for _ in range(n_iter):
        for j in range(k):
            members = fit[labels == j]
            if members.shape[0]:
                centres[j] = members.mean(axis=0)
        new = assign(fit)
        if np.array_equal(new, labels):
            break
        labels = new
    out = np.concatenate([assign(x[i : i + 100_000]) for i in range(0, n, 100_000)])
    sizes = np.bincount(out, minlength=k)
    order = np.lexsort((np.arange(k), -sizes))  # biggest piece first
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[out]


def by_kmeans(
    cid: int,
    spikes: np.ndarray,
    features: np.ndarray,
    k: int,
    seed: int,
    feature_name: str,
    weights: np.ndarray | None = None,
) -> SplitPlan:
    raw = kmeans(features, k, seed, weights=weights)
    return SplitPlan(
        cid,
        spikes,
        dense_labels(raw),
        "kmeans",
        {"k": int(k), "seed": int(seed), "features": feature_name},
    )


def amplitude_histogram(amplitudes: np.ndarray, n_bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of the finite amplitudes (``n_bins`` equal bins)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return np.zeros(n_bins, dtype=np.int64), np.linspace(0.0, 1.0, n_bins + 1)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(a, bins=n_bins, range=(lo, hi))
    return counts, edges
