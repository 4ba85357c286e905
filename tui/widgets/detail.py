"""The detail panel: wide correlograms, the template waveform and time series of a cluster.

Its data (:class:`Detail`) is computed in a worker thread; the plots are drawn at the
panel's current width when painted, so they follow terminal resizes for free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget

from ..model import GROUP_STYLES
from ..plots import (
    bar_chart,
    correlogram_axis,
    correlogram_marks,
    line_plot,
    scatter_plot,
    sparkline,
)
from ..stats_adapter import Waveform


@dataclass
class Detail:
    best: int
    similar: int | None
    group: str | None
    n_spikes: int
    row: dict[str, Any]
    acg: np.ndarray
    ccg: np.ndarray | None
    waveform: Waveform | None
    amp_points: tuple[np.ndarray, np.ndarray] | None
    fr_series: np.ndarray
    duration: float
    bin_ms: float
    window_ms: float
    refractory_ms: float
    raw_uv: float | None = None  # raw amplitude in µV (a recording with a known gain)


class Plot(Widget):
    """A titled plot drawn by ``draw(width) -> Text`` at the widget's width."""

    DEFAULT_CSS = """
    Plot { height: auto; margin-bottom: 1; }
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.title: Text = Text("")
        self.draw: Callable[[int], Text] | None = None

    def set(self, title: Text | str, draw: Callable[[int], Text] | None) -> None:
        self.title = title if isinstance(title, Text) else Text(title, style="bold")
        self.draw = draw
        self.refresh(layout=True)

    def render(self) -> Text:
        width = max(10, self.size.width or 40)
        if self.draw is None:
            return self.title
        try:
            body = self.draw(width)
        except Exception as exc:  # a plot must never take the UI down
            body = Text(f"(cannot draw: {exc})", style="dim")
        return Text.assemble(self.title, "\n", body)


def _corr_draw(values: np.ndarray, d: Detail, style: str) -> Callable[[int], Text]:
    def draw(width: int) -> Text:
        marks = correlogram_marks(values.shape[0], width, d.bin_ms, d.refractory_ms)
        chart = bar_chart(values, width, 3, style=style, marked=marks)
        return Text.assemble(chart, "\n", correlogram_axis(width, d.window_ms, d.refractory_ms))

    return draw


def _wave_draw(w: Waveform) -> Callable[[int], Text]:
    def draw(width: int) -> Text:
        k = w.traces.shape[1]
        each = max(6, (width - (k - 1)) // k)
        lo, hi = float(w.traces.min()), float(w.traces.max())
        plots = [
            line_plot(w.traces[:, i], each, 4, lo=lo, hi=hi, style="green" if i == 0 else "cyan")
            for i in range(k)
        ]
        lines = [p.split("\n") for p in plots]
        rows = []
        for r in range(4):
            rows.append(Text(" ").join(ln[r] if r < len(ln) else Text(" " * each) for ln in lines))
        labels = Text(" ").join(
            Text(f"ch {lab}"[:each].ljust(each), style="dim") for lab in w.channel_labels
        )
        return Text("\n").join([*rows, labels])

    return draw


class DetailPanel(VerticalScroll):
    """Plots for the best cluster (and the similar one for the CCG)."""

    DEFAULT_CSS = """
    DetailPanel { padding: 0 1; }
    """

    def compose(self):
        self.header = Plot(id="detail-header")
        self.acg_plot = Plot(id="detail-acg")
        self.ccg_plot = Plot(id="detail-ccg")
        self.wave_plot = Plot(id="detail-wave")
        self.amp_plot = Plot(id="detail-amp")
        self.fr_plot = Plot(id="detail-fr")
        yield from (
            self.header,
            self.acg_plot,
            self.ccg_plot,
            self.wave_plot,
            self.amp_plot,
            self.fr_plot,
        )

    def clear_detail(self, message: str = "no cluster selected") -> None:
        self.header.set(Text(message, style="dim"), None)
        for p in (self.acg_plot, self.ccg_plot, self.wave_plot, self.amp_plot, self.fr_plot):
            p.set("", None)

    def show(self, d: Detail) -> None:
        r = d.row
        style = GROUP_STYLES.get(d.group, "") or "bold"
        bits = [f"{d.n_spikes:,} spikes", f"{r.get('firing_rate', 0):.2f} Hz"]
        if r.get("template") is not None:
            bits.append(f"template {r['template']}")
        if r.get("ch") is not None:
            bits.append(f"ch {r['ch']}")
        isi = r.get("isi_violations_ratio")
        if isi is not None and np.isfinite(isi):
            bits.append(f"isi {isi:.2f}")
        t_amp, s_amp = r.get("template_amplitude"), r.get("amplitude_median_npy")
        if t_amp is not None and np.isfinite(t_amp):
            bits.append(f"amp[t] {t_amp:.3g}")
        if s_amp is not None and np.isfinite(s_amp):
            bits.append(f"amp[au] {s_amp:.3g}")
        if d.raw_uv is not None and np.isfinite(d.raw_uv):
            bits.append(f"amp[µV] {d.raw_uv:.0f}")
        self.header.set(
            Text.assemble(
                (f"cluster {d.best}", "bold " + style),
                ("  " + (d.group or "unsorted"), style),
                ("\n" + " · ".join(bits), "dim"),
            ),
            None,
        )
        acg = np.asarray(d.acg, dtype=np.float64)
        self.acg_plot.set(
            Text.assemble(
                ("ACG", "bold"),
                (f"  {d.bin_ms:g} ms bins, refractory ±{d.refractory_ms:g} ms", "dim"),
            ),
            _corr_draw(acg, d, "cyan"),
        )
        if d.ccg is not None and d.similar is not None:
            self.ccg_plot.set(
                Text.assemble(
                    ("CCG", "bold"),
                    (f"  {d.best} × {d.similar} (+: {d.similar} after {d.best})", "dim"),
                ),
                _corr_draw(np.asarray(d.ccg, dtype=np.float64), d, "yellow"),
            )
        else:
            self.ccg_plot.set(Text("CCG  (select a similar cluster)", style="dim"), None)
        if d.waveform is not None:
            w = d.waveform
            self.wave_plot.set(
                Text.assemble(
                    ("template", "bold"), (f"  {w.template} on its best channels", "dim")
                ),
                _wave_draw(w),
            )
        else:
            self.wave_plot.set(Text("template  (no templates.npy)", style="dim"), None)
        if d.amp_points is not None:
            t, a = d.amp_points
            finite = a[np.isfinite(a)]
            top = float(finite.max()) if finite.size else 1.0
            self.amp_plot.set(
                Text.assemble(
                    ("spike amplitude (a.u.)", "bold"),
                    (f" 0-{top:.3g}, 0-{d.duration:.0f} s", "dim"),
                ),
                lambda width: scatter_plot(
                    t, a, width, 3, x_range=(0.0, d.duration), y_range=(0.0, top)
                ),
            )
        else:
            self.amp_plot.set(Text("spike amplitude  (no amplitudes.npy)", style="dim"), None)
        fr = np.nan_to_num(np.asarray(d.fr_series, dtype=np.float64))
        top_fr = float(fr.max()) if fr.size else 0.0
        self.fr_plot.set(
            Text.assemble(("firing rate over time", "bold"), (f"  max {top_fr:.3g} Hz", "dim")),
            lambda width: (
                Text.assemble(bar_chart(fr, width, 2, style="magenta")) if fr.size else Text("")
            ),
        )


__all__ = ["Detail", "DetailPanel", "Plot", "sparkline"]
