"""Pure parts of the terminal UI: plots, filter, command parsing, split rules, feeder."""

from __future__ import annotations

import numpy as np
import pytest

from curalog.events.envelope import LABEL, MERGE, REDO, UNDO, Event
from curalog_tui.commands import CommandError, parse_command, parse_ids
from curalog_tui.feeder import Feeder
from curalog_tui.filter_expr import FilterError, compile_filter
from curalog_tui.model import acg_cell, format_value
from curalog_tui.plots import BLOCKS, bar_chart, histogram_rows, levels, line_plot, rebin, sparkline
from curalog_tui.screens.history import undo_stack
from curalog_tui.split_rules import by_amplitude, by_templates, by_time, dense_labels, kmeans


# ---------------------------------------------------------------------- plots
def test_sparkline_scaled_from_zero_blank_for_zero():
    text = sparkline([0, 1, 2, 4, 8])
    assert text.plain[0] == " "  # an exact zero is a blank (refractory dip visible)
    assert text.plain[-1] == "▆"  # one-line sparklines stop at 6/8 (rows never touch)
    assert text.plain[1] == BLOCKS[1]  # 1/8 of the max: the lowest bar, not stretched from min
    flat = sparkline([10, 10, 10, 11])
    assert set(flat.plain[:3]) == {"▅"}  # a flat correlogram stays high (not min->max stretched)


def test_levels_and_rebin():
    assert levels(np.zeros(4)).tolist() == [0, 0, 0, 0]
    assert rebin(np.arange(6), 3).tolist() == [1, 5, 9]
    assert rebin(np.ones(5), 2).sum() == pytest.approx(5.0)
    assert len(sparkline(np.arange(51), 17).plain) == 17


def test_acg_cell_marks_refractory_bins():
    half = np.array([0, 0, 5, 9, 9, 9, 8, 8] + [7] * 18)
    cell = acg_cell(half, bin_ms=1.0, refractory_ms=2.0, width=13)
    assert len(cell.plain) == 13
    assert cell.plain[0] == " "  # 0-2 ms: empty, as it should be for a good unit
    from curalog_tui.plots import REFRACTORY_STYLE

    assert any(str(span.style) == REFRACTORY_STYLE and span.start == 0 for span in cell.spans)


def test_bar_chart_and_line_plot_shapes():
    chart = bar_chart(np.arange(10), 10, 3)
    assert len(chart.plain.split("\n")) == 3
    plot = line_plot(np.sin(np.linspace(0, 6, 50)), 20, 4)
    rows = plot.plain.split("\n")
    assert len(rows) == 4 and all(len(r) == 20 for r in rows)
    assert any(ch != "\u2800" for r in rows for ch in r)


def test_histogram_rows_marks_threshold_bin():
    counts, edges = np.array([1, 5, 2]), np.array([0.0, 1.0, 2.0, 3.0])
    text = histogram_rows(counts, edges, width=40, marker=1.5)
    lines = text.plain.split("\n")
    assert len(lines) == 3 and "▶" in lines[1] and "▶" not in lines[0]


def test_format_value():
    assert format_value(None, ".2f", pending=True).plain == "…"
    assert format_value(float("nan"), ".2f").plain == "–"
    assert format_value(0.003, ".2f").plain == "0.00"
    assert format_value(12, "d").plain == "12"


# ---------------------------------------------------------------------- filter
def test_filter_language():
    names = {"n_spikes", "group", "firing_rate", "KSLabel"}
    p = compile_filter("n_spikes > 100 and group == good", names)
    assert p({"n_spikes": 150, "group": "good"})
    assert not p({"n_spikes": 150, "group": "mua"})
    assert not p({"group": "good"})  # missing value: comparison is false
    assert compile_filter("fr >= 2", names)({"firing_rate": 2.5})  # phy's short name
    assert compile_filter("", names)({})
    assert compile_filter("KSLabel == 'mua' or not (n_spikes < 10)", names)(
        {"KSLabel": "good", "n_spikes": 50}
    )


