"""The waveform view (``w``): raw spike waveforms of the selected clusters, as phy's
WaveformView, with the probe beside it.

One box per channel, placed by ``channel_positions`` (a column per distinct x, a row per
distinct depth, the deepest... highest y at the top as phy), each a small braille plot with
the raw channel number in its corner. The channels are the first cluster's best channels
(:meth:`curalog.Curation.best_channels`); each cluster (the one under the cursor and its
similar one, or the marked ones) draws up to ``n`` spikes sampled over its whole recording
(:meth:`curalog.Curation.waveforms`) in its colour, dimmed, with its mean on top.

Keys: ``m`` means only, ``t`` templates (off, overlaid, alone), ``+`` / ``-`` more / fewer
channels, ``]`` / ``[`` more / fewer spikes, ``up`` / ``down`` amplitude zoom, ``s`` the
similar cluster on / off, ``p`` the probe panel, ``T`` the trace view, ``escape`` back.
Without a recording the view says why in one line and can still show the templates (``t``).
Waveforms are read in a thread worker; a key that only changes the drawing (means,
templates, zoom) redraws from the cached waveforms.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Static

from curalog import Curation
from curalog.errors import CuralogError

from ..braille import CLUSTER_COLORS
from ..session import CurationSession
from ..widgets import (
    KeyBar,
    ScatterView,
    WaveformSet,
    bar_keys,
    message_block,
    render_probe,
    render_waveforms,
)
from .help import KeyTableHelp

TEMPLATE_MODES = ("off", "overlaid", "alone")
SPIKE_STEPS = (25, 50, 100, 200, 400, 800)
PROBE_WIDTH = 9

WAVEFORM_KEYS = [
    ("m", "mean waveforms only / every spike with its mean"),
    ("t", "templates: off, overlaid on the waveforms, alone"),
    ("+ / -", "more / fewer channels (the best channels, then the nearest)"),
    ("] / [", "more / fewer spikes per cluster (spread over the whole recording)"),
    ("up / down", "amplitude zoom in / out"),
    ("s", "add / remove the similar cluster"),
    ("p", "probe panel on / off"),
    ("T", "trace view of the same clusters"),
    ("escape", "back to the cluster table"),
    ("? / h", "this help"),
]


class WaveformHelp(KeyTableHelp):
    """The keys of the waveform view."""

    TITLE = "waveform view: keys"
    KEY_WIDTH = 12

    def keys(self) -> list[tuple[str, str]]:
        return WAVEFORM_KEYS


def short_reason(cur: Curation, reason: str) -> str:
    """A reason with the dataset folder's prefix removed (the files are in it)."""
    folder = str(getattr(cur.dataset, "path", "") or "")
    if folder:
        reason = reason.replace(folder.rstrip(os.sep) + os.sep, "")
    return reason


