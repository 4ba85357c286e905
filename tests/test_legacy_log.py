"""A log written by an earlier curalog still opens and replays to what it recorded.

``tests/data/legacy-v1/`` holds a tiny sorting (params.py, spike_times.npy,
spike_templates.npy) and ``legacy-v1.log``, written by curalog before event bodies became
typed dataclasses (merge with provenance, split with relative labels, group and free-field
labels, undo/redo, a redo branch discarded by the next action, an assign, a note, an undone
label discarded by a split). ``expected_spike_clusters.npy`` and ``expected.json`` are what that curalog had in
memory when it closed the log.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from curalog.curation import open_curation, replay
from curalog.events.envelope import NOTE

DATA = Path(__file__).parent / "data" / "legacy-v1"


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "sorting"
    folder.mkdir()
    for name in ("params.py", "spike_times.npy", "spike_templates.npy"):
        shutil.copy(DATA / name, folder / name)
    log = tmp_path / "legacy-v1.log"
    shutil.copy(DATA / "legacy-v1.log", log)
    return folder, log


@pytest.mark.parametrize("verify", [False, True])
def test_legacy_log_replays_to_the_recorded_state(legacy: tuple[Path, Path], verify: bool) -> None:
    folder, log = legacy
    expected = json.loads((DATA / "expected.json").read_text())
    before = log.read_bytes()
    with open_curation(folder, log, readonly=True, verify=verify) as cur:
        cur.require_intact()
        assert len(cur.events) == expected["events"]
        assert cur.head_hash.hex() == expected["head_hash"]
        assert np.array_equal(
            cur.state.spike_clusters, np.load(DATA / "expected_spike_clusters.npy")
        )
        assert cur.n_clusters == expected["n_clusters"]
        groups = {str(k): v for k, v in sorted(cur.groups().items()) if v is not None}
        assert groups == expected["groups"]
        fields = {
            name: {str(k): v for k, v in sorted(values.items())}
            for name, values in sorted(cur.labels.fields.items())
            if name != "group"
        }
        assert fields == expected["fields"]
        assert cur.can_undo and not cur.can_redo  # the undone label was discarded by the split
        assert cur.group(8) is None
        notes = [e for e in cur.events if e.type == NOTE]
        assert [e.body["data"]["clusters"] for e in notes] == [[8, 9]]
    assert log.read_bytes() == before  # reading never rewrites the file


def test_legacy_log_accepts_new_actions(legacy: tuple[Path, Path]) -> None:
    folder, log = legacy
    recorded = np.load(DATA / "expected_spike_clusters.npy")
    with open_curation(folder, log) as cur:
        assert cur.redo() is None  # nothing to redo: the split discarded the undone label
        new = cur.merge([10, 11])
    after = replay(folder, log)
    assert np.array_equal(
        after[np.isin(recorded, [10, 11])], np.full(np.isin(recorded, [10, 11]).sum(), new)
    )
    assert np.array_equal(
        after[~np.isin(recorded, [10, 11])], recorded[~np.isin(recorded, [10, 11])]
    )
    with open_curation(folder, log, readonly=True) as cur:
        assert cur.seq == 15 and cur.events[-1].body["new"] == new
