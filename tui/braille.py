"""Fast braille scatter plots for the spike views (pure: rich, numpy, numba; no Textual).

Every terminal cell holds a braille character with 2 x 4 dots, so a ``W x H`` cell plot is
a ``2W x 4H`` dot grid. Points are binned into that grid by a numba kernel (parallel above a
few million points), every point counted, none subsampled: a 1 M-spike cluster renders in a
few milliseconds. Output is a list of ``rich.text.Text`` lines, one per terminal row, ready
for a Textual ``Static``/``Widget.render``.

Binning (exact, tested against numpy)
-------------------------------------
With ``nx = 2W`` dot columns over ``[x0, x1]``, ``sx = nx / (x1 - x0)`` and ``u = (x - x0) *
sx`` computed in float64, a point is kept when ``0 <= u <= nx`` and goes to column
``min(floor(u), nx - 1)`` (the right edge ``x == x1`` lands in the last column); rows likewise
with ``y`` upwards (``ny = 4H``, row 0 at the top, ``ny - 1 - min(floor(v), ny - 1)``). Points
outside, or NaN, are dropped.

Colour and density
------------------
Layers are drawn in two tiers: foreground layers (clusters) and background layers (grey,
other clusters). A cell shows the dots of **one** layer: among foreground layers the one with
the most points in the cell (ties: the earlier layer); only cells without any foreground point
show the background. The cell's colour is that layer's colour shaded by density: level
``1 + floor((L - 1) * log(c) / log(c_max))`` of ``L`` levels (``c`` = the layer's points in the
cell, ``c_max`` its densest cell), from dim to bright.

Overlay
-------
:class:`PolygonOverlay` draws a polygon being built from the keyboard or mouse in data
coordinates: edges as dots (``OVERLAY_COLOR``), the closing edge dimmer, vertices as ``◆``
and the crosshair cursor as ``┼`` with its coordinates in the header.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
from rich.text import Span, Text

if TYPE_CHECKING:
    from curalog.analysis.features import SplitPreview, ViewData

__all__ = [
    "BACKGROUND_COLOR",
    "BinCache",
    "CLUSTER_COLORS",
    "Frame",
    "GROUP_COLORS",
    "OVERLAY_COLOR",
    "PolygonOverlay",
    "ScatterLayer",
    "ScatterPlot",
    "bin_points",
    "cell_chars",
    "group_layers",
    "layout_frame",
    "render_scatter",
    "side_histogram",
    "view_layers",
]

BRAILLE_BASE = 0x2800
#: Bit of the dot at (row 0..3 from the top, column 0..1) of a braille cell.
DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)

#: Distinct colours for selected clusters, in selection order.
CLUSTER_COLORS: tuple[str, ...] = (
    "#5fafff",
    "#ff5f5f",
    "#5fd75f",
    "#ffaf00",
    "#d787ff",
    "#00d7d7",
    "#ff87af",
    "#afd700",
    "#ff8700",
    "#8787ff",
    "#87d7af",
    "#d7af87",
)
BACKGROUND_COLOR = "#8a8a8a"
OVERLAY_COLOR = "#ffff5f"
#: Colour of the spikes inside the polygon in a split preview (they become one cluster).
SELECTION_COLOR = "#ffffff"
#: phy's cluster-view group colours (unsorted: a light blue).
GROUP_COLORS: dict[str | None, str] = {
    "good": "#86d16d",
    "mua": "#afafaf",
    "noise": "#777777",
    None: "#5fafd7",
}

_PARALLEL_MIN = 8_000_000
_EIGHTHS = " ▏▎▍▌▋▊▉█"
_VERTEX = "◆"
_CURSOR = "┼"


# ---------------------------------------------------------------------- frame
@dataclass(frozen=True)
class Frame:
    """The plot area: ``width x height`` cells showing ``x_range x y_range``.

    Attributes
    ----------
    width, height : int
        Plot area in cells (dots: ``2 * width`` by ``4 * height``).
    x_range, y_range : tuple of float
        Data bounds; a degenerate range is widened by 0.5 on each side.
    left, top : int
        Offset of the plot area inside the rendered block (gutter and header), so widget
        cell coordinates map to data with :meth:`cell_center` / :meth:`cell_at`.
    """

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    left: int = 0
    top: int = 0

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError("a frame needs at least one cell")
        for name in ("x_range", "y_range"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not (math.isfinite(lo) and math.isfinite(hi)):
                lo, hi = -1.0, 1.0
            if hi <= lo:
                lo, hi = lo - 0.5, lo + 0.5
            object.__setattr__(self, name, (lo, hi))

    @property
    def nx(self) -> int:
        return 2 * self.width

    @property
    def ny(self) -> int:
        return 4 * self.height

    @property
    def sx(self) -> float:
        return self.nx / (self.x_range[1] - self.x_range[0])

    @property
    def sy(self) -> float:
        return self.ny / (self.y_range[1] - self.y_range[0])

    def key(self) -> tuple[int, int, float, float, float, float]:
        """Hashable identity of the binning (sizes and ranges, not the offsets)."""
        return (self.width, self.height, *self.x_range, *self.y_range)

    def cell_center(self, col: int, row: int) -> tuple[float, float]:
        """Data coordinates of the centre of block cell ``(col, row)`` (may be outside)."""
        x0, _ = self.x_range
        _, y1 = self.y_range
        cx = (col - self.left + 0.5) * 2.0 / self.sx + x0
        cy = y1 - (row - self.top + 0.5) * 4.0 / self.sy
        return cx, cy

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """Block cell ``(col, row)`` holding data point ``(x, y)``, or None outside."""
        x0, x1 = self.x_range
        y0, y1 = self.y_range
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return None
        ix = min(int(math.floor((x - x0) * self.sx)), self.nx - 1)
        iy = self.ny - 1 - min(int(math.floor((y - y0) * self.sy)), self.ny - 1)
        return self.left + ix // 2, self.top + iy // 4

    def contains_cell(self, col: int, row: int) -> bool:
        return (
            self.left <= col < self.left + self.width and self.top <= row < self.top + self.height
        )


# ---------------------------------------------------------------------- binning
_BLOCK = 4096


@numba.njit(cache=True, nogil=True)
def _bin_range(x, y, start, stop, x0, sx, y0, sy, nx, ny, out):  # pragma: no cover - numba
    # two phases per block: flat dot indices (vectorisable), then the increments
    idx = np.empty(_BLOCK, dtype=np.int64)
    fnx = float(nx)
    fny = float(ny)
    for s in range(start, stop, _BLOCK):
        e = min(stop, s + _BLOCK)
        for i in range(s, e):
            fa = (x[i] - x0) * sx
            fb = (y[i] - y0) * sy
            ok = (fa >= 0.0) & (fa <= fnx) & (fb >= 0.0) & (fb <= fny)
            a = min(int(fa), nx - 1) if ok else 0
            b = min(int(fb), ny - 1) if ok else 0
            idx[i - s] = ((ny - 1 - b) * nx + a) if ok else -1
        for k in range(e - s):
            j = idx[k]
            if j >= 0:
                out[j] += 1


@numba.njit(cache=True, nogil=True, parallel=True)
def _bin_parallel(x, y, x0, sx, y0, sy, nx, ny, n_chunks, out):  # pragma: no cover - numba
    n = x.shape[0]
    local = np.zeros((n_chunks, out.shape[0]), dtype=np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        _bin_range(x, y, c * step, min(n, (c + 1) * step), x0, sx, y0, sy, nx, ny, local[c])
    for c in range(n_chunks):
        out += local[c]


@numba.njit(cache=True, nogil=True)
def _finite_bounds(x, y):  # pragma: no cover - numba
    xlo = np.inf
    xhi = -np.inf
    ylo = np.inf
    yhi = -np.inf
    n = 0
    for i in range(x.shape[0]):
        a = x[i]
        b = y[i]
        if np.isfinite(a) and np.isfinite(b):
            n += 1
            xlo = min(xlo, a)
            xhi = max(xhi, a)
            ylo = min(ylo, b)
            yhi = max(yhi, b)
    return n, xlo, xhi, ylo, yhi


def bin_points(x: np.ndarray, y: np.ndarray, frame: Frame) -> np.ndarray:
    """Count points per braille dot.

    Parameters
    ----------
    x, y : ndarray
        Coordinates (any real dtype; compared in float64).
    frame : Frame

    Returns
    -------
    ndarray of int64, shape (4 * height, 2 * width)
        Counts, row 0 at the top (see the module docstring for the exact rule).
    """
    xs = np.ascontiguousarray(x).reshape(-1)
    ys = np.ascontiguousarray(y).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError("x and y differ in length")
    if xs.dtype.kind not in "fiu" or xs.dtype.kind == "u" and xs.dtype.itemsize == 8:
        xs = xs.astype(np.float64)
    if ys.dtype.kind not in "fiu" or ys.dtype.kind == "u" and ys.dtype.itemsize == 8:
        ys = ys.astype(np.float64)
    out = np.zeros(frame.ny * frame.nx, dtype=np.int64)
    args = (frame.x_range[0], frame.sx, frame.y_range[0], frame.sy, frame.nx, frame.ny)
    n = xs.shape[0]
    if n >= _PARALLEL_MIN and numba.get_num_threads() > 1:
        _bin_parallel(xs, ys, *args, numba.get_num_threads(), out)
    elif n:
        _bin_range(xs, ys, 0, n, *args, out)
    return out.reshape(frame.ny, frame.nx)


@numba.njit(cache=True, nogil=True)
def _cells_kernel(counts, bits, totals, dot_bits):  # pragma: no cover - numba
    h, w = bits.shape
    for r in range(h):
        for c in range(w):
            b = 0
            s = 0
            for dr in range(4):
                for dc in range(2):
                    v = counts[4 * r + dr, 2 * c + dc]
                    if v > 0:
                        b |= dot_bits[dr, dc]
                        s += v
            bits[r, c] = b
            totals[r, c] = s


def cell_chars(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Braille dot bits (uint8) and point totals (int64) per cell of a dot-count grid."""
    ny, nx = counts.shape
    h, w = ny // 4, nx // 2
    bits = np.zeros((h, w), dtype=np.uint8)
    totals = np.zeros((h, w), dtype=np.int64)
    _cells_kernel(np.ascontiguousarray(counts), bits, totals, DOT_BITS)
    return bits, totals


