"""The proposal engine: candidates, queries and decisions over a curation's live state."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from curalog.analysis.counters import WorkCounters
from curalog.analysis.proposals.model import (
    _COUNTER_NAMES,
    AMPLITUDE_MODES,
    PROPOSAL_NOTE_KIND,
    Proposal,
    ProposalParams,
)
from curalog.analysis.proposals.profiles import _Derived, _Profile
from curalog.analysis.proposals.scoring import _PairScoring
from curalog.analysis.proposals.templates import _Templates
from curalog.analysis.proposals.updates import _IncrementalUpdates
from curalog.analysis.stats.engine import StatsEngine
from curalog.analysis.stats.similarity import template_row
from curalog.clustering import ClusterState
from curalog.curation import Curation
from curalog.dataset import Dataset
from curalog.errors import InvalidActionError, LogCorruptError
from curalog.events import Event, MergeBody, NoteBody

#: per-spike positions used at most (every k-th block of 4096 spikes beyond this many)
POSITION_SPIKES = 8_000_000


# ---------------------------------------------------------------------- the engine
class ProposalEngine(WorkCounters, _IncrementalUpdates, _PairScoring):
    """Merge proposals over a curation's live state, kept up to date incrementally.

    Parameters
    ----------
    source
        A :class:`curalog.curation.Curation` (then rejections are read from and written to
        its log, ``accept``/``reject`` work, and the engine subscribes to its updates), or a
        ``(dataset, state)`` pair (read-only use; call :meth:`on_update` yourself).
    stats : StatsEngine, optional
        The statistics engine to share (similarity rows, template sets, correlograms for
        :meth:`evidence`). Created (and subscribed) when omitted; when given, the caller
        subscribes it to the curation (before this engine, as the UI does).
    params : ProposalParams, optional
    subscribe : bool
        Subscribe :meth:`on_update` to the curation (default True).
    n_threads : int, optional
        Threads for the first pass over all spikes (default: the CPU count, at most 4).

    Notes
    -----
    Thread-safe: every public method takes the engine's lock. Work is lazy: an update is only
    recorded, and processed on the next query.
    """

    _work_log_name = "score_log"

    def __init__(
        self,
        source: Curation | tuple[Dataset, ClusterState],
        stats: StatsEngine | None = None,
        params: ProposalParams | None = None,
        *,
        subscribe: bool = True,
        n_threads: int | None = None,
    ):

        self.curation: Curation | None
        if isinstance(source, tuple):
            self.curation = None
            self.dataset, self._state = source
        else:
            self.curation = source
            self.dataset, self._state = source.dataset, source.state
        self.params = params or ProposalParams()
        own_stats = stats is None
        self.stats = stats if stats is not None else StatsEngine(self.dataset, self.state)
        self._lock = threading.RLock()
        self._counters = dict.fromkeys(_COUNTER_NAMES, 0)
        #: Pairs whose base score was computed, in order (see :meth:`reset_counters`).
        self.score_log: list[tuple[int, int]] = []
        self.n_threads = int(n_threads) if n_threads else min(4, os.cpu_count() or 1)
        defaults = ProposalParams().to_dict()
        self._changed_params = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in self.params.to_dict().items()
            if defaults[k] != v
        }
        ctx = self.stats.ctx
        self.sample_rate = float(ctx.sample_rate)
        self.total_samples = int(ctx.total_samples)
        self.n_templates = int(ctx.n_templates)
        p = self.params
        self.nb = int(p.n_time_bins)
        self.tau = int(round(p.refractory_ms * self.sample_rate / 1000.0))
        self.censor = int(round(p.censored_ms * self.sample_rate / 1000.0))
        self.bin_samples = self.total_samples / self.nb
        n_lags = 2 * self.tau + 1 if self.censor == 0 else 2 * (self.tau - self.censor + 1)
        self._lag_fraction = max(n_lags, 0) / self.bin_samples
        i = np.arange(self.nb)
        self._kernel = np.exp(-np.abs(i[:, None] - i[None, :]) / float(p.time_kernel_bins))
        self.templates = _Templates(
            ctx.geometry,
            ctx.channel_positions,
            p,
            self.n_templates,
            self._counters,
            lambda: self.stats.similarity_matrix,
        )
        amps = getattr(self.dataset, "amplitudes", None)
        self._amps = None if amps is None else np.asarray(amps).reshape(-1)
        self._pos = _spike_positions(self.dataset)
        #: positions enter the profiles for the spikes of every stride-th block of 4096 (by
        #: index): at most about POSITION_SPIKES of them, plenty for per-bin means, and the
        #: pass reads only those pages of spike_positions.npy
        n_all = int(getattr(self.dataset, "n_spikes", 0) or 0)
        self._pos_stride = max(1, -(-n_all // POSITION_SPIKES))
        if p.amplitude_mode not in AMPLITUDE_MODES:
            raise InvalidActionError(
                f"amplitude_mode must be one of {', '.join(AMPLITUDE_MODES)} (got {p.amplitude_mode!r})"
            )
        #: ``absolute``: amplitudes.npy as written (Kilosort 4); ``scaled``: x template ptp
        self.amplitude_mode = (
            ("absolute" if _is_kilosort4(self.dataset) else "scaled")
            if p.amplitude_mode == "auto"
            else p.amplitude_mode
        )
        i_pos = np.arange(self.nb)
        self._pos_kernel = np.exp(
            -np.abs(i_pos[:, None] - i_pos[None, :]) / float(p.position_kernel_bins)
        )
        self._profiles: dict[int, _Profile] = {}
        self._derived: dict[int, _Derived] = {}
        self._slot: dict[int, int] = {}
        self._coinc = np.zeros((0, 0), dtype=np.int64)
        self._dup = np.zeros((0, 0), dtype=np.int64)  # duplicate pairs (|dt| < censor)
        #: templates of a cluster joined as duplicate detections of the rest (ignored by the
        #: shape, position and amplitude evidence)
        self._shadow: dict[int, frozenset[int]] = {}
        #: pairs whose duplicates pass ``duplicate_floor`` (candidates besides the top-k)
        self._dupnbrs: dict[int, set[int]] = {}
        self._free: list[int] = []
        self._parents: dict[int, tuple[int, ...]] = {}
        self._msim = np.zeros((0, 0))
        self._pairs: dict[tuple[int, int], Proposal] = {}  # base scores: pure, never stale
        self._conflicts: dict[tuple[int, int], float] = {}  # pure, never stale
        self._adjusted: dict[tuple[int, int], Proposal] = {}  # valid while neighbours are
        self._topk: dict[int, tuple[int, ...]] = {}
        self._kth: dict[int, float] = {}
        self._nbrs: dict[int, frozenset[int]] = {}
        self._cand: dict[tuple[int, int], float] = {}
        self._pending = False
        self._initialised = False
        self._rejected: set[tuple[int, int]] = set()
        self._partners: dict[int, frozenset[int]] | None = None
        self._ancestors: dict[int, frozenset[int]] = {}
        if self.curation is not None:
            self._read_history(self.curation.history)
            if subscribe:
                if own_stats:
                    self.curation.subscribe(self.stats.on_update)
                self.curation.subscribe(self.on_update)

    @property
    def state(self) -> ClusterState:
        """The live cluster state (the curation's current one: an undo that replays the log
        replaces it)."""
        return self.curation.state if self.curation is not None else self._state

    # ------------------------------------------------------------------ history
    def _read_history(self, events: Iterable[Event]) -> None:
        """Merge ancestry and rejections from the log (after a restart)."""
        for e in events:
            try:
                data = e.data
            except LogCorruptError:
                continue
            if isinstance(data, MergeBody):
                self._parents[data.new] = tuple(sorted(data.clusters))
            elif isinstance(data, NoteBody):
                self._take_note(data)

    def _take_note(self, note: NoteBody) -> None:
        """A proposal decision (reject / unreject) read from the log or just recorded."""
        if note.kind != PROPOSAL_NOTE_KIND:
            return
        decision = note.data or {}
        try:
            a, b = sorted(int(c) for c in decision["clusters"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            if decision.get("decision") == "reject":
                self._rejected.add((a, b))
            elif decision.get("decision") == "unreject":
                self._rejected.discard((a, b))
            self._partners = None

    def _ancestry(self, cid: int) -> frozenset[int]:
        """The cluster and every cluster merged into it (recursively)."""
        got = self._ancestors.get(cid)
        if got is None:
            out = {cid}
            for p in self._parents.get(cid, ()):
                out |= self._ancestry(p)
            got = frozenset(out)
            self._ancestors[cid] = got
        return got

    def is_rejected(self, a: int, b: int) -> bool:
        """True when the pair, or a pair of clusters merged into them, was rejected."""
        with self._lock:
            if not self._rejected:
                return False
            a, b = int(a), int(b)
            if (min(a, b), max(a, b)) in self._rejected:
                return True
            anc_a, anc_b = self._ancestry(a), self._ancestry(b)
            if len(anc_a) > len(anc_b):
                anc_a, anc_b = anc_b, anc_a
            partners = self._rejected_partners()
            return any(not partners.get(x, frozenset()).isdisjoint(anc_b) for x in anc_a)

    def _rejected_partners(self) -> dict[int, frozenset[int]]:
        """``x -> {y : (x, y) rejected}``, both ways (rebuilt when the rejections change)."""
        if self._partners is None:
            out: dict[int, set[int]] = {}
            for x, y in self._rejected:
                out.setdefault(x, set()).add(y)
                out.setdefault(y, set()).add(x)
            self._partners = {k: frozenset(v) for k, v in out.items()}
        return self._partners

    @property
    def rejected_pairs(self) -> list[tuple[int, int]]:
        with self._lock:
            return sorted(self._rejected)

    # ------------------------------------------------------------------ candidates
    def _similarity_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, M)``: phy's cluster similarity ``M[i, j] = sim(ids[i], ids[j])`` between
        every pair of live clusters (``-inf`` on the diagonal)."""
        ids = np.asarray(self.state.cluster_ids, dtype=np.int64)
        if ids.shape[0] == 0:
            return ids, np.zeros((0, 0))
        sim = self.stats.similarity_matrix
        if sim is None:
            return ids, np.full((ids.shape[0], ids.shape[0]), -np.inf)
        sets = [self._profiles[int(c)].tids for c in ids]
        r = np.vstack([template_row(sim, t) for t in sets]).astype(np.float64, copy=False)
        lengths = np.fromiter((s.shape[0] for s in sets), dtype=np.int64, count=len(sets))
        concat = np.concatenate(sets).astype(np.int64, copy=False)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        m = np.maximum.reduceat(r[:, concat], offsets, axis=1)
        np.fill_diagonal(m, -np.inf)
        return ids, m

    def similarity_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, M)``: phy's similarity ``M[i, j] = sim(ids[i], ids[j])`` between the live
        clusters (ascending ids; ``-inf`` on the diagonal)."""
        with self._lock:
            self._sync()
            ids = np.asarray(self.state.cluster_ids, dtype=np.int64)
            slots = np.array([self._slot[int(c)] for c in ids], dtype=np.int64)
            m = self._msim[np.ix_(slots, slots)].copy()
            np.fill_diagonal(m, -np.inf)
            return ids, m

    def _rank(self, c: int, ids: np.ndarray, slots: np.ndarray) -> None:
        """Top-k partners of ``c``: descending similarity, ties by ascending id."""
        p = self.params
        v = self._msim[self._slot[c], slots]
        keep = ids != c
        v, cand = v[keep], ids[keep]
        order = np.lexsort((cand, -v))
        k = min(p.top_k, order.shape[0])
        top = order[:k]
        self._kth[c] = float(v[top[-1]]) if k == p.top_k and k > 0 else -np.inf
        self._topk[c] = tuple(int(cand[j]) for j in top if v[j] >= p.min_similarity)

    def _rebuild_candidates(self) -> None:
        """The union of the top-k pairs and of the duplicate pairs; clusters whose neighbours
        changed lose their competition-adjusted proposals (base scores stay cached)."""
        cand: dict[tuple[int, int], float] = {}
        nbrs: dict[int, set[int]] = {}
        for c, top in self._topk.items():
            sc = self._slot[c]
            for d in top:
                key = (c, d) if c < d else (d, c)
                if key not in cand:
                    sd = self._slot[d]
                    cand[key] = float(max(self._msim[sc, sd], self._msim[sd, sc]))
                    nbrs.setdefault(c, set()).add(d)
                    nbrs.setdefault(d, set()).add(c)
        for c, partners in self._dupnbrs.items():  # one neuron detected twice
            for d in partners:
                key = (c, d) if c < d else (d, c)
                if key not in cand:
                    sc, sd = self._slot[c], self._slot[d]
                    cand[key] = float(max(self._msim[sc, sd], self._msim[sd, sc]))
                    nbrs.setdefault(c, set()).add(d)
                    nbrs.setdefault(d, set()).add(c)
        frozen = {c: frozenset(v) for c, v in nbrs.items()}
        changed = {c for c in set(frozen) | set(self._nbrs) if frozen.get(c) != self._nbrs.get(c)}
        self._nbrs = frozen
        self._cand = dict(sorted(cand.items()))
        self._counters["candidate_refreshes"] += 1
        if changed:
            self._adjusted = {
                k: v
                for k, v in self._adjusted.items()
                if k[0] not in changed and k[1] not in changed
            }

    def candidates(self) -> list[tuple[int, int, float]]:
        """Candidate pairs ``(a, b, phy_similarity)``, ``a < b``, ascending."""
        with self._lock:
            self._sync()
            return [(a, b, s) for (a, b), s in self._cand.items()]

    # ------------------------------------------------------------------ queries
    def proposals(
        self, min_score: float = 0.0, limit: int | None = None, *, include_rejected: bool = False
    ) -> list[Proposal]:
        """Candidate pairs with ``score >= min_score``, best first (ties: ascending ids);
        rejected pairs are left out unless ``include_rejected``."""
        with self._lock:
            self._sync()
            out = []
            for a, b in self._cand:
                prop = self._adjust(a, b)
                if prop.score < min_score:
                    continue
                if not include_rejected and self.is_rejected(a, b):
                    continue
                out.append(prop)
            out.sort(key=lambda q: (-q.score, q.a, q.b))
            return out[:limit] if limit is not None else out

    def next(
        self, min_score: float = 0.0, exclude: Iterable[tuple[int, int]] = ()
    ) -> Proposal | None:
        """The best proposal not rejected and not in ``exclude`` (pairs skipped by the
        curator), or None."""
        skip = {(min(a, b), max(a, b)) for a, b in exclude}
        for prop in self.proposals(min_score):
            if prop.pair not in skip:
                return prop
        return None

    # ------------------------------------------------------------------ decisions
    def _require_curation(self) -> Curation:
        if self.curation is None:
            raise InvalidActionError("this proposal engine has no curation to write to")
        return self.curation

    def accept(self, proposal: Proposal) -> int:
        """Merge the pair (an ordinary merge event, ``meta={"proposal": ...}``); returns the
        new cluster id."""
        cur = self._require_curation()
        return int(cur.merge([proposal.a, proposal.b], meta={"proposal": proposal.provenance()}))

    def reject(self, proposal: Proposal | tuple[int, int], text: str = "") -> Event:
        """Record that the pair is not one neuron (a note in the log); it is not proposed
        again, nor any pair of clusters merged from both sides. Returns the note event."""
        cur = self._require_curation()
        a, b = _pair_of(proposal)
        data: dict[str, Any] = {"decision": "reject", "clusters": [a, b]}
        if isinstance(proposal, Proposal):
            data["score"] = round(proposal.score, 4)
        event = cur.note(PROPOSAL_NOTE_KIND, text or f"rejected merge proposal {a} + {b}", data)
        with self._lock:
            self._rejected.add((a, b))
            self._partners = None
        return event

    def unreject(self, proposal: Proposal | tuple[int, int], text: str = "") -> Event:
        """Take a rejection back (another note); the pair can be proposed again."""
        cur = self._require_curation()
        a, b = _pair_of(proposal)
        event = cur.note(
            PROPOSAL_NOTE_KIND,
            text or f"withdrew the rejection of {a} + {b}",
            {"decision": "unreject", "clusters": [a, b]},
        )
        with self._lock:
            self._rejected.discard((a, b))
            self._partners = None
        return event

    def accept_all(
        self,
        min_score: float,
        *,
        max_merges: int | None = None,
        callback: Callable[[Proposal, int], None] | None = None,
    ) -> list[tuple[Proposal, int]]:
        """Accept proposals greedily, best first, re-scoring after every merge, until none
        reaches ``min_score``. Returns ``[(proposal, new id), ...]`` in order.

        The sequence does not depend on ``min_score`` (it only decides where to stop), so a
        lower threshold continues the run of a higher one.
        """
        done: list[tuple[Proposal, int]] = []
        while max_merges is None or len(done) < max_merges:
            prop = self.next(min_score)
            if prop is None:
                break
            new = self.accept(prop)
            done.append((prop, new))
            if callback is not None:
                callback(prop, new)
        return done


def _is_kilosort4(dataset: Any) -> bool:
    """Kilosort 4 wrote the folder: it holds ``spike_detection_templates.npy``, which no
    earlier Kilosort writes (and its ``amplitudes.npy`` is the L2 norm of the spike's PC
    features, not a scaling of the template)."""
    path = getattr(dataset, "path", None)
    return path is not None and (Path(path) / "spike_detection_templates.npy").is_file()


def _spike_positions(dataset: Any) -> np.ndarray | None:
    """Kilosort 4's per-spike positions (``spike_positions.npy``, ``(n_spikes, 2)`` µm), or
    None when the folder has none or they do not fit the spikes."""
    get = getattr(dataset, "optional_array", None)
    if get is None:
        return None
    try:
        arr = get("spike_positions.npy")
    except Exception:  # noqa: BLE001 - an unreadable optional file is no evidence
        return None
    n = int(getattr(dataset, "n_spikes", -1))
    if arr is None or arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
        return None
    # not scanned for NaN (0.5 s at 50 M spikes): a non-finite position makes its cluster's
    # position step NaN, and the pair falls back to the template distance
    return np.ascontiguousarray(arr[:, :2], dtype=np.float32)


def _pair_of(p: Proposal | tuple[int, int]) -> tuple[int, int]:
    if isinstance(p, Proposal):
        return p.a, p.b
    a, b = sorted(int(c) for c in p)
    return a, b
