"""Named thread pools of the statistics, created on first use and kept for the process.

The numba kernels release the GIL, so a second thread runs one on the other core: the PC
sample beside a cluster's spike-train metrics (``quality``, two workers), the parents'
cross-correlograms beside a merge's array merge (``ccg``, one worker). A task never waits
on a task of its own pool, so a pool's size is all the parallelism it gets, never a deadlock.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pool"]

_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The pool called ``name`` (``workers`` threads, named ``curalog-<name>``)."""
    with _LOCK:
        got = _POOLS.get(name)
        if got is None:
            got = _POOLS[name] = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix=f"curalog-{name}"
            )
        return got