class BinCache:
    """A small LRU of dot-count grids keyed by ``(layer key, frame)``.

    Binning 50 M background spikes takes ~0.2 s on two cores; with a cache it is paid once
    per frame (size and ranges), and every redraw reuses the grid.

    Thread-safe: the UI thread and workers may share one cache (the dictionary is locked,
    the binning runs outside the lock, so two threads binning the same key both compute it
    and the second result replaces the first).
    """

    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def counts(self, key: Hashable, x: np.ndarray, y: np.ndarray, frame: Frame) -> np.ndarray:
        k = (key, frame.key())
        with self._lock:
            got = self._items.get(k)
            if got is not None:
                self._items.move_to_end(k)
                self.hits += 1
                return got
            self.misses += 1
        got = bin_points(x, y, frame)
        with self._lock:
            self._items[k] = got
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return got

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# ---------------------------------------------------------------------- layers
@dataclass
class ScatterLayer:
    """Points drawn in one colour.

    Attributes
    ----------
    x, y : ndarray or None
        Coordinates (None when ``counts`` is given).
    color : str
        ``#rrggbb``.
    background : bool
        Background tier (drawn only where no foreground point falls).
    name : str
        Legend text.
    cache_key : hashable, optional
        Cache the binning in the :class:`BinCache` passed to :func:`render_scatter`.
    counts : ndarray, optional
        Pre-binned dot counts for the frame (``bin_points``).
    """

    x: np.ndarray | None
    y: np.ndarray | None
    color: str
    background: bool = False
    name: str = ""
    cache_key: Hashable | None = None
    counts: np.ndarray | None = field(default=None, repr=False)

    def bounds(self) -> tuple[float, float, float, float] | None:
        """``(xmin, xmax, ymin, ymax)`` of the finite points, None if there are none."""
        if self.x is None or self.y is None or len(self.x) == 0:
            return None
        n, xlo, xhi, ylo, yhi = _finite_bounds(
            np.ascontiguousarray(self.x, dtype=np.float64),
            np.ascontiguousarray(self.y, dtype=np.float64),
        )
        if n == 0:
            return None
        return float(xlo), float(xhi), float(ylo), float(yhi)


