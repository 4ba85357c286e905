"""The merge-proposal review service: one proposal engine per curation, without any UI.

:class:`Review` wraps :class:`curalog.analysis.proposals.ProposalEngine` for a session
whose screens query it from thread workers while the UI thread keeps curating. The
review-queue screen (:mod:`curalog_tui.screens.proposals`) draws what it answers; the app
owns one :class:`Review` per curation and hands it out through
:meth:`curalog_tui.session.CurationSession.review`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import replace

from curalog import Curation, Update
from curalog.analysis.proposals import Evidence, Proposal, ProposalEngine
from curalog.analysis.stats import StatsEngine

EVIDENCE_CACHE = 32  # pairs whose evidence arrays are kept (pure in the pair: ids are never reused)


class Review:
    """One proposal engine per curation, on the session's statistics engine.

    The engine is not subscribed to the curation itself: the curation's updates go into a
    queue (appending never blocks the UI thread) that :meth:`flush` hands to the engine
    before each query, in order. The evidence arrays of a pair are cached (they depend on the
    two clusters' spikes only).
    """

    def __init__(self, cur: Curation, stats_engine: StatsEngine):
        self.cur = cur
        self.updates: deque[Update] = deque()
        self.engine = ProposalEngine(cur, stats_engine, subscribe=False)
        cur.subscribe(self.updates.append)
        self.queried = False
        self.first_query_s: float | None = None
        self._evidence: OrderedDict[tuple[int, int], Evidence] = OrderedDict()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def flush(self) -> None:
        """Hand the queued updates to the engine, in order (one worker at a time)."""
        with self._flush_lock:
            while True:
                try:
                    update = self.updates.popleft()
                except IndexError:
                    return
                self.engine.on_update(update)

    def proposals(self, min_score: float = 0.0) -> list[Proposal]:
        """The pending proposals scoring at least ``min_score``, best first."""
        self.flush()
        t0 = time.perf_counter()
        out = self.engine.proposals(min_score)
        if not self.queried:
            self.queried = True
            self.first_query_s = time.perf_counter() - t0
        return out

    def evidence(self, p: Proposal) -> Evidence:
        """The arrays the review screen plots for ``p`` (cached per pair)."""
        with self._lock:
            got = self._evidence.get(p.pair)
            if got is not None:
                self._evidence.move_to_end(p.pair)
        if got is None:
            self.flush()
            got = self.engine.evidence(p)
            with self._lock:
                self._evidence[p.pair] = got
                while len(self._evidence) > EVIDENCE_CACHE:
                    self._evidence.popitem(last=False)
        return replace(got, proposal=p)


__all__ = ["EVIDENCE_CACHE", "Review"]
