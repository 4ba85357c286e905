"""tui/braille.py: binning, cell composition, overlay, axes and histogram against brute force."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog_tui.braille import (
    BACKGROUND_COLOR,
    BRAILLE_BASE,
    CLUSTER_COLORS,
    DOT_BITS,
    GROUP_COLORS,
    BinCache,
    Frame,
    PolygonOverlay,
    ScatterLayer,
    bin_points,
    cell_chars,
    group_layers,
    render_scatter,
    shade,
    side_histogram,
)


# ---------------------------------------------------------------------- references
def ref_bin(x, y, frame: Frame) -> np.ndarray:
    """Point by point, in Python floats (float64), the documented rule."""
    out = np.zeros((frame.ny, frame.nx), dtype=np.int64)
    x0, _ = frame.x_range
    y0, _ = frame.y_range
    for xi, yi in zip(
        np.asarray(x, dtype=np.float64).tolist(),
        np.asarray(y, dtype=np.float64).tolist(),
        strict=True,
    ):
        u = (xi - x0) * frame.sx
        v = (yi - y0) * frame.sy
        if not (0.0 <= u <= frame.nx and 0.0 <= v <= frame.ny):
            continue
        col = min(math.floor(u), frame.nx - 1)
        row = frame.ny - 1 - min(math.floor(v), frame.ny - 1)
        out[row, col] += 1
    return out


def ref_cells(counts: np.ndarray):
    h, w = counts.shape[0] // 4, counts.shape[1] // 2
    bits = np.zeros((h, w), np.int64)
    tot = np.zeros((h, w), np.int64)
    for r in range(h):
        for c in range(w):
            for dr in range(4):
                for dc in range(2):
                    v = counts[4 * r + dr, 2 * c + dc]
                    if v:
                        bits[r, c] |= int(DOT_BITS[dr, dc])
                        tot[r, c] += v
    return bits, tot


def ref_plot_cells(layers, frame: Frame):
    """Expected (char, colour-or-None, level) per cell by the documented ownership rule."""
    h, w = frame.height, frame.width
    per = []
    for ly in layers:
        bits, tot = ref_cells(ref_bin(ly.x, ly.y, frame))
        per.append((ly, bits, tot))
    out = [[(" ", None) for _ in range(w)] for _ in range(h)]
    for r in range(h):
        for c in range(w):
            fg = [
                (tot[r, c], -i, ly, bits)
                for i, (ly, bits, tot) in enumerate(per)
                if not ly.background and tot[r, c] > 0
            ]
            bg = [
                (tot[r, c], -i, ly, bits)
                for i, (ly, bits, tot) in enumerate(per)
                if ly.background and tot[r, c] > 0
            ]
            pool = fg or bg
            if not pool:
                continue
            best = max(pool, key=lambda t: (t[0], t[1]))
            out[r][c] = (chr(BRAILLE_BASE + int(best[3][r, c])), best[2].color)
    return out


def style_at(line, col: int) -> str | None:
    for span in reversed(line.spans):
        if span.start <= col < span.end:
            return str(span.style)
    return None


# ---------------------------------------------------------------------- binning
coords = st.one_of(
    st.floats(-3, 3),
    st.sampled_from([-2.0, 2.0, -1.0, 1.0, 0.0, float("nan"), float("inf"), -2.0000001, 2.0000001]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(coords, coords), max_size=200),
    st.integers(1, 9),
    st.integers(1, 7),
    st.sampled_from([(-2.0, 2.0), (-1.0, 1.5), (0.1, 0.3), (1.0, 1.0)]),
)
def test_bin_points_matches_reference(pts, w, h, rng):
    frame = Frame(w, h, rng, (-2.0, 2.0))
    x = np.array([p[0] for p in pts], dtype=np.float64)
    y = np.array([p[1] for p in pts], dtype=np.float64)
    np.testing.assert_array_equal(bin_points(x, y, frame), ref_bin(x, y, frame))
    np.testing.assert_array_equal(
        bin_points(x.astype(np.float32), y.astype(np.float32), frame),
        ref_bin(x.astype(np.float32), y.astype(np.float32), frame),
    )


def test_bin_points_edges_and_types():
    f = Frame(2, 1, (0.0, 4.0), (0.0, 4.0))  # 4 x 4 dots, 1 unit each
    x = np.array([0, 4, 1, 3.999, 4.0001, -0.0001, 2], dtype=np.float64)
    y = np.array([0, 4, 1, 0, 0, 0, np.nan])
    c = bin_points(x, y, f)
    assert c[3, 0] == 1 and c[0, 3] == 1 and c[2, 1] == 1 and c[3, 3] == 1 and c.sum() == 4
    ints = bin_points(np.array([0, 1, 2, 3], np.int64), np.array([0, 1, 2, 3], np.uint32), f)
    assert ints.sum() == 4 and np.all(np.diag(ints[::-1]) == 1)


def test_bin_points_parallel_path_matches_serial():
    rng = np.random.default_rng(1)
    x = rng.normal(size=9_000_000).astype(np.float32)
    y = rng.normal(size=9_000_000).astype(np.float32)
    f = Frame(40, 12, (-3, 3), (-3, 3))
    got = bin_points(x, y, f)
    step = 1_000_000
    want = sum(bin_points(x[i : i + step], y[i : i + step], f) for i in range(0, x.shape[0], step))
    np.testing.assert_array_equal(got, want)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_cell_chars_matches_reference(w, h, seed):
    counts = np.random.default_rng(seed).integers(0, 3, size=(4 * h, 2 * w))
    bits, tot = cell_chars(counts)
    rb, rt = ref_cells(counts)
    np.testing.assert_array_equal(bits, rb)
    np.testing.assert_array_equal(tot, rt)


# ---------------------------------------------------------------------- composition
layer_pts = st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), max_size=60)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.tuples(layer_pts, st.booleans()), min_size=1, max_size=4),
    st.integers(12, 30),
    st.integers(5, 12),
)
def test_render_matches_reference_composition(spec, width, height):
    layers = []
    for i, (pts, bg) in enumerate(spec):
        x = np.array([p[0] for p in pts], dtype=np.float64)
        y = np.array([p[1] for p in pts], dtype=np.float64)
        layers.append(
            ScatterLayer(x, y, BACKGROUND_COLOR if bg else CLUSTER_COLORS[i], background=bg)
        )
    plot = render_scatter(layers, width, height, x_range=(-1, 1), y_range=(-1, 1))
    f = plot.frame
    assert len(plot.lines) == height and all(len(t.plain) == width for t in plot.lines)
    want = ref_plot_cells(layers, f)
    for r in range(f.height):
        line = plot.lines[f.top + r]
        for c in range(f.width):
            ch, color = want[r][c]
            assert line.plain[f.left + c] == ch, (r, c)
            st_ = style_at(line, f.left + c)
            if color is None:
                assert st_ is None
            else:
                assert st_ in {shade(color, lv, 4) for lv in range(1, 5)}


def test_density_shading_is_monotone():
    x = np.concatenate([np.full(1000, 0.5), np.full(10, -0.5), [0.0]])
    y = np.concatenate([np.full(1000, 0.5), np.full(10, -0.5), [0.0]])
    plot = render_scatter([ScatterLayer(x, y, "#ff0000")], 30, 10, x_range=(-1, 1), y_range=(-1, 1))
    f = plot.frame

    def level(px, py):
        col, row = f.cell_at(px, py)
        st_ = style_at(plot.lines[row], col)
        return [shade("#ff0000", lv, 4) for lv in range(1, 5)].index(st_) + 1

    assert level(0.5, 0.5) == 4 and level(0.0, 0.0) == 1 and 1 < level(-0.5, -0.5) < 4


def test_one_million_points_all_counted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1_000_000)
    y = rng.normal(size=1_000_000)
    plot = render_scatter([ScatterLayer(x, y, CLUSTER_COLORS[0])], 100, 30)
    f = plot.frame
    assert bin_points(x, y, f).sum() == 1_000_000  # auto range: every point inside


def test_frame_cell_mapping_round_trip():
    plot = render_scatter(
        [ScatterLayer(np.array([0.0, 10.0]), np.array([-5.0, 5.0]), "#ffffff")], 40, 15
    )
    f = plot.frame
    for row in range(f.top, f.top + f.height):
        for col in range(f.left, f.left + f.width):
            assert f.cell_at(*f.cell_center(col, row)) == (col, row)
    assert f.cell_at(f.x_range[1] + 1, 0.0) is None


def test_axes_labels_and_header():
    x = np.array([-3.0, 7.0])
    y = np.array([10.0, 250.0])
    plot = render_scatter(
        [ScatterLayer(x, y, "#ffffff")],
        50,
        12,
        x_range=(-3, 7),
        y_range=(10, 250),
        title="cluster 4",
        x_label="ch 3 PC1",
        y_label="ch 5 PC1",
    )
    text = plot.plain().splitlines()
    assert text[0].startswith("cluster 4  ↑ ch 5 PC1")
    assert text[1].lstrip().startswith("250┤") and text[-3].lstrip().startswith("10┤")
    assert text[-2].strip().startswith("└─")
    assert text[-1].split()[0] == "-3" and text[-1].split()[-1] == "7" and "→ ch 3 PC1" in text[-1]


def test_too_small_is_a_message():
    plot = render_scatter([ScatterLayer(np.zeros(3), np.zeros(3), "#ffffff")], 11, 3)
    assert plot.lines[0].plain.startswith("(too small")
    assert len(plot.lines) == 3


# ---------------------------------------------------------------------- overlay
def test_polygon_overlay_vertices_edges_cursor():
    ov = PolygonOverlay([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5)], cursor=(-0.5, 0.5))
    plot = render_scatter(
        [ScatterLayer(np.zeros(0), np.zeros(0), "#ffffff")],
        40,
        14,
        x_range=(-1, 1),
        y_range=(-1, 1),
        overlay=ov,
    )
    f = plot.frame
    for vx, vy in ov.vertices:
        col, row = f.cell_at(vx, vy)
        assert plot.lines[row].plain[col] == "◆"
    col, row = f.cell_at(-0.5, 0.5)
    assert plot.lines[row].plain[col] == "┼"
    assert "x=-0.5 y=0.5" in plot.lines[0].plain
    # the bottom edge is drawn: every cell between the two lower vertices has dots
    c0, r0 = f.cell_at(-0.5, -0.5)
    c1, _ = f.cell_at(0.5, -0.5)
    assert all(ord(plot.lines[r0].plain[c]) > BRAILLE_BASE for c in range(c0 + 1, c1))
    closed = PolygonOverlay(list(ov.vertices), closed=True)
    plot2 = render_scatter(
        [ScatterLayer(np.zeros(0), np.zeros(0), "#ffffff")],
        40,
        14,
        x_range=(-1, 1),
        y_range=(-1, 1),
        overlay=closed,
    )
    assert "x=" not in plot2.lines[0].plain


def test_overlay_far_outside_is_clipped():
    ov = PolygonOverlay([(-1e12, -1e12), (1e12, 1e12), (1e12, -1e12)])
    plot = render_scatter([], 30, 10, x_range=(-1, 1), y_range=(-1, 1), overlay=ov)
    assert len(plot.lines) == 10


# ---------------------------------------------------------------------- cache, histogram, groups
def test_bin_cache_reuses_background():
    cache = BinCache(max_entries=2)
    rng = np.random.default_rng(2)
    bg = ScatterLayer(
        rng.normal(size=10_000),
        rng.normal(size=10_000),
        BACKGROUND_COLOR,
        background=True,
        cache_key="bg",
    )
    fg = ScatterLayer(rng.normal(size=100), rng.normal(size=100), CLUSTER_COLORS[0])
    a = render_scatter([bg, fg], 40, 12, x_range=(-3, 3), y_range=(-3, 3), cache=cache)
    b = render_scatter([bg, fg], 40, 12, x_range=(-3, 3), y_range=(-3, 3), cache=cache)
    assert cache.hits == 1 and cache.misses == 1
    assert a.plain() == b.plain()
    pre = ScatterLayer(
        None, None, BACKGROUND_COLOR, background=True, counts=bin_points(bg.x, bg.y, a.frame)
    )
    c = render_scatter([pre, fg], 40, 12, x_range=(-3, 3), y_range=(-3, 3))
    assert c.plain() == a.plain()


def test_side_histogram_rows_align_with_plot():
    rng = np.random.default_rng(3)
    y1 = rng.normal(size=5000)
    y2 = rng.normal(size=500) + 2
    layers = [
        ScatterLayer(np.arange(5000.0), y1, CLUSTER_COLORS[0]),
        ScatterLayer(np.arange(500.0), y2, CLUSTER_COLORS[1]),
    ]
    plot = render_scatter(layers, 60, 20)
    hist = side_histogram(layers, plot, 12)
    assert len(hist) == len(plot.lines) and all(len(t.plain) == 12 for t in hist)
    f = plot.frame
    # per plot row, the number of points the scatter has there
    rows = np.zeros(f.height, np.int64)
    for ly in layers:
        rows += bin_points(ly.x, ly.y, f).reshape(f.height, 4, -1).sum(axis=(1, 2))
    top = int(rows.argmax())
    assert hist[f.top + top].plain[1:] == "█" * 11
    assert hist[-1].plain.split()[-1] == f"{rows.max():,}"
    for r in range(f.height):
        filled = sum(" ▏▎▍▌▋▊▉█".index(ch) for ch in hist[f.top + r].plain[1:])
        assert filled == round(rows[r] / rows.max() * 11 * 8)


def test_group_layers_colours():
    layers = group_layers(np.arange(5.0), np.arange(5.0), ["good", None, "mua", "noise", "good"])
    assert [ly.name for ly in layers] == ["good", "unsorted", "mua", "noise"]
    assert layers[0].color == GROUP_COLORS["good"] and len(layers[0].x) == 2


def test_braille_module_does_not_import_textual():
    code = "import sys, curalog_tui.braille\nprint(any(m.split('.')[0] == 'textual' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("bad", [(0, 5), (5, 0)])
def test_frame_needs_cells(bad):
    with pytest.raises(ValueError):
        Frame(bad[0], bad[1], (0, 1), (0, 1))
