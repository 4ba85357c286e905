"""The spike views screen (``v``): feature, template-feature and amplitude views, the
cluster scatter, and splitting by drawing a polygon.

Views (keys): ``f`` feature view (PC features of the selected clusters on their best
channels over grey background spikes, as phy's FeatureView), ``t`` template-feature view
(a pair: the selected cluster and its similar one, or two marked clusters), ``a``
amplitude over time with the amplitude histogram beside it, ``c`` cluster scatter (two
cluster-table columns for every cluster, coloured by group). ``x``/``X`` and ``y``/``Y``
step the x / y axis through the channels (or the table columns in the cluster scatter),
``p`` / ``P`` the PC of the x / y axis, ``w`` swaps the axes, ``s`` adds or removes the
similar cluster.

Drawing: the arrows move a crosshair one cell (shift+arrows: five), ``space`` (or a mouse
click) adds a vertex, ``backspace`` removes the last, ``enter`` closes the polygon and
previews the split (the spikes inside in white; they become one cluster), ``enter`` again
commits **one** ``split`` event with the exact ids of every spike of the clusters inside the
polygon (:func:`curalog.analysis.features.spikes_in_polygon`, recomputed from the files for all the
clusters' spikes, never the displayed ones) and the polygon and view as provenance
(:func:`curalog.analysis.features.split_provenance`). When some spikes have no features (a feature
file covering a subset of spikes) the count is named and a further ``enter`` confirms that
they stay in the remainder. ``escape`` cancels the polygon, then closes the screen.

Heavy work runs in thread workers: building the view and reading every spike's coordinates
(:func:`curalog.analysis.features.compute_view`), binning the points into the braille grid, the
split preview and the exact selection. Redraws on the UI thread (crosshair moves) reuse
the binned grids (:class:`curalog_tui.braille.BinCache`), so typing never waits.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from curalog import Curation, Update
from curalog.analysis.features import (
    FeatureSource,
    MissingFeaturesError,
    PolygonError,
    SplitPreview,
    ViewData,
    ViewSpec,
    ViewUnavailableError,
    amplitude_view,
    compute_view,
    feature_view,
    spikes_in_polygon,
    split_preview,
    split_provenance,
    template_feature_view,
)
from curalog.analysis.stats import QUALITY_NAMES
from curalog.errors import CuralogError

from ..braille import (
    CLUSTER_COLORS,
    GROUP_COLORS,
    SELECTION_COLOR,
    BinCache,
    Frame,
    PolygonOverlay,
    ScatterLayer,
    bin_points,
    group_layers,
    layout_frame,
    render_scatter,
    side_histogram,
    view_layers,
)
from ..session import CurationSession
from ..widgets import ScatterView
from .help import KeyTableHelp

MODES = ("feature", "template_feature", "amplitude", "clusters")
MODE_TABS = {
    "feature": ("f", "features"),
    "template_feature": ("t", "template features"),
    "amplitude": ("a", "amplitude"),
    "clusters": ("c", "cluster scatter"),
}
SHORT_TABS = {
    "feature": "features",
    "template_feature": "templ. feat.",
    "amplitude": "amplitude",
    "clusters": "clusters",
}
TITLES = {
    "feature": "features",
    "template_feature": "template features",
    "amplitude": "amplitude",
    "clusters": "clusters",
}
BIG_STEP = 5  # cells per shift+arrow

#: Cluster-scatter columns in cycling order (row keys of the cluster table's model).
SCATTER_KEYS = (
    "firing_rate",
    "depth",
    "template_amplitude",
    "n_spikes",
    "isi_violations_ratio",
    "rp_contamination",
    "presence_ratio",
    "amplitude_median_npy",
    "amplitude_cutoff",
    "peak_to_trough_ms",
    "best_channel",
    *QUALITY_NAMES,  # effect vs quality: every SpikeInterface metric
)
SCATTER_LABELS = {
    "firing_rate": "fr (Hz)",
    "template_amplitude": "amp[t]",
    "amplitude_median_npy": "amp[au]",
    "isi_violations_ratio": "isi",
    "rp_contamination": "contam",
    "presence_ratio": "pres",
    "depth": "depth",
}


def _num(v: Any) -> float:
    if v is None or isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _padded(v: np.ndarray) -> tuple[float, float]:
    f = v[np.isfinite(v)]
    if not f.size:
        return (-1.0, 1.0)
    lo, hi = float(f.min()), float(f.max())
    if hi <= lo:
        half = max(abs(lo) * 0.05, 0.5)
        return (lo - half, hi + half)
    pad = (hi - lo) * 0.03
    return (lo - pad, hi + pad)


def axis_labels(spec: ViewSpec) -> tuple[str, str]:
    """The spec's axis labels, with units for time and amplitude (docs/TUI.md)."""
    labels = list(spec.labels())
    for i, dim in enumerate((spec.x, spec.y)):
        if dim.kind == "time":
            labels[i] = "time (s)"
        elif dim.kind == "amplitude":
            labels[i] = "spike amplitude (a.u.)"
    return labels[0], labels[1]


