"""Point-in-polygon (even-odd rule, closed boundary) against an exact brute-force reference."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curalog.analysis.features import PolygonError, points_in_polygon


# ---------------------------------------------------------------------- exact reference
def _on_segment(p, a, b) -> bool:
    (px, py), (ax, ay), (bx, by) = p, a, b
    cross = (bx - ax) * (py - ay) - (px - ax) * (by - ay)
    return cross == 0 and min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by)


def reference_inside(px: float, py: float, poly: list[tuple[float, float]]) -> bool:
    """Exact rational arithmetic: boundary -> inside; else count crossings of the ray to +x
    with edges whose y-span is half-open (the intersection abscissa computed exactly)."""
    if not (np.isfinite(px) and np.isfinite(py)):
        return False
    p = (Fraction(px), Fraction(py))
    vs = [(Fraction(x), Fraction(y)) for x, y in poly]
    n = len(vs)
    for i in range(n):
        if _on_segment(p, vs[i - 1], vs[i]):
            return True
    inside = False
    for i in range(n):
        (ax, ay), (bx, by) = vs[i - 1], vs[i]
        if (ay > p[1]) != (by > p[1]):
            x_cross = ax + (p[1] - ay) * (bx - ax) / (by - ay)
            if p[0] < x_cross:
                inside = not inside
    return inside


# ---------------------------------------------------------------------- strategies
small = st.integers(min_value=-6, max_value=6)
vertex = st.tuples(small, small)
polygons = st.lists(vertex, min_size=3, max_size=8)


@st.composite
def polygon_and_points(draw):
    poly = draw(polygons)
    pts = []
    # grid points (integers and half-integers) hit vertices, edges and their midpoints often
    grid = st.integers(min_value=-14, max_value=14).map(lambda k: k / 2)
    pts += draw(st.lists(st.tuples(grid, grid), min_size=1, max_size=40))
    pts += [(float(x), float(y)) for x, y in poly]  # every vertex
    for (ax, ay), (bx, by) in zip(poly, poly[1:] + poly[:1], strict=True):
        pts.append(((ax + bx) / 2, (ay + by) / 2))  # every edge midpoint (exact halves)
        t = draw(st.integers(0, 4))
        pts.append((ax + (bx - ax) * t / 4, ay + (by - ay) * t / 4))  # quarter points
    return [(float(x), float(y)) for x, y in poly], pts


@settings(max_examples=400, deadline=None)
@given(polygon_and_points())
def test_matches_exact_reference_with_edges_and_vertices(case):
    poly, pts = case
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    got = points_in_polygon(x, y, poly)
    want = np.array([reference_inside(px, py, poly) for px, py in pts])
    assert np.array_equal(got, want), [
        (p, g, w) for p, g, w in zip(pts, got, want, strict=True) if g != w
    ]


@settings(max_examples=200, deadline=None)
@given(polygon_and_points(), st.integers(0, 7), st.booleans())
def test_invariant_under_rotation_and_reversal(case, shift, reverse):
    poly, pts = case
    other = poly[shift % len(poly) :] + poly[: shift % len(poly)]
    if reverse:
        other = other[::-1]
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    assert np.array_equal(points_in_polygon(x, y, poly), points_in_polygon(x, y, other))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=3, max_size=7),
    st.lists(
        st.tuples(st.floats(-1.2e3, 1.2e3), st.floats(-1.2e3, 1.2e3)), min_size=1, max_size=30
    ),
)
def test_random_floats_away_from_edges(poly, pts):
    # Far from every edge line float64 rounding cannot flip a decision: exact agreement.
    vs = [(Fraction(a), Fraction(b)) for a, b in poly]
    kept = []
    for px, py in pts:
        p = (Fraction(px), Fraction(py))
        ok = True
        for i in range(len(vs)):
            (ax, ay), (bx, by) = vs[i - 1], vs[i]
            cross = (bx - ax) * (p[1] - ay) - (p[0] - ax) * (by - ay)
            if abs(cross) < Fraction(1, 10**6):
                ok = False
        if ok:
            kept.append((px, py))
    assume(kept)
    x = np.array([p[0] for p in kept])
    y = np.array([p[1] for p in kept])
    got = points_in_polygon(x, y, poly)
    want = np.array([reference_inside(px, py, poly) for px, py in kept])
    assert np.array_equal(got, want)


# ---------------------------------------------------------------------- documented cases
SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]


def test_square_boundary_is_inside():
    pts = [(0, 0), (4, 4), (2, 0), (4, 2), (2, 4), (0, 2), (2, 2)]
    out = [(-1e-9, 2), (4 + 1e-9, 2), (2, -1e-9), (2, 4.000001), (5, 5), (-1, -1)]
    x = np.array([p[0] for p in pts + out], dtype=float)
    y = np.array([p[1] for p in pts + out], dtype=float)
    got = points_in_polygon(x, y, SQUARE)
    assert got.tolist() == [True] * len(pts) + [False] * len(out)


def test_even_odd_self_intersection():
    # a pentagram: the central pentagon is covered twice, hence outside (even-odd)
    ang = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = np.c_[np.cos(ang), np.sin(ang)]
    got = points_in_polygon(np.array([0.0, 0.0]), np.array([0.0, 0.8]), star)
    assert got.tolist() == [False, True]


def test_bowtie_and_degenerate_polygons():
    bowtie = [(0, 0), (2, 2), (2, 0), (0, 2)]
    got = points_in_polygon(np.array([1.0, 0.2, 1.8, 1.0]), np.array([1.0, 1.0, 1.0, 0.2]), bowtie)
    assert got.tolist() == [True, True, True, False]  # crossing point is on the boundary
    line = [(0, 0), (2, 2), (4, 4)]  # zero area: only its boundary points
    got = points_in_polygon(np.array([1.0, 3.0, 1.0]), np.array([1.0, 3.0, 1.5]), line)
    assert got.tolist() == [True, True, False]
    repeated = [(0, 0), (0, 0), (4, 0), (4, 4), (4, 4), (0, 4)]
    assert points_in_polygon(np.array([2.0]), np.array([2.0]), repeated).tolist() == [True]


def test_nan_points_are_never_inside():
    got = points_in_polygon(np.array([np.nan, 2.0, np.inf]), np.array([2.0, np.nan, 2.0]), SQUARE)
    assert not got.any()


def test_dtypes_and_empty_input():
    assert points_in_polygon(np.zeros(0), np.zeros(0), SQUARE).shape == (0,)
    got = points_in_polygon(
        np.array([1, 5], dtype=np.int32), np.array([1, 1], dtype=np.float32), SQUARE
    )
    assert got.tolist() == [True, False]


@pytest.mark.parametrize(
    "bad", [[(0, 0), (1, 1)], [(0, 0), (1, np.nan), (2, 0)], [[0, 1, 2]], "abc"]
)
def test_bad_polygons_are_refused(bad):
    with pytest.raises(PolygonError):
        points_in_polygon(np.zeros(1), np.zeros(1), bad)


def test_large_input_is_parallel_safe():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 5, 300_000)
    y = rng.uniform(-1, 5, 300_000)
    got = points_in_polygon(x, y, SQUARE)
    want = (x >= 0) & (x <= 4) & (y >= 0) & (y <= 4)
    assert np.array_equal(got, want)
