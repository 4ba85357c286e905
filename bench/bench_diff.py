"""Benchmark: outcome diff of two curations of a 50 M-spike, 1,000-template sorting.

Two curated states are derived in memory from one template assignment with curalog's own
cluster engine (phy's id rules): both curators share most merges, each adds merges and
spike-level splits of their own, and they label clusters differently. Then
:func:`curalog.history.outcome_diff` (contingency table, classification against the common
base, label comparison, adjusted Rand index) is timed, with its parts.

    .venv/bin/python bench/bench_diff.py                # 50 M spikes, 1,000 templates
    .venv/bin/python bench/bench_diff.py --spikes 5e6   # quicker
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from curalog.clustering import ClusterState
from curalog.history import adjusted_rand_index_from_table, contingency, outcome_diff


def base_assignment(n: int, n_templates: int, rng: np.random.Generator) -> np.ndarray:
    """Template per spike with log-normal firing rates (a few big units, many small)."""
    rates = rng.lognormal(0.0, 1.0, n_templates)
    edges = np.cumsum(rates / rates.sum())
    return np.minimum(np.searchsorted(edges, rng.random(n)), n_templates - 1).astype(np.int32)


def curate(
    state: ClusterState,
    merges: list[list[int]],
    splits: list[tuple[int, float]],
    rng: np.random.Generator,
) -> None:
    for group in merges:
        live = [c for c in group if c in state]
        if len(live) >= 2:
            state.apply(state.resolve_merge(live))
    for c, frac in splits:
        if c in state:
            spikes = state.spikes(c)
            sel = spikes[rng.random(spikes.shape[0]) < frac]
            if 0 < sel.shape[0] < spikes.shape[0]:
                state.apply(state.resolve_split(sel))


def timed(label: str, fn, results: list[tuple[str, float]]):
    t0 = time.perf_counter()
    out = fn()
    results.append((label, time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=float, default=50e6)
    ap.add_argument("--templates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, k = int(args.spikes), args.templates
    rng = np.random.default_rng(args.seed)
    setup: list[tuple[str, float]] = []
    base = timed("template assignment", lambda: base_assignment(n, k, rng), setup)
    pairs = rng.permutation(k)[: 2 * 200].reshape(200, 2).tolist()  # 200 candidate merges
    shared, only_a, only_b = pairs[:150], pairs[150:175], pairs[175:]
    split_targets = rng.permutation(k)[400:500].tolist()

    def build(merges, splits, seed):
        state = ClusterState(base)
        curate(state, merges, splits, np.random.default_rng(seed))
        return state

    a_state = timed(
        "curator A (index, 175 merges, 60 splits)",
        lambda: build(shared + only_a, [(c, 0.5) for c in split_targets[:60]], 1),
        setup,
    )
    b_state = timed(
        "curator B (index, 175 merges, 60 splits)",
        lambda: build(
            shared + only_b,
            [(c, 0.5) for c in split_targets[:40]] + [(c, 0.3) for c in split_targets[60:80]],
            2,
        ),
        setup,
    )
    a, b = a_state.spike_clusters, b_state.spike_clusters
    labels_a = {
        "group": {int(c): ("good" if c % 3 else "mua") for c in a_state.cluster_ids.tolist()}
    }
    labels_b = {
        "group": {int(c): ("good" if c % 4 else "noise") for c in b_state.cluster_ids.tolist()}
    }
    del a_state._order, b_state._order  # only the assignments are needed from here on

    print(
        f"{n:,} spikes, {k} templates; A {len(np.unique(a))} clusters, B {len(np.unique(b))} clusters"
    )
    for label, sec in setup:
        print(f"  setup: {label:45s} {sec:7.2f} s")
    runs: list[tuple[str, float]] = []
    for _ in range(args.repeat):
        table = timed("contingency table A x B", lambda: contingency(a, b), runs)
        timed(
            "adjusted Rand index (from the table)",
            lambda t=table: adjusted_rand_index_from_table(t),
            runs,
        )
        d = timed(
            "outcome_diff (full, with base and labels)",
            lambda: outcome_diff(a, b, base, labels_a, labels_b),
            runs,
        )
    best: dict[str, float] = {}
    for label, sec in runs:
        best[label] = min(sec, best.get(label, float("inf")))
    for label, sec in best.items():
        print(f"  {label:50s} best of {args.repeat}: {sec:7.3f} s")
    print(
        f"  identical clusters {len(d.identical)}, merges {len(d.merges)}, splits {len(d.splits)}, "
        f"other {len(d.other)}, label disagreements {len(d.label_disagreements)}"
    )
    print(f"  agreement {d.agreement:.4f}, ARI {d.adjusted_rand_index:.6f}")
    print(
        f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB "
        f"(spike_templates int32: {base.nbytes / 2**20:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
