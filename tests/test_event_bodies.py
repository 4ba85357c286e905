"""Typed event bodies: every type round-trips through its on-disk map unchanged, versions and
upcasters are per type, malformed bodies are clean errors, and new code writes the very maps
the earlier curalog wrote (``tests/data/legacy-v1``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curalog.curation import Curation, open_curation
from curalog.errors import LogCorruptError, UnsupportedVersionError
from curalog.events import (
    BODY_TYPES,
    EVENT_TYPES,
    MERGE,
    AssignBody,
    Event,
    LabelBody,
    MergeBody,
    NoteBody,
    RedoBody,
    SplitBody,
    UndoBody,
    body_version,
    decode_envelope,
    describe,
    envelope,
    pack_indices,
    pack_values,
    parse_body,
)

DATA = Path(__file__).parent / "data" / "legacy-v1"

SAMPLES: list[Any] = [
    MergeBody(clusters=(3, 7), new=65, n_spikes=1204),
    MergeBody(clusters=(1, 2, 9), new=70, n_spikes=5, meta={"proposal": {"score": 0.9}}),
    SplitBody(
        added=(66, 67),
        deleted=(3,),
        n_spikes=10,
        as_merge=False,
        spikes=pack_indices(np.arange(10)),
        labels=pack_values(np.arange(10) % 2),
    ),
    SplitBody(
        added=(68,), deleted=(4,), n_spikes=3, as_merge=True, spikes=pack_indices(np.arange(3))
    ),
    AssignBody(
        spikes=pack_indices(np.arange(4)),
        clusters=pack_values(np.array([80, 80, 81, 81])),
        added=(80, 81),
        deleted=(5,),
        n_spikes=4,
        meta={"imported_from": "phy"},
    ),
    LabelBody(clusters=(3,), field="group", value="good", previous=[[3, None]], reason="dip"),
    LabelBody(clusters=(3, 4), field="depth", value=1.5, previous=[[3, None], [4, 2.0]]),
    UndoBody(target=4, kind="merge"),
    RedoBody(target=4, kind="merge"),
    NoteBody(kind="merge-proposal", text="", data={"decision": "reject", "clusters": [1, 2]}),
    NoteBody(kind="branch", text="branch b"),
]


@pytest.mark.parametrize("body", SAMPLES, ids=lambda b: type(b).__name__)
def test_bodies_round_trip(body: Any) -> None:
    d = body.to_dict()
    assert type(body).from_dict(d) == body
    assert parse_body(body.TYPE, d, "here") == body
    # and through a record: the envelope's version is the type's
    env = envelope(1, body.TYPE, 0, "t", b"", d)
    assert env["v"] == body_version(body.TYPE) == body.VERSION
    event = decode_envelope(env, b"h", "here")
    assert event.data == body
    assert event.summary() == body.describe() == describe(body.TYPE, d)


def test_every_event_type_has_a_body_with_its_version() -> None:
    assert set(BODY_TYPES) == set(EVENT_TYPES)
    for type_, cls in BODY_TYPES.items():
        assert type_ == cls.TYPE and cls.VERSION == 1


def test_optional_fields_are_left_out_as_before() -> None:
    assert MergeBody(clusters=(1, 2), new=3, n_spikes=4).to_dict() == {
        "clusters": [1, 2],
        "new": 3,
        "n_spikes": 4,
    }
    assert list(LabelBody(clusters=(1,), field="group", value=None, previous=[]).to_dict()) == [
        "clusters",
        "field",
        "value",
        "previous",
    ]
    assert NoteBody(kind="k").to_dict() == {"kind": "k", "text": ""}


@pytest.mark.parametrize(
    ("type_", "body"),
    [
        (MERGE, {"clusters": [1, 2], "new": "3", "n_spikes": 4}),
        (MERGE, {"clusters": [1, True], "new": 3, "n_spikes": 4}),
        (MERGE, {"clusters": [1, 2], "n_spikes": 4}),
        ("split", {"added": [1], "deleted": [2], "n_spikes": 1, "spikes": b"x"}),
        ("label", {"clusters": [1], "field": 7, "value": "good", "previous": []}),
        ("undo", {"target": None, "kind": "merge"}),
        ("note", {"kind": "k", "data": [1]}),
    ],
)
def test_malformed_bodies_are_clean_errors(type_: str, body: dict[str, Any]) -> None:
    with pytest.raises(LogCorruptError, match=f"event 5: malformed {type_} body"):
        _ = Event(5, type_, 0, "t", b"", body).data
    assert describe(type_, body) == type_  # a listing never fails on one odd body


def test_upcasters_are_per_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of an older version is brought up by its own type's chain, and only by it."""
    monkeypatch.setattr(MergeBody, "VERSION", 2)
    monkeypatch.setattr(
        MergeBody, "UPCASTERS", {1: lambda b: {**b, "clusters": sorted(b["ids"]), "ids": None}}
    )
    old = {"ids": [7, 3], "new": 65, "n_spikes": 2}
    event = decode_envelope(envelope(1, MERGE, 0, "t", b"", old) | {"v": 1}, b"", "here")
    assert event.data == MergeBody(clusters=(3, 7), new=65, n_spikes=2)
    # other types are untouched by the merge chain: a v1 label is current
    label = LabelBody(clusters=(1,), field="group", value="good", previous=[])
    assert (
        decode_envelope(envelope(2, "label", 0, "t", b"", label.to_dict()), b"", "x").data == label
    )
    with pytest.raises(UnsupportedVersionError, match="merge event schema v3 is newer"):
        decode_envelope(envelope(1, MERGE, 0, "t", b"", old) | {"v": 3}, b"", "here")
    monkeypatch.setattr(MergeBody, "UPCASTERS", {})
    with pytest.raises(UnsupportedVersionError, match="no upcaster for merge v1"):
        decode_envelope(envelope(1, MERGE, 0, "t", b"", old) | {"v": 1}, b"", "here")


