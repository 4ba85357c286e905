"""The incremental engine: incremental == from scratch, laziness proven by counters, threads."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats import StatsEngine
from curalog.analysis.stats.metrics import ClusterStats
from curalog.clustering import ClusterState, Update

# ---------------------------------------------------------------------- fixtures


class FakeDataset:
    """A small in-memory Kilosort output with bursts (correlogram counts) and ties."""

    def __init__(
        self, seed: int = 0, n_templates: int = 8, n_spikes: int = 1500, with_similar: bool = True
    ):
        rng = np.random.default_rng(seed)
        base = np.sort(rng.integers(0, 1_800_000, n_spikes))  # 180 s at 10 kHz
        extra_src = base[: n_spikes // 3]
        extra = extra_src + rng.integers(
            0, 60, extra_src.shape[0]
        )  # near-coincident spikes, some ties
        times = np.concatenate([base, extra])
        templates_of = rng.integers(0, n_templates, times.shape[0])
        order = np.argsort(times, kind="stable")
        self.spike_times = times[order].astype(np.int64)
        self.spike_templates = templates_of[order].astype(np.int32)
        self.sample_rate = 10_000.0
        self.n_templates = n_templates
        self.amplitudes = rng.gamma(5.0, 2.0, self.spike_times.shape[0])
        n_ch = 6
        t = rng.normal(size=(n_templates, 12, n_ch)).astype(np.float32)
        self.templates = t
        self.template_channels = None
        self.channel_map = np.arange(n_ch)
        self.channel_positions = np.column_stack([np.zeros(n_ch), 10.0 * np.arange(n_ch)])
        self.channel_shanks = np.zeros(n_ch, dtype=np.int64)
        sim = rng.random((n_templates, n_templates)).astype(np.float32).round(1)  # ties
        self.similar_templates = (sim + sim.T) / 2 if with_similar else None
        self.sorter_columns = {
            "KSLabel": {c: "good" for c in range(n_templates)},
            "ContamPct": {c: float(c) for c in range(n_templates)},
        }
        self.duration = float(self.spike_times[-1]) / self.sample_rate

    @property
    def n_spikes(self) -> int:
        return int(self.spike_times.shape[0])

    def optional_array(self, name):
        return None


class Driver:
    """Applies actions to a ClusterState and emits Updates like curalog.curation does."""

    def __init__(self, state: ClusterState, engine: StatsEngine):
        self.state, self.engine = state, engine
        self.done: list = []
        self.undone: list = []

    def _emit(self, update: Update) -> None:
        self.engine.on_update(update)

    def act(self, change) -> None:
        self.state.apply(change)
        self.done.append(change)
        self.undone.clear()
        self._emit(
            Update(
                kind=change.kind,
                added=tuple(change.added_ids),
                deleted=tuple(change.deleted_ids),
                descendants=change.descendants,
                largest_old=change.largest_old,
            )
        )

    def merge(self, ids) -> int:
        ch = self.state.resolve_merge(ids)
        self.act(ch)
        return ch.added_ids[0]

    def split(self, spikes) -> list[int]:
        ch = self.state.resolve_split(spikes)
        self.act(ch)
        return ch.added_ids

    def undo(self) -> None:
        ch = self.done.pop()
        self.state.revert(ch)
        self.undone.append(ch)
        self._emit(
            Update(
                kind=ch.kind,
                added=tuple(ch.deleted_ids),
                deleted=tuple(ch.added_ids),
                descendants=tuple((n, o) for o, n in ch.descendants),
                history="undo",
            )
        )

    def redo(self) -> None:
        ch = self.undone.pop()
        self.state.apply(ch)
        self.done.append(ch)
        self._emit(
            Update(
                kind=ch.kind,
                added=tuple(ch.added_ids),
                deleted=tuple(ch.deleted_ids),
                descendants=ch.descendants,
                history="redo",
            )
        )


def assert_same(a: ClusterStats, b: ClusterStats) -> None:
    ra, rb = a.row(), b.row()
    assert ra.keys() == rb.keys()
    for k in ra:
        va, vb = ra[k], rb[k]
        if isinstance(va, float) and math.isnan(va):
            assert isinstance(vb, float) and math.isnan(vb), k
        else:
            assert va == vb, (k, va, vb)
    for name in (
        "acg_half",
        "template_ids",
        "template_counts",
        "presence_counts",
        "series_counts",
        "fr_series",
        "spikes",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.amp_series, b.amp_series)
    np.testing.assert_array_equal(a.best_channels, b.best_channels)


def check_against_scratch(ds, state, engine) -> None:
    fresh = StatsEngine(ds, state, bin_ms=engine.bin_ms, window_ms=engine.window_ms)
    for c in state.cluster_ids.tolist():
        assert_same(engine.get(c), fresh.get(c))
        np.testing.assert_array_equal(engine.sim_row(c), fresh.sim_row(c))
        np.testing.assert_array_equal(engine.template_set(c)[0], fresh.template_set(c)[0])
        np.testing.assert_array_equal(engine.template_set(c)[1], fresh.template_set(c)[1])
        assert engine.similar(c) == fresh.similar(c)
    assert fresh.counters["composed"] == 0


# ---------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.lists(
        st.sampled_from(["merge", "merge", "split", "undo", "redo", "look"]),
        min_size=1,
        max_size=14,
    ),
)
def test_incremental_equals_from_scratch(seed, actions):
    rng = np.random.default_rng(seed)
    ds = FakeDataset(seed % 7)
    state = ClusterState(ds.spike_templates)
    # odd seeds: no gather cache, so merges compose the ACG but gather the spikes again
    engine = StatsEngine(
        ds, state, bin_ms=1.0, window_ms=10.0, gather_cache_mb=0 if seed % 2 else 256
    )
    drv = Driver(state, engine)
    for c in state.cluster_ids.tolist():
        if rng.random() < 0.7:
            engine.get(c)
            engine.sim_row(c)
    for act in actions:
        ids = state.cluster_ids.tolist()
        if act == "merge" and len(ids) >= 2:
            k = int(rng.integers(2, min(4, len(ids)) + 1))
            drv.merge(rng.choice(ids, size=k, replace=False).tolist())
        elif act == "split":
            c = int(rng.choice(ids))
            sp = state.spikes(c)
            sel = sp[rng.random(sp.shape[0]) < 0.5]
            if 0 < sel.shape[0] < sp.shape[0]:
                drv.split(sel)
        elif act == "undo" and drv.done:
            drv.undo()
        elif act == "redo" and drv.undone:
            drv.redo()
        for c in state.cluster_ids.tolist():  # the UI looks at some clusters
            if rng.random() < 0.5:
                engine.get(c)
                engine.sim_row(c)
    check_against_scratch(ds, state, engine)


def test_counters_prove_laziness_and_composition():
    ds = FakeDataset(1)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    drv = Driver(state, engine)
    ids = state.cluster_ids.tolist()
    for c in ids:
        engine.get(c)
        engine.sim_row(c)
    assert engine.counters["computed"] == len(ids)
    engine.reset_counters()

    new = drv.merge([ids[0], ids[1]])
    assert engine.counters == {**engine.counters, "computed": 0, "composed": 0}  # on_update is lazy
    merged = engine.get(new)
    c = engine.counters
    assert (c["computed"], c["composed"], c["ccg_computed"]) == (0, 1, 1)
    assert engine.compute_log == [(new, "composed")]
    assert merged.how == "composed"
    engine.sim_row(new)
    assert engine.counters["sim_rows_composed"] == 1 and engine.counters["sim_rows_computed"] == 0
    for c2 in state.cluster_ids.tolist():
        engine.get(c2)
    assert engine.counters["computed"] == 0 and engine.counters["hits"] == len(state.cluster_ids)

    # undo and redo reuse cached entries
    engine.reset_counters()
    drv.undo()
    engine.get(ids[0])
    engine.get(ids[1])
    drv.redo()
    assert engine.get(new) is merged
    assert engine.counters["computed"] == engine.counters["composed"] == 0
    assert engine.counters["hits"] == 3

    # a split computes exactly the clusters it added
    engine.reset_counters()
    sp = state.spikes(new)
    children = drv.split(sp[::3])
    for c2 in state.cluster_ids.tolist():
        engine.get(c2)
    assert sorted(c for c, _ in engine.compute_log) == sorted(children)
    assert engine.counters["computed"] == len(children)

    # undo of the split gives back the merged cluster from the cache
    engine.reset_counters()
    drv.undo()
    assert engine.get(new) is merged and engine.counters["computed"] == 0
    check_against_scratch(ds, state, engine)


def test_merge_of_uncached_parents_is_computed_not_composed():
    ds = FakeDataset(2)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    new = Driver(state, engine).merge([0, 1])
    assert engine.get(new).how == "computed"
    assert engine.counters["computed"] == 1 and engine.counters["composed"] == 0


def test_similarity_ranking_follows_phys_rule():
    ds = FakeDataset(3)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    drv = Driver(state, engine)
    new = drv.merge([2, 5])
    s = ds.similar_templates
    ranked = engine.similar(new)
    expect = sorted(
        (
            (c, float(max(s[i, j] for i in (2, 5) for j in [c])))
            for c in state.cluster_ids.tolist()
            if c != new
        ),
        key=lambda x: (-x[1], x[0]),
    )
    assert ranked == expect
    assert engine.similarity(new, 3) == pytest.approx(max(s[2, 3], s[5, 3]))
    assert [c for c, _ in engine.similar(new, limit=3)] == [c for c, _ in expect[:3]]


def test_sorter_columns_only_for_original_clusters():
    ds = FakeDataset(4)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    new = Driver(state, engine).merge([0, 1])
    rows = {r["id"]: r for r in engine.table_rows()}
    assert rows[2]["KSLabel"] == "good" and rows[2]["ContamPct"] == 2.0
    assert "KSLabel" not in rows[new]
    assert set(rows) == set(state.cluster_ids.tolist())


def test_ccg_and_acg_views():
    ds = FakeDataset(5)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    from curalog.analysis.stats.correlograms import autocorrelogram, cross_correlogram

    np.testing.assert_array_equal(
        engine.acg(3), autocorrelogram(ds.spike_times, state.spikes(3), engine.bins)
    )
    np.testing.assert_array_equal(
        engine.ccg(3, 4),
        cross_correlogram(
            ds.spike_times, state.spikes(3), state.spikes(4), engine.bins, symmetrize=True
        ),
    )
    np.testing.assert_array_equal(
        engine.ccg(3, 4, symmetrize=False),
        cross_correlogram(ds.spike_times, state.spikes(3), state.spikes(4), engine.bins),
    )
    assert engine.acg(3).shape == (51,)


# ---------------------------------------------------------------------- threads and queue
def test_prefetch_order_and_deleted_ids_leave_the_queue():
    ds = FakeDataset(6)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    engine.prefetch([5, 6, 7], front=False)
    engine.prefetch([1, 2])  # on screen: goes first
    assert engine.queued_ids() == [1, 2, 5, 6, 7]
    Driver(state, engine).merge([2, 6])
    assert engine.queued_ids() == [1, 5, 7]
    assert engine.compute_pending(limit=1) == 1 and engine.cached_ids() == [1]
    assert engine.compute_pending() == 2 and engine.cached_ids() == [1, 5, 7]


def test_background_workers_compute_everything_once():
    ds = FakeDataset(7, n_templates=24, n_spikes=4000)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state, n_workers=2)
    try:
        ids = state.cluster_ids.tolist()
        engine.prefetch(ids)
        results: list = []
        threads = [
            threading.Thread(target=lambda: results.append(engine.get(ids[-1]))) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert engine.wait_idle(timeout=60)
        assert engine.counters["computed"] == len(ids)  # nobody computed an id twice
        assert len({id(r) for r in results}) == 1
        drv = Driver(state, engine)
        new = drv.merge(ids[:3])
        assert engine.wait_idle(timeout=60)  # added ids are queued for the workers
        assert engine.is_cached(new) and engine.counters["composed"] == 1
    finally:
        engine.close()


def test_missing_cluster_is_an_error_but_cached_deleted_ones_answer():
    from curalog.errors import InvalidActionError

    ds = FakeDataset(8)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    e0 = engine.get(0)
    Driver(state, engine).merge([0, 1])
    assert engine.get(0) is e0
    with pytest.raises(InvalidActionError):
        engine.get(1)  # deleted and never computed
    with pytest.raises(InvalidActionError):
        engine.get(10_000)


def test_stale_entry_is_detected_when_a_state_is_rebuilt():
    ds = FakeDataset(9)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    e = engine.get(3)
    engine.state = ClusterState(ds.spike_templates)  # same content, new arrays
    assert engine.get(3) is e and engine.counters["stale"] == 0


def test_real_folder_merge_split_cycle(phy_template):
    from curalog.dataset import load_dataset

    ds = load_dataset(phy_template)
    state = ClusterState(ds.spike_templates)
    engine = StatsEngine(ds, state)
    drv = Driver(state, engine)
    for c in state.cluster_ids.tolist():
        engine.get(c)
        engine.sim_row(c)
    new = drv.merge([0, 3, 9])
    assert engine.get(new).how == "composed"
    ranked = engine.similar(new)
    assert len(ranked) == state.n_clusters - 1 and new not in [c for c, _ in ranked]
    sims = [s for _, s in ranked]
    assert sims == sorted(sims, reverse=True)
    drv.split(state.spikes(new)[::2])
    drv.undo()
    drv.undo()
    drv.redo()
    check_against_scratch(ds, state, engine)
