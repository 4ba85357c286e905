"""Exact point-in-polygon tests (numba) for the lasso selection."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from curalog.analysis.features.dims import PolygonError


@numba.njit(cache=True, nogil=True)
def _pip_one(px, py, vx, vy):  # pragma: no cover - numba
    n = vx.shape[0]
    inside = False
    j = n - 1
    for i in range(n):
        ax = vx[j]
        ay = vy[j]
        bx = vx[i]
        by = vy[i]
        cross = (bx - ax) * (py - ay) - (px - ax) * (by - ay)
        if cross == 0.0 and min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by):
            return True  # on the boundary (edge or vertex): closed polygon
        # An edge straddling the horizontal line through p (half-open in y) crosses the ray
        # to the right of p iff p is strictly left of the edge taken upwards.
        if ((ay > py) != (by > py)) and ((by > ay and cross > 0.0) or (by < ay and cross < 0.0)):
            inside = not inside
        j = i
    return inside


@numba.njit(cache=True, nogil=True, parallel=True)
def _pip_many(x, y, vx, vy, xmin, xmax, ymin, ymax, out):  # pragma: no cover - numba
    for i in numba.prange(x.shape[0]):
        px = x[i]
        py = y[i]
        if not (xmin <= px <= xmax and ymin <= py <= ymax):  # also rejects NaN
            out[i] = False
        else:
            out[i] = _pip_one(px, py, vx, vy)


def _as_polygon(polygon: Any) -> np.ndarray:
    try:
        poly = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        raise PolygonError("polygon must be a sequence of (x, y) vertices") from None
    if poly.ndim != 2 or poly.shape[1] != 2:
        raise PolygonError(f"polygon must have shape (n, 2), got {poly.shape}")
    if poly.shape[0] < 3:
        raise PolygonError(f"polygon needs at least 3 vertices, got {poly.shape[0]}")
    if not np.all(np.isfinite(poly)):
        raise PolygonError("polygon vertices must be finite numbers")
    return np.ascontiguousarray(poly)


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: Any) -> np.ndarray:
    """Which points lie inside a polygon (even-odd rule, boundary included).

    Parameters
    ----------
    x, y : ndarray
        Point coordinates (any real dtype, compared in float64). NaN is never inside.
    polygon : array_like, shape (n, 2)
        Vertices in order, ``n >= 3``; closed implicitly. See the module docstring for the
        exact boundary semantics.

    Returns
    -------
    ndarray of bool
        One flag per point.

    Raises
    ------
    PolygonError
        For fewer than 3 vertices, non-finite vertices or a bad shape.
    """
    poly = _as_polygon(polygon)
    xs = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    ys = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError("x and y differ in length")
    out = np.zeros(xs.shape[0], dtype=np.bool_)
    if xs.shape[0]:
        vx = np.ascontiguousarray(poly[:, 0])
        vy = np.ascontiguousarray(poly[:, 1])
        _pip_many(xs, ys, vx, vy, vx.min(), vx.max(), vy.min(), vy.max(), out)
    return out