class WaveformScreen(Screen[None]):
    """Raw waveforms of the selected clusters on their best channels."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("m", "toggle_mean", "means"),
        Binding("t", "templates", "templates"),
        Binding("plus,equals_sign", "channels(2)", "+ch"),
        Binding("minus", "channels(-2)", "-ch"),
        Binding("right_square_bracket", "spikes(1)", "+spikes"),
        Binding("left_square_bracket", "spikes(-1)", "-spikes"),
        Binding("up", "zoom(1.25)", "zoom", show=False),
        Binding("down", "zoom(0.8)", "unzoom", show=False),
        Binding("s", "toggle_similar", "+similar"),
        Binding("p", "toggle_probe", "probe", show=False),
        Binding("T", "traces", "traces"),
        Binding("question_mark,h", "help", "help"),
    ]
    #: Which shown keys the key bar keeps first when the line is short (lower first).
    BAR_PRIORITY = {
        "back": 0,
        "toggle_mean": 1,
        "templates": 2,
        "channels(2)": 3,
        "channels(-2)": 3,
        "spikes(1)": 4,
        "spikes(-1)": 4,
        "toggle_similar": 5,
        "traces": 6,
        "help": -1,
    }
    DEFAULT_CSS = """
    WaveformScreen { layout: vertical; }
    WaveformScreen #wf-title { height: 1; }
    WaveformScreen #wf-body { height: 1fr; }
    WaveformScreen #wf-plot { width: 1fr; height: 1fr; }
    WaveformScreen #wf-probe { width: 9; height: 1fr; }
    WaveformScreen #wf-info { height: 2; }
    """

    def __init__(
        self, session: CurationSession, cluster_ids: Sequence[int], similar: int | None = None
    ):
        super().__init__()
        self.session = session
        self.base_ids = [int(c) for c in cluster_ids]
        self.similar = None if similar is None else int(similar)
        self.with_similar = len(self.base_ids) == 1  # marked clusters: just those
        self.n_spikes = 100
        self.n_channels: int | None = None  # None: the template's best channels
        self.mean_only = False
        self.template_mode = 0
        self.zoom = 1.0
        self.show_probe = True
        self.gen = 0
        self.data: dict[int, Any] = {}  # cluster -> ClusterWaveforms (or None: templates only)
        self.templates: dict[int, np.ndarray | None] = {}
        self.channels: np.ndarray | None = None
        self.error: str | None = None
        self.computing = False
        self.timings: list[float] = []  # key (request) to lines handed to the widget, s
        self._t_request = 0.0
        self._waves_cache: list[tuple[Any, float, np.ndarray, np.ndarray]] = []
        self._drawn_size: tuple[int, int] | None = None  # the plot size last drawn at

    # ------------------------------------------------------------------ layout
    @property
    def cur(self) -> Curation:
        return self.session.cur

    def compose(self) -> ComposeResult:
        yield Static(id="wf-title")
        with Horizontal(id="wf-body"):
            yield ScatterView(id="wf-plot")
            yield Static(id="wf-probe")
        yield Static(id="wf-info")
        keys = bar_keys(self.BINDINGS, self.BAR_PRIORITY, quit_priority=7)
        yield KeyBar(keys, namespace="screen", id="wf-keys")

    @property
    def plot(self) -> ScatterView:
        return self.query_one("#wf-plot", ScatterView)

    def on_mount(self) -> None:
        self.request()

    def on_resize(self, event: Any) -> None:
        self.call_after_refresh(self._redraw_if_resized)

    def _redraw_if_resized(self) -> None:
        """Redraw for a new size only (a push's first resize would otherwise draw the same
        plot a second time right after the waveforms arrive)."""
        if self._plot_size() != self._drawn_size:
            self.redraw()

    def view_ids(self) -> list[int]:
        state = self.cur.state
        ids = [c for c in self.base_ids if c in state]
        sim = self.similar
        if self.with_similar and sim is not None and sim in state and sim not in ids:
            ids.append(sim)
        return ids[: len(CLUSTER_COLORS)]

    def _plot_size(self) -> tuple[int, int]:
        size = self.plot.size
        w, h = size.width, size.height
        if not w or not h:
            w = self.app.size.width - (PROBE_WIDTH if self.show_probe else 0)
            h = max(1, self.app.size.height - 4)
        return w, h

    # ------------------------------------------------------------------ data
    def request(self) -> None:
        """Read the waveforms of the current clusters / channels / spike count (worker)."""
        self.gen += 1
        self._t_request = time.perf_counter()
        ids = self.view_ids()
        if not ids:
            self.error = "no cluster selected (it was deleted): escape, then pick one"
            self.redraw()
            return
        self.computing = True
        self._update_info()
        self._read_worker(self.gen, ids, self.n_spikes, self.n_channels)

    @work(thread=True, exclusive=True, group="waveforms", exit_on_error=False)
    def _read_worker(self, gen: int, ids: list[int], n: int, k: int | None) -> None:
        cur = self.cur
        try:
            chans = cur.best_channels(ids[0], k)
            data: dict[int, Any] = {}
            templates: dict[int, np.ndarray | None] = {}
            rec = cur.recording
            for cid in ids:
                if rec is not None:
                    data[cid] = wf = cur.waveforms(cid, n=n, channels=chans)
                    templates[cid] = wf.template
                else:
                    data[cid] = None
                    templates[cid] = cur.cluster_template(cid, chans)
            error = None if rec is not None else short_reason(cur, str(cur.recording_error))
        except CuralogError as exc:
            self.app.call_from_thread(self._failed, gen, str(exc))
            return
        self.app.call_from_thread(self._loaded, gen, chans, data, templates, error)

    def _failed(self, gen: int, message: str) -> None:
        if gen != self.gen:
            return
        self.computing = False
        self.error = short_reason(self.cur, message)
        self.redraw()

    def _loaded(self, gen: int, chans, data, templates, error: str | None) -> None:
        if gen != self.gen:
            return
        self.computing = False
        self.channels = chans
        self.data = data
        self.templates = templates
        self.error = error
        self.redraw()
        self.timings.append(time.perf_counter() - self._t_request)

    # ------------------------------------------------------------------ drawing
    def _sets(self) -> tuple[list[WaveformSet], str]:
        """The layers to draw and the unit of the values."""
        sets = []
        unit = "template units"
        show_templates = TEMPLATE_MODES[self.template_mode]
        for i, cid in enumerate(self.view_ids()):
            color = CLUSTER_COLORS[i % len(CLUSTER_COLORS)]
            wf = self.data.get(cid)
            if wf is None:  # no recording: the templates are all there is
                tmpl = self.templates.get(cid)
                sets.append(WaveformSet(color, mean=tmpl))
                continue
            k = wf.uv_per_unit if wf.uv_per_unit is not None else 1.0
            unit = "µV" if wf.uv_per_unit is not None else "file units"
            template = wf.fitted_template() if show_templates != "off" else None
            if show_templates == "alone":
                sets.append(WaveformSet(color, template=None if template is None else template * k))
                continue
            waves, mean = self._display_waves(wf, k)
            sets.append(
                WaveformSet(
                    color,
                    waveforms=None if self.mean_only else waves,
                    mean=mean,
                    template=None if template is None else template * k,
                )
            )
        return sets, unit

    def _display_waves(self, wf: Any, k: float) -> tuple[np.ndarray, np.ndarray]:
        """As phy: each spike's window less its median on every channel, in display units,
        and their mean (display only; kept per read, so means / templates / zoom keys do
        not compute them again)."""
        for held, scale, waves, mean in self._waves_cache:
            if held is wf and scale == k:
                return waves, mean
        waves = (wf.waveforms - np.median(wf.waveforms, axis=1, keepdims=True)) * k
        mean = waves.mean(axis=0)
        self._waves_cache = [*self._waves_cache[-7:], (wf, k, waves, mean)]
        return waves, mean

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        w, h = self._plot_size()
        self._drawn_size = (w, h)
        probe = self.query_one("#wf-probe", Static)
        probe.display = self.show_probe
        if self.error and not any(v is not None for v in self.templates.values()):
            self.plot.set_lines(message_block(self.error, w, h, "bold"))
            self._update_info()
            return
        if self.channels is None:
            self.plot.set_lines(message_block("reading waveforms…", w, h))
            self._update_info()
            return
        sets, self.unit = self._sets()
        chans = self.channels
        cmap = np.asarray(self.cur.dataset.channel_map)
        pos = np.asarray(self.cur.dataset.channel_positions)[chans]
        lines, scale = render_waveforms(
            sets, pos, [str(int(cmap[c])) for c in chans], w, h, scale=None
        )
        if self.zoom != 1.0:
            lines, scale = render_waveforms(
                sets, pos, [str(int(cmap[c])) for c in chans], w, h, scale=scale / self.zoom
            )
        self.scale = scale
        self.plot.set_lines(lines)
        if self.show_probe:
            lit = []
            for i, cid in enumerate(self.view_ids()):
                try:
                    lit.append((self.cur.best_channels(cid), CLUSTER_COLORS[i]))
                except CuralogError:
                    continue
            ph = max(1, self.plot.size.height or h)
            probe.update(
                Text("\n").join(
                    render_probe(self.cur.dataset.channel_positions, lit[::-1], PROBE_WIDTH, ph)
                ),
                layout=False,
            )
        self._update_info()

    def _update_info(self) -> None:
        if not self.is_mounted:
            return
        ids = self.view_ids()
        title = Text(" waveforms ", style="bold reverse")
        for i, cid in enumerate(ids):
            title.append(f" {cid}", style=f"bold {CLUSTER_COLORS[i % len(CLUSTER_COLORS)]}")
            wf = self.data.get(cid)
            if wf is not None:
                title.append(f" ({wf.n_spikes}/{wf.n_cluster_spikes:,})", style="dim")
        # fixed-size boxes (CSS): a repaint of the box, not a layout of the screen
        self.query_one("#wf-title", Static).update(title, layout=False)
        parts = []
        if self.computing:
            parts.append("reading…")
        if self.error:
            parts.append(self.error)
        if self.channels is not None:
            parts.append(f"{len(self.channels)} ch")
        if hasattr(self, "scale") and not self.error:
            parts.append(f"scale ±{self.scale:.4g} {getattr(self, 'unit', '')}")
        parts.append("means" if self.mean_only else f"{self.n_spikes} spikes")
        parts.append(f"templates {TEMPLATE_MODES[self.template_mode]}")
        rec = self.cur.recording if not self.error else None
        if rec is not None:
            parts.append("filtered 150 Hz" if rec.highpass is not None else "file pre-filtered")
        info = Text(" " + " · ".join(parts), no_wrap=True)
        self.query_one("#wf-info", Static).update(info, layout=False)

    # ------------------------------------------------------------------ keys
    def action_back(self) -> None:
        self.dismiss(None)

    def action_toggle_mean(self) -> None:
        self.mean_only = not self.mean_only
        self.redraw()

    def action_templates(self) -> None:
        self.template_mode = (self.template_mode + 1) % len(TEMPLATE_MODES)
        self.redraw()

    def action_channels(self, step: int) -> None:
        n_all = int(self.cur.dataset.n_channels)
        current = len(self.channels) if self.channels is not None else 12
        new = max(1, min(n_all, current + int(step)))
        if new == current:
            self.session.say(f"waveforms: {current} channels", error=False)
            return
        self.n_channels = new
        self.request()

    def action_spikes(self, step: int) -> None:
        steps = SPIKE_STEPS
        i = min(range(len(steps)), key=lambda j: abs(steps[j] - self.n_spikes))
        i = max(0, min(len(steps) - 1, i + int(step)))
        if steps[i] == self.n_spikes:
            return
        self.n_spikes = steps[i]
        self.request()

    def action_zoom(self, factor: float) -> None:
        self.zoom *= float(factor)
        self.redraw()

    def action_toggle_similar(self) -> None:
        if self.similar is None:
            self.session.say("no similar cluster to add", error=True)
            return
        self.with_similar = not self.with_similar
        self.request()

    def action_toggle_probe(self) -> None:
        self.show_probe = not self.show_probe
        self.call_after_refresh(self.redraw)
        self.redraw()

    def action_traces(self) -> None:
        from .traces import TraceScreen

        self.app.push_screen(TraceScreen(self.session, self.view_ids()))

    def action_help(self) -> None:
        self.app.push_screen(WaveformHelp())
