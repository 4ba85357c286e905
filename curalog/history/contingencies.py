"""Two labelings of the same spikes: their contingency table (dense, LUT or sparse), the
adjusted Rand index from it, the groups of clusters linked by shared spikes, and a fast
membership mask."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import numba
import numpy as np

# ====================================================================== contingency
#: Largest ``n_a * n_b`` for which the contingency table is counted densely.
DENSE_LIMIT = 1 << 23
#: Largest cluster id for which ids are mapped through a lookup table.
LUT_LIMIT = 1 << 24


@numba.njit(cache=True, nogil=True)
def _count_ids(x: np.ndarray, size: int) -> np.ndarray:
    counts = np.zeros(size, dtype=np.int64)
    for i in range(x.shape[0]):
        counts[x[i]] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _dense_table(
    a: np.ndarray, b: np.ndarray, lut_a: np.ndarray, lut_b: np.ndarray, kb: int, table: np.ndarray
) -> None:
    for i in range(a.shape[0]):
        table[lut_a[a[i]] * kb + lut_b[b[i]]] += 1


@numba.njit(cache=True, nogil=True)
def _sparse_table(
    a: np.ndarray, b: np.ndarray, lut_a: np.ndarray, lut_b: np.ndarray, ka: int, kb: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = a.shape[0]
    starts = np.zeros(ka + 1, dtype=np.int64)
    for i in range(n):
        starts[lut_a[a[i]] + 1] += 1
    for k in range(ka):
        starts[k + 1] += starts[k]
    pos = starts[:-1].copy()
    grouped = np.empty(n, dtype=np.int32)
    for i in range(n):
        r = lut_a[a[i]]
        grouped[pos[r]] = lut_b[b[i]]
        pos[r] += 1
    marker = np.full(kb, -1, dtype=np.int64)
    nnz = 0
    for r in range(ka):
        for j in range(starts[r], starts[r + 1]):
            c = grouped[j]
            if marker[c] != r:
                marker[c] = r
                nnz += 1
    rows = np.empty(nnz, dtype=np.int64)
    cols = np.empty(nnz, dtype=np.int64)
    counts = np.zeros(nnz, dtype=np.int64)
    slot = np.empty(kb, dtype=np.int64)
    marker[:] = -1
    k = 0
    for r in range(ka):
        for j in range(starts[r], starts[r + 1]):
            c = grouped[j]
            if marker[c] != r:
                marker[c] = r
                slot[c] = k
                rows[k] = r
                cols[k] = c
                k += 1
            counts[slot[c]] += 1
    return rows, cols, counts


def _as_ids(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what}: cluster ids must be integers, got {arr.dtype}")
    if arr.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        arr = arr.astype(np.int64)
    arr = np.ascontiguousarray(arr)
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"{what}: negative cluster id {int(arr.min())}")
    return arr


def _factorize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(values, lut, ids, sizes)``: ``lut[values[i]]`` is the dense code of spike i."""
    if x.size == 0:
        return x, np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    mx = int(x.max())
    if mx < LUT_LIMIT:
        counts = _count_ids(x, mx + 1)
        ids = np.flatnonzero(counts)
        lut = np.full(mx + 1, -1, dtype=np.int64)
        lut[ids] = np.arange(ids.shape[0])
        return x, lut, ids.astype(np.int64), counts[ids]
    ids, inverse, sizes = np.unique(x, return_inverse=True, return_counts=True)
    return (
        inverse.astype(np.int64),
        np.arange(ids.shape[0], dtype=np.int64),
        ids.astype(np.int64),
        sizes,
    )


@dataclass
class Contingency:
    """Sparse contingency table of two labelings of the same spikes.

    ``counts[k]`` spikes are in cluster ``ids_a[rows[k]]`` of A and ``ids_b[cols[k]]`` of B.
    Entries are sorted by row, then column.
    """

    n: int
    ids_a: np.ndarray
    ids_b: np.ndarray
    sizes_a: np.ndarray
    sizes_b: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray


