"""Text plots: sparklines from unicode blocks, braille line/scatter plots, histograms.

Everything here is a pure function of numpy arrays returning ``rich.text.Text``; nothing
touches Textual, so the plots are cheap to cache per cluster and easy to test.

Sparklines are scaled **from zero** (a flat correlogram stays flat instead of being
stretched from its minimum, as Textual's own Sparkline does), an exact zero is drawn as a
blank so a refractory dip is visible, and bins inside the refractory period can be
coloured to catch the eye.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.text import Text

#: Nine levels: blank for exactly zero, then eighths.
BLOCKS = " ▁▂▃▄▅▆▇█"
#: One-line sparklines stop at ▆ (6/8): a quarter of every cell stays empty, so the
#: sparklines of consecutive table rows never touch. Terminals whose rows abut exactly (the
#: browser's xterm.js, many GPU terminals) otherwise merge a column of them into one
#: striped block (checked by ``bench/serve_screenshot.py``).
SPARK_LEVELS = 6
#: Explicit colours from the xterm-256 cube (exact in 256-colour and true-colour terminals,
#: the same in the browser), never ANSI names that each terminal theme redefines.
REFRACTORY_STYLE = "bold #ff005f"
BAR_STYLE = "#5fd7ff"
CCG_STYLE = "#ffaf00"


def rebin(values: np.ndarray, width: int) -> np.ndarray:
    """Sum ``values`` into ``width`` nearly equal consecutive buckets (NaN counts as 0)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    n = v.shape[0]
    if width <= 0:
        return np.zeros(0)
    if n == 0:
        return np.zeros(width)
    if n == width:
        return v
    edges = np.linspace(0, n, width + 1)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    # Fractional edges: interpolate the cumulative sum so buckets share boundary bins.
    cum = np.interp(edges, np.arange(n + 1), csum)
    return np.diff(cum)