def _rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _hex(r: float, g: float, b: float) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(max(0, min(255, int(round(v)))) for v in (r, g, b)))


def shade(color: str, level: int, n_levels: int) -> str:
    """Colour of density ``level`` (1..n_levels): from 45 % brightness to the full colour,
    the densest level lightened 30 % toward white."""
    r, g, b = _rgb(color)
    if n_levels <= 1:
        return color
    f = 0.45 + 0.55 * (level - 1) / (n_levels - 1)
    r, g, b = r * f, g * f, b * f
    if level == n_levels:
        r, g, b = r + (255 - r) * 0.3, g + (255 - g) * 0.3, b + (255 - b) * 0.3
    return _hex(r, g, b)


def _levels(totals: np.ndarray, n_levels: int) -> np.ndarray:
    cmax = int(totals.max()) if totals.size else 0
    lv = np.zeros(totals.shape, dtype=np.int64)
    pos = totals > 0
    if cmax <= 1:
        lv[pos] = n_levels
        return lv
    lv[pos] = 1 + np.floor((n_levels - 1) * np.log(totals[pos]) / math.log(cmax)).astype(np.int64)
    return np.clip(lv, 0, n_levels)


# ---------------------------------------------------------------------- overlay
@dataclass
class PolygonOverlay:
    """A polygon being drawn, in data coordinates.

    Attributes
    ----------
    vertices : sequence of (x, y)
    cursor : (x, y) or None
        The crosshair; while the polygon is open, the rubber band runs from the last vertex
        to it and the closing edge from it to the first vertex.
    closed : bool
        Closed polygons draw the edge from the last vertex to the first at full strength.
    """

    vertices: Sequence[tuple[float, float]] = ()
    cursor: tuple[float, float] | None = None
    closed: bool = False
    color: str = OVERLAY_COLOR


