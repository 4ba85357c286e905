"""A note (a decision that changes nothing, e.g. a rejected merge proposal) reaches the
curation's listeners as an Update, so every engine and view sees it without re-reading the
log."""

from __future__ import annotations

from pathlib import Path

import pytest

from curalog.analysis.proposals import PROPOSAL_NOTE_KIND, ProposalEngine
from curalog.clustering import Update
from curalog.curation import open_curation
from curalog.events import NOTE, NoteBody
from curalog.synth import synthesize


@pytest.fixture(scope="module")
def drift_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("note") / "ks"
    synthesize(out, 120_000, 40, seed=4, n_channels=64, drift=True)
    return out


def test_a_note_is_an_update(drift_ds: Path, tmp_path: Path) -> None:
    seen: list[Update] = []
    with open_curation(drift_ds, tmp_path / "a.log") as cur:
        cur.subscribe(seen.append)
        event = cur.note("review", "looked at 3 and 7", {"clusters": [3, 7]})
        assert len(seen) == 1
        update = seen[0]
        assert update.kind == NOTE and update.seq == event.seq == cur.seq
        assert update.note == NoteBody("review", "looked at 3 and 7", {"clusters": [3, 7]})
        assert update.note == event.data
        assert not (update.added or update.deleted or update.labels_changed)
        cur.merge([0, 1])
        assert seen[-1].kind == "merge" and seen[-1].note is None


def test_a_rejection_reaches_every_engine_at_once(drift_ds: Path, tmp_path: Path) -> None:
    with open_curation(drift_ds, tmp_path / "b.log") as cur:
        first = ProposalEngine(cur)
        second = ProposalEngine(cur)  # subscribed too; it never re-reads the log
        proposals = second.proposals()
        assert proposals
        top = proposals[0]
        first.reject(top)
        assert second.is_rejected(top.a, top.b)
        assert (top.a, top.b) not in {(p.a, p.b) for p in second.proposals()}
        assert second.rejected_pairs == [(top.a, top.b)]
        first.unreject(top)
        assert not second.is_rejected(top.a, top.b)
        notes = [e for e in cur.events if e.type == NOTE]
        assert [n.data.kind for n in notes] == [PROPOSAL_NOTE_KIND] * 2
