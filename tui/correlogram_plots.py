"""Text renderings of the correlogram matrix and of ISI histograms (pure functions).

A correlogram cell is a bar chart of the rate of the column's cluster around a spike of the
row's cluster (Hz, phy's CorrelogramView), scaled from zero to the larger of its peak and its
baseline, with:

* the refractory window (``|lag| < refractory``) shaded (dark red background) and its bars red;
* the firing-rate baseline (the column cluster's mean rate, what two independent trains give)
  drawn as a dotted line ``┄`` wherever the bars do not reach it;
* the diagonal (auto-correlograms) in the cluster's colour, the cross-correlograms in grey.

Nothing here touches Textual: the screen (``screens/correlograms.py``) caches the lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.text import Text

from curalog.analysis.stats import MatrixResult

from .braille import CLUSTER_COLORS
from .plots import BLOCKS, REFRACTORY_STYLE, rebin

SHADE = "on #3a1414"
BASELINE_CHAR = "┄"
BASELINE_STYLE = "#d7af5f"
CCG_STYLE = "#bcbcbc"


def cluster_color(i: int) -> str:
    return CLUSTER_COLORS[i % len(CLUSTER_COLORS)]


def refractory_columns(lags_ms: np.ndarray, bin_ms: float, width: int, refractory_ms: float):
    """Which of ``width`` output columns cover lags inside ``(-refractory, refractory)``.

    ``lags_ms`` are the bins' left edges; a column is refractory when most of its bins are.
    """
    inside = (lags_ms + bin_ms > -refractory_ms + 1e-9) & (lags_ms < refractory_ms - 1e-9)
    share = rebin(inside.astype(np.float64), width) / max(1e-12, lags_ms.shape[0] / width)
    return share >= 0.5


def bars(
    values: np.ndarray,
    width: int,
    height: int,
    *,
    baseline: float | None = None,
    style: str = CCG_STYLE,
    marked: np.ndarray | None = None,
    top: float | None = None,
) -> list[Text]:
    """``height`` lines of ``width`` block characters (bins averaged per column), from zero.

    ``marked`` columns are shaded and drawn red; the ``baseline`` (same unit as ``values``)
    is a dotted line where the bars stay under it.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    n = max(1, v.shape[0])
    cols = rebin(v, width) * (width / n)  # the mean of the bins in each column
    peak = float(cols.max()) if cols.size else 0.0
    scale = top if top is not None else max(peak, baseline or 0.0) * 1.05
    levels = np.zeros(width, dtype=np.int64)
    if scale > 0:
        levels = np.clip(np.rint(cols / scale * 8 * height), 0, 8 * height).astype(np.int64)
        levels[(cols > 0) & (levels == 0)] = 1
    base_level = None
    if baseline is not None and scale > 0 and baseline > 0:
        base_level = min(8 * height - 1, int(baseline / scale * 8 * height))
    marked = np.zeros(width, dtype=bool) if marked is None else marked[:width]
    lines: list[Text] = []
    for r in range(height - 1, -1, -1):
        line = Text(no_wrap=True, overflow="crop")
        for x in range(width):
            fill = int(levels[x]) - 8 * r
            ch = BLOCKS[max(0, min(8, fill))]
            st = REFRACTORY_STYLE if marked[x] else style
            if (
                base_level is not None
                and base_level // 8 == r
                and fill <= base_level % 8
                and ch in (" ", "▁")
            ):
                ch, st = BASELINE_CHAR, BASELINE_STYLE
            if marked[x]:
                st = f"{st} {SHADE}"
            line.append(ch, style=st)
        lines.append(line)
    return lines


