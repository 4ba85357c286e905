"""The replay snapshot (``<log>.snapshot``): a cache that never changes what a log means.

Opened from a snapshot, a curation must be the one a full replay gives (state, ids, labels,
undo history) and behave identically afterwards; an absent, stale or corrupt snapshot is
detected, the log is replayed instead, and a fresh snapshot is written on close.
"""

from __future__ import annotations

import numpy as np
import pytest

import curalog
from curalog import snapshot as snap_mod
from curalog.snapshot import snapshot_path

from conftest import write_folder

N = 400


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    return write_folder(tmp_path / "ds", rng.integers(0, 12, N), n_templates=12)


def random_session(cur, rng, n_ops: int) -> None:
    """Merges, splits (one and several clusters, with labels), labels, undo and redo."""
    for _ in range(n_ops):
        r = rng.random()
        ids = [int(c) for c in cur.cluster_ids]
        if r < 0.25 and len(ids) > 2:
            a, b = rng.choice(ids, 2, replace=False)
            cur.merge([int(a), int(b)])
        elif r < 0.45:
            sp = cur.spikes(int(rng.choice(ids)))
            if len(sp) > 3:
                cur.split(sp[: len(sp) // 3])
        elif r < 0.55:
            sel = rng.choice(N, 30, replace=False)
            cur.split(sel, labels=rng.integers(0, 3, 30))
        elif r < 0.75:
            field = str(rng.choice(["group", "group", "note", "rating"]))
            if field == "group":
                cur.label([int(rng.choice(ids))], group=str(rng.choice(["good", "mua", "noise"])))
            elif field == "note":
                cur.label([int(rng.choice(ids))], field="note", value=f"n{int(rng.integers(9))}")
            else:  # a numeric field, created after or before "note" depending on the seed
                cur.label([int(rng.choice(ids))], field="rating", value=float(rng.integers(5)))
        elif r < 0.9:
            cur.undo()
        else:
            cur.redo()


def assert_same(a, b, *, same_log: bool = True) -> None:
    """Two curations hold the same state, labels and undo history."""
    np.testing.assert_array_equal(a.spike_clusters, b.spike_clusters)
    np.testing.assert_array_equal(a.cluster_ids, b.cluster_ids)
    for c in a.cluster_ids:
        np.testing.assert_array_equal(a.spikes(int(c)), b.spikes(int(c)))
    assert a.state.counter == b.state.counter
    assert list(a.labels.fields) == list(b.labels.fields)  # field order too
    assert a.labels.fields == b.labels.fields
    assert [x.seq for x in a._undo.items] == [x.seq for x in b._undo.items]
    assert a._undo.pos == b._undo.pos
    assert (a.can_undo, a.can_redo) == (b.can_undo, b.can_redo)
    if same_log:
        assert (a.seq, a.head_hash) == (b.seq, b.head_hash)


def same_after(a, b, rng_seed: int, n_ops: int) -> None:
    """The same further actions give the same ids and states on both."""
    ra, rb = np.random.default_rng(rng_seed), np.random.default_rng(rng_seed)
    random_session(a, ra, n_ops)
    random_session(b, rb, n_ops)
    assert_same(a, b, same_log=False)  # (new events carry their own times)


@pytest.mark.parametrize("seed", range(6))
def test_opened_from_a_snapshot_equals_a_replay_and_behaves_the_same(folder, tmp_path, seed):
    log = tmp_path / f"s{seed}.log"
    rng = np.random.default_rng(seed)
    with curalog.open(folder, log, snapshot=True) as cur:
        random_session(cur, rng, 60)
    assert snapshot_path(log).exists()
    with (
        curalog.open(folder, log, snapshot=True) as a,
        curalog.open(folder, log, readonly=True, snapshot=False) as b,
    ):
        assert a._cache.status == "loaded"
        assert_same(a, b)
        # undo all the way down: hot changes revert in place, older ones rebuild by replay
        while a.can_undo:
            a.undo()
            _undo_readonly(b)
            assert_same(a, b, same_log=False)


def _undo_readonly(cur):
    """Undo on a read-only curation's state without logging (to follow a writable one)."""
    action = cur._undo.items[cur._undo.pos - 1]
    cur._undo.pos -= 1
    return cur._revert(action, action.seq)


@pytest.mark.parametrize("seed", range(4))
def test_further_actions_give_the_same_ids(folder, tmp_path, seed):
    rng = np.random.default_rng(seed)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with curalog.open(folder, log_a, snapshot=True) as cur:
        random_session(cur, rng, 50)
    log_b.write_bytes(log_a.read_bytes())  # the same history, without a snapshot
    with (
        curalog.open(folder, log_a, snapshot=True) as a,
        curalog.open(folder, log_b, snapshot=False) as b,
    ):
        assert a._cache.status == "loaded"
        same_after(a, b, seed + 7, 40)


@pytest.mark.parametrize("hot_actions", [1000, 4])
def test_absent_snapshot_is_built_on_close(folder, tmp_path, monkeypatch, hot_actions):
    from curalog import curation

    monkeypatch.setattr(curation, "HOT_ACTIONS", hot_actions)  # 4: most changes evicted
    log = tmp_path / "x.log"
    with curalog.open(folder, log, snapshot=False) as cur:
        random_session(cur, np.random.default_rng(1), 30)
    assert not snapshot_path(log).exists()
    with curalog.open(folder, log, readonly=True, snapshot=True) as cur:
        assert cur._cache.status == "absent"
    assert snapshot_path(log).exists()
    with (
        curalog.open(folder, log, readonly=True, snapshot=True) as a,
        curalog.open(folder, log, readonly=True, snapshot=False) as b,
    ):
        assert a._cache.status == "loaded"
        assert_same(a, b)
        # the undo history kept in memory is the replay's, array for array
        assert [hot(x) for x in a._undo.items] == [hot(x) for x in b._undo.items]
        assert (a._floor, a._hot_bytes) == (b._floor, b._hot_bytes)
        assert ("evicted" in [hot(x) for x in a._undo.items]) == (hot_actions == 4)
        for x, y in zip(a._undo.items, b._undo.items, strict=True):
            if x.change is not None and not x.change.evicted:
                assert x.change.descendants == y.change.descendants
                assert x.change.inherited == y.change.inherited
                for c in y.change.deleted:
                    np.testing.assert_array_equal(x.change.deleted[c], y.change.deleted[c])
                for c in y.change.added:
                    np.testing.assert_array_equal(x.change.added[c], y.change.added[c])
            assert x.previous == y.previous and x.counter_before == y.counter_before


def hot(action) -> str:
    if action.change is None:
        return "label" if action.previous is not None else "unresolved"
    return "evicted" if action.change.evicted else "hot"


def test_a_log_that_grew_replays_only_its_new_events(folder, tmp_path):
    log = tmp_path / "g.log"
    rng = np.random.default_rng(2)
    with curalog.open(folder, log, snapshot=True) as cur:
        random_session(cur, rng, 40)
    with curalog.open(folder, log, snapshot=False) as cur:  # another session, no snapshot
        random_session(cur, rng, 15)
        seq = cur.seq
    with (
        curalog.open(folder, log, readonly=True, snapshot=True) as a,
        curalog.open(folder, log, readonly=True, snapshot=False) as b,
    ):
        assert a._cache.status.startswith("loaded at event ")
        assert a._cache.status.endswith(f", {seq - a._cache.disk_seq} more replayed")
        assert_same(a, b)


def test_stale_snapshots_are_detected_and_rebuilt(folder, tmp_path, monkeypatch):
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    rng = np.random.default_rng(3)
    with curalog.open(folder, log_a, snapshot=True) as cur:
        random_session(cur, rng, 30)
    with curalog.open(folder, log_b, snapshot=False) as cur:  # another history
        random_session(cur, rng, 30)
    # another log's snapshot
    snapshot_path(log_b).write_bytes(snapshot_path(log_a).read_bytes())
    with curalog.open(folder, log_b, readonly=True, snapshot=True) as cur:
        assert cur._cache.status == "stale: header_hash differs"
        with curalog.open(folder, log_b, readonly=True, snapshot=False) as ref:
            assert_same(cur, ref)
    with curalog.open(folder, log_b, readonly=True, snapshot=True) as cur:
        assert cur._cache.status == "loaded"  # rebuilt on close
    # another curalog version
    monkeypatch.setattr(snap_mod, "__version__", "0.0.0-other")
    with curalog.open(folder, log_a, readonly=True, snapshot=True) as cur:
        assert cur._cache.status == "stale: curalog differs"


def test_a_log_cut_below_the_snapshot_is_replayed(folder, tmp_path):
    log = tmp_path / "c.log"
    rng = np.random.default_rng(4)
    with curalog.open(folder, log, snapshot=False) as cur:
        random_session(cur, rng, 20)
        cut = cur.log_path.stat().st_size
    with curalog.open(folder, log, snapshot=True) as cur:
        random_session(cur, rng, 20)
    data = log.read_bytes()
    # a log that is only a prefix of the snapshot's (restored from an older copy)
    old = tmp_path / "old.log"
    old.write_bytes(data[:cut])
    snapshot_path(old).write_bytes(snapshot_path(log).read_bytes())
    with curalog.open(folder, old, readonly=True, snapshot=True) as cur:
        assert cur._cache.status.startswith("stale: taken at event"), cur._cache.status
        with curalog.open(folder, old, readonly=True, snapshot=False) as ref:
            assert_same(cur, ref)
    # the same prefix continued otherwise: the hash at the snapshot's event differs
    other = tmp_path / "other.log"
    other.write_bytes(data[:cut])
    with curalog.open(folder, other, snapshot=False) as cur:
        random_session(cur, np.random.default_rng(6), 40)
    snapshot_path(other).write_bytes(snapshot_path(log).read_bytes())
    with curalog.open(folder, other, readonly=True, snapshot=True) as cur:
        assert cur._cache.status.endswith("is not the one it was taken at"), cur._cache.status
        with curalog.open(folder, other, readonly=True, snapshot=False) as ref:
            assert_same(cur, ref)


def _damage(path, where: str) -> None:
    data = bytearray(path.read_bytes())
    if where == "data":
        data[-5] ^= 0x40
    elif where == "meta":
        data[30] ^= 0x01
    elif where == "magic":
        data[0:8] = b"NOTASNAP"
    elif where == "truncated":
        data = data[: len(data) - 100]
    elif where == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "where, why",
    [
        ("data", "corrupt: checksum mismatch"),
        ("meta", "corrupt: header checksum"),
        ("magic", "corrupt: not a curalog snapshot"),
        ("truncated", "corrupt: "),
        ("empty", "corrupt: truncated header"),
    ],
)
def test_corrupt_snapshots_are_detected_and_rebuilt(folder, tmp_path, where, why):
    log = tmp_path / "d.log"
    with curalog.open(folder, log, snapshot=True) as cur:
        random_session(cur, np.random.default_rng(7), 40)
    _damage(snapshot_path(log), where)
    with curalog.open(folder, log, readonly=True, snapshot=True) as cur:
        assert cur._cache.status.startswith(why), cur._cache.status
        with curalog.open(folder, log, readonly=True, snapshot=False) as ref:
            assert_same(cur, ref)
    with curalog.open(folder, log, readonly=True, snapshot=True) as cur:
        assert cur._cache.status == "loaded"


def test_well_formed_but_inconsistent_contents_are_refused(folder, tmp_path):
    """A snapshot whose checksums are right but whose index does not cover every spike
    (e.g. written by a buggy tool) is not used."""
    log = tmp_path / "e.log"
    with curalog.open(folder, log, snapshot=True) as cur:
        random_session(cur, np.random.default_rng(8), 20)
        key = cur._cache.key(cur.seq, cur.head_hash)
        state = cur.state
        victim = int(state.cluster_ids[0])
        kept = state._spikes.pop(victim)
        try:
            snap_mod.write_snapshot(
                snapshot_path(log), key, state, cur.labels.fields, cur._undo, cur._floor, 0
            )
        finally:
            state._spikes[victim] = kept
        cur._cache = None  # keep the bad file
    with curalog.open(folder, log, readonly=True, snapshot=True) as cur:
        assert cur._cache.status == "corrupt: the clusters do not cover the spikes"


def test_off_by_environment_and_for_small_datasets(folder, tmp_path, monkeypatch):
    log = tmp_path / "f.log"
    with curalog.open(folder, log) as cur:  # 400 spikes: below the default size
        random_session(cur, np.random.default_rng(9), 40)
    assert not snapshot_path(log).exists()
    monkeypatch.setenv("CURALOG_SNAPSHOT", "0")
    with curalog.open(folder, log, snapshot=True) as cur:
        cur.label([int(cur.cluster_ids[0])], group="good")
        assert cur._cache.status == "off"
    assert not snapshot_path(log).exists()


def test_an_unwritable_folder_only_skips_the_snapshot(folder, tmp_path, monkeypatch):
    log = tmp_path / "h.log"
    with curalog.open(folder, log, snapshot=False) as cur:
        random_session(cur, np.random.default_rng(10), 30)

    def refuse(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(snap_mod.tempfile, "mkstemp", refuse)
    with curalog.open(folder, log, readonly=True, snapshot=True) as cur:
        assert cur._cache.status == "absent"
    assert not snapshot_path(log).exists()
    assert not list(tmp_path.glob(".h.log.snapshot*"))


def test_verify_and_upto_never_use_it(folder, tmp_path):
    log = tmp_path / "v.log"
    with curalog.open(folder, log, snapshot=True) as cur:
        random_session(cur, np.random.default_rng(11), 30)
    _damage(snapshot_path(log), "data")
    before = snapshot_path(log).read_bytes()
    with curalog.open(folder, log, readonly=True, verify=True, snapshot=True) as cur:
        assert cur._cache is None
    with curalog.open(folder, log, upto=5, snapshot=True) as cur:
        assert cur._cache is None and cur.seq == 5
    assert snapshot_path(log).read_bytes() == before


def test_a_replay_that_fails_half_way_leaves_no_snapshot(folder, tmp_path, monkeypatch):
    """A state replayed only in part (here: a divergence raised after some actions) is
    never saved as the log's state."""
    from curalog import curation

    log = tmp_path / "p.log"
    with curalog.open(folder, log, snapshot=False) as cur:
        random_session(cur, np.random.default_rng(12), 40)
    calls = {"n": 0}
    real = curation.Curation._apply

    def failing(self, action, seq, history):
        calls["n"] += 1
        if calls["n"] == 10:
            raise curalog.errors.LogCorruptError("injected divergence")
        return real(self, action, seq, history)

    monkeypatch.setattr(curation.Curation, "_apply", failing)
    with pytest.raises(curalog.errors.LogCorruptError):
        curalog.open(folder, log, readonly=True, snapshot=True)
    assert not snapshot_path(log).exists()
