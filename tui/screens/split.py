"""The split screen: split one cluster without a mouse, seeing the pieces before committing.

Rules (keys): ``a`` amplitude threshold (with the amplitude histogram; up/down move the
threshold one bin), ``t`` the sorter's original templates, ``r`` a time range, ``m``
k-means (seeded; ``+``/``-`` change k, ``f`` cycles the features). ``e`` types an exact
parameter. ``enter`` dismisses the screen with the previewed :class:`SplitPlan`, which the
app commits as one ordinary split event; ``escape`` cancels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from curalog import Curation
from curalog.errors import CuralogError

from ..plots import bar_chart, histogram_rows
from ..split_rules import (
    SplitPlan,
    amplitude_histogram,
    by_amplitude,
    by_kmeans,
    by_templates,
    by_time,
)

RULES = (
    ("a", "amplitude", "amplitude"),
    ("t", "templates", "templates"),
    ("r", "time", "time range"),
    ("m", "kmeans", "k-means"),
)


@dataclass
class ClusterData:
    """What the rules need about the cluster being split (loaded once)."""

    cid: int
    spikes: np.ndarray
    amplitudes: np.ndarray | None
    times_s: np.ndarray
    templates: np.ndarray
    duration: float


def load_cluster(cur: Curation, cid: int) -> ClusterData:
    ds = cur.dataset
    spikes = np.asarray(cur.spikes(cid))
    amps = ds.amplitudes
    return ClusterData(
        cid=cid,
        spikes=spikes,
        amplitudes=None if amps is None else np.asarray(amps[spikes], dtype=np.float64),
        times_s=np.asarray(ds.spike_times[spikes], dtype=np.float64) / ds.sample_rate,
        templates=np.asarray(ds.spike_templates[spikes]),
        duration=float(ds.duration),
    )


def _feature_source(cur: Curation):
    """curalog.analysis.features' reader of pc_features.npy (handles subsets and sparse channels)."""
    try:
        from curalog.analysis.features import FeatureSource
    except ImportError:  # pragma: no cover - older curalog
        return None
    return FeatureSource(cur.dataset)


#: The weight of (standardised) time in the ``amp_time`` features: time separates spikes
#: of a stable unit into two halves of equal amplitude when it counts as much as amplitude,
#: so it counts 1/16 as much in the distances (a drift still shows; a clean unit stays whole).
TIME_WEIGHT = 0.25
FEATURE_NAMES = {
    "pc": "pc (3 PCs x 3 best channels)",
    "amp": "amp (spike amplitude only)",
    "amp_time": f"amp_time (amplitude + time x {TIME_WEIGHT:g})",
}


def feature_sources(cur: Curation) -> list[str]:
    """Feature matrices available for k-means on this dataset (the default first)."""
    out = []
    src = _feature_source(cur)
    if src is not None and src.unavailable("pc") is None and src.n_pcs > 0:
        out.append("pc")
    if cur.dataset.amplitudes is not None:
        out += ["amp", "amp_time"]
    return out


def feature_weights(source: str) -> np.ndarray | None:
    """Column weights for :func:`curalog_tui.split_rules.kmeans` (time counts less)."""
    return np.array([1.0, TIME_WEIGHT]) if source == "amp_time" else None


def features_for(cur: Curation, data: ClusterData, source: str) -> np.ndarray:
    """``(n_spikes, n_features)``; NaN (a spike without a feature row) becomes the column mean.

    ``pc``: the first 3 PCs on the cluster's 3 best channels (phy's channels, read with
    :mod:`curalog.analysis.features`); ``amp``: the spike amplitude; ``amp_time``: amplitude
    and time (weighted by :data:`TIME_WEIGHT` in the k-means distances).
    """
    if source == "pc":
        from curalog.analysis.features import Dim, cluster_channels

        src = _feature_source(cur)
        assert src is not None
        chans = cluster_channels(src, data.spikes)[:3]
        dims = [Dim.pc(int(c), k) for c in chans for k in range(min(3, src.n_pcs))]
        x = (
            np.column_stack(src.values(data.spikes, dims))
            if dims
            else np.zeros((data.spikes.shape[0], 1))
        )
    else:
        amps = data.amplitudes if data.amplitudes is not None else np.zeros(data.spikes.shape[0])
        x = amps[:, None] if source == "amp" else np.column_stack([amps, data.times_s])
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: mean 0
            means = np.nan_to_num(np.nanmean(x, axis=0))
        x = np.where(np.isnan(x), means[None, :], x)
    return x


