"""The trace view (``T``): a window of the filtered recording, as phy's TraceView.

Channels are stacked by depth (the highest ``channel_positions`` y at the top; ties by x),
each a grey min/max envelope per braille dot column; the spikes of the selected clusters are
drawn over it in their colours on their best channels (the template's channels with at least
half the best channel's amplitude, at most 6), the rest stays grey. A yellow cursor line
marks a time; the spike nearest to it (any cluster, within two dot columns) is named with
its cluster in the info line. The probe panel lights the selected clusters' best channels and
marks the channels shown.

Keys: ``left`` / ``right`` scroll a quarter window (``shift``: a whole window), ``+`` / ``-``
zoom in / out in time, ``up`` / ``down`` scroll the channels, ``]`` / ``[`` more / fewer
channels, ``n`` / ``p`` next / previous spike of the first selected cluster (centred, the
cursor on it), ``,`` / ``.`` move the cursor (a click puts it there), ``a`` / ``A`` amplitude
zoom in / out, ``escape`` back. Traces are read and filtered in a thread worker
(:meth:`curalog.recording.Recording.traces`: only the window, plus the filter margin, on the
channels shown).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual import on, work
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
    SpikeMark,
    bar_keys,
    message_block,
    noise_scale,
    render_probe,
    render_traces,
)
from .help import KeyTableHelp
from .waveforms import PROBE_WIDTH, short_reason

WINDOWS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
DEFAULT_WINDOW_S = 0.1
LABEL_WIDTH = 5
MARK_CHANNELS = 6

TRACE_KEYS = [
    ("left / right", "scroll a quarter window (shift: a whole window)"),
    ("+ / -", "zoom in / out in time (5 ms .. 2 s)"),
    ("up / down", "scroll the channels (by depth)"),
    ("] / [", "more / fewer channels"),
    ("n / p", "next / previous spike of the selected cluster"),
    (", / .", "move the cursor left / right (or click); the spike under it is named"),
    ("a / A", "amplitude zoom in / out"),
    ("escape", "back"),
    ("? / h", "this help"),
]


class TraceHelp(KeyTableHelp):
    """The keys of the trace view."""

    TITLE = "trace view: keys"
    KEY_WIDTH = 14

    def keys(self) -> list[tuple[str, str]]:
        return TRACE_KEYS


def depth_order(positions: np.ndarray) -> np.ndarray:
    """Template channels from the top of the probe (largest y) down; ties by x."""
    pos = np.asarray(positions, dtype=np.float64)
    return np.lexsort((pos[:, 0], -pos[:, 1]))


#: Samples of the window whose median is each channel's displayed baseline.
BASELINE_SAMPLES = 400


class TraceScreen(Screen[None]):
    """A window of the filtered recording with the selected clusters' spikes coloured."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("left", "scroll(-0.25)", "◀", show=False),
        Binding("right", "scroll(0.25)", "▶", show=False),
        Binding("shift+left", "scroll(-1)", "◀◀", show=False),
        Binding("shift+right", "scroll(1)", "▶▶", show=False),
        Binding("plus,equals_sign", "zoom(-1)", "zoom in"),
        Binding("minus", "zoom(1)", "zoom out"),
        Binding("up", "channels_scroll(-1)", "up", show=False),
        Binding("down", "channels_scroll(1)", "down", show=False),
        Binding("right_square_bracket", "channel_count(1)", "+ch"),
        Binding("left_square_bracket", "channel_count(-1)", "-ch"),
        Binding("n", "spike(1)", "next spike"),
        Binding("p", "spike(-1)", "prev spike"),
        Binding("comma", "cursor(-1)", "cursor", show=False),
        Binding("full_stop", "cursor(1)", "cursor", show=False),
        Binding("a", "gain(1.5)", "gain", show=False),
        Binding("A", "gain(0.667)", "gain", show=False),
        Binding("question_mark,h", "help", "help"),
    ]
    #: Which shown keys the key bar keeps first when the line is short (lower first).
    BAR_PRIORITY = {
        "back": 0,
        "spike(1)": 1,
        "spike(-1)": 1,
        "zoom(-1)": 2,
        "zoom(1)": 2,
        "channel_count(1)": 3,
        "channel_count(-1)": 3,
        "help": -1,
    }
    DEFAULT_CSS = """
    TraceScreen { layout: vertical; }
    TraceScreen #tr-title { height: 1; }
    TraceScreen #tr-body { height: 1fr; }
    TraceScreen #tr-plot { width: 1fr; height: 1fr; }
    TraceScreen #tr-probe { width: 9; height: 1fr; }
    TraceScreen #tr-info { height: 2; }
    """

    def __init__(self, session: CurationSession, cluster_ids: Sequence[int]):
        super().__init__()
        self.session = session
        self.ids = [int(c) for c in cluster_ids][: len(CLUSTER_COLORS)]
        rec = self.cur.recording
        self.error: str | None = (
            None if rec is not None else short_reason(self.cur, str(self.cur.recording_error))
        )
        ds = self.cur.dataset
        self.fs = float(ds.sample_rate)
        self.order = depth_order(ds.channel_positions)
        self.window = int(round(DEFAULT_WINDOW_S * self.fs))
        self.n_rows: int | None = None  # channels shown (None: one per terminal row)
        self.first_row = 0  # index into self.order
        self.start = 0
        self.cursor: int | None = None  # absolute sample
        self.gain = 1.0
        self.scale: float | None = None
        self.gen = 0
        self.traces: np.ndarray | None = None
        self.shown: np.ndarray = np.zeros(0, dtype=np.int64)
        self.marks: list[SpikeMark] = []
        self.window_spikes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.timings: list[float] = []
        self._requested: tuple[int, int, bytes] | None = None  # (start, window, rows) last read
        self._drawn_size: tuple[int, int] | None = None
        self._t_request = 0.0
        self._mark_channels: dict[int, np.ndarray] = {}
        self._times: dict[int, np.ndarray] = {}

    @property
    def cur(self) -> Curation:
        return self.session.cur

    def compose(self) -> ComposeResult:
        yield Static(id="tr-title")
        with Horizontal(id="tr-body"):
            yield ScatterView(id="tr-plot")
            yield Static(id="tr-probe")
        yield Static(id="tr-info")
        keys = bar_keys(self.BINDINGS, self.BAR_PRIORITY, quit_priority=4)
        yield KeyBar(keys, namespace="screen", id="tr-keys")

    @property
    def plot(self) -> ScatterView:
        return self.query_one("#tr-plot", ScatterView)

    def on_mount(self) -> None:
        if self.ids and self.ids[0] in self.cur.state and self.error is None:
            t = self._cluster_times(self.ids[0])
            self._centre_on(int(t[0]) if t.size else 0)
            self._centre_rows_on(self._mark_rows(self.ids[0]))
        self.request()

    def on_resize(self, event: Any) -> None:
        self.call_after_refresh(self._on_resized)

    def _on_resized(self) -> None:
        """Read again only when the new size shows other rows; redraw only when the plot's
        size changed (a push's first resize used to read the same window twice)."""
        if not self.is_mounted:
            return
        self._clamp()
        if self._read_key() != self._requested:
            self.request()
        elif self.traces is not None and self._plot_size() != self._drawn_size:
            self.redraw()

    def _read_key(self) -> tuple[int, int, bytes]:
        rows = self.order[self.first_row : self.first_row + self.rows_shown()]
        return (int(self.start), int(self.window), rows.tobytes())

    # ------------------------------------------------------------------ geometry
    def _plot_size(self) -> tuple[int, int]:
        size = self.plot.size
        w, h = size.width, size.height
        if not w or not h:
            w, h = self.app.size.width - PROBE_WIDTH, max(1, self.app.size.height - 4)
        return w, h

    def rows_shown(self) -> int:
        _, h = self._plot_size()
        n = self.n_rows if self.n_rows is not None else h
        return max(1, min(int(n), self.order.shape[0]))

    def _cluster_times(self, cid: int) -> np.ndarray:
        got = self._times.get(cid)
        if got is None:
            got = np.asarray(self.cur.dataset.spike_times)[self.cur.spikes(cid)]
            self._times[cid] = got
        return got

    def _mark_rows(self, cid: int) -> np.ndarray:
        """Template channels coloured for a cluster's spikes: its best channels with at least
        half the best one's template amplitude (phy's TraceView threshold), at most 6."""
        got = self._mark_channels.get(cid)
        if got is None:
            chans = self.cur.best_channels(cid)
            tmpl = self.cur.cluster_template(cid, chans)
            if tmpl is not None and tmpl.size:
                amp = tmpl.max(axis=0) - tmpl.min(axis=0)
                keep = amp >= 0.5 * amp.max() if amp.max() > 0 else np.ones(amp.shape, bool)
                chans = chans[keep]
            got = chans[:MARK_CHANNELS]
            self._mark_channels[cid] = got
        return got

    def _centre_on(self, sample: int) -> None:
        self.start = int(sample) - self.window // 2
        self.cursor = int(sample)
        self._clamp()

    def _centre_rows_on(self, chans: np.ndarray) -> None:
        if chans.size == 0:
            return
        where = np.flatnonzero(np.isin(self.order, chans[:1]))
        if where.size:
            self.first_row = int(where[0]) - self.rows_shown() // 2
            self._clamp()

    def _clamp(self) -> None:
        rec = self.cur.recording
        n = rec.n_samples if rec is not None else int(self.cur.dataset.spike_times[-1]) + 1
        self.window = max(16, min(self.window, n))
        self.start = max(0, min(self.start, n - self.window))
        self.first_row = max(0, min(self.first_row, self.order.shape[0] - self.rows_shown()))

    # ------------------------------------------------------------------ data
    def request(self) -> None:
        if not self.is_mounted:
            return
        self._clamp()
        self.gen += 1
        self._t_request = time.perf_counter()
        if self.error is not None:
            self.redraw()
            return
        rows = self.order[self.first_row : self.first_row + self.rows_shown()]
        self._requested = self._read_key()
        self._read_worker(self.gen, self.start, self.window, rows)

    @work(thread=True, exclusive=True, group="traces", exit_on_error=False)
    def _read_worker(self, gen: int, start: int, window: int, rows: np.ndarray) -> None:
        cur = self.cur
        try:
            rec = cur.recording
            assert rec is not None
            traces = rec.traces(start, start + window, rows)
            # each channel on its baseline (display only; the median of a sample of rows)
            traces -= np.median(traces[:: max(1, traces.shape[0] // BASELINE_SAMPLES)], axis=0)
            times = np.asarray(cur.dataset.spike_times)
            lo = int(np.searchsorted(times, start, side="left"))
            hi = int(np.searchsorted(times, start + window, side="left"))
            spikes = np.arange(lo, hi, dtype=np.int64)
            clusters = cur.state.clusters_of(spikes) if spikes.size else spikes
            marks = []
            before, after = 20, 21
            tmpl = cur.dataset.templates
            if tmpl is not None:
                before, after = tmpl.shape[1] // 2, tmpl.shape[1] - tmpl.shape[1] // 2
            row_of = {int(c): i for i, c in enumerate(rows.tolist())}
            for i, cid in enumerate(self.ids):
                if cid not in cur.state:
                    continue
                mrows = np.array(
                    [row_of[int(c)] for c in self._mark_rows(cid) if int(c) in row_of], dtype=int
                )
                color = CLUSTER_COLORS[i % len(CLUSTER_COLORS)]
                starts = times[spikes[clusters == cid]].astype(np.int64) - start - before
                marks.append(SpikeMark(starts, before + after, mrows, color))
        except CuralogError as exc:
            self.app.call_from_thread(self._failed, gen, str(exc))
            return
        self.app.call_from_thread(
            self._loaded, gen, traces, rows, marks, (spikes, clusters, times[lo:hi])
        )

    def _failed(self, gen: int, message: str) -> None:
        if gen == self.gen:
            self.error = short_reason(self.cur, message)
            self.redraw()

    def _loaded(self, gen: int, traces, rows, marks, window_spikes) -> None:
        if gen != self.gen:
            return
        self.traces, self.shown, self.marks = traces, rows, marks
        self.window_spikes = window_spikes
        if self.scale is None and traces.size:
            self.scale = noise_scale(traces)
        self.redraw()
        self.timings.append(time.perf_counter() - self._t_request)

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        w, h = self._plot_size()
        self._drawn_size = (w, h)
        if self.error is not None:
            self.plot.set_lines(message_block(self.error, w, h, "bold"))
            self._update_info()
            return
        if self.traces is None:
            self.plot.set_lines(message_block("reading the recording…", w, h))
            return
        cmap = np.asarray(self.cur.dataset.channel_map)
        labels = [str(int(cmap[c])) for c in self.shown]
        cursor = None if self.cursor is None else self.cursor - self.start
        scale = (self.scale or 1.0) / self.gain
        lines = render_traces(
            self.traces,
            labels,
            w,
            h,
            scale=scale,
            marks=self.marks,
            cursor=cursor,
            label_width=LABEL_WIDTH,
        )
        self.plot.set_lines(lines)
        probe = self.query_one("#tr-probe", Static)
        pos = np.asarray(self.cur.dataset.channel_positions)
        lit = []
        for i, cid in enumerate(self.ids):
            if cid in self.cur.state:
                lit.append((self.cur.best_channels(cid), CLUSTER_COLORS[i % len(CLUSTER_COLORS)]))
        span = None
        if self.shown.size:
            ys = pos[self.shown, 1]
            span = (float(ys.min()), float(ys.max()))
        ph = max(1, self.plot.size.height or h)
        probe.update(
            Text("\n").join(render_probe(pos, lit[::-1], PROBE_WIDTH, ph, span=span)), layout=False
        )
        self._update_info()

    def spike_at_cursor(self) -> tuple[int, int, int] | None:
        """``(spike id, cluster, sample)`` of the spike nearest the cursor, within two dot
        columns, or None."""
        if self.window_spikes is None or self.cursor is None:
            return None
        spikes, clusters, times = self.window_spikes
        if spikes.size == 0:
            return None
        w, _ = self._plot_size()
        tol = 2 * self.window / max(1, 2 * (w - LABEL_WIDTH))
        i = int(np.argmin(np.abs(times - self.cursor)))
        if abs(int(times[i]) - self.cursor) > max(tol, 1):
            return None
        return int(spikes[i]), int(clusters[i]), int(times[i])

    def _update_info(self) -> None:
        title = Text(" traces ", style="bold reverse")
        for i, cid in enumerate(self.ids):
            title.append(f" {cid}", style=f"bold {CLUSTER_COLORS[i % len(CLUSTER_COLORS)]}")
        t0 = self.start / self.fs
        title.append(
            f"  {t0:.3f}-{(self.start + self.window) / self.fs:.3f} s "
            f"({1000 * self.window / self.fs:g} ms)",
            style="dim",
        )
        # fixed-size boxes (CSS): a repaint of the box, not a layout of the screen
        self.query_one("#tr-title", Static).update(title, layout=False)
        parts = []
        if self.error:
            parts.append(self.error)
        else:
            cmap = np.asarray(self.cur.dataset.channel_map)
            if self.shown.size:
                parts.append(
                    f"ch {int(cmap[self.shown[0]])}..{int(cmap[self.shown[-1]])} "
                    f"({self.shown.size} of {self.order.shape[0]})"
                )
            rec = self.cur.recording
            if rec is not None and self.scale is not None:
                unit = "µV" if rec.uv_per_unit is not None else "file units"
                k = rec.uv_per_unit or 1.0
                parts.append(f"±{self.scale * k / self.gain:.4g} {unit}/ch")
            hit = self.spike_at_cursor()
            if self.cursor is not None:
                where = f"cursor {self.cursor / self.fs:.4f} s"
                if hit is not None:
                    sid, cid, _ = hit
                    where += f": spike {sid} of cluster {cid}"
                parts.append(where)
        info = Text(" " + " · ".join(parts), no_wrap=True)
        self.query_one("#tr-info", Static).update(info, layout=False)

    # ------------------------------------------------------------------ keys
    def action_back(self) -> None:
        self.dismiss(None)

    def action_scroll(self, fraction: float) -> None:
        step = int(round(float(fraction) * self.window))
        self.start += step
        if self.cursor is not None:
            self.cursor += step
        self.request()

    def action_zoom(self, step: int) -> None:
        current = self.window / self.fs
        i = min(range(len(WINDOWS_S)), key=lambda j: abs(WINDOWS_S[j] - current))
        i = max(0, min(len(WINDOWS_S) - 1, i + int(step)))
        centre = self.cursor if self.cursor is not None else self.start + self.window // 2
        self.window = int(round(WINDOWS_S[i] * self.fs))
        self.start = centre - self.window // 2
        self.request()

    def action_channels_scroll(self, direction: int) -> None:
        self.first_row += int(direction) * max(1, self.rows_shown() // 2)
        self.request()

    def action_channel_count(self, direction: int) -> None:
        n = self.rows_shown()
        n = int(round(n * 1.5)) if direction > 0 else int(round(n / 1.5))
        self.n_rows = max(1, min(self.order.shape[0], n))
        self.scale = None
        self.request()

    def action_spike(self, direction: int) -> None:
        if not self.ids or self.ids[0] not in self.cur.state:
            self.session.say("trace view: the cluster no longer exists", error=True)
            return
        t = self._cluster_times(self.ids[0])
        ref = self.cursor if self.cursor is not None else self.start + self.window // 2
        if direction > 0:
            i = int(np.searchsorted(t, ref, side="right"))
        else:
            i = int(np.searchsorted(t, ref, side="left")) - 1
        if not 0 <= i < t.shape[0]:
            self.session.say(f"no {'next' if direction > 0 else 'previous'} spike", error=True)
            return
        self._centre_on(int(t[i]))
        self.request()

    def action_cursor(self, direction: int) -> None:
        w, _ = self._plot_size()
        step = max(1, self.window // max(1, 2 * (w - LABEL_WIDTH)))
        base = self.cursor if self.cursor is not None else self.start + self.window // 2
        self.cursor = min(
            max(self.start, base + int(direction) * step), self.start + self.window - 1
        )
        self.redraw()

    @on(ScatterView.Clicked)
    def _clicked(self, msg: ScatterView.Clicked) -> None:
        w, _ = self._plot_size()
        col = msg.col - LABEL_WIDTH
        if col < 0:
            return
        self.cursor = self.start + int((col + 0.5) / max(1, w - LABEL_WIDTH) * self.window)
        self.redraw()

    def action_gain(self, factor: float) -> None:
        self.gain *= float(factor)
        self.redraw()

    def action_help(self) -> None:
        self.app.push_screen(TraceHelp())