def fit_axes(data: ViewData, duration: float) -> None:
    """Time axes span the recording ``[0, duration]`` (never a margin before 0); amplitude
    axes run from 0 to the clusters' largest amplitude, the scale of the detail panel and
    the split screen (one scale per cluster everywhere)."""
    spec = data.spec
    for axis, dim in (("x", spec.x), ("y", spec.y)):
        values = [getattr(ly, axis) for ly in data.layers if len(ly)]
        if dim.kind == "time":
            top = max([duration] + [float(v.max()) for v in values])
            setattr(data, f"{axis}_range", (0.0, top if top > 0 else 1.0))
        elif dim.kind == "amplitude" and values:
            top = max(float(v.max()) for v in values)
            lo = min(float(v.min()) for v in values)
            if lo >= 0 and top > 0:
                setattr(data, f"{axis}_range", (0.0, top))


def view_warning(source: FeatureSource, data: ViewData) -> str | None:
    """Why a template-feature view shows (almost) nothing: ``template_feature_ind`` rows that
    do not list the pair's templates project every spike to 0 (phy-template's folder lists
    templates 0-15 for all 64 templates)."""
    spec = data.spec
    if spec.kind != "template_feature":
        return None
    points = sum(len(ly) for ly in data.layers)
    xs = np.concatenate([ly.x for ly in data.layers]) if points else np.zeros(0)
    ys = np.concatenate([ly.y for ly in data.layers]) if points else np.zeros(0)
    distinct = np.unique(np.round(np.column_stack([xs, ys]), 9), axis=0).shape[0] if points else 0
    if points and distinct > max(2, points // 100):
        return None
    try:
        ind = source._sparse("tf").ind
    except Exception:  # pragma: no cover - the view was computed, so the file is there
        return None
    same = ind.shape[0] > 1 and bool(np.all(ind == ind[0]))
    missing = []
    for dim in (spec.x, spec.y):
        listed = np.isin(np.asarray(dim.templates), ind[ind >= 0])
        if not listed.all():
            missing += [int(t) for t in np.asarray(dim.templates)[~listed]]
    why = (
        f"every row lists the same {int((ind[0] >= 0).sum())} templates"
        if same
        else "its rows do not list these clusters' templates"
    )
    what = f"; templates {', '.join(map(str, missing[:6]))} are never listed" if missing else ""
    return (
        f"{points:,} spikes at {distinct} point(s): template_feature_ind.npy is degenerate "
        f"({why}{what}), so the projections carry no information"
    )


def _cell_marker(layer: ScatterLayer, frame: Frame) -> ScatterLayer:
    """A layer whose points fill their whole cell (all 8 dots): one cluster per point is
    easier to see as a block than as a single dot."""
    assert layer.x is not None and layer.y is not None
    counts = bin_points(layer.x, layer.y, frame)
    cells = counts.reshape(frame.height, 4, frame.width, 2).sum(axis=(1, 3))
    full = np.repeat(np.repeat(cells, 4, axis=0), 2, axis=1)
    return ScatterLayer(
        None, None, layer.color, background=layer.background, name=layer.name, counts=full
    )


def _message_lines(text: Text, width: int, height: int, console: Console) -> list[Text]:
    lines = [Text("")] + list(text.wrap(console, max(10, width - 2)))
    out = [Text(" ") + ln for ln in lines[:height]]
    return out


class ViewsHelp(KeyTableHelp):
    """The keys of the views screen."""

    TITLE = "spike views: keys"
    KEY_WIDTH = 18

    def keys(self) -> list[tuple[str, str]]:
        return VIEW_KEYS


VIEW_KEYS = [
    ("f", "feature view: PC features on the best channels (phy's FeatureView), grey background"),
    ("t", "template-feature view of a pair: the cluster and its similar one, or two marked"),
    ("a", "amplitude over time, with the amplitude histogram beside it"),
    ("c", "cluster scatter: two table columns for every cluster, coloured by group"),
    ("tab", "next view"),
    ("x / X", "x axis: next / previous channel (cluster scatter: column)"),
    ("y / Y", "y axis: next / previous channel (cluster scatter: column)"),
    ("p / P", "next PC on the x / y axis"),
    ("w", "swap the axes"),
    ("s", "add / remove the similar cluster"),
    ("arrows", "move the crosshair one cell (shift+arrows: five cells)"),
    ("space, click", "add a polygon vertex at the crosshair / where clicked"),
    ("backspace", "remove the last vertex"),
    ("enter", "close the polygon and preview the split (spikes inside in white)"),
    ("enter (again)", "split: one event, every spike of the clusters inside the polygon"),
    ("escape", "cancel the polygon; then back to the cluster table"),
    ("enter (clusters)", "select the cluster nearest the crosshair in the table"),
    ("ctrl+z / ctrl+y", "undo / redo (the view follows)"),
    ("? / h", "this help"),
]


class ViewsScreen(Screen[None]):
    """Spike views of the selected clusters and the cluster scatter; split by drawing."""

    BINDINGS = [
        Binding("space", "vertex", "vertex"),
        Binding("enter", "enter", "close/split"),
        Binding("escape", "back", "back"),
        Binding("f", "mode('feature')", "features"),
        Binding("t", "mode('template_feature')", "templ."),
        Binding("a", "mode('amplitude')", "amp."),
        Binding("c", "mode('clusters')", "clusters"),
        Binding("x", "axis('x', 1)", "x axis"),
        Binding("y", "axis('y', 1)", "y axis"),
        Binding("p", "pc('x')", "PC x", show=False),
        Binding("P", "pc('y')", "PC y", show=False),
        Binding("s", "toggle_similar", "+similar"),
        Binding("question_mark,h", "help", "help"),
        Binding("X", "axis('x', -1)", "x axis back", show=False),
        Binding("Y", "axis('y', -1)", "y axis back", show=False),
        Binding("w", "swap", "swap axes", show=False),
        Binding("tab", "next_mode", "next view", show=False),
        Binding("backspace", "unvertex", "remove vertex", show=False),
        Binding("left", "move(-1, 0)", show=False),
        Binding("right", "move(1, 0)", show=False),
        Binding("up", "move(0, -1)", show=False),
        Binding("down", "move(0, 1)", show=False),
        Binding("shift+left", f"move(-{BIG_STEP}, 0)", show=False),
        Binding("shift+right", f"move({BIG_STEP}, 0)", show=False),
        Binding("shift+up", f"move(0, -{BIG_STEP})", show=False),
        Binding("shift+down", f"move(0, {BIG_STEP})", show=False),
        Binding("ctrl+z", "undo", "undo", show=False),
        Binding("ctrl+y", "redo", "redo", show=False),
    ]
    DEFAULT_CSS = """
    ViewsScreen { layout: vertical; }
    ViewsScreen #views-tabs { height: 1; }
    ViewsScreen #views-plot { height: 1fr; }
    ViewsScreen #views-info { height: 3; }
    """

    def __init__(
        self,
        session: CurationSession,
        cluster_ids: Sequence[int],
        similar: int | None = None,
        mode: str = "feature",
    ):
        super().__init__()
        self.session = session
        if mode not in MODES:
            raise ValueError(f"unknown view {mode!r}")
        self.mode = mode
        self.base_ids = [int(c) for c in cluster_ids]
        self.similar = None if similar is None else int(similar)
        self.with_similar = False
        # the view being shown
        self.gen = 0  # data generation (a new spec or selection)
        self.spec: ViewSpec | None = None
        self.data: ViewData | None = None
        self.plot_layers: list[ScatterLayer] | None = None
        self.error: str | None = None
        self.computing = False
        # the polygon
        self.pid = 0  # polygon generation (any change)
        self.poly: list[tuple[float, float]] = []
        self.closed = False
        self.preview: SplitPreview | None = None
        self.confirm = False  # spikes without features: the curator confirmed keeping them out
        self.committing = False
        self.cursor: tuple[float, float] | None = None
        self.frame: Frame | None = None
        self.message: Text | None = None
        self.warning: str | None = None  # what makes the view uninformative (said, not hidden)
        # cluster scatter
        self.scatter_x, self.scatter_y = "firing_rate", "depth"
        self._scatter: tuple[Any, list[int], np.ndarray, np.ndarray, list[str | None]] | None = None
        self.nearest: int | None = None
        # caches and measurements
        self.cache = BinCache(max_entries=48)  # shared by the UI thread and the workers
        self._hist: tuple[Any, list[Text]] | None = None
        self.timings: dict[str, list[float]] = {
            "compute": [],
            "render": [],
            "preview": [],
            "select": [],
        }
        self._statics: dict[str, tuple[str, tuple[Any, ...]]] = {}

    # ------------------------------------------------------------------ layout
    @property
    def cur(self) -> Curation:
        return self.session.cur

    def compose(self) -> ComposeResult:
        yield Static(id="views-tabs")
        yield ScatterView(id="views-plot")
        yield Static(id="views-info")
        yield Footer()

    @property
    def plot(self) -> ScatterView:
        return self.query_one("#views-plot", ScatterView)

    def on_mount(self) -> None:
        self.set_interval(0.5, self._poll_stats)
        self.request()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.redraw)

    # ------------------------------------------------------------------ selection
    def view_ids(self) -> list[int]:
        """Clusters of the spike views, in colour order."""
        state = self.cur.state
        ids = [c for c in self.base_ids if c in state]
        sim = self.similar if self.similar is not None and self.similar in state else None
        if (
            sim is not None
            and sim not in ids
            and (self.with_similar or (self.mode == "template_feature" and len(ids) < 2))
        ):
            ids.append(sim)
        if self.mode == "template_feature":
            ids = ids[:2]
        return ids

    def _plot_size(self) -> tuple[int, int]:
        size = self.plot.size
        w, h = size.width, size.height
        if not w or not h:  # not laid out yet: the screen minus tabs (1), info (3) and footer (1)
            w, h = self.app.size.width, max(1, self.app.size.height - 5)
        return w, h

    def _split_width(self, w: int) -> tuple[int, int]:
        """Plot and histogram widths (the amplitude view has a histogram beside it)."""
        if self.mode != "amplitude" or w < 40:
            return w, 0
        hist_w = max(10, min(24, w // 6))
        return w - hist_w - 1, hist_w

    # ------------------------------------------------------------------ computing views
    def request(self, spec: ViewSpec | None = None) -> None:
        """(Re)build the current view: from the selection, or a stepped ``spec``."""
        self.gen += 1
        self._drop_polygon()
        self._hist = None
        self.nearest = None
        if self.mode == "clusters":
            self.computing = False
            self.cursor = None
            self._scatter = None
            self.redraw()
            return
        mode = self.mode
        if spec is None:
            ids = self.view_ids()
            if not ids:
                self._show_error("no cluster selected (it was deleted): escape, then pick one")
                return
            if mode == "template_feature" and len(ids) < 2:
                self._show_error(
                    "the template-feature view needs two clusters: the cluster under the "
                    "cursor and a similar one, or two clusters marked with x"
                )
                return
            sel = [(c, np.asarray(self.cur.spikes(c))) for c in ids]
            src = self.session.feature_source()
            if mode == "feature":

                def build() -> ViewSpec:
                    return feature_view(src, sel)
            elif mode == "template_feature":

                def build() -> ViewSpec:
                    return template_feature_view(src, sel)
            else:

                def build() -> ViewSpec:
                    return amplitude_view(src, sel)
        else:
            ready = spec

            def build() -> ViewSpec:
                return ready

        self.computing = True
        self.error = None
        self._update_info()
        w, h = self._plot_size()
        self._compute_worker(self.gen, mode, build, w, h)

    def _show_error(self, reason: str) -> None:
        folder = str(getattr(self.cur.dataset, "path", "") or "")
        if folder:  # the files are in the dataset folder: name them only
            reason = reason.replace(folder.rstrip(os.sep) + os.sep, "")
        self.computing = False
        self.spec = self.data = self.plot_layers = None
        self.error = reason
        self.frame = None
        self.redraw()

    def _make_layers(
        self, gen: int, pid: int, data: ViewData, preview: SplitPreview | None
    ) -> list[ScatterLayer]:
        layers = view_layers(data, preview=preview, background_key=(gen, "bg"))
        for i, layer in enumerate(layers):
            if not layer.background:
                layer.cache_key = (gen, pid if preview is not None else 0, i)
        return layers

    def _warm(self, data: ViewData, layers: list[ScatterLayer], w: int, h: int) -> None:
        """Bin the layers for the current plot size (in the worker), so that the UI thread's
        render only composes cells."""
        pw, _ = self._split_width(w)
        if pw < 12 or h < 5:
            return
        frame = layout_frame(pw, h, data.x_range, data.y_range)
        for layer in layers:
            if layer.cache_key is not None and layer.x is not None and layer.y is not None:
                self.cache.counts(layer.cache_key, layer.x, layer.y, frame)

    @work(
        thread=True,
        exclusive=True,
        group="views-compute",
        exit_on_error=False,
        description="spike view",
    )
    def _compute_worker(
        self, gen: int, mode: str, build: Callable[[], ViewSpec], w: int, h: int
    ) -> None:
        t0 = time.perf_counter()
        try:
            spec = build()
            data = compute_view(spec, background=mode != "template_feature")
        except ViewUnavailableError as exc:
            self.app.call_from_thread(self._computed, gen, None, None, None, exc.reason, 0.0)
            return
        except CuralogError as exc:
            self.app.call_from_thread(self._computed, gen, None, None, None, str(exc), 0.0)
            return
        duration = float(self.cur.dataset.duration)
        fit_axes(data, duration)
        warning = view_warning(spec.source, data)
        layers = self._make_layers(gen, 0, data, None)
        self._warm(data, layers, w, h)
        ms = (time.perf_counter() - t0) * 1e3
        self.app.call_from_thread(self._computed, gen, spec, data, layers, None, ms, warning)

    def _computed(
        self,
        gen: int,
        spec: ViewSpec | None,
        data: ViewData | None,
        layers: list[ScatterLayer] | None,
        error: str | None,
        ms: float,
        warning: str | None = None,
    ) -> None:
        if gen != self.gen or not self.is_mounted:
            return  # superseded
        self.computing = False
        self.warning = warning
        if error is not None:
            self._show_error(error)
            return
        self.spec, self.data, self.plot_layers, self.error = spec, data, layers, None
        self.cursor = None
        self.timings["compute"].append(ms)
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        t0 = time.perf_counter()
        w, h = self._plot_size()
        if self.mode == "clusters":
            lines = self._render_clusters(w, h)
        elif self.error is not None:
            lines = self._error_lines(w, h)
        elif self.data is None or self.plot_layers is None:
            lines = _message_lines(Text("computing the view…", style="dim"), w, h, self.app.console)
            self.frame = None
        else:
            lines = self._render_spikes(w, h)
        self.plot.set_lines(lines)
        self._update_tabs()
        self._update_info()
        self.timings["render"].append((time.perf_counter() - t0) * 1e3)

    def _error_lines(self, w: int, h: int) -> list[Text]:
        self.frame = None
        text = Text.assemble(
            (f"{TITLES[self.mode]}: ", "bold"),
            (str(self.error), "yellow"),
            "\n\n",
            ("Other views: ", "dim"),
            *[(f"{k} {name}  ", "dim") for m, (k, name) in MODE_TABS.items() if m != self.mode],
        )
        return _message_lines(text, w, h, self.app.console)

    def _title(self) -> str:
        spec = self.spec
        ids = ",".join(str(c) for c in spec.cluster_ids) if spec is not None else ""
        return f"{TITLES[self.mode]} {ids}".rstrip()

    def _ensure_cursor(self, frame: Frame) -> None:
        if self.cursor is None or frame.cell_at(*self.cursor) is None:
            self.cursor = frame.cell_center(
                frame.left + frame.width // 2, frame.top + frame.height // 2
            )

    def _render_spikes(self, w: int, h: int) -> list[Text]:
        data, spec, layers = self.data, self.spec, self.plot_layers
        assert data is not None and spec is not None and layers is not None
        pw, hist_w = self._split_width(w)
        frame = layout_frame(pw, h, data.x_range, data.y_range)
        self._ensure_cursor(frame)
        overlay = PolygonOverlay(list(self.poly), None if self.closed else self.cursor, self.closed)
        x_label, y_label = axis_labels(spec)
        plot = render_scatter(
            layers,
            pw,
            h,
            x_range=data.x_range,
            y_range=data.y_range,
            title=self._title(),
            x_label=x_label,
            y_label=y_label,
            overlay=overlay,
            cache=self.cache,
        )
        self.frame = plot.frame if pw >= 12 and h >= 5 else None
        lines = plot.lines
        if hist_w:
            key = (
                self.gen,
                self.pid if self.preview is not None else 0,
                plot.frame.key(),
                hist_w,
                len(lines),
            )
            if self._hist is None or self._hist[0] != key:
                fg = [ly for ly in layers if not ly.background]
                self._hist = (key, side_histogram(fg, plot, hist_w))
            hist = self._hist[1]
            lines = [Text.assemble(a, " ", b) for a, b in zip(lines, hist, strict=False)]
        return lines

    # ------------------------------------------------------------------ cluster scatter
    def scatter_columns(self) -> list[str]:
        """Numeric columns of the cluster table (statistics, sorter columns, label fields)."""
        cols = list(SCATTER_KEYS)
        ds = self.cur.dataset
        for name, values in ds.sorter_columns.items():
            if any(
                isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                for v in list(values.values())[:50]
            ):
                cols.append(name)
        for name in self.session.model.label_fields():
            vals = list(self.cur.labels.fields[name].values())[:50]
            if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                cols.append(name)
        return list(dict.fromkeys(cols))

    def _scatter_values(self) -> tuple[list[int], np.ndarray, np.ndarray, list[str | None]]:
        model = self.session.model
        key = (self.scatter_x, self.scatter_y, len(model.stats), self.cur.seq, self.cur.n_clusters)
        if self._scatter is None or self._scatter[0] != key:
            ids = [int(c) for c in self.cur.cluster_ids]
            x = np.array([_num(model.value(c, self.scatter_x)) for c in ids], dtype=np.float64)
            y = np.array([_num(model.value(c, self.scatter_y)) for c in ids], dtype=np.float64)
            groups = [self.cur.group(c) for c in ids]
            self._scatter = (key, ids, x, y, groups)
        _, ids, x, y, groups = self._scatter
        return ids, x, y, groups

    def _render_clusters(self, w: int, h: int) -> list[Text]:
        ids, x, y, groups = self._scatter_values()
        xr, yr = _padded(x), _padded(y)
        frame = layout_frame(w, h, xr, yr)
        self._ensure_cursor(frame)
        cx, cy = self.cursor  # type: ignore[misc]
        d = ((x - cx) * frame.sx) ** 2 + ((y - cy) * frame.sy) ** 2
        d[~np.isfinite(d)] = np.inf
        self.nearest = ids[int(np.argmin(d))] if d.size and np.isfinite(d.min()) else None
        chosen = set(self.view_ids_all())
        mask = np.array([c in chosen for c in ids], dtype=bool)
        layers = []
        if mask.any():
            layers.append(ScatterLayer(x[mask], y[mask], SELECTION_COLOR, name="selected"))
        layers += group_layers(x, y, groups)
        if frame.width >= 1 and w >= 12 and h >= 5:
            layers = [_cell_marker(layer, frame) for layer in layers]
        n_stats = int(np.count_nonzero(np.isfinite(x) & np.isfinite(y)))
        title = f"clusters ({n_stats}/{len(ids)})" if n_stats < len(ids) else "clusters"
        plot = render_scatter(
            layers,
            w,
            h,
            x_range=xr,
            y_range=yr,
            title=title,
            x_label=SCATTER_LABELS.get(self.scatter_x, self.scatter_x),
            y_label=SCATTER_LABELS.get(self.scatter_y, self.scatter_y),
            overlay=PolygonOverlay((), self.cursor),
        )
        self.frame = plot.frame if w >= 12 and h >= 5 else None
        return plot.lines

    def view_ids_all(self) -> list[int]:
        ids = [c for c in self.base_ids if c in self.cur.state]
        if self.with_similar and self.similar is not None and self.similar in self.cur.state:
            ids.append(self.similar)
        return ids

    def _poll_stats(self) -> None:
        if self.mode == "clusters" and self._scatter is not None:
            model = self.session.model
            if self._scatter[0][2] != len(model.stats):
                self.redraw()

    # ------------------------------------------------------------------ text around the plot
    def _update_tabs(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        narrow = self.app.size.width < 100
        for m, (key, name) in MODE_TABS.items():
            t.append(f" {key} ", style="bold cyan")
            t.append(
                SHORT_TABS[m] if narrow else name, style="bold reverse" if m == self.mode else "dim"
            )
            t.append(" " if narrow else "  ")
        ids = self.view_ids() if self.mode != "clusters" else self.view_ids_all()
        if ids:
            t.append("│ ", style="dim")
            t.append("clusters " if len(ids) > 1 else "cluster ", style="dim")
            for i, c in enumerate(ids):
                style = (
                    f"bold {CLUSTER_COLORS[i % len(CLUSTER_COLORS)]}"
                    if self.mode != "clusters"
                    else "bold"
                )
                t.append(("" if i == 0 else ", ") + str(c), style=style)
        self._set_static("#views-tabs", t)

    def _legend(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        if self.mode == "clusters":
            for g in ("good", "mua", "noise", None):
                t.append("■ ", style=GROUP_COLORS[g])
                t.append(f"{g or 'unsorted'}  ", style="dim")
            t.append("■ ", style=SELECTION_COLOR)
            t.append("selected  ", style="dim")
            if self.nearest is not None:
                row = self.session.model.row(self.nearest)
                t.append(f"nearest: cluster {self.nearest} ", style="bold")
                t.append(f"({row.get('group')}, {row.get('n_spikes'):,} spikes)", style="dim")
            return t
        data = self.data
        if data is None:
            return t
        for i, layer in enumerate(data.layers):
            t.append("■ ", style=CLUSTER_COLORS[i % len(CLUSTER_COLORS)])
            t.append(f"{layer.cluster_id} ", style="bold")
            t.append(f"({len(layer):,}) ", style="dim")
        if data.background is not None and len(data.background):
            t.append("■ ", style="#8a8a8a")
            t.append(f"others ({len(data.background):,} shown) ", style="dim")
        missing = {c: n for c, n in data.n_without.items() if n}
        if missing:  # data.note, shortened to fit the line
            t.append(
                " "
                + ", ".join(f"{n:,} of {c}" for c, n in missing.items())
                + " without features (not shown)",
                style="yellow",
            )
        return t

    def _state_line(self) -> Text:
        if self.message is not None:
            return self.message
        if self.mode == "clusters":
            return Text(
                "arrows: crosshair · enter: select the nearest cluster · x/y: columns", style="dim"
            )
        if self.computing:
            return Text("computing…", style="dim")
        if self.error is not None or self.data is None:
            return Text("")
        if self.committing:
            return Text("selecting every spike inside the polygon…", style="bold yellow")
        if self.closed:
            p = self.preview
            if p is None:
                return Text("previewing the split…", style="dim")
            n_in = sum(p.n_inside.values())
            missing = sum(p.n_without.values())
            t = Text()
            t.append(f"inside: {n_in:,}", style=f"bold {SELECTION_COLOR}")
            t.append(" → one new cluster  remainder: ", style="dim")
            t.append(
                ", ".join(f"{c}: {n + p.n_without.get(c, 0):,}" for c, n in p.n_outside.items()),
                style="bold",
            )
            if missing and self.confirm:
                t.append(
                    f"  {missing:,} spikes without features stay in the remainder: enter again to split",
                    style="bold yellow",
                )
            elif missing:
                t.append(f"  {missing:,} spikes have no features", style="bold yellow")
            if n_in == 0:
                t.append("  (no spike inside)", style="bold red")
            t.append("  enter: split · esc: cancel", style="dim")
            return t
        if self.warning and not self.poly:
            return Text(self.warning, style="bold yellow")
        if self.poly:
            return Text(
                f"polygon: {len(self.poly)} vertices · space: add · backspace: remove · "
                "enter: close · esc: cancel",
                style="dim",
            )
        return Text(
            "draw a polygon to split: arrows move the crosshair, space adds a vertex "
            "(or click) · x/y/p/P: axes · ? help",
            style="dim",
        )

    def _update_info(self) -> None:
        if not self.is_mounted:
            return
        legend, state = self._legend().copy(), self._state_line().copy()
        width = max(1, self.app.size.width)
        legend.truncate(width, overflow="ellipsis")
        lines = list(state.wrap(self.app.console, width))[:2] if state.plain else []
        info = Text("\n", no_wrap=True, overflow="ellipsis").join([legend, *lines])
        self._set_static("#views-info", info)

    def _set_static(self, selector: str, text: Text) -> None:
        """Update a Static only when its text changed (an update re-lays out the screen)."""
        key = (text.plain, tuple(text.spans))
        if self._statics.get(selector) != key:
            self._statics[selector] = key
            self.query_one(selector, Static).update(text)

    def say(self, message: str, *, error: bool = False) -> None:
        self.message = Text(message, style="bold red" if error else "bold green")
        self._update_info()

    # ------------------------------------------------------------------ polygon
    def _drop_polygon(self) -> None:
        self.pid += 1
        self.poly = []
        self.closed = False
        self.preview = None
        self.confirm = False
        self.committing = False

    def _spike_view_ready(self, what: str) -> bool:
        if self.mode == "clusters":
            self.say(f"{what}: draw on a spike view (f, t or a)", error=True)
            return False
        if self.data is None or self.frame is None:
            self.say(
                f"{what}: no spikes shown" if not self.computing else "still computing the view",
                error=True,
            )
            return False
        return True

    def action_vertex(self) -> None:
        self.message = None
        if not self._spike_view_ready("vertex"):
            return
        if self.closed:
            self.say("the polygon is closed: enter splits, escape cancels", error=True)
            return
        assert self.cursor is not None
        self.pid += 1
        self.poly.append(self.cursor)
        self.redraw()

    def action_unvertex(self) -> None:
        self.message = None
        if self.closed or self.committing:
            self.action_reopen()
            return
        if self.poly:
            self.pid += 1
            self.poly.pop()
        self.redraw()

    def action_reopen(self) -> None:
        self.pid += 1
        self.closed = False
        self.preview = None
        self.confirm = False
        self.committing = False
        self.redraw()

    def action_enter(self) -> None:
        self.message = None
        if self.mode == "clusters":
            self._select_nearest()
            return
        if not self._spike_view_ready("split"):
            return
        if self.committing:
            return
        if not self.closed:
            if len(self.poly) < 3:
                self.say(
                    f"a polygon needs 3 vertices ({len(self.poly)} so far): move the crosshair "
                    "with the arrows and press space",
                    error=True,
                )
                return
            self.closed = True
            self.pid += 1
            assert self.data is not None
            w, h = self._plot_size()
            self._preview_worker(self.gen, self.pid, self.data, list(self.poly), w, h)
            self.redraw()
            return
        p = self.preview
        if p is None:
            self.say("still previewing the split", error=True)
            return
        n_in = sum(p.n_inside.values())
        missing = sum(p.n_without.values())
        if n_in == 0:
            self.say("no spike inside the polygon: nothing to split (escape to redraw)", error=True)
            return
        if missing and not self.confirm:
            self.confirm = True
            desc = ", ".join(f"cluster {c}: {n:,}" for c, n in p.n_without.items() if n)
            self.say(
                f"{missing:,} spikes have no features here ({desc}); they cannot be placed and "
                "will stay in the remainder. enter: split anyway · escape: cancel",
                error=True,
            )
            return
        assert self.spec is not None
        self.committing = True
        self._update_info()
        self._select_worker(
            self.gen, self.pid, self.spec, list(self.poly), "outside" if missing else "refuse"
        )

    @work(
        thread=True,
        exclusive=True,
        group="views-preview",
        exit_on_error=False,
        description="split preview",
    )
    def _preview_worker(
        self, gen: int, pid: int, data: ViewData, poly: list[tuple[float, float]], w: int, h: int
    ) -> None:
        t0 = time.perf_counter()
        try:
            preview = split_preview(data, poly)
        except PolygonError as exc:
            self.app.call_from_thread(self._preview_failed, gen, pid, str(exc))
            return
        layers = self._make_layers(gen, pid, data, preview)
        self._warm(data, layers, w, h)
        ms = (time.perf_counter() - t0) * 1e3
        self.app.call_from_thread(self._previewed, gen, pid, preview, layers, ms)

    def _preview_failed(self, gen: int, pid: int, message: str) -> None:
        if gen == self.gen and pid == self.pid:
            self.action_reopen()
            self.say(message, error=True)

    def _previewed(
        self, gen: int, pid: int, preview: SplitPreview, layers: list[ScatterLayer], ms: float
    ) -> None:
        if gen != self.gen or pid != self.pid or not self.closed or not self.is_mounted:
            return
        self.preview = preview
        self.plot_layers = layers
        self._hist = None
        self.timings["preview"].append(ms)
        self.redraw()

    @work(
        thread=True,
        exclusive=True,
        group="views-split",
        exit_on_error=False,
        description="polygon selection",
    )
    def _select_worker(
        self, gen: int, pid: int, spec: ViewSpec, poly: list[tuple[float, float]], missing: str
    ) -> None:
        t0 = time.perf_counter()
        try:
            ids = spikes_in_polygon(spec, poly, missing=missing)  # type: ignore[arg-type]
            meta = split_provenance(spec, poly, missing=missing)  # type: ignore[arg-type]
        except (MissingFeaturesError, PolygonError, ViewUnavailableError) as exc:
            self.app.call_from_thread(self._select_failed, gen, pid, str(exc))
            return
        ms = (time.perf_counter() - t0) * 1e3
        self.app.call_from_thread(self._commit, gen, pid, spec, ids, meta, ms)

    def _select_failed(self, gen: int, pid: int, message: str) -> None:
        if gen == self.gen and pid == self.pid:
            self.committing = False
            self.say(message, error=True)

    def _commit(
        self, gen: int, pid: int, spec: ViewSpec, ids: np.ndarray, meta: dict[str, Any], ms: float
    ) -> None:
        if gen != self.gen or pid != self.pid or not self.committing or not self.is_mounted:
            return  # the polygon or the view changed meanwhile: nothing is written
        self.committing = False
        self.timings["select"].append(ms)
        cur = self.cur
        if any(c not in cur.state for c in spec.cluster_ids):
            self.say("the clusters changed meanwhile: nothing split", error=True)
            self.request()
            return
        if ids.shape[0] == 0:
            self.say("no spike inside the polygon: nothing to split", error=True)
            return
        if ids.shape[0] == spec.n_spikes:
            self.say("every spike of the view is inside the polygon: nothing to split", error=True)
            return
        session = self.session
        added = session.attempt(lambda: cur.split(ids, meta=meta))
        if not added:
            self.say(session.status_message or "split refused", error=True)
            return
        inside = int(cur.spike_clusters[int(ids[0])])
        rest = [int(c) for c in added if int(c) != inside]
        session.select_cluster(inside)
        old = ", ".join(map(str, spec.cluster_ids))
        text = (
            f"split {old} by polygon ({TITLES[spec.kind]} view): {ids.shape[0]:,} spikes inside -> {inside}"
            + (f"; remainder -> {', '.join(map(str, rest))}" if rest else "")
        )
        session.say(text)
        self.base_ids = [inside, *rest]
        self.with_similar = False
        self.request()
        self.say(text)

    # ------------------------------------------------------------------ keys
    def action_move(self, dx: int, dy: int) -> None:
        f = self.frame
        if f is None or self.cursor is None:
            return
        cell = f.cell_at(*self.cursor) or (f.left + f.width // 2, f.top + f.height // 2)
        col = min(max(cell[0] + dx, f.left), f.left + f.width - 1)
        row = min(max(cell[1] + dy, f.top), f.top + f.height - 1)
        self.cursor = f.cell_center(col, row)
        self.redraw()

    @on(ScatterView.Clicked)
    def _clicked(self, msg: ScatterView.Clicked) -> None:
        f = self.frame
        if f is None or not f.contains_cell(msg.col, msg.row):
            return
        self.cursor = f.cell_center(msg.col, msg.row)
        if self.mode == "clusters":
            self.redraw()
        elif msg.button == 3:
            self.action_enter()
        elif not self.closed:
            self.action_vertex()
        else:
            self.redraw()

    def action_back(self) -> None:
        if self.poly or self.closed or self.committing:
            self._drop_polygon()
            self.message = Text("polygon cancelled", style="dim")
            self.redraw()
            return
        self.dismiss(None)

    def action_mode(self, mode: str) -> None:
        self.message = None
        if mode == self.mode and (
            self.data is not None or self.error is not None or mode == "clusters"
        ):
            return
        self.mode = mode
        self.data = self.spec = self.plot_layers = None
        self.error = None
        self.frame = None
        self.request()

    def action_next_mode(self) -> None:
        self.action_mode(MODES[(MODES.index(self.mode) + 1) % len(MODES)])

    def _restep(self, spec: ViewSpec, what: str) -> None:
        if self.poly:
            self.message = Text(
                f"{what}: the polygon was discarded (it belongs to the old axes)", style="yellow"
            )
        else:
            self.message = None
        self.request(spec)

    def action_axis(self, axis: str, step: int) -> None:
        if self.mode == "clusters":
            cols = self.scatter_columns()
            name = "scatter_x" if axis == "x" else "scatter_y"
            cur = getattr(self, name)
            i = cols.index(cur) if cur in cols else -1
            setattr(self, name, cols[(i + step) % len(cols)])
            self.cursor = None
            self.redraw()
            return
        spec = self.spec
        if spec is None or self.computing:
            return
        if spec.kind != "feature":
            self.say(f"{axis}: only the feature view has channels to step through", error=True)
            return
        self._restep(spec.step(axis, channel_step=step), f"{axis} axis")  # type: ignore[arg-type]

    def action_pc(self, axis: str) -> None:
        spec = self.spec
        if self.mode != "feature" or spec is None or self.computing:
            self.say("p / P: the feature view steps through PCs", error=True)
            return
        self._restep(spec.step(axis, pc_step=1), f"PC on {axis}")  # type: ignore[arg-type]

    def action_swap(self) -> None:
        if self.mode == "clusters":
            self.scatter_x, self.scatter_y = self.scatter_y, self.scatter_x
            self.cursor = None
            self.redraw()
            return
        spec = self.spec
        if spec is None or self.computing:
            return
        if spec.kind == "amplitude":
            self.say("the amplitude view keeps time on x", error=True)
            return
        self._restep(spec.with_dims(x=spec.y, y=spec.x), "swap")

    def action_toggle_similar(self) -> None:
        sim = self.similar
        if sim is None or sim not in self.cur.state or sim in self.base_ids:
            self.say("no similar cluster to add (select one in the similarity table)", error=True)
            return
        self.with_similar = not self.with_similar
        self.message = Text(
            f"{'added' if self.with_similar else 'removed'} the similar cluster {sim}", style="dim"
        )
        self.request()

    def _select_nearest(self) -> None:
        cid = self.nearest
        if cid is None:
            self.say("no cluster near the crosshair", error=True)
            return
        session = self.session
        if not session.select_cluster(cid):
            self.say(f"cluster {cid} is hidden by the filter", error=True)
            return
        self.base_ids = [cid]
        sim = session.similar
        self.similar = sim if sim != cid else None
        self.with_similar = False
        self.say(f"selected cluster {cid} in the table (f: its features)")
        self.redraw()

    def _follow(self, verb: str, act: Callable[[], Update | None]) -> None:
        update = act()
        if update is None:
            self.say(self.session.status_message, error=True)
            return
        ids = [c for c in self.base_ids if c in self.cur.state]
        if len(ids) != len(self.base_ids) or not ids:
            ids = [int(c) for c in update.added] or ids
        self.base_ids = ids
        self.with_similar = False
        self.request()
        self.say(f"{verb}: {update.kind} (seq {update.seq})")

    def action_undo(self) -> None:
        self._follow("undone", self.session.undo)

    def action_redo(self) -> None:
        self._follow("redone", self.session.redo)

    def action_help(self) -> None:
        self.app.push_screen(ViewsHelp(self.BINDINGS))


__all__ = ["ViewsHelp", "ViewsScreen"]