def contingency(a: np.ndarray, b: np.ndarray) -> Contingency:
    """The exact contingency table of two cluster assignments of the same spikes.

    Counting is one pass in numba: into a dense ``n_a x n_b`` table when it is small
    (1,000 x 1,000 clusters), else through a counting sort by A's cluster.
    """
    a = _as_ids(a, "A")
    b = _as_ids(b, "B")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"the two assignments have {a.shape[0]} and {b.shape[0]} spikes")
    va, lut_a, ids_a, sizes_a = _factorize(a)
    vb, lut_b, ids_b, sizes_b = _factorize(b)
    ka, kb = ids_a.shape[0], ids_b.shape[0]
    if ka * kb <= DENSE_LIMIT:
        table = np.zeros(ka * kb, dtype=np.int64)
        if a.shape[0]:
            _dense_table(va, vb, lut_a, lut_b, kb, table)
        flat = np.flatnonzero(table)
        rows, cols = np.divmod(flat, kb) if kb else (flat, flat)
        counts = table[flat]
    else:
        rows, cols, counts = _sparse_table(va, vb, lut_a, lut_b, ka, kb)
        order = np.lexsort((cols, rows))
        rows, cols, counts = rows[order], cols[order], counts[order]
    return Contingency(
        int(a.shape[0]),
        ids_a,
        ids_b,
        sizes_a,
        sizes_b,
        rows.astype(np.int64),
        cols.astype(np.int64),
        counts.astype(np.int64),
    )


def _pairs(x: np.ndarray) -> int:
    x = np.asarray(x, dtype=np.int64)
    return int((x * (x - 1) // 2).sum())


def adjusted_rand_index_from_table(table: Contingency) -> float:
    """Hubert and Arabie's adjusted Rand index from a contingency table.

    ``ARI = (index - expected) / (max - expected)`` with ``index = sum C(n_ij, 2)``,
    ``expected = sum C(a_i, 2) * sum C(b_j, 2) / C(n, 2)`` and
    ``max = (sum C(a_i, 2) + sum C(b_j, 2)) / 2``, computed in exact integers. Identical
    partitions give 1 (also in the degenerate cases where the formula is 0/0).
    """
    n = table.n
    total = n * (n - 1) // 2
    if total == 0:
        return 1.0
    index = _pairs(table.counts)
    sa = _pairs(table.sizes_a)
    sb = _pairs(table.sizes_b)
    num = 2 * (index * total - sa * sb)
    den = (sa + sb) * total - 2 * sa * sb
    if den == 0:
        return 1.0
    return num / den


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two cluster assignments of the same spikes."""
    return adjusted_rand_index_from_table(contingency(a, b))


def member_mask(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.isin(x, ids)`` for non-negative ids, through a lookup table when they are small."""
    top = int(x.max()) if x.size else 0
    if top < LUT_LIMIT:
        lut = np.zeros(top + 1, dtype=bool)
        lut[ids[ids <= top]] = True
        return lut[x]
    return np.isin(x, ids)


A = TypeVar("A", bound=Hashable)
B = TypeVar("B", bound=Hashable)


def linked_groups(pairs: Iterable[tuple[A, B]]) -> list[tuple[list[A], list[B]]]:
    """The connected components of the bipartite graph whose edges are ``pairs``.

    ``pairs`` are (cluster of labeling A, cluster of labeling B) sharing spikes, e.g. the
    non-zero cells of a :func:`contingency` table. Each component comes as (its A ids, its B
    ids), every id once, in order of first appearance; components in the order of their first
    pair. Union-find with path halving.
    """
    pairs = list(pairs)
    parent: dict[tuple[int, Hashable], tuple[int, Hashable]] = {}

    def find(x: tuple[int, Hashable]) -> tuple[int, Hashable]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find((0, a)), find((1, b))
        if ra != rb:
            parent[rb] = ra
    groups: dict[tuple[int, Hashable], tuple[list[A], list[B], set[A], set[B]]] = {}
    for a, b in pairs:
        ids_a, ids_b, seen_a, seen_b = groups.setdefault(find((0, a)), ([], [], set(), set()))
        if a not in seen_a:
            seen_a.add(a)
            ids_a.append(a)
        if b not in seen_b:
            seen_b.add(b)
            ids_b.append(b)
    return [(ids_a, ids_b) for ids_a, ids_b, _, _ in groups.values()]