class SplitScreen(ModalScreen[SplitPlan | None]):
    AUTO_FOCUS = None  # nothing focused: the keys are the screen's (the value box only on e)
    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("enter", "commit", "commit split"),
        Binding("a", "rule('amplitude')", "amplitude"),
        Binding("t", "rule('templates')", "templates"),
        Binding("r", "rule('time')", "time range"),
        Binding("m", "rule('kmeans')", "k-means"),
        Binding("up", "nudge(1)", "threshold +", show=False),
        Binding("down", "nudge(-1)", "threshold -", show=False),
        Binding("plus,equals_sign", "k(1)", "k+", show=False),
        Binding("minus", "k(-1)", "k-", show=False),
        Binding("f", "cycle_features", "features", show=False),
        Binding("e", "edit", "edit value"),
    ]
    DEFAULT_CSS = """
    SplitScreen { align: center middle; }
    SplitScreen > Vertical { width: 95%; height: 95%; border: thick $accent; background: $surface; padding: 0 1; }
    #split-rules, #split-params, #split-pieces, #split-msg { height: auto; }
    #split-body { height: 1fr; }
    #split-input { height: 3; display: none; }
    """

    def __init__(self, cur: Curation, cid: int):
        super().__init__()
        self.cur = cur
        self.cid = cid
        self.data: ClusterData | None = None
        self.rule = "amplitude" if cur.dataset.amplitudes is not None else "templates"
        self.threshold = 0.0
        self.t0 = 0.0
        self.t1 = 0.0
        self.k = 2
        self.seed = 0
        self.sources = feature_sources(cur)
        self.source = self.sources[0] if self.sources else "amp"
        self.message: Text | None = None
        self.plan: SplitPlan | None = None
        self.hist: tuple[np.ndarray, np.ndarray] | None = None
        self.computing = False

    def compose(self) -> ComposeResult:
        with Vertical() as v:
            v.border_title = f"split cluster {self.cid}"
            yield Static(id="split-rules")
            yield Static(id="split-params")
            body = VerticalScroll(id="split-body")
            body.can_focus = False  # the arrow keys move the threshold, never the scroll
            with body:
                yield Static(id="split-view")
            box = Input(id="split-input")
            box.can_focus = False  # focusable only while shown (e)
            yield box
            yield Static(id="split-pieces")
            yield Static(id="split-msg")
        yield Footer()

    def on_mount(self) -> None:
        self.data = load_cluster(self.cur, self.cid)
        d = self.data
        if d.amplitudes is not None and d.amplitudes.size:
            # one bin per row that fits (the whole histogram stays in view at 80x24)
            rows = int((self.app.size.height or 24) * 0.95) - 9
            self.hist = amplitude_histogram(d.amplitudes, max(6, min(20, rows)))
            finite = d.amplitudes[np.isfinite(d.amplitudes)]
            self.threshold = float(np.median(finite)) if finite.size else 0.0
        self.t0, self.t1 = 0.0, round(d.duration / 2.0, 3)
        self.query_one(
            Vertical
        ).border_title = f"split cluster {self.cid} ({d.spikes.shape[0]:,} spikes)"
        self.recompute()

    # ------------------------------------------------------------------ rules
    def recompute(self) -> None:
        d = self.data
        if d is None:
            return
        if self.rule == "amplitude":
            if d.amplitudes is None:
                self.plan = None
            else:
                self.plan = by_amplitude(d.cid, d.spikes, d.amplitudes, self.threshold)
        elif self.rule == "templates":
            self.plan = by_templates(d.cid, d.spikes, d.templates)
        elif self.rule == "time":
            self.plan = by_time(d.cid, d.spikes, d.times_s, self.t0, self.t1)
        else:
            self.plan = None
            self.computing = True
            self._kmeans_worker(self.k, self.seed, self.source)
        self.redraw()

    @work(thread=True, exclusive=True, group="kmeans", exit_on_error=False, description="k-means")
    def _kmeans_worker(self, k: int, seed: int, source: str) -> None:
        d = self.data
        assert d is not None
        try:
            feats = features_for(self.cur, d, source)
        except CuralogError as exc:
            self.app.call_from_thread(self.say, str(exc))
            return
        plan = by_kmeans(d.cid, d.spikes, feats, k, seed, source, feature_weights(source))
        if source == "amp_time":
            plan.params["time_weight"] = TIME_WEIGHT
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._kmeans_done, plan)

    def _kmeans_done(self, plan: SplitPlan) -> None:
        if (
            self.rule == "kmeans"
            and plan.params.get("k") == self.k
            and plan.params.get("features") == self.source
        ):
            self.plan = plan
            self.computing = False
            self.redraw()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        rules = Text()
        for key, name, label in RULES:
            style = "bold reverse" if name == self.rule else "dim"
            rules.append(f" {key} ", style="bold cyan")
            rules.append(f"{label} ", style=style)
            rules.append(" ")
        self.query_one("#split-rules", Static).update(rules)
        self.query_one("#split-params", Static).update(self._params_text())
        self.query_one("#split-view", Static).update(self._view())
        self.query_one("#split-pieces", Static).update(self._pieces_text())
        self.query_one("#split-msg", Static).update(self.message or Text(""))

    def say(self, message: str, *, error: bool = True) -> None:
        """A one-line answer under the pieces (why a key did nothing, a bad value)."""
        self.message = Text(message, style="bold yellow" if error else "green")
        self.redraw()

    def _params_text(self) -> Text:
        if self.rule == "amplitude":
            if self.data is None or self.data.amplitudes is None:
                return Text("no amplitudes.npy in this folder", style="red")
            return Text.assemble(
                ("spike amplitude (a.u.) threshold ", "bold"),
                (f"{self.threshold:.4g}", "bold yellow"),
                ("  ↑↓ ±1 bin · e type", "dim"),
            )
        if self.rule == "time":
            return Text.assemble(
                ("time range ", "bold"),
                (f"[{self.t0:g}, {self.t1:g}) s", "bold yellow"),
                ("  inside vs outside, e: type 'T0 T1'", "dim"),
            )
        if self.rule == "templates":
            return Text("one piece per original template of the sorter", style="dim")
        return Text.assemble(
            ("k-means ", "bold"),
            (f"k={self.k} seed={self.seed} features={FEATURE_NAMES[self.source]}", "bold yellow"),
            ("  +/-: k, f: features, e: 'K SEED'", "dim"),
        )

    def _view(self) -> Text | Table:
        d = self.data
        if d is None:
            return Text("")
        width = max(30, int((self.size.width or 80) * 0.95) - 6)
        if self.rule == "amplitude" and self.hist is not None:
            counts, edges = self.hist
            return histogram_rows(
                counts, edges, width=min(width, 100), marker=self.threshold, high_first=True
            )
        if self.rule == "time":
            n_bins = min(width, 120)
            counts, edges = np.histogram(d.times_s, bins=n_bins, range=(0.0, max(d.duration, 1e-9)))
            centres = 0.5 * (edges[:-1] + edges[1:])
            marked = (centres >= self.t0) & (centres < self.t1)
            return Text.assemble(
                Text("spikes over time (inside the range in red)\n", style="dim"),
                bar_chart(counts, n_bins, 4, marked=marked, marked_style="bold magenta"),
            )
        if self.plan is None:
            return Text("computing…" if self.computing else "", style="dim")
        table = Table(box=None, padding=(0, 2))
        table.add_column("piece", justify="right")
        table.add_column("spikes", justify="right")
        table.add_column("share", justify="right")
        if d.amplitudes is not None:
            table.add_column("median amp (a.u.)", justify="right")
        table.add_column("what")
        total = max(1, d.spikes.shape[0])
        templates = self.plan.params.get("templates", [])
        for i, size in enumerate(self.plan.sizes):
            row = [str(i), f"{size:,}", f"{size / total:.0%}"]
            if d.amplitudes is not None:
                row.append(
                    f"{np.nanmedian(d.amplitudes[self.plan.labels == i]):.3g}" if size else "–"
                )
            row.append(
                f"template {templates[i]}"
                if self.rule == "templates" and i < len(templates)
                else ""
            )
            table.add_row(*row)
        return table

    def _pieces_text(self) -> Text:
        if self.plan is None:
            return Text("computing…" if self.computing else "no split with this rule", style="dim")
        problem = self.plan.problem
        if problem:
            return Text(f"✗ {problem}", style="bold red")
        return Text.assemble(
            ("→ " + self.plan.describe(), "bold green"),
            ("   enter: commit · escape: cancel", "dim"),
        )

    # ------------------------------------------------------------------ keys
    def action_rule(self, name: str) -> None:
        self.message = None
        if name == "kmeans" and not self.sources:
            self.say("k-means: no pc_features.npy and no amplitudes.npy in this folder")
        elif name == "amplitude" and (self.data is None or self.data.amplitudes is None):
            self.say("amplitude threshold: no amplitudes.npy in this folder")
        self.rule = name
        self.recompute()

    def action_nudge(self, direction: int) -> None:
        if self.rule != "amplitude" or self.hist is None:
            why = "no amplitudes.npy" if self.hist is None else f"the {self.rule} rule has none"
            self.say(f"up/down move the amplitude threshold ({why}; a: amplitude rule)")
            return
        self.message = None
        _, edges = self.hist
        step = float(edges[1] - edges[0])
        lo, hi = float(edges[0]), float(edges[-1]) + step
        self.threshold = float(np.clip(self.threshold + direction * step, lo, hi))
        self.recompute()

    def action_k(self, delta: int) -> None:
        if self.rule != "kmeans":
            self.say("+/- change k of the k-means rule (m: k-means)")
            return
        new = int(np.clip(self.k + delta, 2, 12))
        if new == self.k:
            self.say(f"k stays between 2 and 12 (k={self.k})")
            return
        self.message = None
        self.k = new
        self.recompute()

    def action_cycle_features(self) -> None:
        if self.rule != "kmeans":
            self.say("f cycles the k-means features (m: k-means)")
            return
        if len(self.sources) < 2:
            self.say("f: nothing else to cycle to")
            return
        i = self.sources.index(self.source) if self.source in self.sources else -1
        self.source = self.sources[(i + 1) % len(self.sources)]
        note = "" if "pc" in self.sources else " (no pc_features.npy here: no PC features)"
        self.say(f"features: {FEATURE_NAMES[self.source]}{note}", error=False)
        self.recompute()

    def action_edit(self) -> None:
        box = self.query_one("#split-input", Input)
        box.display = True
        box.cursor_blink = getattr(self.app, "cursor_blink", True)
        if self.rule == "amplitude":
            box.value, box.border_title = f"{self.threshold:g}", "threshold"
        elif self.rule == "time":
            box.value, box.border_title = f"{self.t0:g} {self.t1:g}", "T0 T1 (seconds)"
        elif self.rule == "kmeans":
            box.value, box.border_title = f"{self.k} {self.seed}", "K SEED"
        else:
            box.display = False
            self.say("e: the templates rule has no parameter to type")
            return
        self.message = None
        box.can_focus = True
        box.focus()

    @on(Input.Submitted, "#split-input")
    def _edited(self, event: Input.Submitted) -> None:
        box = event.input
        box.display = False
        box.can_focus = False
        self.set_focus(None)
        try:
            parts = [float(x) for x in event.value.replace(",", " ").split()]
            if self.rule == "amplitude" and len(parts) == 1:
                self.threshold = parts[0]
            elif self.rule == "time" and len(parts) == 2 and parts[1] > parts[0]:
                self.t0, self.t1 = parts
            elif self.rule == "kmeans" and len(parts) in (1, 2):
                self.k = int(np.clip(int(parts[0]), 2, 12))
                if len(parts) == 2:
                    self.seed = int(parts[1])
            else:
                raise ValueError
        except ValueError:
            self.say(f"cannot use {event.value!r} here")
            return
        self.message = None
        self.recompute()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        box = self.query_one("#split-input", Input)
        return action == "cancel" or not box.has_focus

    def action_cancel(self) -> None:
        box = self.query_one("#split-input", Input)
        if box.display:
            box.display = False
            box.can_focus = False
            self.set_focus(None)
            return
        self.dismiss(None)

    def action_commit(self) -> None:
        if self.plan is None or self.plan.problem:
            self.say(self.plan.problem if self.plan and self.plan.problem else "nothing to commit")
            return
        self.dismiss(self.plan)