def _clip_segment(
    u0: float, v0: float, u1: float, v1: float, w: float, h: float
) -> tuple[float, float, float, float] | None:
    """Liang-Barsky clip of a dot-space segment to [0, w] x [0, h]; None if outside."""
    du, dv = u1 - u0, v1 - v0
    t0, t1 = 0.0, 1.0
    for p, q in ((-du, u0), (du, w - u0), (-dv, v0), (dv, h - v0)):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return u0 + t0 * du, v0 + t0 * dv, u0 + t1 * du, v0 + t1 * dv


def _segment_dots(
    frame: Frame, a: tuple[float, float], b: tuple[float, float], out: np.ndarray
) -> None:
    x0, _ = frame.x_range
    _, y1 = frame.y_range
    u0, v0 = (a[0] - x0) * frame.sx, (y1 - a[1]) * frame.sy
    u1, v1 = (b[0] - x0) * frame.sx, (y1 - b[1]) * frame.sy
    if not all(math.isfinite(v) for v in (u0, v0, u1, v1)):
        return
    got = _clip_segment(u0, v0, u1, v1, float(frame.nx), float(frame.ny))
    if got is None:
        return
    u0, v0, u1, v1 = got
    n = int(math.ceil(max(abs(u1 - u0), abs(v1 - v0)) * 2)) + 1
    t = np.linspace(0.0, 1.0, n)
    cols = np.clip(np.floor(u0 + t * (u1 - u0)).astype(np.int64), 0, frame.nx - 1)
    rows = np.clip(np.floor(v0 + t * (v1 - v0)).astype(np.int64), 0, frame.ny - 1)
    out[rows, cols] = True