def _legacy_actions(cur: Curation) -> None:
    """The actions that wrote tests/data/legacy-v1/legacy-v1.log."""
    st = cur.dataset.spike_templates
    a = cur.merge([0, 1], meta={"why": "same unit"})
    sel = np.flatnonzero(st == 2)[:40]
    parts = cur.split(sel, labels=np.arange(sel.size) % 2)
    cur.label([a], group="good", reason="clean refractory dip")
    cur.label([parts[0]], field="note", value="drifts")
    cur.label([3], field="depth_ok", value=1.5)
    cur.merge([4, 5])
    cur.undo()
    cur.redo()
    cur.undo()
    sel2 = np.flatnonzero(np.isin(cur.state.spike_clusters, [6, 7]))
    cur.assign(sel2, cur.state.counter + 5 + (np.arange(sel2.size) % 3))
    cur.note("merge-proposal", "reject", {"decision": "reject", "clusters": [8, 9]})
    cur.label([8], group="noise")
    cur.undo()
    cur.split(np.flatnonzero(cur.state.spike_clusters == 9)[:10])


def test_new_code_writes_the_bodies_the_earlier_curalog_wrote(tmp_path: Path) -> None:
    for name in ("params.py", "spike_times.npy", "spike_templates.npy"):
        shutil.copy(DATA / name, tmp_path / name)
    with open_curation(tmp_path, DATA / "legacy-v1.log", readonly=True) as old:
        recorded = [(e.type, e.body) for e in old.events]
    with open_curation(tmp_path, tmp_path / "new.log") as cur:
        _legacy_actions(cur)
    with open_curation(tmp_path, tmp_path / "new.log", readonly=True) as new:
        written = [(e.type, e.body) for e in new.events]
        assert np.array_equal(
            new.state.spike_clusters, np.load(DATA / "expected_spike_clusters.npy")
        )
    assert written == recorded
