"""The outcome diff of two curations: clusters identical, merged, split or reshuffled relative
to a common reference, and label disagreements on identical clusters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curalog.dataset import GROUP_FIELD
from curalog.history.contingencies import (
    _as_ids,
    _factorize,
    adjusted_rand_index_from_table,
    contingency,
    linked_groups,
    member_mask,
)


# ====================================================================== outcome diff
@dataclass
class Difference:
    """A connected group of clusters on which A and B disagree.

    Attributes
    ----------
    kind : str
        ``"merge"`` (one side merged clusters the other keeps apart), ``"split"`` (one side
        split a cluster the other keeps whole) or ``"other"``.
    by : str or None
        ``"a"`` or ``"b"``: the side that merged or split; None for ``"other"``.
    a_clusters, b_clusters : list of int
    n_spikes : int
    """

    kind: str
    by: str | None
    a_clusters: list[int]
    b_clusters: list[int]
    n_spikes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "by": self.by,
            "a_clusters": self.a_clusters,
            "b_clusters": self.b_clusters,
            "n_spikes": self.n_spikes,
        }


@dataclass
class LabelDisagreement:
    """A label field whose value differs on a cluster identical in A and B."""

    a_cluster: int
    b_cluster: int
    field: str
    a_value: Any
    b_value: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "a_cluster": self.a_cluster,
            "b_cluster": self.b_cluster,
            "field": self.field,
            "a": self.a_value,
            "b": self.b_value,
        }


@dataclass
class OutcomeDiff:
    """The comparison of two replayed states of the same spikes."""

    n_spikes: int
    n_clusters_a: int
    n_clusters_b: int
    identical: list[tuple[int, int, int]]  # (a id, b id, n spikes)
    differences: list[Difference]
    label_disagreements: list[LabelDisagreement]
    agreement: float
    adjusted_rand_index: float

    @property
    def merges(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "merge"]

    @property
    def splits(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "split"]

    @property
    def other(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "other"]

    @property
    def n_identical_spikes(self) -> int:
        return int(sum(n for _, _, n in self.identical))

    @property
    def is_equal(self) -> bool:
        """Same clusters with the same ids and the same labels."""
        return (
            not self.differences
            and not self.label_disagreements
            and all(x == y for x, y, _ in self.identical)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_spikes": self.n_spikes,
            "n_clusters": {"a": self.n_clusters_a, "b": self.n_clusters_b},
            "agreement": self.agreement,
            "adjusted_rand_index": self.adjusted_rand_index,
            "identical": {
                "count": len(self.identical),
                "n_spikes": self.n_identical_spikes,
                "renamed": [[x, y] for x, y, _ in self.identical if x != y],
            },
            "merges": [d.to_dict() for d in self.merges],
            "splits": [d.to_dict() for d in self.splits],
            "other": [d.to_dict() for d in self.other],
            "label_disagreements": [d.to_dict() for d in self.label_disagreements],
        }


def _base_shape(
    side: np.ndarray, base: np.ndarray, base_ids: np.ndarray, base_sizes: np.ndarray
) -> dict[int, tuple[bool, int]]:
    """For each cluster of ``side`` (restricted to some spikes): whether it is a union of
    whole base clusters, and how many base clusters it intersects."""
    t = contingency(side, base)
    full = t.counts == base_sizes[np.searchsorted(base_ids, t.ids_b[t.cols])]
    out: dict[int, tuple[bool, int]] = {}
    bounds = np.flatnonzero(np.diff(t.rows)) + 1
    for chunk_rows, chunk_full in zip(
        np.split(t.rows, bounds), np.split(full, bounds), strict=True
    ):
        if chunk_rows.size:
            out[int(t.ids_a[chunk_rows[0]])] = (bool(chunk_full.all()), int(chunk_rows.size))
    return out


def _label_disagreements(
    pairs: list[tuple[int, int, int]],
    labels_a: dict[str, dict[int, Any]],
    labels_b: dict[str, dict[int, Any]],
) -> list[LabelDisagreement]:
    out: list[LabelDisagreement] = []
    fields = list(dict.fromkeys([*labels_a, *labels_b]))
    empty: dict[int, Any] = {}
    for name in fields:
        va, vb = labels_a.get(name, empty), labels_b.get(name, empty)
        if not va and not vb:
            continue
        for x, y, _ in pairs:
            p, q = va.get(x), vb.get(y)
            if p != q:
                out.append(LabelDisagreement(x, y, name, p, q))
    out.sort(key=lambda d: (d.a_cluster, d.b_cluster, d.field != GROUP_FIELD, d.field))
    return out


def outcome_diff(
    a: np.ndarray,
    b: np.ndarray,
    base: np.ndarray | None = None,
    labels_a: dict[str, dict[int, Any]] | None = None,
    labels_b: dict[str, dict[int, Any]] | None = None,
) -> OutcomeDiff:
    """Compare two cluster assignments of the same spikes.

    Parameters
    ----------
    a, b : ndarray of int, shape (n_spikes,)
        The two ``spike_clusters``.
    base : ndarray of int, optional
        Their common ancestor (the state at the common prefix). It tells a merge by one
        side from a split by the other: a one-to-many difference is a *merge* by the coarse
        side when the fine side's clusters are unions of whole base clusters, a *split* by
        the fine side when the coarse cluster lies within one base cluster, else *other*.
        Without a base, every one-to-many difference counts as a merge by the coarse side.
    labels_a, labels_b : dict, optional
        ``{field: {cluster: value}}``; compared on clusters identical in both.

    Returns
    -------
    OutcomeDiff
    """
    table = contingency(a, b)
    ra, cb = table.rows, table.cols
    sa = table.sizes_a[ra]
    sb = table.sizes_b[cb]
    same = (table.counts == sa) & (table.counts == sb)
    identical = [
        (int(table.ids_a[r]), int(table.ids_b[c]), int(n))
        for r, c, n in zip(
            ra[same].tolist(), cb[same].tolist(), table.counts[same].tolist(), strict=True
        )
    ]
    rest = ~same
    comps = linked_groups(zip(ra[rest].tolist(), cb[rest].tolist(), strict=True))
    shape_a: dict[int, tuple[bool, int]] = {}
    shape_b: dict[int, tuple[bool, int]] = {}
    if comps and base is not None:
        base_arr = _as_ids(base, "base")
        if base_arr.shape[0] != table.n:
            raise ValueError(f"base has {base_arr.shape[0]} spikes, expected {table.n}")
        a_arr, b_arr = _as_ids(a, "A"), _as_ids(b, "B")
        involved_ids = np.unique(np.concatenate([table.ids_a[r] for r, _ in comps]))
        sel = np.flatnonzero(member_mask(a_arr, involved_ids))
        _, _, base_ids, base_sizes = _factorize(base_arr)
        sub_base = base_arr[sel]
        shape_a = _base_shape(a_arr[sel], sub_base, base_ids, base_sizes)
        shape_b = _base_shape(b_arr[sel], sub_base, base_ids, base_sizes)
    differences: list[Difference] = []
    for rows_idx, cols_idx in comps:
        ids_a = sorted(int(table.ids_a[r]) for r in rows_idx)
        ids_b = sorted(int(table.ids_b[c]) for c in cols_idx)
        n = int(table.sizes_a[rows_idx].sum())
        kind, by = "other", None
        if len(ids_a) == 1 or len(ids_b) == 1:
            coarse, fine = ("a", "b") if len(ids_a) == 1 else ("b", "a")
            fine_ids = ids_b if fine == "b" else ids_a
            coarse_id = (ids_a if coarse == "a" else ids_b)[0]
            fine_shape = shape_b if fine == "b" else shape_a
            coarse_shape = shape_a if coarse == "a" else shape_b
            if base is None or all(fine_shape[c][0] for c in fine_ids):
                kind, by = "merge", coarse
            elif coarse_shape[coarse_id][1] == 1:
                kind, by = "split", fine
        differences.append(Difference(kind, by, ids_a, ids_b, n))
    order = {"merge": 0, "split": 1, "other": 2}
    differences.sort(key=lambda d: (order[d.kind], min(d.a_clusters + d.b_clusters)))
    disagreements = _label_disagreements(identical, labels_a or {}, labels_b or {})
    n_ident = sum(n for _, _, n in identical)
    return OutcomeDiff(
        n_spikes=table.n,
        n_clusters_a=int(table.ids_a.shape[0]),
        n_clusters_b=int(table.ids_b.shape[0]),
        identical=identical,
        differences=differences,
        label_disagreements=disagreements,
        agreement=(n_ident / table.n) if table.n else 1.0,
        adjusted_rand_index=adjusted_rand_index_from_table(table),
    )
