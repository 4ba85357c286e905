"""Tests of ``curalog proposals`` and ``curalog evaluate`` (curalog/proposals_cli.py).

curalog/cli.py registers subcommand modules by name; these tests build the same parser
themselves with :func:`curalog.proposals_cli.register`, so they do not depend on that list.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curalog.cli import proposals as proposals_cli
from curalog.curation import open_curation
from curalog.errors import CuralogError
from curalog.events.envelope import MERGE
from curalog.synth.generator import synthesize


def _parser() -> argparse.ArgumentParser:
    """A parser with the ``add`` helper of curalog.cli.build_parser."""
    parser = argparse.ArgumentParser(prog="curalog")
    sub = parser.add_subparsers(dest="command")

    def add(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help_: str,
        *,
        dataset: bool = True,
        author: bool = False,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        if dataset:
            p.add_argument("dir", metavar="DIR")
            p.add_argument("--log", metavar="PATH")
        if author:
            p.add_argument("--author")
        p.set_defaults(func=func)
        return p

    proposals_cli.register(add)
    return parser


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args) or 0)


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pcli") / "ks"
    synthesize(out, 300_000, 60, seed=4, n_channels=64, drift=True)
    return out


def test_list_json_writes_nothing(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["proposals", str(ds), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["min_score"] == 0.2 and out["clusters"] == 60
    props = out["proposals"]
    assert props and all(p["score"] >= 0.2 and p["a"] < p["b"] and p["reason"] for p in props)
    assert [p["score"] for p in props] == sorted((p["score"] for p in props), reverse=True)
    assert not (ds / ".curalog").exists()
    assert run(["proposals", str(ds), "--json", "--min-score", "0", "--limit", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["proposals"]) == 3


def test_list_table(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["proposals", str(ds), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "merge proposals" in out and "--accept-all --min-score 0.2" in out
    assert run(["proposals", str(ds), "--min-score", "1"]) == 0
    assert "no merge proposal" in capsys.readouterr().out


def test_accept_all(ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "main.log"
    assert (
        run(
            [
                "proposals",
                str(ds),
                "--log",
                str(log),
                "--accept-all",
                "--min-score",
                "0.2",
                "--json",
                "--author",
                "tester",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    merges = out["merges"]
    assert merges and out["clusters_after"] == out["clusters_before"] - len(merges)
    with open_curation(ds, log, readonly=True) as cur:
        events = [e for e in cur.history if e.type == MERGE]
        assert len(events) == len(merges)
        for e, m in zip(events, merges, strict=True):
            assert e.author == "tester" and e.body["new"] == m["new"]
            assert e.body["meta"]["proposal"]["score"] == m["score"] >= 0.2
    # nothing is left above the threshold
    assert run(["proposals", str(ds), "--log", str(log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proposals"] == []
    assert (
        run(
            [
                "proposals",
                str(ds),
                "--log",
                str(tmp_path / "b.log"),
                "--accept-all",
                "--min-score",
                "0.2",
                "--max-merges",
                "2",
            ]
        )
        == 0
    )
    assert "accepted 2 proposals" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--accept-all"], "needs an explicit --min-score"),
        (["--min-score", "1.5"], "between 0 and 1"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_bad_arguments(ds: Path, tmp_path: Path, argv: list[str], message: str) -> None:
    log = tmp_path / "x.log"
    with pytest.raises(CuralogError, match=message):
        run(["proposals", str(ds), "--log", str(log), *argv])
    assert not log.exists()


def test_evaluate(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["evaluate", str(ds), "--json", "--thresholds", "0.5,0.3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["min_score"] for o in out["outcomes"]] == [0.5, 0.3, 0.2]
    assert "merges" not in out and 0.0 <= out["phy"]["top1_hit_rate"] <= 1.0
    assert not (ds / ".curalog").exists()
    assert run(["evaluate", str(ds), "--truth", str(ds / "synth_truth.json")]) == 0
    text = capsys.readouterr().out
    assert "phy's similarity ranking" in text and "impure" in text
    with pytest.raises(CuralogError, match="no such file"):
        run(["evaluate", str(ds), "--truth", str(ds / "nope.json")])
    with pytest.raises(CuralogError, match="--thresholds"):
        run(["evaluate", str(ds), "--thresholds", "0.5,x"])


def test_registered_in_the_curalog_command(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from curalog.cli import program as cli

    parser: Any = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "proposals" not in sub.choices:
        pytest.skip("curalog.cli does not list proposals_cli yet")
    assert cli.main(["proposals", str(ds), "--json", "--limit", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)["proposals"]) == 1
    assert cli.main(["proposals", str(ds), "--accept-all"]) == 2
    assert "--min-score" in capsys.readouterr().err


def test_evaluate_reads_ground_truth_tables(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--truth DIR`` with gt_match_counts.tsv / gt_sorted_sizes.tsv (a real run's format):
    here written from the synthetic truth, every template a piece of its unit."""
    import numpy as np

    truth = json.loads((ds / "synth_truth.json").read_text())["unit_of_template"]
    sizes = np.bincount(np.load(ds / "spike_templates.npy"), minlength=len(truth))
    units = sorted({u for u in truth if u >= 0})
    gt = tmp_path / "gt"
    gt.mkdir()
    lines = ["\t" + "\t".join(str(t) for t in range(len(truth)))]
    for u in units:
        lines.append(
            f"{u}\t"
            + "\t".join(str(int(sizes[t]) if truth[t] == u else 0) for t in range(len(truth)))
        )
    (gt / "gt_match_counts.tsv").write_text("\n".join(lines) + "\n")
    (gt / "gt_sorted_sizes.tsv").write_text(
        "\t0\n" + "".join(f"{t}\t{int(sizes[t])}\n" for t in range(len(truth)))
    )
    assert run(["evaluate", str(ds), "--truth", str(gt), "--json"]) == 0
    from_tables = json.loads(capsys.readouterr().out)
    assert run(["evaluate", str(ds), "--json"]) == 0
    from_json = json.loads(capsys.readouterr().out)
    assert from_tables["truth"]["format"] == "ground-truth tables"
    assert [o["real_clusters"] for o in from_tables["outcomes"]] == [
        o["real_clusters"] for o in from_json["outcomes"]
    ]
    assert run(["evaluate", str(ds), "--truth", str(gt)]) == 0
    text = capsys.readouterr().out
    assert "pieces of" in text and "at 0.2:" in text
    (gt / "gt_sorted_sizes.tsv").unlink()
    with pytest.raises(CuralogError, match="gt_sorted_sizes.tsv: no such file"):
        run(["evaluate", str(ds), "--truth", str(gt)])
