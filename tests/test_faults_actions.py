"""Every acknowledged action replays; every refused one leaves no trace.

Random sequences of API calls with hostile arguments (unknown, negative, float, huge ids;
empty, duplicate, out-of-range, float selections; wide or negative relative labels; invalid
groups and fields). An accepted action must be in the log and reopen to the same state; a
refused one must raise a CuralogError and leave the log and the state exactly as they were.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import curalog
from curalog.errors import CuralogError, InvalidActionError

import faultlib

N_SPIKES = 300


def _ids(wide: bool):
    ints = st.integers(-3, 40) | st.sampled_from([2**31 - 1, 2**40])
    odd = st.sampled_from([1.0, 2.5, "3", True, np.int64(4), np.uint8(5)])
    if wide:
        odd = odd | st.sampled_from([float("inf"), float("nan")])
    return st.lists(ints | odd, max_size=5)


def _selection():
    inside = st.lists(st.integers(0, N_SPIKES - 1), min_size=1, max_size=60)
    return st.one_of(
        inside.map(lambda v: np.unique(v)),
        inside,  # duplicates allowed
        st.lists(st.integers(-5, N_SPIKES + 5), max_size=10),
        st.just([]),
        inside.map(lambda v: np.asarray(v, dtype=np.float64)),
        inside.map(lambda v: np.asarray(v, dtype=np.float64) + 0.5),
        inside.map(lambda v: np.asarray(v, dtype=np.uint16)),
    )


def _labels(wide: bool):
    lo, hi = (-(2**62), 2**62) if wide else (-1000, 1000)
    return st.none() | st.lists(st.integers(lo, hi), min_size=1, max_size=60) | st.just([0.5])


def _ops(wide: bool):
    return st.lists(
        st.one_of(
            st.tuples(st.just("merge"), _ids(wide)),
            st.tuples(st.just("merge_live"), st.integers(2, 4)),
            st.tuples(st.just("split"), st.tuples(_selection(), _labels(wide))),
            st.tuples(
                st.just("label"),
                st.tuples(_ids(wide), st.sampled_from(["good", "mua", "bogus", None, "unsorted"])),
            ),
            st.tuples(
                st.just("field"),
                st.tuples(
                    st.sampled_from(["quality", "KSLabel", "", "a/b", "cluster_id"]),
                    st.sampled_from([1, 2.5, "x", "a\tb", float("nan"), None, [1]]),
                ),
            ),
            st.tuples(st.just("undo"), st.none()),
            st.tuples(st.just("redo"), st.none()),
        ),
        min_size=1,
        max_size=12,
    )


def _log_bytes(log):
    """The log's bytes; a log is only created by the first acknowledged action."""
    return log.read_bytes() if log.exists() else b""


def _run(tmp_path_factory, ops):
    work = tmp_path_factory.mktemp("act")
    folder = faultlib.make_dataset(work / "ds", N_SPIKES, 8, 4)
    log = work / "a.log"
    rng = np.random.default_rng(0)
    with curalog.open(folder, log) as cur:
        for kind, arg in ops:
            before, digest = _log_bytes(log), faultlib.state_digest(cur)
            ids = cur.cluster_ids
            if kind == "merge":
                call = lambda a=arg: cur.merge(a)  # noqa: E731
            elif kind == "merge_live":
                call = lambda k=arg, ids=ids: cur.merge(  # noqa: E731
                    rng.choice(ids, size=min(k, ids.size), replace=False).tolist()
                )
            elif kind == "split":
                call = lambda a=arg: cur.split(  # noqa: E731
                    a[0],
                    None if a[1] is None else np.resize(np.asarray(a[1]), np.asarray(a[0]).size),
                )
            elif kind == "label":
                call = lambda a=arg, ids=ids: cur.label(a[0] or ids[:1].tolist(), group=a[1])  # noqa: E731
            elif kind == "field":
                call = lambda a=arg, ids=ids: cur.label(ids[:2].tolist(), field=a[0], value=a[1])  # noqa: E731
            elif kind == "undo":
                call = cur.undo
            else:
                call = cur.redo
            result = faultlib.outcome(call)
            if result != "ok":
                assert _log_bytes(log) == before, f"refused {kind} wrote to the log"
                assert faultlib.state_digest(cur) == digest, f"refused {kind} changed the state"
        want, seq = faultlib.state_digest(cur), cur.seq
    for verify in (False, True):
        try:
            with curalog.open(folder, log, verify=verify) as again:
                assert (again.seq, faultlib.state_digest(again)) == (seq, want)
        except CuralogError as exc:
            raise faultlib.Escaped(f"an acknowledged history does not reopen: {exc}") from exc


@faultlib.fuzz_settings(60)
@given(ops=_ops(wide=False))
def test_acknowledged_actions_replay_refused_ones_leave_no_trace(tmp_path_factory, ops):
    _run(tmp_path_factory, ops)


@example(ops=[("split", ([0, 1], [0, 2**31]))])
@example(ops=[("merge", [float("inf"), 1])])
@faultlib.fuzz_settings(60, report_multiple_bugs=False)
@given(ops=_ops(wide=True))
def test_acknowledged_actions_replay_wide(tmp_path_factory, ops):
    _run(tmp_path_factory, ops)


def test_split_with_wide_labels_is_refused_before_logging(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    with curalog.open(folder) as cur:
        cur.merge([1, 2])
        before = cur.log_path.read_bytes()
        with pytest.raises(InvalidActionError):
            cur.split([0, 1], [0, 2**31])
        assert cur.log_path.read_bytes() == before
    with curalog.open(folder) as cur:
        assert cur.seq == 1
        assert cur.spike_clusters.min() >= 0
