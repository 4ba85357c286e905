"""Work counters: how an engine proves what it recomputed and what it reused.

Both engines (:class:`curalog.analysis.stats.engine.StatsEngine`,
:class:`curalog.analysis.proposals.ProposalEngine`) count their work by name under their
lock and keep a log of what they computed; tests and benchmarks read and reset both.
"""

from __future__ import annotations

import threading
from typing import Any


class WorkCounters:
    """Mixin: ``counters`` (a snapshot) and ``reset_counters`` over ``self._counters``,
    under ``self._lock``; resetting also empties the work log named by ``_work_log_name``."""

    _lock: threading.RLock
    _counters: dict[str, int]
    _work_log_name: str

    @property
    def counters(self) -> dict[str, int]:
        """A snapshot of the work counters (see the engine's module docstring)."""
        with self._lock:
            return dict(self._counters)

    def reset_counters(self) -> None:
        """Zero the counters (in place: helpers may hold the dict) and clear the work log."""
        with self._lock:
            for k in self._counters:
                self._counters[k] = 0
            log: list[Any] = getattr(self, self._work_log_name)
            log.clear()


__all__ = ["WorkCounters"]
