"""Braille renderers for the raw recording: waveform boxes, stacked traces, the probe.

Pure functions of numpy arrays returning one ``rich.text.Text`` per terminal row, exactly
``width`` cells wide (paint them with :class:`curalog_tui.widgets.ScatterView`); nothing here
touches Textual.

A :class:`DotCanvas` is a grid of braille dots (2 x 4 per cell) with one layer per colour;
lines are rasterised segment by segment. A cell shows the union of its dots in the colour of
the topmost layer that has a dot there (layers are stacked in the order they were made:
grey traces first, clusters above, means and templates on top).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from rich.text import Span, Text

from ..braille import BRAILLE_BASE, DOT_BITS, shade

GREY = "#6c6c6c"
LABEL_STYLE = "#9e9e9e"
TEMPLATE_COLOR = "#ffffff"


@dataclass
class DotCanvas:
    """``width`` x ``height`` cells of braille dots, with coloured layers and text labels."""

    width: int
    height: int
    layers: list[np.ndarray] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    labels: list[tuple[int, int, str, str]] = field(default_factory=list)

    @property
    def dots(self) -> tuple[int, int]:
        """``(dot rows, dot columns)``."""
        return 4 * self.height, 2 * self.width

    def layer(self, color: str) -> np.ndarray:
        """The dot grid of ``color`` (a new topmost layer on first use)."""
        if color in self.colors:
            return self.layers[self.colors.index(color)]
        grid = np.zeros(self.dots, dtype=bool)
        self.layers.append(grid)
        self.colors.append(color)
        return grid

    def polylines(self, x: np.ndarray, y: np.ndarray, color: str) -> None:
        """Draw lines through ``(x[i, j], y[i, j])`` along j for every row i (dot units:
        x in ``[0, 2 width)``, y in ``[0, 4 height)`` from the top; off-grid dots are cut)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        y = np.atleast_2d(np.asarray(y, dtype=np.float64))
        if x.shape[1] == 0:
            return
        grid = self.layer(color)
        if x.shape[1] == 1:
            _plot(grid, x.ravel(), y.ravel())
            return
        _raster(grid, np.ascontiguousarray(x), np.ascontiguousarray(y))

    def label(self, col: int, row: int, text: str, style: str = LABEL_STYLE) -> None:
        """Text written over the dots from cell ``(col, row)`` (cut at the right edge)."""
        self.labels.append((int(col), int(row), text, style))

    def lines(self) -> list[Text]:
        h, w = self.height, self.width
        bits = np.zeros((h, w), dtype=np.uint8)
        style = np.zeros((h, w), dtype=np.int64)  # 0: none, i + 1: layer i
        for i, grid in enumerate(self.layers):
            cells = _cell_bits(grid, h, w)
            bits |= cells
            style[cells > 0] = i + 1
        chars = np.where(bits > 0, BRAILLE_BASE + bits.astype(np.int64), 32).astype(np.int64)
        table = [""] + list(self.colors)
        label_at: dict[tuple[int, int], tuple[str, str]] = {}
        for col, row, text, st in self.labels:
            if not 0 <= row < h:
                continue
            for k, ch in enumerate(text):
                if 0 <= col + k < w:
                    label_at[(row, col + k)] = (ch, st)
        extra: dict[str, int] = {}
        for (row, col), (ch, st) in label_at.items():
            chars[row, col] = ord(ch)
            if st not in extra:
                extra[st] = len(table)
                table.append(st)
            style[row, col] = extra[st]
        return [_row_text(chars[r], style[r], table) for r in range(h)]


