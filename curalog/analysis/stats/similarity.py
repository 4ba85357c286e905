"""Cluster similarity with phy's rule, ranked lists and the element-wise-max merge update.

phy's rule (docs/PHY_SEMANTICS.md section 4.2, Template GUI): with ``T(c)`` the set of templates
that occur in cluster ``c`` (count > 0) and ``S`` the template similarity matrix,

    sim(c, d) = max_{i in T(c), j in T(d)} S[i, j].

Computed in two steps: the cluster's *template row* ``r_c[j] = max_{i in T(c)} S[i, j]``
(one float per template), then ``sim(c, d) = max_{j in T(d)} r_c[j]``. Because
``T(a u b) = T(a) u T(b)``, the row of a merged cluster is exactly the element-wise maximum
of its parents' rows (:func:`merge_rows`), so a merge never needs ``S`` again; and for any
other cluster ``d``, ``sim(d, a u b) = max(sim(d, a), sim(d, b))``.

Ranked list (:func:`rank_similar`): every live cluster except the reference, sorted by
decreasing similarity with a stable order (ties by ascending id), as phy does (phy also
lists the cluster itself and cuts at 100; curalog excludes it and takes ``limit``).

Source of ``S`` (:func:`template_similarity`): ``similar_templates.npy`` when present and not
all zeros; otherwise (absent, or all zeros as in the phy test folder and some SpikeInterface
exports) the cosine similarity of the templates as stored (whitened, as the sorter's own
similarity is), each flattened over (time, channel) in the full channel space, so sparse
templates are compared on the union of their channels (zeros elsewhere):
``S[i, j] = <w_i, w_j> / (|w_i| |w_j|)`` (0 for an all-zero template). Without templates
either, there is no similarity (None).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "template_similarity",
    "cosine_similarity_templates",
    "template_row",
    "merge_rows",
    "rank_similar",
]


def cosine_similarity_templates(
    templates: np.ndarray,
    template_channels: np.ndarray | None = None,
    n_channels: int | None = None,
    block: int = 256,
) -> np.ndarray:
    """Cosine similarity ``(n_templates, n_templates)`` float32 of flattened templates.

    ``templates`` is ``(n_templates, n_samples, n_local)``; with ``template_channels`` (sparse
    templates) each column is placed on its channel row (``-1`` columns dropped) first.
    """
    n_t, ns, nl = templates.shape
    if template_channels is None:
        flat = np.asarray(templates, dtype=np.float32).reshape(n_t, ns * nl)
    else:
        chans = np.asarray(template_channels, dtype=np.int64)
        nc = int(n_channels if n_channels is not None else (chans.max() + 1 if chans.size else 0))
        dense = np.zeros((n_t, ns, max(nc, 1)), dtype=np.float32)
        for t in range(n_t):
            ok = (chans[t] >= 0) & (chans[t] < nc)
            dense[t][:, chans[t][ok]] += np.asarray(templates[t], dtype=np.float32)[:, ok]
        flat = dense.reshape(n_t, -1)
    norms = np.sqrt(np.einsum("ij,ij->i", flat, flat, dtype=np.float64))
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
    unit = flat * scale[:, None]
    out = np.empty((n_t, n_t), dtype=np.float32)
    for start in range(0, n_t, block):
        out[start : start + block] = unit[start : start + block] @ unit.T
    return out


def template_similarity(dataset: Any) -> tuple[np.ndarray | None, str]:
    """``(S, source)``: ``S`` float32 ``(n_templates, n_templates)`` or None.

    ``source`` is ``"similar_templates"``, ``"templates-cosine"`` (the fallback) or ``"none"``.
    """
    s = getattr(dataset, "similar_templates", None)
    if s is not None and np.any(s != 0):
        return np.asarray(s, dtype=np.float32), "similar_templates"
    templates = getattr(dataset, "templates", None)
    if templates is None:
        return None, "none"
    n_ch = None
    positions = getattr(dataset, "channel_positions", None)
    if positions is not None:
        n_ch = int(np.asarray(positions).shape[0])
    sim = cosine_similarity_templates(templates, getattr(dataset, "template_channels", None), n_ch)
    n_t = int(dataset.n_templates)
    if sim.shape[0] != n_t:  # templates.npy shorter than the ids in use: pad with zeros
        full = np.zeros((n_t, n_t), dtype=np.float32)
        k = min(n_t, sim.shape[0])
        full[:k, :k] = sim[:k, :k]
        sim = full
    return sim, "templates-cosine"


def template_row(similarity: np.ndarray, template_ids: np.ndarray) -> np.ndarray:
    """``r[j] = max_{i in template_ids} S[i, j]`` (float32, one value per template)."""
    ids = np.asarray(template_ids, dtype=np.int64)
    if ids.shape[0] == 0:
        return np.full(similarity.shape[1], -np.inf, dtype=np.float32)
    return similarity[ids].max(axis=0)


def merge_rows(*rows: np.ndarray) -> np.ndarray:
    """Template row of a merged cluster: the element-wise maximum of its parents' rows."""
    out = rows[0].copy()
    for r in rows[1:]:
        np.maximum(out, r, out=out)
    return out


def rank_similar(
    row: np.ndarray,
    cluster_ids: np.ndarray,
    template_sets: list[np.ndarray],
    exclude: int | None = None,
    limit: int | None = None,
) -> list[tuple[int, float]]:
    """Clusters ranked by ``sim = max_{j in T(d)} row[j]``: descending, ties by ascending id.

    ``template_sets[k]`` is ``T(cluster_ids[k])`` (non-empty). ``exclude`` (the reference
    cluster) is left out.
    """
    ids = np.asarray(cluster_ids, dtype=np.int64)
    if ids.shape[0] == 0:
        return []
    lengths = np.fromiter(
        (s.shape[0] for s in template_sets), dtype=np.int64, count=len(template_sets)
    )
    concat = np.concatenate(template_sets).astype(np.int64, copy=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sims = np.maximum.reduceat(row[concat], offsets).astype(np.float64)
    keep = lengths > 0
    if exclude is not None:
        keep &= ids != exclude
    ids, sims = ids[keep], sims[keep]
    order = np.lexsort((ids, -sims))
    if limit is not None:
        order = order[:limit]
    return [(int(ids[k]), float(sims[k])) for k in order]