def _overlay_grids(frame: Frame, overlay: PolygonOverlay) -> tuple[np.ndarray, np.ndarray]:
    """Dot masks of the strong and the faint (closing) edges."""
    strong = np.zeros((frame.ny, frame.nx), dtype=bool)
    faint = np.zeros_like(strong)
    pts = [(float(x), float(y)) for x, y in overlay.vertices]
    for a, b in zip(pts, pts[1:], strict=False):
        _segment_dots(frame, a, b, strong)
    if pts:
        if overlay.closed and len(pts) > 2:
            _segment_dots(frame, pts[-1], pts[0], strong)
        elif overlay.cursor is not None:
            _segment_dots(frame, pts[-1], overlay.cursor, strong)
            if len(pts) > 1:
                _segment_dots(frame, overlay.cursor, pts[0], faint)
    return strong, faint


# ---------------------------------------------------------------------- rendering
@dataclass
class ScatterPlot:
    """A rendered plot.

    Attributes
    ----------
    lines : list of Text
        One per terminal row, each exactly the requested width.
    frame : Frame
        The plot area inside the block (for mouse and cursor mapping).
    """

    lines: list[Text]
    frame: Frame

    def text(self) -> Text:
        """All lines as one Text (newline-separated)."""
        return Text("\n", no_wrap=True).join(self.lines)

    def __rich__(self) -> Text:
        return self.text()

    def plain(self) -> str:
        return "\n".join(t.plain for t in self.lines)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


def layout_frame(
    width: int,
    height: int,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    *,
    axes: bool = True,
) -> Frame:
    """The plot area of a ``width x height`` block (header row, y gutter, two axis rows)."""
    probe = Frame(1, 1, x_range, y_range)  # normalises the ranges
    if not axes:
        return Frame(max(1, width), max(1, height - 1), probe.x_range, probe.y_range, 0, 1)
    y0, y1 = probe.y_range
    labels = [_fmt(y1), _fmt((y0 + y1) / 2), _fmt(y0)]
    gutter = max(len(s) for s in labels) + 1
    return Frame(
        max(1, width - gutter), max(1, height - 3), probe.x_range, probe.y_range, gutter, 1
    )


def _auto_range(layers: Sequence[ScatterLayer]) -> tuple[tuple[float, float], tuple[float, float]]:
    b = [layer.bounds() for layer in layers if not layer.background]
    b = [v for v in b if v is not None] or [
        v for v in (layer.bounds() for layer in layers) if v is not None
    ]
    if not b:
        return (-1.0, 1.0), (-1.0, 1.0)
    xlo, xhi = min(v[0] for v in b), max(v[1] for v in b)
    ylo, yhi = min(v[2] for v in b), max(v[3] for v in b)
    px = (xhi - xlo) * 0.03
    py = (yhi - ylo) * 0.03
    return (xlo - px, xhi + px), (ylo - py, yhi + py)


def _row_text(chars: np.ndarray, styles: np.ndarray, table: list[str]) -> Text:
    """One Text from code points and style ids (0 = unstyled), spans merged by runs."""
    plain = chars.astype("<u4").tobytes().decode("utf-32-le")
    spans = []
    if styles.shape[0]:
        change = np.flatnonzero(styles[1:] != styles[:-1]) + 1
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [styles.shape[0]]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            sid = int(styles[s])
            if sid:
                spans.append(Span(s, e, table[sid]))
    return Text(plain, spans=spans, no_wrap=True, overflow="crop", end="")


def _fit(s: str, width: int) -> str:
    return s[:width].ljust(width)


