"""The cluster table's view-model: columns, row values and cell rendering.

The table is a projection of this model: a row is a plain dict of values per cluster
(what filters and sorts read) and cells are ``rich.text.Text`` made from those values.
Values known instantly (id, group, n_spikes, firing rate, sorter columns, label fields)
come from the :class:`curalog.Curation`; the statistics arrive later from the
:class:`curalog.analysis.stats.StatsEngine` (``set_stats``) and fill the remaining cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text

from curalog import Curation
from curalog.analysis.stats import QUALITY_COLUMNS, QUALITY_NAMES, recording_timebase

from .plots import CCG_STYLE, correlogram_marks, sparkline

GROUP_STYLES = {
    "good": "#86d16d",
    "mua": "#afafaf",
    "noise": "#777777",
    None: "",
}
PENDING = Text("…", style="dim", justify="right")
ACG_WIDTH = 13  # 26 half-ACG bins (0-25 ms) -> 2 ms per character
CCG_WIDTH = 17  # 51 CCG bins -> 3 ms per character


@dataclass(frozen=True)
class Column:
    """A table column: DataTable key, header, width, the row key it shows, its format."""

    key: str
    label: str
    width: int
    source: str
    fmt: str = "s"  # 'd', '.2f', 's', 'group', 'acg'
    instant: bool = False  # known without statistics

    @property
    def numeric(self) -> bool:
        return self.fmt not in ("s", "group", "acg")


#: The fixed columns, in display order (phy's names as headers; long names are the engine's).
BASE_COLUMNS: tuple[Column, ...] = (
    Column("id", "id", 6, "id", "d", True),
    Column("group", "group", 8, "group", "group", True),
    Column("n_spikes", "n_spikes", 8, "n_spikes", "d", True),
    Column("acg", "ACG 0-25ms", ACG_WIDTH, "acg", "acg"),
    Column("fr", "fr", 6, "firing_rate", ".2f", True),
    Column("amp", "amp[t]", 6, "template_amplitude", ".1f"),
    Column("spk_amp", "amp[au]", 7, "amplitude_median_npy", ".1f"),
    Column("raw_amp", "amp[µV]", 7, "raw_amplitude_uv", ".0f"),
    Column("depth", "depth", 5, "depth", ".0f"),
    Column("ch", "ch", 4, "ch", "s"),
    Column("isi", "isi", 5, "isi_violations_ratio", ".2f"),
    Column("contam", "contam", 6, "rp_contamination", ".2f"),
    Column("presence", "pres", 4, "presence_ratio", ".2f"),
)

#: Short names accepted by ``sort`` and the filter, mapped to row keys.
SHORT_NAMES = {c.key: c.source for c in BASE_COLUMNS if c.key != c.source}
SHORT_NAMES.update(
    {"n": "n_spikes", "sh": "shank", "pres": "presence_ratio", "rpc": "rp_contamination"}
)

_STAT_KEYS = (
    "template",
    "best_channel",
    "shank",
    "depth",
    "ch",
    "template_amplitude",
    "amplitude_median_npy",
    "amplitude_median",
    "isi_violations_ratio",
    "isi_violations_count",
    "rp_contamination",
    "rp_violations",
    "presence_ratio",
    "amplitude_cutoff",
    "peak_to_trough_ms",
    "firing_rate",
)
#: Every statistic a row holds: phy's and curalog's, then SpikeInterface's quality metrics.
STAT_KEYS = tuple(dict.fromkeys((*_STAT_KEYS, "amplitude_median_npy", *QUALITY_NAMES)))

#: The quality-metric columns, after the fixed, sorter and label columns (scroll right).
QUALITY_TABLE_COLUMNS: tuple[Column, ...] = tuple(
    Column(f"q:{c.name}", c.short, max(6, len(c.short)), c.name, c.fmt) for c in QUALITY_COLUMNS
)
SHORT_NAMES.update(
    {c.short: c.name for c in QUALITY_COLUMNS if c.short.isidentifier() and c.short != c.name}
)


def format_value(value: Any, fmt: str, *, pending: bool = False) -> Text:
    """A right-justified number, or left text; ``…`` while pending, ``–`` when missing."""
    if value is None:
        return PENDING if pending else Text("–", style="dim", justify="right")
    if fmt == "s":
        return Text(str(value), no_wrap=True, overflow="ellipsis")
    try:
        if isinstance(value, float) and math.isnan(value):
            return Text("–", style="dim", justify="right")
        if fmt == "d":
            return Text(str(int(value)), justify="right")
        num = float(value)
        text = f"{num:{fmt}}"
        if fmt.endswith("f") and abs(num) >= 10_000:
            text = f"{num:.3g}"
        return Text(text, justify="right")
    except (TypeError, ValueError):
        return Text(str(value), justify="right")


def group_text(group: str | None) -> Text:
    if group is None:
        return Text("unsorted", style="dim")
    return Text(group, style=GROUP_STYLES.get(group, "italic"))


class IdCell(Text):
    """The id cell: a Text that remembers its cluster id (used as the sort handle)."""

    def __init__(self, cid: int, group: str | None, marked: bool = False):
        mark = "●" if marked else " "
        super().__init__(
            f"{mark}{cid}", style=GROUP_STYLES.get(group, "italic") or "", justify="right"
        )
        self.cid = cid
        if marked:
            self.stylize("bold magenta", 0, 1)


def acg_cell(
    acg_half: np.ndarray | None, bin_ms: float, refractory_ms: float = 2.0, width: int = ACG_WIDTH
) -> Text:
    """Half ACG (lags 0..window/2) as blocks; the refractory characters in red."""
    if acg_half is None:
        return Text("…", style="dim")
    half = np.asarray(acg_half)[: 2 * width]  # 0-25 ms at 1 ms bins
    marks = correlogram_marks(half.shape[0], width, bin_ms, refractory_ms, half=True)
    return sparkline(half, width, marked=marks)


def ccg_cell(
    ccg: np.ndarray | None, bin_ms: float, refractory_ms: float = 2.0, width: int = CCG_WIDTH
) -> Text:
    if ccg is None:
        return Text("…", style="dim")
    arr = np.asarray(ccg)
    marks = correlogram_marks(arr.shape[0], width, bin_ms, refractory_ms)
    return sparkline(arr, width, marked=marks, style=CCG_STYLE)


class ClusterModel:
    """Row values of every cluster, from the curation (instant) and the statistics (later)."""

    def __init__(self, cur: Curation, *, bin_ms: float = 1.0, refractory_ms: float = 2.0):
        self.cur = cur
        self.bin_ms = bin_ms
        self.refractory_ms = refractory_ms
        self.stats: dict[int, dict[str, Any]] = {}
        self.acg: dict[int, np.ndarray] = {}
        self._acg_cells: dict[int, Text] = {}
        self.marked: set[int] = set()
        self.sorter_names = list(cur.dataset.sorter_columns)
        # the recording's length, as the statistics use (so fr does not change when they land)
        self._duration = recording_timebase(cur.dataset).duration

    # ------------------------------------------------------------------ columns
    def label_fields(self) -> list[str]:
        return [f for f in self.cur.labels.fields if f != "group"]

    def columns(self) -> list[Column]:
        cols = list(BASE_COLUMNS)
        if not self.has_raw_uv():  # amp[µV] only with a recording whose gain is known
            cols = [c for c in cols if c.key != "raw_amp"]
        for name in self.sorter_names:
            cols.append(
                Column(
                    f"sorter:{name}",
                    name,
                    max(6, min(10, len(name))),
                    self._sorter_key(name),
                    "auto",
                    True,
                )
            )
        for name in self.label_fields():
            cols.append(
                Column(f"label:{name}", name, max(6, min(12, len(name))), name, "auto", True)
            )
        cols.extend(QUALITY_TABLE_COLUMNS)
        return cols

    def has_raw_uv(self) -> bool:
        """A raw recording is open and its µV per unit is known."""
        try:
            rec = getattr(self.cur, "recording", None)
        except Exception:  # a recording that cannot be read: the views say why
            return False
        return rec is not None and getattr(rec, "uv_per_unit", None) is not None

    @staticmethod
    def _sorter_key(name: str) -> str:
        """A sorter column's row key: its name, or ``sorter.<name>`` when a computed
        column has that name (a sorter's value never replaces a computed one)."""
        return f"sorter.{name}" if name in STAT_KEYS or name in SHORT_NAMES else name

    def column_names(self) -> set[str]:
        """Every name a filter or sort may use."""
        names = {"id", "group", "n_spikes", *STAT_KEYS, *SHORT_NAMES}
        names.update(self._sorter_key(n) for n in self.sorter_names)
        names.update(f"sorter.{n}" for n in self.sorter_names)
        names.update(self.label_fields())
        return names

    def resolve_column(self, name: str) -> str:
        """A row key from a column name, a short name or an unambiguous prefix."""
        if name in SHORT_NAMES:
            return SHORT_NAMES[name]
        names = self.column_names() - set(SHORT_NAMES)
        if name in names:
            return name
        lowered = {n.lower(): n for n in names} | {k.lower(): v for k, v in SHORT_NAMES.items()}
        if name.lower() in lowered:
            return lowered[name.lower()]
        hits = sorted({lowered[n] for n in lowered if n.startswith(name.lower())})
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise KeyError(f"column {name!r} is ambiguous: {', '.join(hits)}")
        raise KeyError(f"unknown column {name!r}")

    # ------------------------------------------------------------------ values
    def has_stats(self, cid: int) -> bool:
        return cid in self.stats

    def set_stats(self, cid: int, row: dict[str, Any], acg_half: np.ndarray) -> None:
        self.stats[cid] = {k: row.get(k) for k in STAT_KEYS}
        self.acg[cid] = acg_half

    def row(self, cid: int) -> dict[str, Any]:
        """All values of a cluster, with long and short names (None = not known yet)."""
        cur = self.cur
        n = cur.state.n_spikes_of(cid) if cid in cur.state else 0
        group = cur.group(cid)
        out: dict[str, Any] = {
            "id": cid,
            "n_spikes": n,
            "group": group or "unsorted",
            "firing_rate": n / self._duration,
        }
        st = self.stats.get(cid)
        if st:
            out.update({k: v for k, v in st.items() if v is not None})
        for name, values in cur.dataset.sorter_columns.items():
            if cid < cur.dataset.n_templates and cid in values:
                out[f"sorter.{name}"] = values[cid]
                out.setdefault(self._sorter_key(name), values[cid])
        for name in self.label_fields():
            value = cur.labels.fields[name].get(cid)
            if value is not None:
                out[name] = value
        for short, long in SHORT_NAMES.items():
            if long in out:
                out[short] = out[long]
        return out

    def value(self, cid: int, key: str) -> Any:
        """One value (fast paths for the sort keys; ``row`` for the rest)."""
        if key == "id":
            return cid
        if key == "n_spikes":
            return self.cur.state.n_spikes_of(cid) if cid in self.cur.state else 0
        if key == "group":
            return self.cur.group(cid) or "unsorted"
        if key in STAT_KEYS:
            st = self.stats.get(cid)
            if key == "firing_rate" and st is None:
                return self.value(cid, "n_spikes") / self._duration
            return None if st is None else st.get(key)
        return self.row(cid).get(key)

    # ------------------------------------------------------------------ cells
    def cell(self, cid: int, col: Column, row: dict[str, Any] | None = None) -> Text:
        if col.key == "id":
            return IdCell(cid, self.cur.group(cid), cid in self.marked)
        if col.key == "group":
            return group_text(self.cur.group(cid))
        if col.key == "acg":
            return self.acg_text(cid)
        row = self.row(cid) if row is None else row
        value = row.get(col.source)
        if col.fmt == "auto":
            if isinstance(value, bool) or value is None or isinstance(value, str):
                return format_value(value, "s") if value is not None else Text("")
            return format_value(value, "d" if isinstance(value, int) else ".3g")
        return format_value(value, col.fmt, pending=not col.instant and cid not in self.stats)

    def cells(self, cid: int, cols: list[Column]) -> list[Text]:
        row = self.row(cid)
        return [self.cell(cid, c, row) for c in cols]

    def acg_text(self, cid: int) -> Text:
        got = self._acg_cells.get(cid)
        if got is None:
            half = self.acg.get(cid)
            if half is None:
                return Text("…", style="dim")
            got = acg_cell(half, self.bin_ms, self.refractory_ms)
            self._acg_cells[cid] = got
        return got

    # ------------------------------------------------------------------ sorting
    def sort_key(self, key: str, descending: bool) -> Callable[[int], tuple]:
        """A key function over cluster ids: missing values always last, ties by id."""

        def k(cid: int) -> tuple:
            v = self.value(cid, key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return (1, 0.0, (), cid)
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                num = float(v)
                return (0, -num if descending else num, (), cid)
            codes = tuple(-ord(ch) if descending else ord(ch) for ch in str(v))
            return (0, 0.0, codes, cid)

        return k
