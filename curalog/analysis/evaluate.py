"""How good are the merge proposals? Accept them on a scratch log and compare with the truth.

:func:`evaluate` opens the dataset on a *scratch* log in a temporary folder (the user's logs are
never touched), accepts proposals greedily, best first and re-scored after every merge
(:meth:`curalog.analysis.proposals.ProposalEngine.accept_all`), and measures the result against a
ground truth such as the ``synth_truth.json`` that :func:`curalog.synth.synthesize` writes.
Because the greedy sequence does not depend on the threshold (a threshold only decides where
to stop), one run gives the outcome at every threshold of a sweep.

Truth
-----
``unit_of_template[t]`` is the true unit of template ``t`` (``-1``: noise). Two formats are
read (:func:`load_truth`):

* a JSON file with ``unit_of_template`` (``synth_truth.json``, what
  :func:`curalog.synth.synthesize` writes);
* the tables of a ground-truth comparison of a real sorting (a folder, or its
  ``gt_match_counts.tsv``): ``gt_match_counts.tsv`` (spikes matched between every true unit,
  rows, and every sorted unit, columns named by the sorter's template ids),
  ``gt_sorted_sizes.tsv`` (spikes of every sorted unit) and, optionally,
  ``gt_agreement.tsv`` (SpikeInterface's agreement scores, true x sorted). A sorted unit is a
  *piece* of the true unit ``g`` that holds most of its spikes when ``matched(g, t) >=
  PIECE_FRACTION * size(t)`` (80 %); otherwise (a mixture, or noise) it is ``-1``.

Every noise
template is its own source (two noise templates are different sources, so merging them is
impure). Sorter clusters are templates, and proposals only merge whole clusters, so every
cluster is a set of templates and its sources are exact.

Measures (per threshold)
------------------------
clusters, real_clusters
    Live clusters; those holding at least one template of a true unit (the clusters left for
    the true units' pieces).
clusters_per_unit
    For every true unit, the live clusters holding its templates (1 = all its pieces joined).
n_units
    True units with at least one spike.
excess
    ``real_clusters / n_units - 1`` (0 = one cluster per unit; the issue's target is at most
    0.10 with no impure merge).
impure_merges
    Accepted merges whose two clusters' majority sources (by spikes) differ.
impure_clusters
    Final clusters holding spikes of more than one source.
pair_precision, pair_recall
    Over pairs of templates with spikes: ``TP / (pairs put together)`` and
    ``TP / (pairs of one source)``, TP = pairs of one source put together (precision is 1
    when nothing was merged).

phy's similarity ranking (same data, before any merge)
------------------------------------------------------
For every sorter cluster of a true unit that the sorter split (the unit has at least two
templates with spikes), phy's top-1 similar cluster (``sim(c, d) = max S[i, j]``, ties by
ascending id, as :meth:`curalog.analysis.stats.StatsEngine.similar`) is a *hit* when it belongs to the
same unit: ``top1_hit_rate = hits / split clusters``. ``top1_impure_rate`` is, over every
cluster of a true unit, the fraction whose top-1 belongs to another source (what merging
every cluster with its top-1 would mix).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curalog.analysis.proposals import ProposalEngine
from curalog.curation import open_curation
from curalog.errors import CuralogError

__all__ = [
    "Truth",
    "Outcome",
    "Evaluation",
    "load_truth",
    "evaluate",
    "DEFAULT_THRESHOLDS",
    "PIECE_FRACTION",
    "GT_MATCH_COUNTS",
]

DEFAULT_THRESHOLDS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
#: A sorted unit is a piece of the true unit holding most of its spikes if it holds this share.
PIECE_FRACTION = 0.8
GT_MATCH_COUNTS = "gt_match_counts.tsv"
GT_SORTED_SIZES = "gt_sorted_sizes.tsv"
GT_AGREEMENT = "gt_agreement.tsv"


class TruthError(CuralogError):
    """A ground-truth file that cannot be used."""


@dataclass(frozen=True)
class Truth:
    """Ground truth at the template level."""

    unit_of_template: np.ndarray  # (n_templates,) int64, -1 = noise
    #: where it came from and, for a ground-truth comparison, what it says about the sorting
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def source_of_template(self) -> np.ndarray:
        """Unit id, or ``-1 - t`` for noise template ``t`` (every noise template its own)."""
        u = self.unit_of_template
        return np.where(u >= 0, u, -1 - np.arange(u.shape[0]))


def load_truth(path: str | os.PathLike[str]) -> Truth:
    """Read the truth: a JSON file with ``unit_of_template`` (``synth_truth.json``), or the
    ground-truth tables of a real sorting (a folder holding ``gt_match_counts.tsv`` and
    ``gt_sorted_sizes.tsv``, or the path of ``gt_match_counts.tsv``; module docstring)."""
    p = Path(path)
    if p.is_dir() or p.name == GT_MATCH_COUNTS:
        return _load_gt_tables(p if p.is_dir() else p.parent)
    try:
        data = json.loads(p.read_text())
        uot = np.asarray(data["unit_of_template"], dtype=np.int64).reshape(-1)
    except FileNotFoundError:
        raise TruthError(f"{p}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TruthError(
            f"{p}: not a truth file with 'unit_of_template' ({exc.__class__.__name__})"
        ) from None
    return Truth(uot, source=str(p))


def default_truth(folder: str | os.PathLike[str]) -> Path:
    """The truth of a folder: ``synth_truth.json``, else its ground-truth tables."""
    folder = Path(folder)
    synth = folder / "synth_truth.json"
    if not synth.exists() and (folder / GT_MATCH_COUNTS).exists():
        return folder
    return synth


def _read_table(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """A tab-separated table with a header row and an index column: (row names, column
    names, float values)."""
    try:
        lines = [ln.rstrip("\r\n") for ln in path.read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise TruthError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TruthError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) < 2:
        raise TruthError(f"{path}: expected a header row and at least one data row")
    cols = lines[0].split("\t")[1:]
    rows, vals = [], []
    for i, ln in enumerate(lines[1:], 2):
        cells = ln.split("\t")
        if len(cells) != len(cols) + 1:
            raise TruthError(f"{path}: line {i} has {len(cells)} fields, expected {len(cols) + 1}")
        try:
            vals.append([float(c) for c in cells[1:]])
        except ValueError:
            raise TruthError(f"{path}: line {i} holds a value that is not a number") from None
        rows.append(cells[0].strip())
    return rows, [c.strip() for c in cols], np.asarray(vals, dtype=np.float64)


def _ids(path: Path, names: list[str], what: str) -> np.ndarray:
    try:
        out = np.array([int(float(n)) for n in names], dtype=np.int64)
    except ValueError:
        raise TruthError(f"{path}: {what} must be integer unit ids") from None
    if out.size and out.min() < 0:
        raise TruthError(f"{path}: negative {what}")
    return out


def _load_gt_tables(folder: Path) -> Truth:
    """``unit_of_template`` from ``gt_match_counts.tsv`` and ``gt_sorted_sizes.tsv``."""
    mpath, spath = folder / GT_MATCH_COUNTS, folder / GT_SORTED_SIZES
    true_names, sorted_names, counts = _read_table(mpath)
    sorted_ids = _ids(mpath, sorted_names, "column names (sorted units)")
    true_ids = _ids(mpath, true_names, "row names (true units)")
    size_rows, _, size_vals = _read_table(spath)
    size_ids = _ids(spath, size_rows, "row names (sorted units)")
    if size_vals.shape[1] < 1:
        raise TruthError(f"{spath}: expected one column of spike counts")
    sizes = dict(zip(size_ids.tolist(), size_vals[:, 0].tolist(), strict=True))
    missing = [int(t) for t in sorted_ids if int(t) not in sizes]
    if missing:
        raise TruthError(f"{spath}: no size for sorted unit {missing[0]} of {mpath.name}")
    n = int(sorted_ids.max()) + 1 if sorted_ids.size else 0
    uot = np.full(n, -1, dtype=np.int64)
    share = np.zeros(n)
    for j, t in enumerate(sorted_ids.tolist()):
        size = sizes[t]
        if size <= 0 or counts.shape[0] == 0:
            continue
        g = int(np.argmax(counts[:, j]))
        share[t] = counts[g, j] / size
        if counts[g, j] >= PIECE_FRACTION * size:
            uot[t] = true_ids[g]
    pieces = uot[uot >= 0]
    info: dict[str, Any] = {
        "format": "ground-truth tables",
        "true_units": int(true_ids.shape[0]),
        "sorted_units": int(sorted_ids.shape[0]),
        "pieces": int(pieces.shape[0]),
        "units_with_pieces": len(set(pieces.tolist())),
        "split_units": int(sum(1 for v in Counter(pieces.tolist()).values() if v > 1)),
        "not_pieces": [int(t) for t in sorted_ids.tolist() if uot[t] < 0],
    }
    apath = folder / GT_AGREEMENT
    if apath.exists():
        a_rows, a_cols, agree = _read_table(apath)
        if agree.shape[0]:
            best = agree.max(axis=1)
            info["agreement_best_mean"] = float(best.mean())
            info["units_detected_0.8"] = int((best >= 0.8).sum())
    return Truth(uot, source=str(folder), info=info)


@dataclass
class Outcome:
    """The result of accepting every proposal above ``min_score``."""

    min_score: float
    merges: int
    clusters: int
    real_clusters: int
    n_units: int
    excess: float
    impure_merges: int
    impure_clusters: int
    pair_precision: float
    pair_recall: float
    clusters_per_unit: dict[int, int] = field(default_factory=dict)

    @property
    def split_units(self) -> dict[int, int]:
        """The true units still in more than one cluster (unit -> clusters)."""
        return {u: k for u, k in self.clusters_per_unit.items() if k > 1}


@dataclass
class Evaluation:
    """Outcomes of a threshold sweep plus phy's similarity-ranking baseline."""

    folder: str
    n_spikes: int
    n_templates: int
    n_units: int
    outcomes: list[Outcome]
    phy: dict[str, float]
    timings: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    merges: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)

    def best(self, max_excess: float = 0.10) -> Outcome | None:
        """The highest threshold reaching ``excess <= max_excess`` with no impure merge."""
        ok = [o for o in self.outcomes if o.impure_merges == 0 and o.excess <= max_excess]
        return max(ok, key=lambda o: o.min_score) if ok else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["outcomes"] = [asdict(o) for o in self.outcomes]
        return out


