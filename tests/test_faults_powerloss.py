"""Power loss: a recorded write stream replayed up to random points (tests/powerloss.py).

Writes after a file's last fsync are dropped, partly kept, cut at a sector or left as
zeros; every acknowledged event must survive and the log must read without a false alarm.
"""

from __future__ import annotations

import numpy as np
import pytest

import powerloss


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


def test_power_cuts_lose_no_acknowledged_event(tmp_path):
    st = powerloss.power_loss_campaign(tmp_path, 40, seed=5, n_actions=25)
    assert st.cuts == 40 and st.actions_acked == 25 and st.fsyncs >= 25
    assert set(st.by_model) == set(powerloss.MODELS)
    assert (st.lost, st.false_alarms, st.reopen_failures, st.wrong_states, st.tracebacks) == (
        0,
        0,
        0,
        0,
        0,
    ), st.problems[:5]


def test_the_harness_finds_losses_without_fsync(tmp_path):
    """Not vacuous: the same workload without the per-action fsync loses acknowledged events."""
    st = powerloss.power_loss_campaign(tmp_path, 40, seed=5, n_actions=25, sync=False)
    assert st.lost + st.wrong_states > 0


def test_materialize_models(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"")
    rec = powerloss.WriteRecorder([p])
    path = str(p.resolve())
    rec.ops = [
        ("write", path, 0, b"a" * 1024),
        ("fsync", path),
        ("write", path, 1024, b"b" * 1024),
    ]
    rng = np.random.default_rng(0)
    assert powerloss.materialize(rec, 3, "drop", rng)[path] == b"a" * 1024
    assert powerloss.materialize(rec, 3, "zeros", rng)[path] == b"a" * 1024 + b"\0" * 1024
    assert powerloss.materialize(rec, 1, "drop", rng)[path] == b""
    kept = {powerloss.materialize(rec, 3, "partial", rng)[path] for _ in range(30)}
    assert kept <= {b"a" * 1024, b"a" * 1024 + b"b" * 512, b"a" * 1024 + b"b" * 1024}
    assert len(kept) >= 2
