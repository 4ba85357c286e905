"""The incremental statistics engine: a thread-safe, lazily filled cache keyed by cluster id.

Why a plain id-keyed cache is correct: cluster ids are never reused (docs/DESIGN.md, "Cluster
ids"), so the content of a cluster id never changes and an entry never goes stale. An
action's :class:`~curalog.clustering.Update` only *adds* ids to ask about (they are
computed lazily, visible rows first) and *deletes* ids that are simply no longer asked for
(their entries stay cached: an undo brings them back for free, a redo brings back the
merged or split clusters the same way).

Composition on merge. When an update adds a single cluster that is the child of every
descendant pair and whose parents are exactly the deleted clusters (a merge, or the undo of
a split of one cluster), the engine records its parents. When that cluster is first
asked for and every parent is cached, its autocorrelogram is composed exactly as
``H = sum_i H_ii + sum_{i<j} (H_ij + H_ji)`` (see :mod:`curalog.analysis.stats.correlograms`; only the
parents' cross-correlograms are computed, ``O(N + pairs)``), its similarity row is the
element-wise max of its parents' rows, its template set the sum of theirs; the per-spike
metrics (ISI, refractory-period, presence, amplitudes) come from one numba pass over the
merged spikes. Everything else is computed from the cluster's spikes. Either way the result
equals the from-scratch result (tests/test_stats_engine.py checks this on random action
sequences).

Counters (``engine.counters``): ``computed`` (entries built from spikes, ACG kernel
included), ``composed`` (entries whose ACG was composed from cached parents), ``hits``
(answers from the cache), ``ccg_computed``, ``sim_rows_computed``, ``sim_rows_composed``,
``template_sets_computed``, ``errors`` (background computations that failed, e.g. a cluster
deleted meanwhile). ``engine.compute_log`` lists ``(cluster_id, how)`` in order.

Threads. All public methods are thread-safe. Kernels release the GIL, so
``engine.start(n_workers)`` runs ``prefetch``-ed ids in background threads in parallel; a
``get`` of an id being computed by a worker waits for it instead of computing it twice.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

from curalog.analysis.counters import WorkCounters
from curalog.analysis.stats.correlograms import (
    CorrelogramBins,
    acg_from_half,
    ccg_from_halves,
    ccg_halves,
    gather_times,
    make_bins,
)
from curalog.analysis.stats.metrics import (
    ClusterStats,
    MetricParams,
    PassResult,
    StatsContext,
    cluster_pass,
    compute_cluster_stats,
    merge_passes,
    pass_from_arrays,
)
from curalog.analysis.stats.pools import pool
from curalog.analysis.stats.quality import compute_quality
from curalog.analysis.stats.similarity import (
    merge_rows,
    rank_similar,
    template_row,
    template_similarity,
)
from curalog.clustering import ClusterState, Update
from curalog.dataset import Dataset

__all__ = ["StatsEngine", "TABLE_COLUMNS"]

#: Table columns: (key in a row dict, short header, format). phy's names in the header.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "d"),
    ("n_spikes", "n", "d"),
    ("ch", "ch", "s"),
    ("shank", "sh", "d"),
    ("depth", "depth", ".0f"),
    ("firing_rate", "fr", ".2f"),
    ("template_amplitude", "amp", ".1f"),
    ("amplitude_median_npy", "amp_npy", ".2f"),
    ("isi_violations_ratio", "isi", ".2f"),
    ("rp_contamination", "rpc", ".2f"),
    ("presence_ratio", "pres", ".2f"),
    ("amplitude_cutoff", "cutoff", ".2f"),
    ("template", "tmpl", "d"),
)

_COUNTER_NAMES = (
    "computed",
    "composed",
    "hits",
    "ccg_computed",
    "sim_rows_computed",
    "sim_rows_composed",
    "template_sets_computed",
    "stale",
    "errors",
    "silhouettes_computed",
    "quality_computed",
    "quality_composed",
)


@numba.njit(cache=True, nogil=True)
def _template_hist(spike_templates, spikes, n_templates):
    counts = np.zeros(n_templates, dtype=np.int64)
    for k in range(spikes.shape[0]):
        counts[spike_templates[spikes[k]]] += 1
    return counts


def _sum_template_sets(sets: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Template set of a union: ids ascending, counts summed."""
    allt = np.concatenate([t for t, _ in sets])
    allc = np.concatenate([c for _, c in sets])
    tids, inv = np.unique(allt, return_inverse=True)
    counts = np.zeros(tids.shape[0], dtype=np.int64)
    np.add.at(counts, inv, allc)
    return tids.astype(np.int32), counts


