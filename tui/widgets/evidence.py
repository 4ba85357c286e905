"""The evidence of a merge proposal as text plots (pure: numpy and rich, no Textual).

:func:`render_evidence` draws a :class:`curalog.analysis.proposals.Evidence` into exactly ``height``
lines of ``width`` cells, for a :class:`curalog_tui.widgets.scatter.ScatterView`:

* the cross-correlogram of the pair (phy's symmetrised CCG, positive lags = ``b`` after
  ``a``) and the two autocorrelograms, as bar charts with the refractory window in red
  and an axis with ticks at 0 and +-refractory (phy's correlogram view: ACG, CCG, ACG);
* amplitude over time and template depth over time of both clusters (braille line plots,
  128 time bins, a gap where a cluster has no spike): pieces of one drifting neuron hand
  over to each other at the same amplitude and depth;
* both mean templates overlaid on the pair's best channels (braille).

Cluster ``a`` is drawn in :data:`COLOR_A`, ``b`` in :data:`COLOR_B`; a braille cell that
holds dots of both is :data:`COLOR_BOTH`. Heights adapt to the space (a 80x24 terminal
gets 3-row charts, a 160x45 one twice that); two columns from 60 cells wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text

from ..plots import bar_chart, correlogram_axis, correlogram_marks

if TYPE_CHECKING:
    from curalog.analysis.proposals import Evidence, Proposal

COLOR_A = "#5fafff"
COLOR_B = "#ffaf00"
COLOR_BOTH = "#ffffff"
CCG_STYLE = "#d787ff"
#: The depth plot spans at least this much (the engine's position scale is 20 µm).
DEPTH_SPAN_UM = 20.0
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


@dataclass
class EvidenceData:
    """An :class:`~curalog.analysis.proposals.Evidence` with what the screen adds for display."""

    evidence: Evidence
    channel_labels: list[str] = field(default_factory=list)
    ms: float = 0.0  # time the worker took
    #: lines rendered in the worker for a ``(width, height)`` area, reused when it still fits
    rendered: tuple[int, int, list[Text]] | None = None
    #: per-time-bin mean spike amplitude (``amplitudes.npy``, a.u.) of both clusters: the
    #: scale of the table's ``amp[au]``, the split screen and the amplitude view
    spike_amplitude: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def proposal(self) -> Proposal:
        return self.evidence.proposal


def amplitude_series(
    spike_times: np.ndarray,
    amplitudes: np.ndarray,
    spikes: np.ndarray,
    sample_rate: float,
    duration: float,
    n_bins: int,
) -> np.ndarray:
    """Mean ``amplitudes.npy`` of ``spikes`` in ``n_bins`` equal time bins (NaN: no spike)."""
    s = np.asarray(spikes)
    t = np.asarray(spike_times[s], dtype=np.float64) / float(sample_rate)
    a = np.asarray(amplitudes[s], dtype=np.float64)
    k = np.clip((t / max(duration, 1e-12) * n_bins).astype(np.int64), 0, n_bins - 1)
    n = np.bincount(k, minlength=n_bins).astype(np.float64)
    tot = np.bincount(k, weights=a, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, tot / n, np.nan)


# --------------------------------------------------------------------- small pieces
def _pad(text: Text, width: int) -> Text:
    t = text.copy()
    t.no_wrap = True
    t.truncate(width, overflow="ellipsis", pad=True)
    return t


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2g}"


def _dots(values: np.ndarray, width: int, height: int, lo: float, hi: float) -> np.ndarray:
    """Braille dot grid (``4 height x 2 width``, row 0 at the top) of a line over its index:
    consecutive finite values are joined by a vertical run at the middle column, NaN leaves
    a gap (vectorised: no Python loop per point)."""
    ph, pw = 4 * height, 2 * width
    dots = np.zeros((ph, pw), dtype=bool)
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[0]
    if n == 0:
        return dots
    xs = np.round(np.linspace(0, pw - 1, n)).astype(np.int64) if n > 1 else np.array([pw // 2])
    if hi > lo and math.isfinite(lo) and math.isfinite(hi):
        ys = np.clip(np.round((np.nan_to_num(v) - lo) / (hi - lo) * (ph - 1)), 0, ph - 1).astype(
            np.int64
        )
    else:
        ys = np.full(n, ph // 2, dtype=np.int64)
    ok = np.isfinite(v)
    dots[ph - 1 - ys[ok], xs[ok]] = True
    seg = ok[:-1] & ok[1:]  # joined neighbours
    if seg.any():
        x0, x1 = xs[:-1][seg], xs[1:][seg]
        y0, y1 = ys[:-1][seg], ys[1:][seg]
        lo_y, hi_y = np.minimum(y0, y1), np.maximum(y0, y1)
        lengths = hi_y - lo_y + 1
        start = np.repeat(np.cumsum(lengths) - lengths, lengths)
        yy = np.repeat(lo_y, lengths) + (np.arange(int(lengths.sum())) - start)
        xx = np.repeat((x0 + x1) // 2, lengths)
        dots[ph - 1 - yy, xx] = True
    return dots


def _cells(dots: np.ndarray) -> np.ndarray:
    """Braille bits per cell of a dot grid (``4h x 2w`` -> ``h x w``)."""
    h, w = dots.shape[0] // 4, dots.shape[1] // 2
    d = dots.reshape(h, 4, w, 2)
    out = np.zeros((h, w), dtype=np.int64)
    for r in range(4):
        for c in range(2):
            out += d[:, r, :, c].astype(np.int64) * _BITS[r][c]
    return out


def pair_lines(
    ya: np.ndarray,
    yb: np.ndarray,
    width: int,
    height: int,
    lo: float,
    hi: float,
    *,
    color_a: str = COLOR_A,
    color_b: str = COLOR_B,
) -> list[Text]:
    """Two series as one braille plot, ``height`` lines of ``width`` cells."""
    width, height = max(1, width), max(1, height)
    ca = _cells(_dots(ya, width, height, lo, hi))
    cb = _cells(_dots(yb, width, height, lo, hi))
    # 0 blank, 1 a, 2 b, 3 both
    who = (ca > 0).astype(np.int8) + 2 * (cb > 0).astype(np.int8)
    styles = ("", color_a, color_b, COLOR_BOTH)
    codes = (ca | cb) + 0x2800
    lines = []
    for r in range(height):
        chars = "".join(map(chr, codes[r].tolist()))
        t = Text(chars, no_wrap=True)
        row = who[r]
        cuts = np.flatnonzero(np.diff(row)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [width]])
        for s0, s1 in zip(starts.tolist(), ends.tolist(), strict=True):
            if row[s0]:
                t.stylize(styles[int(row[s0])], s0, s1)
        lines.append(t)
    return lines


def _range(*series: np.ndarray) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in series])
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return (0.0, 1.0)
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        half = max(abs(lo) * 0.05, 0.5)
        return (lo - half, hi + half)
    return (lo, hi)


# --------------------------------------------------------------------- blocks
def correlogram_block(
    values: np.ndarray,
    title: Text,
    width: int,
    rows: int,
    *,
    bin_ms: float,
    window_ms: float,
    refractory_ms: float,
    style: str,
    axis_labels: bool,
) -> list[Text]:
    """Title, a ``rows``-row bar chart with the refractory bins marked, the axis (and its
    end labels)."""
    v = np.asarray(values, dtype=np.float64)
    marks = correlogram_marks(v.shape[0], width, bin_ms, refractory_ms)
    chart = bar_chart(v, width, rows, style=style, marked=marks).split("\n")
    axis = correlogram_axis(width, window_ms, refractory_ms).split("\n")
    out = [_pad(title, width), *chart, axis[0]]
    if axis_labels:
        out.append(axis[1] if len(axis) > 1 else Text(""))
    return [_pad(t, width) for t in out]


def time_block(
    title: str,
    unit: str,
    ya: np.ndarray,
    yb: np.ndarray,
    width: int,
    rows: int,
    duration: float,
    *,
    from_zero: bool = False,
    min_span: float = 0.0,
) -> list[Text]:
    """Title and a braille plot of two per-time-bin series. ``from_zero``: the y axis starts
    at 0 (amplitudes: a step looks as large as it is); ``min_span``: the y range is at least
    this wide (depths: two pieces 0.3 µm apart must not look far apart)."""
    lo, hi = _range(ya, yb)
    if from_zero and lo > 0:
        lo = 0.0
    if hi - lo < min_span:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 0.5 * min_span, mid + 0.5 * min_span
    head = Text.assemble(
        (title, "bold"),
        (f"  {_fmt(lo)}–{_fmt(hi)}{unit}", "dim"),
        (f", 0–{duration / 60:.0f} min" if duration >= 120 else f", 0–{duration:.0f} s", "dim"),
    )
    return [_pad(head, width), *pair_lines(ya, yb, width, rows, lo, hi)]


def template_block(ev: Evidence, labels: list[str], width: int, rows: int) -> list[Text]:
    ta = np.asarray(ev.template_a, dtype=np.float64)
    tb = np.asarray(ev.template_b, dtype=np.float64)
    n = int(ta.shape[1]) if ta.ndim == 2 else 0
    k = min(n, max(1, (width + 1) // 10))
    head = Text.assemble(
        ("templates", "bold"),
        (f"  on the {k} best channels" if k else "  (no templates.npy)", "dim"),
    )
    if not k:
        return [_pad(head, width)] + [Text(" " * width) for _ in range(rows + 1)]
    each = max(4, (width - (k - 1)) // k)
    lo, hi = _range(ta[:, :k], tb[:, :k])
    panels = [pair_lines(ta[:, i], tb[:, i], each, rows, lo, hi) for i in range(k)]
    out = [_pad(head, width)]
    for r in range(rows):
        out.append(_pad(Text(" ").join(p[r] for p in panels), width))
    names = [labels[i] if i < len(labels) else str(int(ev.channels[i])) for i in range(k)]
    out.append(
        _pad(Text(" ").join(Text(f"ch {s}"[:each].ljust(each), style="dim") for s in names), width)
    )
    return out


def _side_by_side(blocks: list[list[Text]], widths: list[int], gap: int = 2) -> list[Text]:
    n = max(len(b) for b in blocks)
    out = []
    for r in range(n):
        parts = [(b[r] if r < len(b) else Text("")) for b in blocks]
        line = Text(no_wrap=True)
        for i, (p, w) in enumerate(zip(parts, widths, strict=True)):
            if i:
                line.append(" " * gap)
            line.append_text(_pad(p, w))
        out.append(line)
    return out


@dataclass
class Heights:
    ccg: int  # bar-chart rows of the correlograms
    axis_labels: bool
    time: int  # rows of the amplitude / depth plots
    template: int  # rows of the template overlay
    gaps: int  # blank lines between the three rows of blocks (0-2)

    @property
    def total(self) -> int:
        return (self.ccg + 2 + self.axis_labels) + (self.time + 1) + (self.template + 2) + self.gaps


def layout_heights(height: int, *, stacked: bool = False) -> Heights:
    """Share ``height`` lines between the blocks (minimum 2-row charts; the extra lines go
    round-robin to gaps, charts, time plots and templates, up to a comfortable maximum)."""
    h = Heights(ccg=2, axis_labels=False, time=2, template=2, gaps=0)
    extra = height - h.total - (h.time + 1 if stacked else 0)
    steps = ["gaps", "ccg", "time", "template", "gaps", "axis", "ccg", "time", "template"]
    steps += ["ccg", "time", "template", "time", "template"] * 6
    for step in steps:
        if extra <= 0:
            break
        if step == "gaps" and h.gaps < 2:
            h.gaps += 1
        elif step == "axis" and not h.axis_labels:
            h.axis_labels = True
        elif step == "ccg" and h.ccg < 8:
            h.ccg += 1
        elif step == "time" and h.time < 12 and extra >= 1 + stacked:
            h.time += 1  # stacked: the two time plots are one above the other, both grow
            extra -= stacked
        elif step == "template" and h.template < 12:
            h.template += 1
        else:
            continue
        extra -= 1
    return h


def render_evidence(data: EvidenceData, width: int, height: int, *, duration: float) -> list[Text]:
    """Every plot of the evidence in ``height`` lines of ``width`` cells."""
    ev = data.evidence
    p = ev.proposal
    width = max(20, width)
    stacked = width < 60
    h = layout_heights(height, stacked=stacked)
    lags = np.asarray(ev.lags_ms, dtype=np.float64)
    bin_ms = float(lags[1] - lags[0]) if lags.shape[0] > 1 else 1.0
    window_ms = float(lags[-1] - lags[0]) if lags.shape[0] > 1 else 50.0
    rp = float(ev.refractory_ms)
    pe = p.evidence
    o, e = pe.get("coincidences", math.nan), pe.get("expected", math.nan)
    ccg_title = Text.assemble(
        ("CCG", "bold"),
        (f" {p.a}×{p.b}", "bold"),
        (f"  {o:.0f} of {e:.0f} expected in ±{rp:g} ms" if math.isfinite(e) else "", "dim"),
    )
    kw = {
        "bin_ms": bin_ms,
        "window_ms": window_ms,
        "refractory_ms": rp,
        "axis_labels": h.axis_labels,
    }
    left_w = width if stacked else (width - 2) // 2
    right_w = width if stacked else width - 2 - left_w
    acg_w = (right_w - 2) // 2
    ccg = correlogram_block(ev.ccg, ccg_title, left_w, h.ccg, style=CCG_STYLE, **kw)
    acg_a = correlogram_block(
        ev.acg_a,
        Text.assemble(("ACG ", "bold"), (str(p.a), f"bold {COLOR_A}")),
        acg_w,
        h.ccg,
        style=COLOR_A,
        **kw,
    )
    acg_b = correlogram_block(
        ev.acg_b,
        Text.assemble(("ACG ", "bold"), (str(p.b), f"bold {COLOR_B}")),
        right_w - 2 - acg_w,
        h.ccg,
        style=COLOR_B,
        **kw,
    )
    acgs = _side_by_side([acg_a, acg_b], [acg_w, right_w - 2 - acg_w])
    amp_a, amp_b = (
        data.spike_amplitude
        if data.spike_amplitude is not None
        else (ev.amplitude_a, ev.amplitude_b)
    )
    amp = time_block(
        "spike amplitude (a.u.)" if data.spike_amplitude is not None else "template amplitude",
        "",
        amp_a,
        amp_b,
        left_w,
        h.time,
        duration,
        from_zero=True,
    )
    pos = time_block(
        "depth over time",
        " µm",
        ev.position_a,
        ev.position_b,
        right_w,
        h.time,
        duration,
        min_span=DEPTH_SPAN_UM,
    )
    tpl = template_block(ev, data.channel_labels, width, h.template)
    lines: list[Text] = []
    blank = [Text("")]
    if stacked:
        lines += ccg + acgs + blank * min(1, h.gaps) + amp + pos + blank * max(0, h.gaps - 1) + tpl
    else:
        lines += _side_by_side([ccg, acgs], [left_w, right_w])
        lines += blank * min(1, h.gaps)
        lines += _side_by_side([amp, pos], [left_w, right_w])
        lines += blank * max(0, h.gaps - 1)
        lines += tpl
    lines = [_pad(t, width) for t in lines[:height]]
    while len(lines) < height:
        lines.append(Text(" " * width))
    return lines


def message_lines(text: Text, width: int, height: int) -> list[Text]:
    """A message in the evidence area (computing, nothing to show)."""
    lines = [Text(""), _pad(Text("  ") + text, max(1, width))]
    return lines + [Text("")] * max(0, height - len(lines))


__all__ = [
    "COLOR_A",
    "COLOR_B",
    "COLOR_BOTH",
    "EvidenceData",
    "Heights",
    "layout_heights",
    "message_lines",
    "pair_lines",
    "render_evidence",
]
