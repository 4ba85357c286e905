"""The correlogram screen (``c``): phy's CorrelogramView as a text matrix, and an ISI view.

Shows the auto-correlograms (diagonal) and cross-correlograms of up to six clusters: the
marked ones (with the one under the cursor), else the one under the cursor and its selected
similar cluster. Bars are the rate of the column's cluster around a spike of the row's (Hz),
the refractory window is shaded, the firing-rate baseline dotted. ``i`` switches to the
ISI histograms of the same clusters.

The matrix comes from the app's :class:`curalog.analysis.stats.ccg_matrix.CorrelogramMatrix`
(one per session, fed the curation's updates), so a merged cluster's correlograms are
composed from its parents' cached halves. Everything is computed in a thread worker; a key
only re-renders the cached result, or asks for a new binning.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from curalog import Curation
from curalog.analysis.stats import (
    BIN_STEPS_MS,
    WINDOW_STEPS_MS,
    CorrelogramMatrix,
    MatrixResult,
    isi_histogram,
    matrix_for,
    step_value,
)

from ..correlogram_plots import isi_lines, matrix_lines
from ..session import CurationSession
from .help import KeyTableHelp

MAX_CLUSTERS = 6
DEFAULT_BIN_MS = 1.0  # phy's CorrelogramView defaults
DEFAULT_WINDOW_MS = 50.0
DEFAULT_ISI_BIN_MS = 0.5
DEFAULT_ISI_WINDOW_MS = 50.0

CORRELOGRAM_KEYS = [
    ("b / B", "bin size smaller / larger (0.1 - 20 ms; phy's default 1 ms)"),
    ("w / W", "window narrower / wider (5 ms - 2 s; phy's default 50 ms)"),
    ("0", "back to phy's defaults"),
    ("i", "ISI histograms of the same clusters (again: back to the correlograms)"),
    ("escape, q", "back to the cluster table"),
    ("? / h", "this help"),
]


def new_correlogram_matrix(cur: Curation) -> CorrelogramMatrix:
    """A matrix cache for ``cur``, fed its updates (the app keeps one per session)."""
    return matrix_for(cur)


class CorrelogramHelp(KeyTableHelp):
    TITLE = "correlograms: keys"
    KEY_WIDTH = 10

    def keys(self) -> list[tuple[str, str]]:
        return CORRELOGRAM_KEYS


class CorrelogramScreen(Screen[None]):
    """The ACG/CCG matrix (mode ``ccg``) or the ISI histograms (mode ``isi``)."""

    BINDINGS = [
        Binding("escape,q", "back", "back"),
        Binding("b", "bin(-1)", "bin-"),
        Binding("B", "bin(1)", "bin+"),
        Binding("w", "window(-1)", "window-"),
        Binding("W", "window(1)", "window+"),
        Binding("0", "defaults", "defaults", show=False),
        Binding("i", "toggle_isi", "ISI"),
        Binding("question_mark,h", "help", "help"),
    ]
    DEFAULT_CSS = """
    CorrelogramScreen { layout: vertical; }
    CorrelogramScreen #ccg-title { height: 1; }
    CorrelogramScreen #ccg-plot { height: 1fr; }
    CorrelogramScreen #ccg-info { height: 1; }
    """

    def __init__(
        self,
        session: CurationSession,
        cluster_ids: Sequence[int],
        mode: str = "ccg",
        *,
        refractory_ms: float = 2.0,
    ):
        super().__init__()
        self.session = session
        ids = [int(c) for c in cluster_ids]
        self.dropped = max(0, len(ids) - MAX_CLUSTERS)
        self.cluster_ids = ids[:MAX_CLUSTERS]
        self.mode = mode
        self.refractory_ms = refractory_ms
        self.bin_ms, self.window_ms = DEFAULT_BIN_MS, DEFAULT_WINDOW_MS
        self.isi_bin_ms, self.isi_window_ms = DEFAULT_ISI_BIN_MS, DEFAULT_ISI_WINDOW_MS
        self.result: MatrixResult | None = None
        self.isi: tuple[tuple[float, float], list, list[int]] | None = None
        self.computing = False
        self.timings: dict[str, list[float]] = {"compute": [], "render": []}
        self.message: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="ccg-title")
        yield Static(id="ccg-plot")
        yield Static(id="ccg-info")
        yield Footer()

    def on_mount(self) -> None:
        self.request()

    def on_resize(self, event: Any) -> None:
        self.redraw()

    # ------------------------------------------------------------------ data
    def request(self) -> None:
        self.computing = True
        self.redraw()
        if self.mode == "ccg":
            self._matrix_worker(tuple(self.cluster_ids), self.bin_ms, self.window_ms)
        else:
            self._isi_worker(tuple(self.cluster_ids), self.isi_bin_ms, self.isi_window_ms)

    @work(thread=True, exclusive=True, group="ccg", exit_on_error=False, description="correlograms")
    def _matrix_worker(self, ids: tuple[int, ...], bin_ms: float, window_ms: float) -> None:
        worker = get_current_worker()
        t0 = time.perf_counter()
        res = self.session.correlograms().matrix(
            ids, bin_ms, window_ms, cancelled=lambda: worker.is_cancelled
        )
        if res is not None and not worker.is_cancelled:
            ms = (time.perf_counter() - t0) * 1e3
            self.app.call_from_thread(self._matrix_done, res, ms)

    def _matrix_done(self, res: MatrixResult, ms: float) -> None:
        if self.mode != "ccg" or (res.bin_ms, res.window_ms) != self._binning():
            return
        self.result, self.computing = res, False
        self.timings["compute"].append(ms)
        self.redraw()

    def _binning(self) -> tuple[float, float]:
        """The binning the matrix would really have (phy's integer samples per bin)."""
        bins = self.session.correlograms().bins(self.bin_ms, self.window_ms)
        b = bins.bin_samples * 1e3 / bins.sample_rate
        return b, 2 * bins.half * b

    @work(thread=True, exclusive=True, group="ccg", exit_on_error=False, description="ISI")
    def _isi_worker(self, ids: tuple[int, ...], bin_ms: float, window_ms: float) -> None:
        worker = get_current_worker()
        t0 = time.perf_counter()
        cur = self.session.cur
        ds = cur.dataset
        hists, sizes = [], []
        for c in ids:
            if worker.is_cancelled:
                return
            spikes = np.asarray(cur.spikes(c))
            t = np.asarray(ds.spike_times[spikes], dtype=np.int64)
            hists.append(
                isi_histogram(t, float(ds.sample_rate), bin_ms=bin_ms, window_ms=window_ms)
            )
            sizes.append(int(spikes.shape[0]))
        ms = (time.perf_counter() - t0) * 1e3
        if not worker.is_cancelled:
            self.app.call_from_thread(self._isi_done, (bin_ms, window_ms), hists, sizes, ms)

    def _isi_done(self, key: tuple[float, float], hists: list, sizes: list[int], ms: float) -> None:
        if self.mode != "isi" or key != (self.isi_bin_ms, self.isi_window_ms):
            return
        self.isi, self.computing = (key, hists, sizes), False
        self.timings["compute"].append(ms)
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        t0 = time.perf_counter()
        plot = self.query_one("#ccg-plot", Static)
        w = max(20, plot.size.width or self.size.width)
        h = max(3, plot.size.height or self.size.height - 3)
        if not self.cluster_ids:
            lines = [Text("no cluster selected", style="dim")]
        elif self.mode == "ccg" and self.result is not None:
            lines = matrix_lines(self.result, w, h, refractory_ms=self.refractory_ms)
        elif self.mode == "isi" and self.isi is not None:
            _, hists, sizes = self.isi
            lines = isi_lines(
                self.cluster_ids, hists, sizes, w, h, refractory_ms=self.refractory_ms
            )
        else:
            lines = [Text("computing…", style="dim")]
        plot.update(Text("\n").join(lines))
        self.query_one("#ccg-title", Static).update(self._title())
        self.query_one("#ccg-info", Static).update(self.message or self._info())
        self.timings["render"].append((time.perf_counter() - t0) * 1e3)

    def _title(self) -> Text:
        ids = ", ".join(str(c) for c in self.cluster_ids)
        if self.mode == "ccg":
            b, win = self._binning()
            what = Text.assemble(
                ("correlograms ", "bold"),
                (ids, "bold cyan"),
                (f"  bin {b:g} ms · window ±{win / 2:g} ms · rate (Hz)", "yellow"),
            )
        else:
            what = Text.assemble(
                ("ISI ", "bold"),
                (ids, "bold cyan"),
                (f"  bin {self.isi_bin_ms:g} ms · 0-{self.isi_window_ms:g} ms", "yellow"),
            )
        if self.dropped:
            what.append(f"  (first {MAX_CLUSTERS}; {self.dropped} more marked)", style="dim")
        if self.computing and (self.result is not None or self.isi is not None):
            what.append("  computing…", style="dim")
        return what

    def _info(self) -> Text:
        if self.mode == "ccg":
            return Text.assemble(
                ("▒", "on #3a1414"),
                (f" refractory ±{self.refractory_ms:g} ms  ", "dim"),
                ("┄", "#d7af5f"),
                (" baseline (mean rate)  ", "dim"),
                ("b/B bin  w/W window", "dim"),
            )
        return Text.assemble(
            ("▒", "on #3a1414"),
            (f" intervals < {self.refractory_ms:g} ms  ", "dim"),
            ("b/B bin  w/W range", "dim"),
        )

    def say(self, message: str, *, error: bool = False) -> None:
        self.message = Text(message, style="bold red" if error else "green")
        self.redraw()

    # ------------------------------------------------------------------ keys
    def _set(self, bin_ms: float, window_ms: float) -> None:
        self.message = None
        if self.mode == "ccg":
            if (bin_ms, window_ms) == (self.bin_ms, self.window_ms):
                self.say("already at the limit", error=True)
                return
            if window_ms < 2 * bin_ms:
                self.say(
                    f"the window must hold at least one bin each side ({bin_ms:g} ms)", error=True
                )
                return
            self.bin_ms, self.window_ms = bin_ms, window_ms
        else:
            if (bin_ms, window_ms) == (self.isi_bin_ms, self.isi_window_ms):
                self.say("already at the limit", error=True)
                return
            if window_ms < 2 * bin_ms:
                self.say(f"the range must hold at least two bins ({bin_ms:g} ms)", error=True)
                return
            self.isi_bin_ms, self.isi_window_ms = bin_ms, window_ms
        self.request()

    def action_bin(self, direction: int) -> None:
        if self.mode == "ccg":
            self._set(step_value(BIN_STEPS_MS, self.bin_ms, direction), self.window_ms)
        else:
            self._set(step_value(BIN_STEPS_MS, self.isi_bin_ms, direction), self.isi_window_ms)

    def action_window(self, direction: int) -> None:
        if self.mode == "ccg":
            self._set(self.bin_ms, step_value(WINDOW_STEPS_MS, self.window_ms, direction))
        else:
            self._set(self.isi_bin_ms, step_value(WINDOW_STEPS_MS, self.isi_window_ms, direction))

    def action_defaults(self) -> None:
        if self.mode == "ccg":
            self._set(DEFAULT_BIN_MS, DEFAULT_WINDOW_MS)
        else:
            self._set(DEFAULT_ISI_BIN_MS, DEFAULT_ISI_WINDOW_MS)

    def action_toggle_isi(self) -> None:
        self.mode = "isi" if self.mode == "ccg" else "ccg"
        self.message = None
        self.request()

    def action_help(self) -> None:
        self.app.push_screen(CorrelogramHelp([]))

    def action_back(self) -> None:
        self.dismiss(None)