class StatsEngine(WorkCounters):
    """Per-cluster statistics, cached by cluster id and refreshed from each action's Update.

    Parameters
    ----------
    dataset
        A :class:`curalog.dataset.Dataset` (or an object with the same attributes).
    state
        The live :class:`curalog.clustering.ClusterState` (only read: ``spikes(cid)``,
        ``cluster_ids``).
    bin_ms, window_ms : float
        Correlogram bin and window (phy's defaults 1 ms / 50 ms: 51 bins).
    params : MetricParams, optional
        Metric parameters (SpikeInterface defaults).
    duration : float, optional
        Recording duration in seconds (default: the recording's length, see
        :mod:`curalog.analysis.stats.timebase`).
    n_workers : int
        Background threads started by the first :meth:`prefetch` (0: none; call
        :meth:`compute_pending` or :meth:`get` yourself).
    recording : curalog.recording.Recording, optional
        The raw recording: ``snr`` and ``amplitude_median`` are computed on it (empty
        without one).
    gather_cache_mb : float
        Budget of an LRU of recently computed clusters' gathered spike times and amplitudes
        (16 bytes per spike). A merge whose parents are in it is composed without reading the
        dataset's arrays again (the random reads dominate a from-scratch refresh).
    """

    _work_log_name = "compute_log"

    def __init__(
        self,
        dataset: Dataset,
        state: ClusterState,
        *,
        bin_ms: float = 1.0,
        window_ms: float = 50.0,
        params: MetricParams | None = None,
        duration: float | None = None,
        n_workers: int = 0,
        gather_cache_mb: float = 256.0,
        recording: Any = None,
    ):
        self.dataset = dataset
        self.state = state
        self.bin_ms, self.window_ms = float(bin_ms), float(window_ms)
        self.bins: CorrelogramBins = make_bins(float(dataset.sample_rate), bin_ms, window_ms)
        self.ctx = StatsContext(dataset, self.bins, params, duration, recording)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._entries: dict[int, ClusterStats] = {}
        self._inflight: dict[int, threading.Event] = {}
        self._tsets: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._sim_rows: dict[int, np.ndarray] = {}
        self._ccg: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._parents: dict[int, tuple[int, ...]] = {}
        self._counters = dict.fromkeys(_COUNTER_NAMES, 0)
        self.compute_log: list[tuple[int, str]] = []
        self._heap: list[tuple[tuple[int, int, int], int]] = []
        self._queued: dict[int, tuple[int, int, int]] = {}
        self._seq = itertools.count()
        self._n_workers = int(n_workers)
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self._similarity: np.ndarray | None = None
        self._similarity_source: str | None = None
        self._gathered: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._gathered_bytes = 0
        self._gather_budget = int(gather_cache_mb * 2**20)
        self._silhouettes: dict[tuple[int, bytes], float] = {}
        self._silhouette_labels: dict[int, np.ndarray] = {}  # the labels of the last one
        self._quality: dict[int, tuple[dict[str, Any], Any, np.ndarray]] = {}

    # ------------------------------------------------------------------ counters
    def _count(self, name: str, k: int = 1) -> None:
        with self._lock:
            self._counters[name] += k

    def cached_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._entries)

    def is_cached(self, cid: int) -> bool:
        with self._lock:
            return int(cid) in self._entries

    # ------------------------------------------------------------------ entries
    def get(self, cid: int) -> ClusterStats:
        """Statistics of a cluster: from the cache, or computed now (composed when possible).

        Raises :class:`curalog.errors.InvalidActionError` for an id that is neither cached nor
        live.
        """
        cid = int(cid)
        while True:
            with self._lock:
                entry = self._entries.get(cid)
                if entry is not None and self._fresh(cid, entry):
                    self._counters["hits"] += 1
                    return entry
                event = self._inflight.get(cid)
                if event is None:
                    event = threading.Event()
                    self._inflight[cid] = event
                    self._drop_queued(cid)
                    break
            event.wait()  # another thread is computing it; then read the cache again
        try:
            entry = self._compute(cid)
        except BaseException:
            with self._lock:
                self._inflight.pop(cid, None)
                event.set()
                self._cond.notify_all()
            raise
        with self._lock:
            self._entries[cid] = entry
            self._tsets.setdefault(cid, (entry.template_ids, entry.template_counts, entry.spikes))
            self._inflight.pop(cid, None)
            self.compute_log.append((cid, entry.how))
            event.set()
            self._cond.notify_all()
        return entry

    def _fresh(self, cid: int, entry: ClusterStats) -> bool:
        """An entry is valid unless the live cluster of that id holds other spikes.

        With ids never reused this is always true; the check is O(1) (the state hands back
        the very array the entry was built from, also after undo/redo) and guards against a
        caller that re-creates the state or reuses ids.
        """
        if cid not in self.state:
            return True
        live = self.state.spikes(cid)
        if live is entry.spikes:
            return True
        if live.shape == entry.spikes.shape and np.array_equal(live, entry.spikes):
            return True
        self._counters["stale"] += 1
        del self._entries[cid]
        self._tsets.pop(cid, None)
        self._sim_rows.pop(cid, None)
        return False

    def _compute(self, cid: int) -> ClusterStats:
        spikes = self.state.spikes(cid)
        parents = self._cached_parents(cid, spikes)
        res: PassResult | None = None
        h = None
        if parents is not None:
            gathered = [self._gathered_get(p.cluster_id) for p in parents]
            # the parents' cross-correlograms (the ACG's composition) on a second core while
            # this thread merges their gathered arrays and runs the pass kernels (both
            # release the GIL): a merge refresh costs the longer of the two, not the sum
            fut = pool("ccg", 1).submit(self._composed_acg_half, parents, gathered)
            try:
                if all(g is not None for g in gathered):
                    t, a = merge_passes([p.spikes for p in parents], gathered)  # type: ignore[arg-type]
                    tids, counts = _sum_template_sets(
                        [(p.template_ids, p.template_counts) for p in parents]
                    )
                    res = pass_from_arrays(self.ctx, t, a, tids, counts)
            finally:
                h = fut.result()
        if res is None:
            res = cluster_pass(self.ctx, spikes)
        entry = compute_cluster_stats(self.ctx, cid, spikes, acg_half_override=h, pass_result=res)
        self._gathered_put(cid, res.times, res.amplitudes)
        self._count("composed" if h is not None else "computed")
        return entry

    def _gathered_get(self, cid: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        with self._lock:
            got = self._gathered.get(cid)
            if got is not None:
                self._gathered.move_to_end(cid)
            return got

    def _gathered_put(self, cid: int, times: np.ndarray, amps: np.ndarray | None) -> None:
        size = times.nbytes + (amps.nbytes if amps is not None else 0)
        if size > self._gather_budget:
            return
        with self._lock:
            if cid in self._gathered:
                return
            self._gathered[cid] = (times, amps)
            self._gathered_bytes += size
            while self._gathered_bytes > self._gather_budget:
                _, (t, a) = self._gathered.popitem(last=False)
                self._gathered_bytes -= t.nbytes + (a.nbytes if a is not None else 0)

    def _cached_parents(self, cid: int, spikes: np.ndarray) -> list[ClusterStats] | None:
        with self._lock:
            parents = self._parents.get(cid)
            if not parents:
                return None
            entries = [self._entries.get(p) for p in parents]
        if any(e is None for e in entries):
            return None
        if sum(e.n_spikes for e in entries) != spikes.shape[0]:  # type: ignore[union-attr]
            return None
        return entries  # type: ignore[return-value]

    def _composed_acg_half(self, parents: list[ClusterStats], gathered: list) -> np.ndarray:
        """``H = sum_i H_ii + sum_{i<j} (H_ij + H_ji)`` from cached parents (exact)."""
        h = parents[0].acg_half.copy()
        for p in parents[1:]:
            h += p.acg_half
        for i in range(len(parents)):
            for j in range(i + 1, len(parents)):
                h_ij, h_ji = self._ccg_halves(parents[i], parents[j], gathered[i], gathered[j])
                h += h_ij
                h += h_ji
        return h

    def _ccg_halves(
        self, a: ClusterStats, b: ClusterStats, ga: Any = None, gb: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        key = (a.cluster_id, b.cluster_id)
        with self._lock:
            got = self._ccg.get(key)
            if got is None:
                rev = self._ccg.get((b.cluster_id, a.cluster_id))
                if rev is not None:
                    got = (rev[1], rev[0])
        if got is not None:
            return got
        ta = ga[0] if ga is not None else gather_times(self.ctx.spike_times, a.spikes)
        tb = gb[0] if gb is not None else gather_times(self.ctx.spike_times, b.spikes)
        got = ccg_halves(ta, a.spikes, tb, b.spikes, self.bins)
        with self._lock:
            self._ccg[key] = got
            self._counters["ccg_computed"] += 1
        return got

    # ------------------------------------------------------------------ correlograms
    def acg(self, cid: int) -> np.ndarray:
        """Autocorrelogram (``W`` int64 counts, phy's convention)."""
        return acg_from_half(self.get(cid).acg_half)

    def ccg(self, a: int, b: int, *, symmetrize: bool = True) -> np.ndarray:
        """Cross-correlogram of two different clusters (positive lags: ``b`` after ``a``).

        ``symmetrize=True`` gives phy's display (zero bin = max of both directions);
        ``False`` the raw one used for composition.
        """
        if int(a) == int(b):
            return self.acg(a)
        ea, eb = self.get(a), self.get(b)
        h_ab, h_ba = self._ccg_halves(ea, eb)
        out = ccg_from_halves(h_ab, h_ba)
        if symmetrize:
            out[self.bins.half] = max(h_ab[0], h_ba[0])
        return out

    # ------------------------------------------------------------------ similarity
    @property
    def similarity_matrix(self) -> np.ndarray | None:
        """Template similarity ``S`` (``similar_templates.npy`` or the cosine fallback)."""
        if self._similarity_source is None:
            s, src = template_similarity(self.dataset)
            with self._lock:
                if self._similarity_source is None:
                    self._similarity, self._similarity_source = s, src
        return self._similarity

    @property
    def similarity_source(self) -> str:
        _ = self.similarity_matrix
        return str(self._similarity_source)

    def template_set(self, cid: int) -> tuple[np.ndarray, np.ndarray]:
        """``(template ids ascending, counts)`` of a cluster, cheaply (no full statistics).

        A sorter's own cluster (id < n_templates) is its template; a merge sums its cached
        parents'; anything else is one histogram pass over its spikes.
        """
        cid = int(cid)
        live = self.state.spikes(cid) if cid in self.state else None
        with self._lock:
            got = self._tsets.get(cid)
            if got is not None and (live is None or got[2] is live):
                return got[0], got[1]
            parents = self._parents.get(cid)
            psets = [self._tsets.get(p) for p in parents] if parents else None
        if live is None:
            raise KeyError(f"cluster {cid} is neither live nor cached")
        n = int(live.shape[0])
        if (
            cid < self.ctx.n_templates
            and n
            and int(self.ctx.spike_templates[live[0]]) == cid
            and int(self.ctx.spike_templates[live[-1]]) == cid
            and self._is_base(cid, live)
        ):
            tids, counts = np.array([cid], dtype=np.int32), np.array([n], dtype=np.int64)
        elif (
            psets and all(p is not None for p in psets) and sum(int(p[1].sum()) for p in psets) == n
        ):  # type: ignore[union-attr]
            tids, counts = _sum_template_sets([(p[0], p[1]) for p in psets])  # type: ignore[index]
        else:
            hist = _template_hist(
                self.ctx.spike_templates, np.ascontiguousarray(live), self.ctx.n_templates
            )
            tids = np.flatnonzero(hist).astype(np.int32)
            counts = hist[tids]
            self._count("template_sets_computed")
        with self._lock:
            self._tsets[cid] = (tids, counts, live)
        return tids, counts

    def _is_base(self, cid: int, live: np.ndarray) -> bool:
        """True when cluster ``cid`` is the sorter's original cluster (all spikes template cid).

        Guaranteed by the id rules (new ids are >= max(spike_templates) + 1) and checked
        cheaply against the size of the base cluster."""
        base = getattr(self, "_base_sizes", None)
        if base is None:
            base = np.bincount(np.asarray(self.ctx.spike_templates), minlength=self.ctx.n_templates)
            self._base_sizes = base
        return int(base[cid]) == int(live.shape[0])

    def sim_row(self, cid: int) -> np.ndarray | None:
        """Template row ``r_c`` (see :mod:`curalog.analysis.stats.similarity`), composed on merge."""
        s = self.similarity_matrix
        if s is None:
            return None
        cid = int(cid)
        with self._lock:
            row = self._sim_rows.get(cid)
            if row is not None:
                return row
            parents = self._parents.get(cid)
            prow = [self._sim_rows.get(p) for p in parents] if parents else None
        if prow and all(r is not None for r in prow):
            row = merge_rows(*prow)  # type: ignore[arg-type]
            name = "sim_rows_composed"
        else:
            row = template_row(s, self.template_set(cid)[0])
            name = "sim_rows_computed"
        with self._lock:
            self._sim_rows[cid] = row
            self._counters[name] += 1
        return row

    def similarity(self, a: int, b: int) -> float:
        """``sim(a, b) = max_{i in T(a), j in T(b)} S[i, j]`` (NaN without a similarity)."""
        row = self.sim_row(a)
        if row is None:
            return float("nan")
        return float(row[self.template_set(b)[0]].max())

    def similar(self, cid: int, limit: int | None = 100) -> list[tuple[int, float]]:
        """Live clusters ranked by similarity to ``cid``: descending, ties by ascending id,
        ``cid`` itself excluded. Empty when the dataset has no similarity at all."""
        row = self.sim_row(cid)
        if row is None:
            return []
        ids = np.asarray(self.state.cluster_ids)
        sets = [self.template_set(int(c))[0] for c in ids]
        return rank_similar(row, ids, sets, exclude=int(cid), limit=limit)

    # ------------------------------------------------------------------ updates
    def on_update(self, update: Update) -> None:
        """Take note of an action (or undo/redo): never computes anything by itself.

        Deleted ids leave the prefetch queue (their entries stay cached for undo); a merge
        records the parents of the new cluster so it can be composed; added ids are queued
        at the front when background workers run.
        """
        added = tuple(int(c) for c in update.added)
        deleted = tuple(int(c) for c in update.deleted)
        merged = update.merged
        with self._lock:
            for c in deleted:
                self._drop_queued(c)
            if merged is not None:
                new, parents = merged
                self._parents[new] = parents
            if self._workers:
                self._enqueue([c for c in added if c not in self._entries], front=True)

    # ------------------------------------------------------------------ priority queue
    def _drop_queued(self, cid: int) -> None:
        self._queued.pop(cid, None)  # the heap entry is skipped lazily

    def _enqueue(self, ids: Iterable[int], *, front: bool) -> None:
        seq = next(self._seq)
        band = (0, -seq) if front else (1, seq)
        for pos, cid in enumerate(ids):
            cid = int(cid)
            if cid in self._entries or cid in self._inflight:
                continue
            key = (band[0], band[1], pos)
            old = self._queued.get(cid)
            if old is not None and old <= key:
                continue
            self._queued[cid] = key
            heapq.heappush(self._heap, (key, cid))
        self._cond.notify_all()

    def prefetch(self, ids: Iterable[int], *, front: bool = True) -> None:
        """Queue ids for computation, in the given order.

        ``front=True`` (what is on screen): ahead of everything queued before.
        ``front=False`` (the rest of the table): behind everything, first come first served.
        Starts the background workers (``n_workers``) on first use.
        """
        with self._lock:
            self._enqueue(list(ids), front=front)
        if self._n_workers and not self._workers:
            self.start(self._n_workers)

    def queued_ids(self) -> list[int]:
        """Ids waiting in the queue, in the order they will be computed."""
        with self._lock:
            return [c for _, c in sorted((k, c) for c, k in self._queued.items())]

    def _pop(self) -> int | None:
        while self._heap:
            key, cid = heapq.heappop(self._heap)
            if self._queued.get(cid) == key:
                del self._queued[cid]
                return cid
        return None

    def compute_pending(self, limit: int | None = None) -> int:
        """Compute queued ids in priority order in the calling thread; returns how many."""
        done = 0
        while limit is None or done < limit:
            with self._lock:
                cid = self._pop()
            if cid is None:
                break
            if self._safe_get(cid):
                done += 1
        return done

    def _safe_get(self, cid: int) -> bool:
        try:
            self.get(cid)
            return True
        except Exception:
            self._count("errors")
            return False

    def start(self, n_workers: int = 1) -> None:
        """Start ``n_workers`` daemon threads that compute queued ids."""
        with self._lock:
            self._stopping = False
            while len(self._workers) < n_workers:
                t = threading.Thread(
                    target=self._worker, name=f"curalog-stats-{len(self._workers)}", daemon=True
                )
                self._workers.append(t)
                t.start()

    def _worker(self) -> None:
        while True:
            with self._cond:
                cid = self._pop()
                while cid is None and not self._stopping:
                    self._cond.wait()
                    cid = self._pop()
                if self._stopping:
                    return
            self._safe_get(cid)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty and nothing is being computed."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queued and not self._inflight, timeout)

    def close(self) -> None:
        """Stop the background workers (queued ids are dropped)."""
        with self._cond:
            self._stopping = True
            self._queued.clear()
            self._heap.clear()
            self._cond.notify_all()
            workers, self._workers = self._workers, []
        for t in workers:
            t.join()

    # ------------------------------------------------------------------ tables
    def compute_all(
        self, ids: Sequence[int] | None = None, n_threads: int = 1
    ) -> list[ClusterStats]:
        """Entries for ``ids`` (default: every live cluster), computing missing ones with
        ``n_threads`` threads (the kernels release the GIL)."""
        ids = [int(c) for c in (self.state.cluster_ids if ids is None else ids)]
        if n_threads <= 1:
            return [self.get(c) for c in ids]
        missing = [c for c in ids if not self.is_cached(c)]
        missing.sort(key=lambda c: -int(self.state.n_spikes_of(c)) if c in self.state else 0)
        with ThreadPoolExecutor(max_workers=n_threads) as workers:
            list(workers.map(self.get, missing))
        return [self.get(c) for c in ids]

    def table_rows(
        self, ids: Sequence[int] | None = None, n_threads: int = 1
    ) -> list[dict[str, Any]]:
        """One dict of column values per cluster (keys: :data:`TABLE_COLUMNS` plus the
        sorter's columns for the sorter's own clusters, e.g. KSLabel, ContamPct)."""
        return [self.row(e) for e in self.compute_all(ids, n_threads)]

    def row(self, entry: ClusterStats | int) -> dict[str, Any]:
        """``entry.row()`` plus SpikeInterface's quality metrics (:meth:`quality`) and the
        label-dependent ``silhouette``; a computed column always wins over a sorter's."""
        e = self.get(entry) if isinstance(entry, (int, np.integer)) else entry
        out = e.row()
        values, pc = self.quality(e)
        out.update(values)
        out["silhouette"] = self.silhouette(e, pc)
        return out

    def silhouette_dependents(self, deleted: Iterable[int]) -> list[int]:
        """Clusters whose last computed silhouette used a label in ``deleted``: after a
        merge, split or undo their silhouette is stale (their PC "others" were relabelled
        even though their own spikes were not), so a table showing it recomputes them."""
        gone = np.asarray(sorted({int(c) for c in deleted}), dtype=np.int64)
        if gone.size == 0:
            return []
        skip = set(gone.tolist())
        with self._lock:
            items = list(self._silhouette_labels.items())
        return [c for c, labels in items if c not in skip and np.isin(labels, gone).any()]

    def quality(self, entry: ClusterStats | int) -> tuple[dict[str, Any], Any]:
        """``(columns, PC sample)`` of SpikeInterface's quality metrics, cached by id.

        Separate from :meth:`get` (which a merge refresh needs first): computed on first
        request, from the cluster's gathered spikes; a merge whose parents' PC samples are
        cached composes its own from theirs (see :mod:`curalog.analysis.stats.quality_pc`).
        """
        e = self.get(entry) if isinstance(entry, (int, np.integer)) else entry
        cid = e.cluster_id
        with self._lock:
            got = self._quality.get(cid)
            parents = self._parents.get(cid)
            pq = [self._quality.get(p) for p in parents] if parents else None
        if got is not None and got[2] is e.spikes:
            return got[0], got[1]
        ppc = None
        if (
            pq
            and all(q is not None and q[1] is not None for q in pq)
            and sum(int(q[2].shape[0]) for q in pq) == e.n_spikes  # type: ignore[index]
        ):
            ppc = [q[1] for q in pq]  # type: ignore[index]
        g = self._gathered_get(cid)
        if g is None:
            g = (gather_times(self.ctx.spike_times, e.spikes), None)
            amps = self.ctx.amplitudes
            if amps is not None:
                g = (g[0], np.asarray(amps[e.spikes], dtype=np.float64))
        values, pc = compute_quality(
            self.ctx.quality,
            e.spikes,
            g[0],
            g[1],
            e.template,
            e.template_ids,
            e.template_counts,
            e.best_channel,
            ppc,
        )
        with self._lock:
            self._quality[cid] = (values, pc, e.spikes)
            self._counters["quality_composed" if ppc else "quality_computed"] += 1
        return values, pc

    def silhouette(self, entry: ClusterStats, pc: Any = None) -> float:
        """Simplified silhouette against the current labels of the cluster's PC "others",
        cached by the set of those labels (ids are never reused, so the set fixes them)."""
        if pc is None:
            pc = self.quality(entry)[1]
        if pc is None:
            return float("nan")
        labels = (
            np.asarray(self.state.clusters_of(pc.other_spikes))
            if pc.other_spikes.size
            else pc.other_spikes
        )
        present = np.unique(labels)
        key = (entry.cluster_id, present.tobytes())
        with self._lock:
            self._silhouette_labels[entry.cluster_id] = present
            got = self._silhouettes.get(key)
        if got is None:
            got = self.ctx.quality.pcs.silhouette(pc, labels)
            with self._lock:
                self._silhouettes[key] = got
                self._counters["silhouettes_computed"] += 1
        return got
