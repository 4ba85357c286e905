"""Spike selection by polygon in a view, the preview of the split it would make, and the
provenance recorded with that split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curalog.analysis.features.dims import MissingFeaturesError, MissingPolicy
from curalog.analysis.features.polygon import _as_polygon, points_in_polygon
from curalog.analysis.features.views import ViewData, ViewSpec, coordinates


# ---------------------------------------------------------------------- selection
def spikes_in_polygon(
    view_spec: ViewSpec, polygon: Any, *, missing: MissingPolicy = "refuse"
) -> np.ndarray:
    """Exact ids of all the selected clusters' spikes inside a polygon drawn on the view.

    Every spike of ``view_spec.spikes`` is tested, never only the displayed ones: the
    coordinates are recomputed from the files for all of them.

    Parameters
    ----------
    view_spec : ViewSpec
    polygon : array_like, shape (n, 2)
        Vertices in **data coordinates** of the view's axes (see :func:`points_in_polygon`
        for the even-odd rule and the closed-boundary semantics).
    missing : {"refuse", "outside"}
        Spikes without coordinates (no row in a subset ``pc_features`` /
        ``template_features``, or a non-finite amplitude) cannot be placed. ``"refuse"``
        (default) raises :class:`MissingFeaturesError` when the clusters have any;
        ``"outside"`` leaves them out of the selection, i.e. in the remainder of the split.

    Returns
    -------
    ndarray of int64
        Sorted spike ids inside the polygon (possibly empty).

    Raises
    ------
    PolygonError
        Bad polygon.
    MissingFeaturesError
        ``missing="refuse"`` and some spikes have no coordinates.
    """
    poly = _as_polygon(polygon)
    if missing not in ("refuse", "outside"):
        raise ValueError("missing must be 'refuse' or 'outside'")
    parts = []
    bad: dict[int, int] = {}
    for cid, spikes in zip(view_spec.cluster_ids, view_spec.spikes, strict=True):
        x, y = coordinates(view_spec, spikes)
        n_bad = int(x.shape[0] - np.count_nonzero(np.isfinite(x) & np.isfinite(y)))
        if n_bad:
            bad[cid] = n_bad
        parts.append(np.asarray(spikes)[points_in_polygon(x, y, poly)].astype(np.int64))
    if bad and missing == "refuse":
        total = view_spec.n_spikes
        desc = ", ".join(f"cluster {c}: {n:,}" for c, n in bad.items())
        raise MissingFeaturesError(
            f"split refused: {sum(bad.values()):,} of {total:,} spikes have no coordinates on "
            f"these axes ({desc}; the feature file covers a subset of spikes); "
            "use missing='outside' to keep them in the remainder",
            bad,
        )
    if not parts:
        return np.zeros(0, np.int64)
    out = np.concatenate(parts)
    if len(parts) > 1 or (out.shape[0] > 1 and not np.all(out[1:] > out[:-1])):
        out.sort()
    return out


@dataclass
class SplitPreview:
    """Masks of the displayed points inside a polygon, for previewing a split.

    Attributes
    ----------
    inside : list of ndarray of bool
        One mask per layer of the :class:`ViewData` (all spikes with coordinates).
    n_inside, n_outside : dict of int to int
        Per cluster, spikes with coordinates inside / outside.
    n_without : dict of int to int
        Per cluster, spikes without coordinates (refused or kept in the remainder).
    """

    inside: list[np.ndarray]
    n_inside: dict[int, int]
    n_outside: dict[int, int]
    n_without: dict[int, int]


def split_preview(data: ViewData, polygon: Any) -> SplitPreview:
    """Which plotted points a polygon takes (exact for all spikes with coordinates; the
    view layers hold every such spike)."""
    poly = _as_polygon(polygon)
    masks, n_in, n_out = [], {}, {}
    for layer in data.layers:
        m = points_in_polygon(layer.x, layer.y, poly)
        masks.append(m)
        k = int(np.count_nonzero(m))
        n_in[int(layer.cluster_id)] = k  # type: ignore[arg-type]
        n_out[int(layer.cluster_id)] = len(layer) - k  # type: ignore[arg-type]
    return SplitPreview(masks, n_in, n_out, dict(data.n_without))


def split_provenance(
    view_spec: ViewSpec, polygon: Any, *, missing: MissingPolicy = "refuse"
) -> dict[str, Any]:
    """The ``meta`` to store with the split event: view, axes, polygon and policy."""
    poly = _as_polygon(polygon)
    d = view_spec.to_dict()
    d["polygon"] = [[float(a), float(b)] for a, b in poly]
    d["rule"] = "even-odd, boundary inside"
    d["missing"] = missing
    return {"polygon_split": d}