@pytest.mark.parametrize("bad", ["foo > 1", "n_spikes >", "__import__('os')", "n_spikes.real > 1"])
def test_filter_errors_are_one_line(bad):
    with pytest.raises(FilterError) as exc:
        compile_filter(bad, {"n_spikes"})
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------------- commands
def test_parse_ids_ranges_and_lists():
    assert parse_ids(["1", "2,3", "5-7", "3"]) == [1, 2, 3, 5, 6, 7]
    with pytest.raises(CommandError):
        parse_ids(["x"])


def test_parse_commands():
    assert parse_command("merge 3 4").ids == [3, 4]
    assert parse_command(":g").name == "merge"
    cmd = parse_command("label good 1 2")
    assert (cmd.name, cmd.group, cmd.ids) == ("label", "good", [1, 2])
    cmd = parse_command("label quality=3")
    assert (cmd.field_name, cmd.value) == ("quality", 3)
    cmd = parse_command("l note 'two words' 5")
    assert (cmd.field_name, cmd.value, cmd.ids) == ("note", "two words", [5])
    cmd = parse_command("sort amp asc")
    assert (cmd.column, cmd.descending) == ("amp", False)
    assert parse_command("select 4-6").ids == [4, 5, 6]
    assert parse_command("filter n_spikes > 3").text == "n_spikes > 3"
    for bad in ("", "frobnicate", "select", "sort", "label", "sort amp sideways", "undo 3"):
        with pytest.raises(CommandError):
            parse_command(bad)


# ---------------------------------------------------------------------- split rules
def test_amplitude_split_is_strictly_below_and_dense():
    spikes = np.arange(10, 16)
    amps = np.array([1.0, 5.0, 2.0, np.nan, 2.0, 9.0])
    plan = by_amplitude(7, spikes, amps, 2.0)
    assert plan.labels.tolist() == [0, 1, 1, 1, 1, 1]  # 2.0 is not below 2.0; NaN stays above
    assert plan.sizes == [1, 5] and plan.valid
    assert plan.meta["rule"] == "amplitude_threshold" and plan.meta["threshold"] == 2.0
    assert not by_amplitude(7, spikes, amps, 0.5).valid  # nothing below: one piece


def test_template_and_time_splits():
    spikes = np.arange(6)
    plan = by_templates(9, spikes, np.array([4, 2, 4, 2, 2, 8]))
    assert plan.labels.tolist() == [1, 0, 1, 0, 0, 2] and plan.meta["templates"] == [2, 4, 8]
    plan = by_time(9, spikes, np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), 1.0, 3.0)
    assert plan.labels.tolist() == [1, 0, 0, 1, 1, 1]
    assert dense_labels(np.array([5, 9, 5])).tolist() == [0, 1, 0]


def test_kmeans_is_seeded_and_finds_blobs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(10, 1, (100, 2))])
    a = kmeans(x, 2, seed=3)
    b = kmeans(x, 2, seed=3)
    assert np.array_equal(a, b)
    assert np.bincount(a).tolist() == [300, 100]  # biggest piece first
    assert len(set(a[:300])) == 1 and len(set(a[300:])) == 1


# ---------------------------------------------------------------------- feeder & history
def test_feeder_front_back_and_worker_handoff():
    f = Feeder()
    assert f.want([1, 2, 3], front=False) is True  # start a worker
    assert f.want([9], front=True) is False  # one is running
    assert [f.pop() for _ in range(4)] == [9, 1, 2, 3]
    assert f.pop() is None  # the worker leaves...
    assert f.want([4]) is True  # ...so the next push starts a new one


def _ev(seq: int, type_: str) -> Event:
    return Event(seq=seq, type=type_, time_ns=0, author="t", prev=b"", body={})


def test_undo_stack_from_history():
    events = [
        _ev(1, MERGE),
        _ev(2, LABEL),
        _ev(3, UNDO),
        _ev(4, MERGE),
        _ev(5, UNDO),
        _ev(6, REDO),
        _ev(7, UNDO),
    ]
    st = undo_stack(events)
    assert st.active == [1] and st.undone == [4] and st.discarded == {2}
    assert st.status(2) == "dropped" and st.status(4) == "undone"