class _Tracker:
    """Template sources of every live cluster, updated merge by merge."""

    def __init__(self, truth: Truth, counts: np.ndarray):
        src = truth.source_of_template
        self.src = src
        self.spikes_of_template = counts
        self.members: dict[int, Counter[int]] = {}  # cluster -> {source: spikes}
        self.templates: dict[int, Counter[int]] = {}  # cluster -> {source: templates}
        for t in np.flatnonzero(counts):
            self.members[int(t)] = Counter({int(src[t]): int(counts[t])})
            self.templates[int(t)] = Counter({int(src[t]): 1})
        self.n_units = len({int(s) for s in src[counts > 0] if s >= 0})
        self.impure_merges = 0
        self.merges = 0

    @staticmethod
    def majority(c: Counter[int]) -> int:
        return min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    def merge(self, parents: Sequence[int], new: int) -> bool:
        ms = [self.members.pop(p) for p in parents]
        ts = [self.templates.pop(p) for p in parents]
        impure = len({self.majority(m) for m in ms}) > 1
        self.impure_merges += int(impure)
        self.merges += 1
        self.members[new] = sum(ms, Counter())
        self.templates[new] = sum(ts, Counter())
        return impure

    def outcome(self, min_score: float) -> Outcome:
        real = sum(1 for m in self.members.values() if any(s >= 0 for s in m))
        impure = sum(1 for m in self.members.values() if len(m) > 1)
        tp = sum(n * (n - 1) // 2 for t in self.templates.values() for n in t.values())
        put = sum(k * (k - 1) // 2 for k in (sum(t.values()) for t in self.templates.values()))
        per_source: Counter[int] = Counter()
        for t in self.templates.values():
            per_source.update(t)
        true_pairs = sum(n * (n - 1) // 2 for n in per_source.values())
        per_unit: Counter[int] = Counter()
        for m in self.members.values():
            per_unit.update({s for s in m if s >= 0})
        return Outcome(
            min_score=float(min_score),
            merges=self.merges,
            clusters=len(self.members),
            real_clusters=real,
            n_units=self.n_units,
            excess=real / self.n_units - 1.0 if self.n_units else math.nan,
            impure_merges=self.impure_merges,
            impure_clusters=impure,
            pair_precision=tp / put if put else 1.0,
            pair_recall=tp / true_pairs if true_pairs else 1.0,
            clusters_per_unit={int(u): int(k) for u, k in sorted(per_unit.items())},
        )


def phy_top1(engine: Any, truth: Truth, template_counts: np.ndarray) -> dict[str, float]:
    """phy's similarity ranking on the current (sorter) state: top-1 hit rate (module doc)."""
    src = truth.source_of_template
    ids, m = engine.similarity_table()
    per_unit = Counter(int(s) for s in src[template_counts > 0] if s >= 0)
    hits = split = impure = real = 0
    for i, c in enumerate(ids):
        c = int(c)
        if c >= src.shape[0] or src[c] < 0 or m.shape[1] < 2:
            continue
        j = int(np.argmax(m[i]))  # first maximum: ties go to the smaller id, as phy's stable sort
        top = int(ids[j])
        same = top < src.shape[0] and src[top] == src[c]
        real += 1
        impure += int(not same)
        if per_unit[int(src[c])] >= 2:
            split += 1
            hits += int(same)
    return {
        "top1_hit_rate": hits / split if split else math.nan,
        "split_clusters": float(split),
        "top1_impure_rate": impure / real if real else math.nan,
        "real_clusters": float(real),
    }


def evaluate(
    folder: str | os.PathLike[str],
    truth: str | os.PathLike[str] | Truth | None = None,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    params: Any = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Accept proposals on a scratch log and measure the outcome at every threshold.

    Parameters
    ----------
    folder : path
        The sorter's output folder.
    truth : path or Truth, optional
        A JSON truth file, or ground-truth tables (a folder or its ``gt_match_counts.tsv``);
        default ``folder/synth_truth.json``, else the folder's own ``gt_*.tsv`` tables.
    thresholds : sequence of float
        Scores at which to report (one greedy run serves them all).
    params : ProposalParams, optional
    progress : callable, optional
        Called with a short status line now and then.

    Returns
    -------
    Evaluation
    """

    folder = Path(folder)
    if not isinstance(truth, Truth):
        truth = load_truth(truth if truth is not None else default_truth(folder))
    thr = sorted({float(t) for t in thresholds}, reverse=True)
    if not thr:
        raise TruthError("no threshold to evaluate")
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="curalog-evaluate-") as tmp:
        t0 = time.perf_counter()
        with open_curation(
            folder, Path(tmp) / "scratch.log", author="curalog-evaluate", sync=False
        ) as cur:
            n_t = int(cur.dataset.n_templates)
            if truth.info.get("format") == "ground-truth tables" and n_t > len(
                truth.unit_of_template
            ):
                # templates the comparison does not list (no spikes) are nobody's
                pad = np.full(n_t - len(truth.unit_of_template), -1, dtype=np.int64)
                truth = Truth(
                    np.concatenate([truth.unit_of_template, pad]), truth.source, truth.info
                )
            if n_t > truth.unit_of_template.shape[0]:
                raise TruthError(
                    f"the truth covers {truth.unit_of_template.shape[0]} templates, the "
                    f"dataset has {cur.dataset.n_templates}"
                )
            timings["open_s"] = time.perf_counter() - t0
            engine = ProposalEngine(cur, params=params)
            counts = np.bincount(
                np.asarray(cur.dataset.spike_templates), minlength=truth.unit_of_template.shape[0]
            )
            t1 = time.perf_counter()
            first = engine.proposals(thr[-1])
            timings["first_proposals_s"] = time.perf_counter() - t1
            say(f"{len(first)} proposals at score >= {thr[-1]:g} on {cur.n_clusters} clusters")
            phy = phy_top1(engine, truth, counts)
            tracker = _Tracker(truth, counts)
            outcomes: list[Outcome] = []
            merges: list[dict[str, Any]] = []
            i = 0
            t2 = time.perf_counter()
            while True:
                prop = engine.next(thr[-1])
                while i < len(thr) and (prop is None or prop.score < thr[i]):
                    outcomes.append(tracker.outcome(thr[i]))
                    i += 1
                if prop is None:
                    break
                new = engine.accept(prop)
                impure = tracker.merge([prop.a, prop.b], new)
                merges.append(
                    {
                        "a": prop.a,
                        "b": prop.b,
                        "new": new,
                        "score": round(prop.score, 4),
                        "impure": impure,
                        "reason": prop.reason,
                    }
                )
                if len(merges) % 100 == 0:
                    say(f"{len(merges)} merges, last score {prop.score:.3f}")
            timings["accept_all_s"] = time.perf_counter() - t2
            ev = Evaluation(
                folder=str(folder),
                n_spikes=int(cur.dataset.n_spikes),
                n_templates=int(cur.dataset.n_templates),
                n_units=tracker.n_units,
                outcomes=outcomes,
                phy=phy,
                timings=timings,
                params=engine.params.to_dict(),
                merges=merges,
                truth={"source": truth.source, **truth.info},
            )
    return ev


def format_table(ev: Evaluation) -> list[list[str]]:
    """Rows of a table (header first) of an evaluation's outcomes."""
    rows = [
        [
            "min score",
            "merges",
            "clusters (units)",
            "excess",
            "units still split",
            "impure merges",
            "impure clusters",
            "pair precision",
            "pair recall",
        ]
    ]
    for o in ev.outcomes:
        rows.append(
            [
                f"{o.min_score:g}",
                str(o.merges),
                f"{o.real_clusters} ({o.n_units})",
                f"{100 * o.excess:+.1f} %",
                str(len(o.split_units)),
                str(o.impure_merges),
                str(o.impure_clusters),
                f"{o.pair_precision:.3f}",
                f"{o.pair_recall:.3f}",
            ]
        )
    return rows