def render_scatter(
    layers: Sequence[ScatterLayer],
    width: int,
    height: int,
    *,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    overlay: PolygonOverlay | None = None,
    n_levels: int = 4,
    cache: BinCache | None = None,
    axes: bool = True,
) -> ScatterPlot:
    """Render layers as a ``width x height`` block of braille text.

    Parameters
    ----------
    layers : sequence of ScatterLayer
        Foreground layers in priority order (ties in a cell go to the earlier one) and
        background layers (``background=True``), in any order.
    width, height : int
        Size of the whole block in cells (header, y-axis gutter and two x-axis rows
        included when ``axes``).
    x_range, y_range : (float, float), optional
        Data bounds; default: the foreground points' bounds plus 3 %.
    title : str
        Header text (left); ``y_label`` follows it, the cursor readout is right-aligned.
    x_label, y_label : str
    overlay : PolygonOverlay, optional
    n_levels : int
        Density shades per colour.
    cache : BinCache, optional
        Reuse the binning of layers that have a ``cache_key``.
    axes : bool
        Draw the y gutter with tick labels and the x axis with its range.

    Returns
    -------
    ScatterPlot
    """
    width = max(1, int(width))
    height = max(1, int(height))
    if x_range is None or y_range is None:
        ax, ay = _auto_range(layers)
        x_range = x_range or ax
        y_range = y_range or ay
    if (axes and (width < 12 or height < 5)) or height < 2:
        msg = Text(_fit("(too small)", width), style="dim", no_wrap=True, end="")
        frame = Frame(1, 1, x_range, y_range)
        return ScatterPlot([msg] + [Text(" " * width, end="") for _ in range(height - 1)], frame)
    frame = layout_frame(width, height, x_range, y_range, axes=axes)
    h, w = frame.height, frame.width

    # -- bin every layer and reduce to cells
    fg_bits, fg_tot, fg_idx, bg_bits, bg_tot, bg_idx = [], [], [], [], [], []
    for i, layer in enumerate(layers):
        if layer.counts is not None:
            counts = layer.counts
            if counts.shape != (frame.ny, frame.nx):
                raise ValueError(f"layer {layer.name!r}: counts for another frame")
        elif layer.x is None or layer.y is None:
            continue
        elif cache is not None and layer.cache_key is not None:
            counts = cache.counts(layer.cache_key, layer.x, layer.y, frame)
        else:
            counts = bin_points(layer.x, layer.y, frame)
        bits, tot = cell_chars(counts)
        if layer.background:
            bg_bits.append(bits), bg_tot.append(tot), bg_idx.append(i)
        else:
            fg_bits.append(bits), fg_tot.append(tot), fg_idx.append(i)

    table: list[str] = [""]
    style_of: dict[str, int] = {}

    def sid(style: str) -> int:
        got = style_of.get(style)
        if got is None:
            got = style_of[style] = len(table)
            table.append(style)
        return got

    bits = np.zeros((h, w), dtype=np.uint8)
    styles = np.zeros((h, w), dtype=np.int64)
    for tier_bits, tier_tot, tier_idx, is_bg in (
        (bg_bits, bg_tot, bg_idx, True),
        (fg_bits, fg_tot, fg_idx, False),
    ):
        if not tier_bits:
            continue
        tot = np.stack(tier_tot)
        owner = np.argmax(tot, axis=0)  # first maximum: the earlier layer wins ties
        has = tot.max(axis=0) > 0
        if not is_bg:  # foreground replaces the background wherever it has points
            bits[has] = 0
            styles[has] = 0
        for k, li in enumerate(tier_idx):
            mask = has & (owner == k)
            if not mask.any():
                continue
            lv = _levels(tier_tot[k], n_levels)
            color = layers[li].color or BACKGROUND_COLOR
            lut = np.array([0] + [sid(shade(color, v, n_levels)) for v in range(1, n_levels + 1)])
            bits[mask] = tier_bits[k][mask]
            styles[mask] = lut[lv[mask]]

    chars = np.where(bits > 0, BRAILLE_BASE + bits.astype(np.uint32), 32).astype(np.uint32)

    # -- overlay
    readout = ""
    if overlay is not None:
        strong, faint = _overlay_grids(frame, overlay)
        s_bits, s_tot = cell_chars(strong.astype(np.int64))
        f_bits, f_tot = cell_chars(faint.astype(np.int64))
        faint_only = (f_tot > 0) & (s_tot == 0)
        s_id = sid(f"bold {overlay.color}")
        f_id = sid(shade(overlay.color, 1, 3))
        m = s_tot > 0
        chars[m] = BRAILLE_BASE + (s_bits[m] | bits[m]).astype(np.uint32)
        styles[m] = s_id
        chars[faint_only] = BRAILLE_BASE + (f_bits[faint_only] | bits[faint_only]).astype(np.uint32)
        styles[faint_only] = f_id
        for vx, vy in overlay.vertices:
            cell = frame.cell_at(float(vx), float(vy))
            if cell is not None:
                chars[cell[1] - frame.top, cell[0] - frame.left] = ord(_VERTEX)
                styles[cell[1] - frame.top, cell[0] - frame.left] = s_id
        if overlay.cursor is not None:
            cx, cy = overlay.cursor
            readout = f"x={_fmt(float(cx))} y={_fmt(float(cy))}"
            cell = frame.cell_at(float(cx), float(cy))
            if cell is not None:
                chars[cell[1] - frame.top, cell[0] - frame.left] = ord(_CURSOR)
                styles[cell[1] - frame.top, cell[0] - frame.left] = sid("bold #ffffff")

    # -- assemble lines
    lines: list[Text] = []
    head = title + (f"  ↑ {y_label}" if y_label else "")
    if readout:
        room = max(0, width - len(readout) - 1)
        header = Text(
            _fit(head, room) + " " + readout if room else _fit(readout, width), no_wrap=True, end=""
        )
        header.stylize("bold", 0, len(title))
        header.stylize(f"bold {OVERLAY_COLOR}", max(0, width - len(readout)), width)
    else:
        header = Text(_fit(head, width), no_wrap=True, end="")
        header.stylize("bold", 0, min(len(title), width))
    lines.append(header)
    y0, y1 = frame.y_range
    x0, x1 = frame.x_range
    gw = frame.left
    if axes:  # the y gutter shares the row arrays: one Text per row
        gutter = np.full((h, gw), 32, dtype=np.uint32)
        gutter[:, gw - 1] = ord("│")
        for r, lab in ((0, _fmt(y1)), (h // 2, _fmt((y0 + y1) / 2)), (h - 1, _fmt(y0))):
            gutter[r, : gw - 1] = np.frombuffer(
                lab.rjust(gw - 1).encode("utf-32-le"), dtype=np.uint32
            )
            gutter[r, gw - 1] = ord("┤")
        chars = np.concatenate([gutter, chars], axis=1)
        styles = np.concatenate([np.full((h, gw), sid("dim"), dtype=np.int64), styles], axis=1)
    for r in range(h):
        lines.append(_row_text(chars[r], styles[r], table))
    if axes:
        axis = " " * (gw - 1) + "└" + "─" * w
        lines.append(Text(axis[:width], style="dim", no_wrap=True, end=""))
        left, right = _fmt(x0), _fmt(x1)
        mid = f"→ {x_label}" if x_label else ""
        gap = w - len(left) - len(right)
        if gap >= len(mid) + 2:
            pad_l = (gap - len(mid)) // 2
            body = left + " " * pad_l + mid + " " * (gap - len(mid) - pad_l) + right
        elif gap >= 1:
            body = left + " " * gap + right
        else:
            body = left
        lines.append(Text(_fit(" " * gw + body, width), style="dim", no_wrap=True, end=""))
    return ScatterPlot(lines, frame)


# ---------------------------------------------------------------------- histogram
def side_histogram(
    layers: Sequence[ScatterLayer],
    plot: ScatterPlot,
    width: int,
    *,
    include_background: bool = False,
    title: str = "count",
) -> list[Text]:
    """A horizontal histogram of the layers' y values, row-aligned with ``plot``.

    One bin per plot row (the rows' y intervals), bars stacked per layer in its colour with
    eighth-cell resolution, scaled to the fullest row. Returns as many lines as the plot.

    Parameters
    ----------
    layers : sequence of ScatterLayer
        Usually the same layers as the scatter (background ignored unless asked).
    plot : ScatterPlot
    width : int
        Width of the histogram block (a 1-cell axis is included).
    """
    frame = plot.frame
    n_lines = len(plot.lines)
    width = max(2, int(width))
    bar_w = width - 1
    used = [ly for ly in layers if (include_background or not ly.background) and ly.y is not None]
    per_layer = []
    for ly in used:
        y = np.asarray(ly.y, dtype=np.float64)
        # the scatter's row of each point: bin on a 1-column frame with the same y mapping
        f1 = Frame(1, frame.height, (0.0, 1.0), frame.y_range)
        counts = bin_points(np.zeros(y.shape[0]), y, f1).sum(axis=1)
        per_layer.append(counts.reshape(frame.height, 4).sum(axis=1))
    out: list[Text] = []
    total = np.sum(per_layer, axis=0) if per_layer else np.zeros(frame.height, np.int64)
    top = int(total.max()) if total.size else 0
    out.append(Text(_fit(title, width), style="dim", no_wrap=True, end=""))
    for r in range(frame.height):
        if top <= 0:
            out.append(Text("│" + " " * bar_w, style="dim", no_wrap=True, end=""))
            continue
        cum = np.cumsum([int(c[r]) for c in per_layer])
        eighths = np.round(cum / top * bar_w * 8).astype(np.int64)
        chars, spans = [], []
        full = int(eighths[-1]) if eighths.size else 0
        for j in range(bar_w):
            covered = max(0, min(8, full - 8 * j))
            chars.append(_EIGHTHS[covered])
            if covered:
                mid = 8 * j + covered / 2
                k = int(np.searchsorted(eighths, mid, side="right"))
                spans.append(Span(1 + j, 2 + j, used[min(k, len(used) - 1)].color))
        out.append(Text("│" + "".join(chars), spans=spans, no_wrap=True, end=""))
        out[-1].stylize("dim", 0, 1)
    while len(out) < n_lines - 2:
        out.append(Text(" " * width, end=""))
    out.append(Text(("└" + "─" * bar_w)[:width], style="dim", no_wrap=True, end=""))
    right = f"{top:,}"
    out.append(
        Text(
            _fit("0" + " " * max(1, width - 1 - len(right)) + right, width),
            style="dim",
            no_wrap=True,
            end="",
        )
    )
    return out[:n_lines]


# ---------------------------------------------------------------------- helpers for views
def group_layers(x: np.ndarray, y: np.ndarray, groups: Sequence[str | None]) -> list[ScatterLayer]:
    """Cluster scatter: one layer per group (good, mua, noise, unsorted) in phy's colours.

    ``x``, ``y`` hold one value per cluster (two cluster-table columns); NaN rows are skipped
    by the binning.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    g = np.array([s if s in ("good", "mua", "noise") else "" for s in groups], dtype=object)
    out = []
    for name in ("good", "", "mua", "noise"):
        m = g == name
        if m.any():
            key = name or None
            out.append(ScatterLayer(x[m], y[m], GROUP_COLORS[key], name=name or "unsorted"))
    return out


def view_layers(
    data: ViewData,
    *,
    preview: SplitPreview | None = None,
    palette: Sequence[str] = CLUSTER_COLORS,
    background_key: Hashable | None = None,
) -> list[ScatterLayer]:
    """Layers for a :class:`curalog.analysis.features.ViewData` (background first, grey).

    With a :class:`curalog.analysis.features.SplitPreview`, the spikes inside the polygon (which the
    split turns into one new cluster) are drawn first in ``SELECTION_COLOR``, the rest in
    their cluster's colour.
    """
    out: list[ScatterLayer] = []
    if data.background is not None and len(data.background):
        bg = data.background
        out.append(
            ScatterLayer(
                bg.x,
                bg.y,
                BACKGROUND_COLOR,
                background=True,
                name="others",
                cache_key=background_key,
            )
        )
    if preview is not None:
        xs = [ly.x[m] for ly, m in zip(data.layers, preview.inside, strict=True)]
        ys = [ly.y[m] for ly, m in zip(data.layers, preview.inside, strict=True)]
        out.append(
            ScatterLayer(
                np.concatenate(xs) if xs else np.zeros(0),
                np.concatenate(ys) if ys else np.zeros(0),
                SELECTION_COLOR,
                name="selection",
            )
        )
    for i, ly in enumerate(data.layers):
        color = palette[i % len(palette)]
        if preview is not None:
            keep = ~preview.inside[i]
            out.append(ScatterLayer(ly.x[keep], ly.y[keep], color, name=str(ly.cluster_id)))
        else:
            out.append(ScatterLayer(ly.x, ly.y, color, name=str(ly.cluster_id)))
    return out
