"""Random curation sessions give identical spike_clusters through every path.

API (curalog.open) == replay of the written log == the CLI == phy's own ``Clustering``
(when phy is installed: ``pip install 'curalog[interop]'``; the comparison runs in
``.ci/run``'s interop step and in ``pytest -m interop``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curalog
from curalog.cli.program import main as cli_main

from conftest import write_folder

N_SPIKES = 60


def _phy_clustering():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from phy.cluster.clustering import Clustering
    except Exception:  # ImportError, or Qt failing to load
        return None
    return Clustering


@st.composite
def sessions(draw):
    """A base assignment and a list of operations drawn against the evolving state."""
    n_templates = draw(st.integers(2, 7))
    base = draw(st.lists(st.integers(0, n_templates - 1), min_size=N_SPIKES, max_size=N_SPIKES))
    n_ops = draw(st.integers(1, 12))
    ops = []
    for _ in range(n_ops):
        kind = draw(st.sampled_from(["merge", "split", "split_labels", "undo", "redo"]))
        if kind == "merge":
            ops.append(("merge", draw(st.lists(st.integers(0, 10_000), min_size=2, max_size=3))))
        elif kind.startswith("split"):
            spikes = draw(
                st.lists(st.integers(0, N_SPIKES - 1), min_size=1, max_size=25, unique=True)
            )
            labels = None
            if kind == "split_labels":
                labels = draw(
                    st.lists(st.integers(0, 4), min_size=len(spikes), max_size=len(spikes))
                )
            ops.append(("split", (spikes, labels)))
        else:
            ops.append((kind, None))
    return np.array(base, dtype=np.int32), ops


def _resolve_merge_ids(picks: list[int], live: np.ndarray) -> list[int] | None:
    ids = sorted({int(live[p % len(live)]) for p in picks})
    return ids if len(ids) >= 2 else None


def run_api(folder: Path, ops) -> tuple[np.ndarray, list[tuple]]:
    """Apply ops through the API; returns final state and the concrete ops actually applied."""
    concrete = []
    with curalog.open(folder) as cur:
        for kind, arg in ops:
            if kind == "merge":
                ids = _resolve_merge_ids(arg, cur.cluster_ids)
                if ids is None:
                    continue
                cur.merge(ids)
                concrete.append(("merge", ids))
            elif kind == "split":
                spikes, labels = arg
                cur.split(spikes, labels)
                concrete.append(("split", (spikes, labels)))
            elif kind == "undo":
                if cur.undo() is not None:
                    concrete.append(("undo", None))
            elif kind == "redo" and cur.redo() is not None:
                concrete.append(("redo", None))
        return cur.spike_clusters.copy(), concrete


def run_cli(folder: Path, concrete, tmp: Path) -> np.ndarray:
    for i, (kind, arg) in enumerate(concrete):
        if kind == "merge":
            argv = ["merge", str(folder), *map(str, arg)]
        elif kind == "split":
            spikes, labels = arg
            np.save(tmp / f"s{i}.npy", np.array(spikes, dtype=np.int64))
            argv = ["split", str(folder), "--spikes", str(tmp / f"s{i}.npy")]
            if labels is not None:
                np.save(tmp / f"l{i}.npy", np.array(labels, dtype=np.int64))
                argv += ["--labels", str(tmp / f"l{i}.npy")]
        else:
            argv = [kind, str(folder)]
        assert cli_main(argv) == 0
    return curalog.replay(folder)


def run_phy(base: np.ndarray, concrete) -> np.ndarray:
    Clustering = _phy_clustering()
    c = Clustering(base.copy())
    for kind, arg in concrete:
        if kind == "merge":
            c.merge(arg)
        elif kind == "split":
            spikes, labels = arg
            order = np.argsort(spikes)
            sp = np.asarray(spikes, dtype=np.int64)[order]
            rel = 0 if labels is None else np.asarray(labels, dtype=np.int64)[order]
            c.split(sp, spike_clusters_rel=rel)
        elif kind == "undo":
            c.undo()
        else:
            c.redo()
    return np.asarray(c.spike_clusters).astype(np.int32)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(session=sessions())
def test_api_replay_and_cli_agree(tmp_path_factory, session):
    base, ops = session
    tmp = tmp_path_factory.mktemp("eq")
    folder = write_folder(tmp / "api", base)
    state, concrete = run_api(folder, ops)
    assert np.array_equal(curalog.replay(folder), state)
    # the fast replay (effective actions only) equals the event-by-event replay
    with (
        curalog.open(folder, readonly=True) as fast,
        curalog.open(folder, readonly=True, verify=True) as slow,
    ):
        assert np.array_equal(fast.spike_clusters, slow.spike_clusters)
        assert fast.state.counter == slow.state.counter
        assert fast.labels.snapshot() == slow.labels.snapshot()
        assert (fast.can_undo, fast.can_redo, fast.undo_depth) == (
            slow.can_undo,
            slow.can_redo,
            slow.undo_depth,
        )
    # every prefix of the log replays to a consistent state
    with curalog.open(folder, readonly=True) as cur:
        n = cur.seq
    for upto in range(n + 1):
        curalog.replay(folder, upto=upto)
    cli_folder = write_folder(tmp / "cli", base)
    assert np.array_equal(run_cli(cli_folder, concrete, tmp), state)


@pytest.mark.interop
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(session=sessions())
def test_same_ids_as_phy_clustering(tmp_path_factory, session):
    if _phy_clustering() is None:
        pytest.skip("phy is not installed (pip install 'curalog[interop]')")
    base, ops = session
    folder = write_folder(tmp_path_factory.mktemp("phy") / "d", base)
    state, concrete = run_api(folder, ops)
    assert np.array_equal(run_phy(base, concrete), state)


def test_phy_comparison_on_real_folder(phy_template, tmp_path):
    """A scripted session on the real phy test data, compared to phy when available."""
    rng = np.random.default_rng(7)
    ops = []
    for _ in range(25):
        r = rng.random()
        if r < 0.35:
            ops.append(("merge", rng.integers(0, 1000, 2).tolist()))
        elif r < 0.7:
            sp = rng.choice(314, int(rng.integers(1, 40)), replace=False).tolist()
            labels = rng.integers(0, 3, len(sp)).tolist() if rng.random() < 0.3 else None
            ops.append(("split", (sp, labels)))
        else:
            ops.append((("undo", "redo")[int(rng.random() < 0.4)], None))
    state, concrete = run_api(phy_template, ops)
    assert len(concrete) > 10
    copy = tmp_path / "again"
    shutil.copytree(phy_template, copy, ignore=shutil.ignore_patterns(".curalog"))
    assert np.array_equal(run_cli(copy, concrete, tmp_path), state)
    if _phy_clustering() is not None:
        base = np.load(phy_template / "spike_templates.npy").reshape(-1).astype(np.int32)
        assert np.array_equal(run_phy(base, concrete), state)


def test_undo_beyond_the_in_memory_history_rebuilds_by_replay(tmp_path, monkeypatch):
    """Only the latest actions keep their spike arrays; older undos replay the log."""
    import curalog.curation as curation_mod

    monkeypatch.setattr(curation_mod, "HOT_ACTIONS", 3)
    rng = np.random.default_rng(5)
    base = rng.integers(0, 12, 400).astype(np.int32)
    folder = write_folder(tmp_path / "d", base)
    states = []
    updates = []
    with curalog.open(folder) as cur:
        cur.subscribe(updates.append)
        state_object, labels_object = cur.state, cur.labels
        for i in range(10):
            states.append(cur.spike_clusters.copy())
            if i % 2:
                cur.merge(cur.cluster_ids[:2].tolist())
            else:
                cur.split(rng.choice(400, 30, replace=False))
            cur.label([int(cur.cluster_ids[0])], group="good")
        assert any(a.change is not None and a.change.evicted for a in cur._stack)
        for i in range(9, -1, -1):
            cur.undo()  # the label
            cur.undo()  # the structural action
            assert np.array_equal(cur.spike_clusters, states[i])
        assert any(u.kind == "rebuild" for u in updates)
        assert cur.state is state_object and cur.labels is labels_object  # holders stay valid
        for _ in range(6):
            cur.redo()
        expected = cur.spike_clusters.copy()
        counter = cur.state.counter
        new = cur.merge(cur.cluster_ids[:2].tolist())
        assert new == counter  # ids burned by undone actions are never reused
    with curalog.open(folder, readonly=True, verify=True) as slow:
        assert np.array_equal(slow.spike_clusters, curalog.replay(folder))
    assert not np.array_equal(expected, curalog.replay(folder))