def _fmt_hz(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def matrix_lines(
    res: MatrixResult, width: int, height: int, *, refractory_ms: float = 2.0
) -> list[Text]:
    """The whole matrix in ``width`` x ``height`` characters (at most ``height`` lines).

    Layout: a header line with the column clusters, then one block of rows per cluster (its
    id and peak rate on the left), then an axis line with the window's ends.
    """
    ids = res.cluster_ids
    n = len(ids)
    if n == 0:
        return [Text("no cluster selected", style="dim")]
    label_w = 7
    gap = 1
    cell_w = max(4, (width - label_w) // n - gap)
    cell_h = max(1, (height - 2) // n)
    lags = res.bins.lags_ms()
    bin_ms = res.bin_ms
    marks = refractory_columns(lags, bin_ms, cell_w, refractory_ms)
    header = Text(" " * label_w, no_wrap=True)
    for j, c in enumerate(ids):
        header.append(f"{c}".center(cell_w)[:cell_w], style=f"bold {cluster_color(j)}")
        header.append(" " * gap)
    lines = [header]
    for i, a in enumerate(ids):
        cells = []
        peaks = []
        for j in range(n):
            rate = res.rate(i, j)
            base = res.baseline(j)
            peaks.append(float(rate.max()) if rate.size else 0.0)
            style = cluster_color(i) if i == j else CCG_STYLE
            cells.append(bars(rate, cell_w, cell_h, baseline=base, style=style, marked=marks))
        for r in range(cell_h):
            if r == 0:
                left = Text(f"{a:>5}  "[:label_w], style=f"bold {cluster_color(i)}")
            elif r == 1:
                left = Text(f"{_fmt_hz(max(peaks)) + 'Hz':>6} "[:label_w], style="dim")
            else:
                left = Text(" " * label_w)
            line = Text(no_wrap=True, overflow="crop")
            line.append_text(left)
            for j in range(n):
                line.append_text(cells[j][r])
                line.append(" " * gap)
            lines.append(line)
    half = res.window_ms / 2
    lo, hi = f"-{half:g}", f"+{half:g}ms"
    axis = Text(" " * label_w, no_wrap=True, style="dim")
    for _ in range(n):
        pad = cell_w - len(lo) - len(hi)
        cell = lo + " " * pad + hi if pad >= 1 else "0".center(cell_w)
        axis.append(cell[:cell_w] + " " * gap)
    lines.append(axis)
    return lines[:height] if height > 0 else lines


def isi_lines(
    ids: Sequence[int],
    histograms: Sequence[tuple[np.ndarray, np.ndarray]],
    n_spikes: Sequence[int],
    width: int,
    height: int,
    *,
    refractory_ms: float = 2.0,
) -> list[Text]:
    """One block per cluster: a caption (spikes, intervals under the refractory period) and
    the ISI histogram as bars, refractory bins shaded; an axis line at the bottom."""
    n = len(ids)
    if n == 0:
        return [Text("no cluster selected", style="dim")]
    label_w = 7
    plot_w = max(8, width - label_w)
    block_h = max(2, (height - 1) // n)
    lines: list[Text] = []
    edges = histograms[0][1]
    for i, (cid, (counts, e), ns) in enumerate(zip(ids, histograms, n_spikes, strict=True)):
        left = e[:-1]
        bin_ms = float(e[1] - e[0]) if e.shape[0] > 1 else 1.0
        inside = left < refractory_ms - 1e-9
        marks = refractory_columns(left, bin_ms, plot_w, refractory_ms)
        viol = int(counts[inside].sum())
        share = viol / max(1, ns - 1)
        caption = Text(no_wrap=True, overflow="ellipsis")
        caption.append(f"{cid:>5}  ", style=f"bold {cluster_color(i)}")
        caption.append(f"{ns:,} spikes · ", style="dim")
        caption.append(
            f"{viol:,} ISIs < {refractory_ms:g} ms ({share:.2%})",
            style=REFRACTORY_STYLE if viol else "dim",
        )
        caption.append(f" · peak {int(counts.max()) if counts.size else 0:,}/bin", style="dim")
        lines.append(caption)
        for b in bars(counts, plot_w, block_h - 1, style=cluster_color(i), marked=marks):
            lines.append(Text.assemble(" " * label_w, b, no_wrap=True))
    lo, hi = "0", f"{edges[-1]:g} ms"
    lines.append(
        Text(" " * label_w + lo + " " * max(1, plot_w - len(lo) - len(hi)) + hi, style="dim")
    )
    return lines[:height]
