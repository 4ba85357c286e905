"""A thread-safe priority queue of cluster ids whose statistics the UI wants.

The UI pushes ids (what is on screen at the front, the rest of the table at the back); a
worker thread pops them and asks the statistics engine. The worker exits when the queue
is empty, so tests can wait for workers to complete; :meth:`Feeder.want` says when a new
worker must be started (the decision is taken under the same lock as the worker's exit,
so an id pushed while the worker is leaving is never stranded).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable


class Feeder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[int] = deque()
        self._queued: set[int] = set()
        self._running = False

    def want(self, ids: Iterable[int], *, front: bool = True) -> bool:
        """Queue ids; returns True when the caller must start a worker."""
        ids = [int(c) for c in ids]
        with self._lock:
            if front:
                for cid in reversed(ids):
                    self._queue.appendleft(cid)
                    self._queued.add(cid)
            else:
                for cid in ids:
                    if cid not in self._queued:
                        self._queue.append(cid)
                        self._queued.add(cid)
            if self._queue and not self._running:
                self._running = True
                return True
            return False

    def pop(self) -> int | None:
        """The next id, or None, in which case the worker must exit (running is cleared)."""
        with self._lock:
            while self._queue:
                cid = self._queue.popleft()
                if cid in self._queued:
                    self._queued.discard(cid)
                    return cid
            self._running = False
            return None

    def drop(self) -> None:
        """Forget everything queued (the worker exits at its next pop)."""
        with self._lock:
            self._queue.clear()
            self._queued.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queued)