@numba.njit(cache=True, nogil=True, inline="always")
def _segment(grid, x0, y0, x1, y1):  # pragma: no cover - numba
    """Set the dots of one segment: for each dot column it crosses, the dot rows between
    its ends there (a steep segment is one vertical run; non-finite ends drop it)."""
    if not (np.isfinite(x0) and np.isfinite(y0) and np.isfinite(x1) and np.isfinite(y1)):
        return
    n_r, n_c = grid.shape
    if x1 < x0:
        x0, x1 = x1, x0
        y0, y1 = y1, y0
    c0 = int(np.floor(x0))
    c1 = int(np.floor(x1))
    slope = (y1 - y0) / (x1 - x0) if x1 > x0 else 0.0
    for c in range(max(c0, 0), min(c1, n_c - 1) + 1):
        # y where the segment enters and leaves dot column c
        xa = max(x0, float(c))
        xb = min(x1, float(c + 1))
        ya = y0 + slope * (xa - x0)
        yb = y0 + slope * (xb - x0) if x1 > x0 else y1
        lo = int(np.floor(min(ya, yb)))
        hi = int(np.floor(max(ya, yb)))
        for r in range(max(lo, 0), min(hi, n_r - 1) + 1):
            grid[r, c] = True


@numba.njit(cache=True, nogil=True)
def _raster(grid, x, y):  # pragma: no cover - numba
    """Set the dots of the segments ``(x[i, j], y[i, j]) - (x[i, j + 1], y[i, j + 1])``."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1] - 1):
            _segment(grid, x[i, j], y[i, j], x[i, j + 1], y[i, j + 1])


@numba.njit(cache=True, nogil=True)
def _zigzag(lo, hi, mid, scale, half):  # pragma: no cover - numba
    """``out[c, 2i] = mid[c] - clip(lo[i, c] / scale, -1.5, 1.5) * half`` and the same with
    ``hi`` at ``2i + 1``: each channel's min/max envelope as one zigzag line (NaN stays
    NaN: the segment is dropped)."""
    n, k = lo.shape
    out = np.empty((k, 2 * n))
    for i in range(n):
        for c in range(k):
            a = lo[i, c] / scale
            b = hi[i, c] / scale
            a = -1.5 if a < -1.5 else (1.5 if a > 1.5 else a)
            b = -1.5 if b < -1.5 else (1.5 if b > 1.5 else b)
            out[c, 2 * i] = mid[c] - a * half
            out[c, 2 * i + 1] = mid[c] - b * half
    return out


@numba.njit(cache=True, nogil=True)
def _raster_shared_x(grid, x, y):  # pragma: no cover - numba
    """:func:`_raster` of the lines ``(x[j], y[i, j])``: every row shares the same ``x``
    (the trace view's channels), without materialising ``x`` once per row."""
    for i in range(y.shape[0]):
        for j in range(x.shape[0] - 1):
            _segment(grid, x[j], y[i, j], x[j + 1], y[i, j + 1])


def _plot(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    xi = np.floor(x).astype(np.int64)
    yi = np.floor(y).astype(np.int64)
    ok = (xi >= 0) & (xi < grid.shape[1]) & (yi >= 0) & (yi < grid.shape[0])
    grid[yi[ok], xi[ok]] = True


def _cell_bits(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    g = grid.reshape(h, 4, w, 2)
    return np.einsum("rdcx,dx->rc", g.astype(np.uint16), DOT_BITS.astype(np.uint16)).astype(
        np.uint8
    )


def _row_text(chars: np.ndarray, styles: np.ndarray, table: list[str]) -> Text:
    plain = "".join(map(chr, chars.tolist()))
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


def message_block(text: str, width: int, height: int, style: str = "") -> list[Text]:
    """A one-line message at the top of an otherwise empty block."""
    out = [Text(" " * width, end="") for _ in range(max(0, height))]
    if height:
        out[0] = Text((" " + text)[:width].ljust(width), style=style, end="")
    return out


# ---------------------------------------------------------------------- waveforms
@dataclass
class WaveformSet:
    """What one cluster contributes to the waveform view (arrays ``(n, ns, k)``/``(ns, k)``
    on the view's channels, in display units)."""

    color: str
    waveforms: np.ndarray | None = None
    mean: np.ndarray | None = None
    template: np.ndarray | None = None


def channel_grid(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Grid ``(cols, rows, n_cols, n_rows)`` of channels placed by their probe positions:
    a row per distinct depth (the largest y at the top, as phy) and, within a row, the
    channels from left to right; ``cols`` are floats: the rank in the row plus a shift of up
    to a sixth of a box that follows the row's mean x, so a staggered probe (Neuropixels)
    stays visibly staggered without wasting half the columns."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    n = pos.shape[0]
    x, y = np.round(pos[:, 0], 3), np.round(pos[:, 1], 3)
    ys = np.unique(y)[::-1]
    rows = np.searchsorted(-ys, -y)
    cols = np.zeros(n, dtype=np.float64)
    n_cols = 1
    span = float(x.max() - x.min()) if n else 0.0
    for r in range(ys.shape[0]):
        members = np.flatnonzero(rows == r)
        order = members[np.lexsort((members, x[members]))]
        cols[order] = np.arange(order.shape[0])
        n_cols = max(n_cols, order.shape[0])
        if span > 0:
            cols[order] += (x[order].mean() - x.mean()) / span / 3.0
    return cols, rows.astype(int), int(n_cols), int(ys.shape[0])


def render_waveforms(
    sets: Sequence[WaveformSet],
    positions: np.ndarray,
    labels: Sequence[str],
    width: int,
    height: int,
    *,
    scale: float | None = None,
) -> tuple[list[Text], float]:
    """Waveform boxes laid out like the probe (one box per channel, as phy's WaveformView).

    Every box shares one vertical scale: ``scale`` display units from the box centre to its
    edge (default: the largest absolute value of the means, or of the waveforms). Returns the
    lines and the scale used.
    """
    canvas = DotCanvas(max(1, width), max(1, height))
    k = len(labels)
    if k == 0:
        return canvas.lines(), 1.0
    cols, rows, n_cols, n_rows = channel_grid(positions)
    shift = cols - np.round(cols)  # the stagger, in boxes
    room = float(np.abs(shift).max()) if shift.size else 0.0
    bw = max(2, int(width / (n_cols + 2 * room)))  # box width in cells
    left = np.round((cols + room) * bw).astype(int)  # cells
    box_h = 4.0 * height / n_rows  # dots (rows share the height exactly)
    if scale is None:
        peaks = [np.abs(s.mean).max() for s in sets if s.mean is not None and s.mean.size]
        if not peaks:
            peaks = [
                np.percentile(np.abs(s.waveforms), 99.5)
                for s in sets
                if s.waveforms is not None and s.waveforms.size
            ]
        scale = float(max(peaks)) if peaks and max(peaks) > 0 else 1.0
    dot_w = 2 * bw
    for layer_kind in ("waveforms", "mean", "template"):
        for s in sets:
            data = getattr(s, layer_kind)
            if data is None or data.size == 0:
                continue
            arr = data if data.ndim == 3 else data[None]
            ns = arr.shape[1]
            xs = np.linspace(0.5, dot_w - 1.5, ns)
            if layer_kind == "template":
                color = TEMPLATE_COLOR
            elif layer_kind == "mean":
                color = shade(s.color, 4, 4)  # lightened: the mean over its own spikes
            else:
                color = shade(s.color, 2, 4)  # dimmed: the individual spikes
            kc = min(k, arr.shape[2])
            if kc == 0:
                continue
            # every channel's box in one raster call (one layer: the order does not matter)
            x0 = 2 * left[:kc].astype(np.float64)
            y_mid = (rows[:kc].astype(np.float64) + 0.5) * box_h
            vals = np.moveaxis(arr[:, :, :kc], 2, 0)  # (channels, lines, samples)
            y = y_mid[:, None, None] - vals / scale * (box_h / 2.0 - 0.5)
            x = np.broadcast_to((x0[:, None] + xs[None, :])[:, None, :], y.shape)
            canvas.polylines(x.reshape(-1, ns), y.reshape(-1, ns), color)
    for c in range(k):
        canvas.label(int(left[c]), int(rows[c] * box_h // 4), labels[c][: max(1, bw - 1)])
    return canvas.lines(), float(scale)


# ---------------------------------------------------------------------- traces
@dataclass
class SpikeMark:
    """Spikes drawn over the traces in ``color``: windows ``[s, s + width)`` for every ``s``
    in ``starts`` (samples of the window, may reach outside it), on the view's ``rows``."""

    starts: np.ndarray
    width: int
    rows: np.ndarray
    color: str

    def cover(self, n_t: int) -> np.ndarray:
        """``(n_t,)`` bool: the window's samples these spikes cover (on ``rows``)."""
        out = np.zeros(n_t, dtype=bool)
        starts = np.asarray(self.starts, dtype=np.int64)
        if starts.size == 0 or self.rows.size == 0:
            return out
        idx = (starts[:, None] + np.arange(self.width)[None, :]).ravel()
        out[idx[(idx >= 0) & (idx < n_t)]] = True
        return out


@numba.njit(cache=True, nogil=True)
def _envelope(x, n_cols, cover, rows, lo, hi):  # pragma: no cover - numba
    """Min / max of ``x[:, rows]`` per time bin over the samples where ``cover`` (all when
    ``cover`` is empty) into ``lo`` / ``hi`` (n_cols, len(rows)), NaN where a bin has none.

    Branch-free selects (``v < lo``, false for NaN, so NaN samples are skipped), the
    channels innermost and contiguous when ``rows`` is every channel in order, so the
    inner loop vectorises; a bin that saw no value is still ``(+inf, -inf)`` at the end."""
    n_t = x.shape[0]
    nr = rows.shape[0]
    lo[:] = np.inf
    hi[:] = -np.inf
    use_all = cover.shape[0] == 0
    identity = nr == x.shape[1]
    if identity:
        for j in range(nr):
            if rows[j] != j:
                identity = False
                break
    for t in range(n_t):
        if not use_all and not cover[t]:
            continue
        b = (t * n_cols) // n_t
        lob = lo[b]
        hib = hi[b]
        xt = x[t]
        if identity:
            for j in range(nr):
                v = xt[j]
                lob[j] = v if v < lob[j] else lob[j]
                hib[j] = v if v > hib[j] else hib[j]
        else:
            for j in range(nr):
                v = xt[rows[j]]
                lob[j] = v if v < lob[j] else lob[j]
                hib[j] = v if v > hib[j] else hib[j]
    for b in range(lo.shape[0]):
        for j in range(nr):
            if lo[b, j] == np.inf and hi[b, j] == -np.inf:
                lo[b, j] = np.nan
                hi[b, j] = np.nan


def envelope(
    trace: np.ndarray,
    n_cols: int,
    cover: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of ``trace`` (T, k) in ``n_cols`` equal time bins: ``(n_cols, k)`` each,
    only over the samples in ``cover`` and the channels ``rows`` when given (NaN elsewhere)."""
    t, k = trace.shape
    n_cols = max(1, min(n_cols, t))
    rows_ = np.arange(k, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    cov = np.zeros(0, dtype=np.bool_) if cover is None else np.asarray(cover, dtype=np.bool_)
    lo = np.empty((n_cols, rows_.shape[0]), dtype=np.float64)
    hi = np.empty_like(lo)
    _envelope(np.ascontiguousarray(trace), n_cols, cov, rows_, lo, hi)
    if rows is None:
        return lo, hi
    full_lo = np.full((n_cols, k), np.nan)
    full_hi = np.full((n_cols, k), np.nan)
    full_lo[:, rows_] = lo
    full_hi[:, rows_] = hi
    return full_lo, full_hi


def noise_scale(traces: np.ndarray, factor: float = 8.0) -> float:
    """A vertical scale for stacked traces: ``factor`` robust noise deviations (median
    absolute deviation / 0.6745, the median over channels), so that noise fills a fraction of
    each channel's strip and spikes stand out."""
    if traces.size == 0:
        return 1.0
    sub = traces[:: max(1, traces.shape[0] // 1000)]  # 1,000 samples: a robust level
    mad = np.median(np.abs(sub - np.median(sub, axis=0)), axis=0) / 0.6745
    sd = float(np.median(mad))
    return factor * sd if sd > 0 else float(np.abs(traces).max() or 1.0)


def render_traces(
    traces: np.ndarray,
    labels: Sequence[str],
    width: int,
    height: int,
    *,
    scale: float,
    marks: Sequence[SpikeMark] = (),
    cursor: int | None = None,
    label_width: int = 5,
) -> list[Text]:
    """Channels stacked top to bottom (column ``i`` of ``traces`` (T, k) is channel ``i``),
    each a min/max envelope per dot column in grey, ``marks`` drawn over them in colour,
    ``cursor`` (a sample of the window) as a vertical line of dots."""
    canvas = DotCanvas(max(1, width), max(1, height))
    t, k = traces.shape
    plot_w = max(1, width - label_width)
    n_dots = 2 * plot_w
    if k == 0 or t == 0:
        return canvas.lines()
    row_h = 4.0 * height / k  # dots per channel strip
    half = row_h / 2.0
    mid = (np.arange(k) + 0.5) * row_h

    def draw(color: str, cover: np.ndarray | None = None, rows: np.ndarray | None = None) -> None:
        lo, hi = envelope(traces, n_dots, cover, rows)
        n = lo.shape[0]
        xs = 2 * label_width + (np.arange(n) + 0.5) * n_dots / n
        # (k, 2n): lo, hi, lo, hi... of each channel, clipped to 1.5 strips, in one pass
        zy = _zigzag(lo, hi, mid, float(scale), float(half))
        _raster_shared_x(canvas.layer(color), np.repeat(xs, 2), zy)

    draw(GREY)
    for m in marks:
        cover = m.cover(t)
        if cover.any() and m.rows.size:
            draw(m.color, cover, m.rows)
    if cursor is not None and 0 <= cursor < t:
        cx = 2 * label_width + cursor / t * n_dots
        canvas.polylines(np.array([[cx, cx]]), np.array([[0.0, 4.0 * height - 1]]), "#ffff5f")
    step = max(1, int(np.ceil(k / max(1, height))))  # labels that fit, one per text row
    for i in range(0, k, step):
        row = int(mid[i] / 4.0)
        canvas.label(0, min(height - 1, row), labels[i][:label_width].rjust(label_width - 1))
    return canvas.lines()


# ---------------------------------------------------------------------- probe
def render_probe(
    positions: np.ndarray,
    lit: Sequence[tuple[np.ndarray, str]],
    width: int,
    height: int,
    *,
    span: tuple[float, float] | None = None,
) -> list[Text]:
    """The probe's sites as dots (a cell per site, or per group of sites when the probe is
    taller than the panel), the ``lit`` channel sets in their colours (later sets on top),
    and ``span`` (a depth range in µm, e.g. the trace view's channels) marked on the left."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    out = [[" "] * width for _ in range(height)]
    styles: list[list[str]] = [[""] * width for _ in range(height)]
    if pos.shape[0] == 0 or width < 3 or height < 1:
        return [Text("".join(r), end="") for r in out]
    xs = np.unique(np.round(pos[:, 0], 3))
    ymin, ymax = float(pos[:, 1].min()), float(pos[:, 1].max())
    usable_w = width - 2
    col_of = np.searchsorted(xs, np.round(pos[:, 0], 3))
    if xs.shape[0] > usable_w:
        col_of = (col_of * usable_w) // xs.shape[0]
    else:
        col_of = col_of * max(1, usable_w // max(1, xs.shape[0]))
    col_of = np.minimum(col_of + 2, width - 1)

    def row_of(y: np.ndarray) -> np.ndarray:
        if ymax <= ymin:
            return np.zeros(np.shape(y), dtype=int)
        r = np.round((ymax - np.asarray(y)) / (ymax - ymin) * (height - 1)).astype(int)
        return np.clip(r, 0, height - 1)

    rows = row_of(pos[:, 1])
    for r, c in zip(rows.tolist(), col_of.tolist(), strict=True):
        out[r][c] = "·"
        styles[r][c] = GREY
    for chans, color in lit:
        for ch in np.asarray(chans, dtype=int).tolist():
            if 0 <= ch < pos.shape[0]:
                out[rows[ch]][col_of[ch]] = "●"
                styles[rows[ch]][col_of[ch]] = color
    if span is not None:
        r0, r1 = sorted(row_of(np.array(span)).tolist())
        for r in range(r0, r1 + 1):
            out[r][0] = "│"
            styles[r][0] = "#ffff5f"
    lines = []
    for r in range(height):
        spans = [Span(c, c + 1, styles[r][c]) for c in range(width) if styles[r][c]]
        lines.append(Text("".join(out[r]), spans=spans, no_wrap=True, end=""))
    return lines