def levels(values: np.ndarray, vmax: float | None = None, n_levels: int = 8) -> np.ndarray:
    """Integer levels ``0..n_levels`` scaled from zero (rounded): 0 only for values <= 0."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    top = float(v.max()) if vmax is None and v.size else float(vmax or 0.0)
    if top <= 0:
        return np.zeros(v.shape[0], dtype=np.int64)
    pos = np.clip(v, 0, None)
    lv = np.rint(pos / top * n_levels).astype(np.int64)
    lv[(pos > 0) & (lv == 0)] = 1  # any count shows, however small
    return np.clip(lv, 0, n_levels)


def sparkline(
    values: Sequence[float] | np.ndarray,
    width: int | None = None,
    *,
    style: str = BAR_STYLE,
    marked: np.ndarray | None = None,
    marked_style: str = REFRACTORY_STYLE,
) -> Text:
    """One line of blocks, 0-based; ``marked`` (bool per output cell) gets ``marked_style``."""
    v = np.asarray(values, dtype=np.float64)
    if width is not None:
        v = rebin(v, width)
    lv = levels(v, n_levels=SPARK_LEVELS)
    text = Text("".join(BLOCKS[i] for i in lv), style=style, no_wrap=True, overflow="crop")
    if marked is not None:
        for i in np.flatnonzero(marked[: len(lv)]):
            text.stylize(marked_style, int(i), int(i) + 1)
    return text


def bar_chart(
    values: Sequence[float] | np.ndarray,
    width: int,
    height: int,
    *,
    style: str = BAR_STYLE,
    marked: np.ndarray | None = None,
    marked_style: str = REFRACTORY_STYLE,
) -> Text:
    """A ``height``-row bar chart (8 levels per row), scaled from zero, as one Text."""
    v = rebin(np.asarray(values, dtype=np.float64), width)
    lv = levels(v, n_levels=8 * height)
    rows: list[Text] = []
    for r in range(height - 1, -1, -1):
        chars = []
        for x in lv:
            fill = int(x) - 8 * r
            chars.append(BLOCKS[max(0, min(8, fill))])
        line = Text("".join(chars), style=style, no_wrap=True)
        if marked is not None:
            for i in np.flatnonzero(marked[: len(lv)]):
                line.stylize(marked_style, int(i), int(i) + 1)
        rows.append(line)
    return Text("\n").join(rows)


def correlogram_marks(
    n_bins: int, width: int, bin_ms: float, refractory_ms: float, *, half: bool = False
) -> np.ndarray:
    """Which of ``width`` output cells cover lags within ``refractory_ms`` of zero.

    ``n_bins`` bins of ``bin_ms`` are centred on zero (bin ``n_bins // 2`` is ``[0, bin)``),
    or, with ``half``, start at lag zero.
    """
    centre = 0 if half else n_bins // 2
    lag_left = (np.arange(n_bins) - centre) * bin_ms  # left edge of each bin
    in_rp = (lag_left < refractory_ms) & (lag_left + bin_ms > -refractory_ms)
    if half:
        in_rp = lag_left < refractory_ms
    cover = rebin(in_rp.astype(np.float64), width)
    return cover > 0.5 * (n_bins / max(1, width))


def correlogram_axis(width: int, window_ms: float, refractory_ms: float) -> Text:
    """An axis line under a centred correlogram: ticks at 0 and +-refractory, end labels."""
    chars = ["─"] * width
    half = window_ms / 2.0

    def col(ms: float) -> int:
        return int(min(width - 1, max(0, round((ms + half) / window_ms * (width - 1)))))

    for ms in (-refractory_ms, refractory_ms):
        chars[col(ms)] = "╨"
    chars[col(0.0)] = "┴"
    text = Text("".join(chars), style="dim")
    for i in (col(-refractory_ms), col(refractory_ms)):
        text.stylize(REFRACTORY_STYLE, i, i + 1)
    left, right = f"-{half:g}ms", f"+{half:g}ms"
    if width > len(left) + len(right) + 6:
        return Text.assemble(
            text, "\n", Text(left + " " * (width - len(left) - len(right)) + right, style="dim")
        )
    return text


# --------------------------------------------------------------------- braille canvas
_BRAILLE_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


class BrailleCanvas:
    """A ``width`` x ``height`` character canvas with 2 x 4 dots per character."""

    def __init__(self, width: int, height: int):
        self.width = max(1, width)
        self.height = max(1, height)
        self.dots = np.zeros((self.height * 4, self.width * 2), dtype=bool)

    def points(self, x: np.ndarray, y: np.ndarray) -> None:
        """Set dots at pixel coordinates (x right, y *up*), clipping outside points."""
        xi = np.asarray(x, dtype=np.int64)
        yi = self.dots.shape[0] - 1 - np.asarray(y, dtype=np.int64)
        ok = (xi >= 0) & (xi < self.dots.shape[1]) & (yi >= 0) & (yi < self.dots.shape[0])
        self.dots[yi[ok], xi[ok]] = True

    def polyline(self, x: np.ndarray, y: np.ndarray) -> None:
        """Connect consecutive points with vertical runs (good enough for waveforms)."""
        xi = np.asarray(x, dtype=np.int64)
        yi = np.asarray(y, dtype=np.int64)
        for k in range(len(xi)):
            lo, hi = (yi[k], yi[k]) if k == 0 else sorted((yi[k - 1], yi[k]))
            if k > 0:
                # Draw the vertical part at the midpoint column to keep the trace continuous.
                xm = (xi[k - 1] + xi[k]) // 2
                ys = np.arange(lo, hi + 1)
                self.points(np.full(ys.shape, xm), ys)
            self.points(np.array([xi[k]]), np.array([yi[k]]))

    def render(self, style: str = BAR_STYLE) -> Text:
        h, w = self.height, self.width
        d = self.dots.reshape(h, 4, w, 2)
        codes = np.full((h, w), 0x2800, dtype=np.int64)
        for r in range(4):
            for c in range(2):
                codes += d[:, r, :, c].astype(np.int64) * _BRAILLE_BITS[r][c]
        lines = ["".join(chr(int(c)) for c in row) for row in codes]
        return Text("\n".join(lines), style=style, no_wrap=True)


def _scale(v: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return np.full(v.shape, n // 2, dtype=np.int64)
    return np.clip(np.round((v - lo) / (hi - lo) * (n - 1)), 0, n - 1).astype(np.int64)


def line_plot(
    y: np.ndarray,
    width: int,
    height: int,
    *,
    lo: float | None = None,
    hi: float | None = None,
    style: str = BAR_STYLE,
) -> Text:
    """A braille line plot of ``y`` over its index, scaled to ``[lo, hi]`` (default min/max)."""
    y = np.nan_to_num(np.asarray(y, dtype=np.float64))
    canvas = BrailleCanvas(width, height)
    if y.size == 0:
        return canvas.render(style)
    lo = float(y.min()) if lo is None else lo
    hi = float(y.max()) if hi is None else hi
    px = canvas.dots.shape[1]
    xs = np.round(np.linspace(0, px - 1, y.shape[0])).astype(np.int64)
    ys = _scale(y, lo, hi, canvas.dots.shape[0])
    canvas.polyline(xs, ys)
    return canvas.render(style)


def scatter_plot(
    x: np.ndarray,
    y: np.ndarray,
    width: int,
    height: int,
    *,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    style: str = BAR_STYLE,
    hline: float | None = None,
) -> Text:
    """A braille scatter plot; ``hline`` draws a horizontal marker (e.g. a threshold)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    canvas = BrailleCanvas(width, height)
    if x.size == 0:
        return canvas.render(style)
    xlo, xhi = x_range if x_range else (float(x.min()), float(x.max()))
    ylo, yhi = y_range if y_range else (float(y.min()), float(y.max()))
    ph, pw = canvas.dots.shape
    canvas.points(_scale(x, xlo, xhi, pw), _scale(y, ylo, yhi, ph))
    if hline is not None and yhi > ylo:
        yy = _scale(np.array([hline]), ylo, yhi, ph)[0]
        canvas.points(np.arange(0, pw, 2), np.full(len(range(0, pw, 2)), yy))
    return canvas.render(style)


def histogram_rows(
    counts: np.ndarray,
    edges: np.ndarray,
    *,
    width: int,
    marker: float | None = None,
    fmt: str = "{:>8.3g}",
    high_first: bool = False,
) -> Text:
    """A horizontal histogram: one row per bin, ``edge │████ count``; the bin holding
    ``marker`` is highlighted (used for the amplitude threshold). ``high_first`` puts the
    highest bin on top, so a larger value is drawn higher (an up key moves the marker up)."""
    counts = np.asarray(counts, dtype=np.int64)
    top = max(1, int(counts.max()) if counts.size else 1)
    label_w = len(fmt.format(0.0))
    bar_w = max(4, width - label_w - 10)
    rows = []
    for i, c in enumerate(counts):
        lo, hi = float(edges[i]), float(edges[i + 1])
        full = c / top * bar_w
        n_full = int(full)
        frac = int(round((full - n_full) * 8))
        bar = "█" * n_full + (BLOCKS[frac] if frac and n_full < bar_w else "")
        hit = marker is not None and (lo <= marker < hi or (i == len(counts) - 1 and marker == hi))
        below = marker is not None and hi <= marker
        style = "bold yellow" if hit else ("magenta" if below else BAR_STYLE)
        line = Text.assemble(
            Text(fmt.format(lo), style="dim"),
            Text(" ▶" if hit else " │", style="bold yellow" if hit else "dim"),
            Text(bar.ljust(bar_w), style=style),
            Text(f" {int(c):>7,}", style="dim"),
        )
        rows.append(line)
    if high_first:
        rows.reverse()
    return Text("\n").join(rows)
