"""The rule language: parsing, semantics, errors, and the default rules."""

from __future__ import annotations

import math

import pytest

from curalog.analysis.autolabel import (
    DEFAULT_RULES,
    RuleError,
    autolabel_decisions,
    evaluate_rules,
    parse_rule,
    tokenize,
)

ROWS = {
    1: {
        "id": 1,
        "n_spikes": 5000,
        "isi_violations_ratio": 0.8,
        "firing_rate": 3.0,
        "KSLabel": "good",
        "presence_ratio": 0.95,
        "amplitude_cutoff": 0.01,
        "rp_contamination": 0.0,
        "peak_to_trough_ms": 0.5,
    },
    2: {
        "id": 2,
        "n_spikes": 120,
        "isi_violations_ratio": 0.0,
        "firing_rate": 0.1,
        "KSLabel": "mua",
        "presence_ratio": math.nan,
        "amplitude_cutoff": math.nan,
        "rp_contamination": math.nan,
        "peak_to_trough_ms": 0.6,
    },
    3: {
        "id": 3,
        "n_spikes": 9000,
        "isi_violations_ratio": 0.01,
        "firing_rate": 12.0,
        "presence_ratio": 0.99,
        "amplitude_cutoff": 0.05,
        "rp_contamination": 0.02,
        "peak_to_trough_ms": 0.05,
    },
}


def decide(rule: str, row: dict) -> bool:
    return parse_rule(rule + " -> mua").matches(row)


@pytest.mark.parametrize(
    "expr, row, expected",
    [
        ("x > 1", {"x": 2}, True),
        ("x > 1", {"x": 1}, False),
        ("x >= 1 and y < 2", {"x": 1, "y": 1}, True),
        ("x >= 1 and y < 2", {"x": 1, "y": 2}, False),
        ("x > 5 or y == 2", {"x": 1, "y": 2}, True),
        ("not x > 5", {"x": 1}, True),
        ("not (x > 5 or y == 2)", {"x": 1, "y": 2}, False),
        ("x > 1 or y > 1 and z > 1", {"x": 2, "y": 0, "z": 0}, True),  # and binds tighter
        ("(x > 1 or y > 1) and z > 1", {"x": 2, "y": 0, "z": 0}, False),
        ("0.1 < x < 0.5", {"x": 0.3}, True),  # chained like Python
        ("0.1 < x < 0.5", {"x": 0.6}, False),
        ("x * 2 + 1 >= 7 - y / 2", {"x": 3, "y": 2}, True),
        ("-x < -1", {"x": 2}, True),
        ("abs(x) > 1", {"x": -3}, True),
        ("x > 1e-3", {"x": 0.01}, True),
        ("x > .5", {"x": 0.6}, True),
        ("KSLabel == 'good'", {"KSLabel": "good"}, True),
        ('KSLabel != "good"', {"KSLabel": "mua"}, True),
        ("KSLabel == 3", {"KSLabel": "good"}, False),
        ("KSLabel != 3", {"KSLabel": "good"}, True),
        ("x > 1", {"x": math.nan}, False),  # missing: comparisons are false
        ("not x > 1", {"x": math.nan}, True),
        ("x > 1", {}, False),
        ("isnan(x)", {"x": math.nan}, True),
        ("isnan(x)", {}, True),
        ("isnan(x)", {"x": 0.0}, False),
        ("x + 1 > 0", {"x": None}, False),
        ("x / 0 > 0", {"x": 1}, False),
        ("true", {}, True),
        ("false or TRUE", {}, True),
        (
            "fr > 1 and amp > 2 and sh == 0",
            {"firing_rate": 2, "template_amplitude": 3, "shank": 0},
            True,
        ),
    ],
)
def test_semantics(expr, row, expected):
    assert decide(expr, row) is expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty rule"),
        ("x > 1", "expected '->'"),
        ("x > 1 -> maybe", "unknown group"),
        ("x > -> mua", "expected a number"),
        ("(x > 1 -> mua", r"expected '\)'"),
        ("x > 1 -> mua extra", "unexpected"),
        ("x $ 1 -> mua", "unexpected character"),
        ("open('f') -> mua", "unknown function"),
        ("__import__('os') -> mua", "unknown function"),
        ("x > 1 and -> mua", "expected a number"),
        ("and x -> mua", "unexpected 'and'"),
    ],
)
def test_errors_are_clear(text, message):
    with pytest.raises(RuleError, match=message):
        parse_rule(text)


def test_error_points_at_the_column():
    with pytest.raises(RuleError) as exc:
        parse_rule("isi_violations_ratio >> 0.5 -> mua")
    assert "column 23" in str(exc.value)


def test_unknown_column_is_reported_with_known_ones():
    with pytest.raises(RuleError, match="unknown column 'isi_ratio'.*isi_violations_ratio"):
        autolabel_decisions(ROWS, ["isi_ratio > 0.5 -> mua"])


def test_first_matching_rule_wins_and_unmatched_are_absent():
    rules = [
        "isi_violations_ratio > 0.5 -> mua",
        "n_spikes > 1000 -> good",
        "firing_rate > 100 -> noise",
    ]
    out = evaluate_rules(rules, ROWS)
    assert out == {
        1: ("mua", "isi_violations_ratio > 0.5 -> mua"),
        3: ("good", "n_spikes > 1000 -> good"),
    }
    assert autolabel_decisions(list(ROWS.values()), rules) == [
        (1, "mua", "isi_violations_ratio > 0.5 -> mua"),
        (3, "good", "n_spikes > 1000 -> good"),
    ]


def test_default_rules():
    for r in DEFAULT_RULES:
        parse_rule(r)
    decisions = {c: g for c, g, _ in autolabel_decisions(ROWS)}
    assert decisions == {1: "good", 2: "mua", 3: "noise"}  # 2: < 300 spikes; 3: 0.05 ms waveform
    decided = dict((c, rule) for c, _, rule in autolabel_decisions(ROWS))
    assert decided[2] == "n_spikes < 300 -> mua"


def test_no_eval_of_python():
    toks = tokenize("x.y > 1")
    assert [t.kind for t in toks] == ["name", "op", "num", "end"]
    assert not decide("x.y > 1", {"x": 5})  # dotted name is just an (absent) column name


def test_with_an_engine(phy_template):
    from curalog.analysis.stats import StatsEngine
    from curalog.clustering import ClusterState
    from curalog.dataset import load_dataset

    ds = load_dataset(phy_template)
    engine = StatsEngine(ds, ClusterState(ds.spike_templates))
    out = autolabel_decisions(engine, ["n_spikes >= 10 -> good", "true -> mua"])
    assert len(out) == 62
    sizes = {r["id"]: r["n_spikes"] for r in engine.table_rows()}
    assert all((g == "good") == (sizes[c] >= 10) for c, g, _ in out)
