"""Quality metrics are incremental: after any actions they equal a from-scratch computation,
and a merge or split computes only the clusters it created (counters prove it)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curalog import open_curation
from curalog.analysis.stats.engine import StatsEngine
from curalog.analysis.stats.quality import QUALITY_NAMES


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from curalog.synth import synthesize

    out = tmp_path_factory.mktemp("q") / "ds"
    synthesize(out, n_spikes=30_000, n_templates=12, seed=5, n_channels=24, pc_features=True)
    return out


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, float) and math.isnan(va):
            assert isinstance(vb, float) and math.isnan(vb), k
        else:
            assert va == vb, (k, va, vb)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.integers(0, 2**31 - 1),
    st.lists(st.sampled_from(["merge", "merge", "split", "undo", "redo"]), min_size=1, max_size=8),
)
def test_quality_incremental_equals_from_scratch(folder, tmp_path_factory, seed, actions):
    rng = np.random.default_rng(seed)
    log = tmp_path_factory.mktemp("log") / "h.curalog"
    with open_curation(folder, log) as cur:
        eng = StatsEngine(cur.dataset, cur.state)
        cur.subscribe(eng.on_update)
        for c in cur.cluster_ids.tolist():
            if rng.random() < 0.8:
                eng.row(c)
        for act in actions:
            ids = cur.cluster_ids.tolist()
            if act == "merge" and len(ids) >= 2:
                k = int(rng.integers(2, min(3, len(ids)) + 1))
                cur.merge(rng.choice(ids, size=k, replace=False).tolist())
            elif act == "split":
                c = int(rng.choice(ids))
                sp = cur.spikes(c)
                sel = sp[rng.random(sp.shape[0]) < 0.4]
                if 0 < sel.shape[0] < sp.shape[0]:
                    cur.split(sel)
            elif act == "undo" and cur.can_undo:
                cur.undo()
            elif act == "redo" and cur.can_redo:
                cur.redo()
            for c in cur.cluster_ids.tolist():
                if rng.random() < 0.5:
                    eng.row(c)
        fresh = StatsEngine(cur.dataset, cur.state)
        for c in cur.cluster_ids.tolist():
            ours, theirs = eng.row(c), fresh.row(c)
            assert set(QUALITY_NAMES) <= set(ours)
            _same(ours, theirs)
        assert fresh.counters["composed"] == 0


def test_merge_computes_only_the_new_cluster_and_composes_its_pc_sample(folder, tmp_path):
    with open_curation(folder, tmp_path / "h.curalog") as cur:
        eng = StatsEngine(cur.dataset, cur.state)
        cur.subscribe(eng.on_update)
        ids = cur.cluster_ids.tolist()
        rows = {c: eng.row(c) for c in ids}
        pcs = eng.ctx.quality.pcs
        assert all(np.isfinite(rows[c]["isolation_distance"]) for c in ids[:4])
        eng.reset_counters()
        passes = pcs.hash_passes
        a, b = max(ids, key=lambda c: rows[c]["n_spikes"]), ids[0]
        new = cur.merge([a, b])
        for c in cur.cluster_ids.tolist():
            eng.get(c)
        assert eng.compute_log == [(new, "composed")]
        assert eng.counters["computed"] == 0 and eng.counters["composed"] == 1
        assert eng.counters["quality_computed"] == 0  # quality is lazy: not asked yet
        eng.row(new)
        for c in cur.cluster_ids.tolist():
            eng.row(c)
        assert (eng.counters["quality_composed"], eng.counters["quality_computed"]) == (1, 0)
        assert pcs.hash_passes == passes and pcs.hash_composed >= 1  # no pass over spikes
        # untouched clusters' PC metrics are the cached ones, unchanged by the merge
        for c in cur.cluster_ids.tolist():
            if c != new:
                for k in ("isolation_distance", "l_ratio", "d_prime", "nn_hit_rate"):
                    v, w = eng.row(c)[k], rows[c][k]
                    assert (math.isnan(v) and math.isnan(w)) or v == w
        # a split computes exactly its children
        eng.reset_counters()
        sp = cur.spikes(new)
        children = cur.split(sp[::3])
        for c in cur.cluster_ids.tolist():
            eng.get(c)
        assert sorted(c for c, _ in eng.compute_log) == sorted(children)


def test_pc_point_sets_follow_their_definition(folder, tmp_path):
    """Self: the cluster's spikes with h < max_self / N whose template covers its channels.
    Others: every other spike of a covering template with h < max_other / candidates.
    Written out with numpy, against the hash index and its kernels."""
    from curalog.analysis.stats.quality_pc import spike_hash

    with open_curation(folder, tmp_path / "d.curalog") as cur:
        eng = StatsEngine(cur.dataset, cur.state)
        cur.merge(cur.cluster_ids.tolist()[:2])  # a cluster of two templates
        pcs = eng.ctx.quality.pcs
        pcs.params = type(pcs.params)(max_self=60, max_other=150)  # bounds that bite
        st = np.asarray(cur.dataset.spike_templates)
        h_all = spike_hash(np.arange(st.shape[0]), pcs.params.seed)
        for c in cur.cluster_ids.tolist():
            spikes = np.asarray(cur.spikes(c))
            tids, counts = np.unique(st[spikes], return_counts=True)
            dominant = int(tids[np.argmax(counts)])
            got = pcs.sample(spikes, dominant, tids, counts)
            assert got is not None
            covering, _ = pcs.covering(pcs.channels_of(dominant))
            covered = np.isin(st, covering)
            p_self = min(1.0, pcs.params.max_self / spikes.shape[0])
            want_self = spikes[(h_all[spikes] < p_self) & covered[spikes]]
            np.testing.assert_array_equal(got.self_spikes, want_self)
            others = np.flatnonzero(covered & ~np.isin(np.arange(st.shape[0]), spikes))
            q = min(1.0, pcs.params.max_other / max(others.shape[0], 1))
            np.testing.assert_array_equal(got.other_spikes, others[h_all[others] < q])
