"""How the proposal engine follows the curation: profiles, coincidence rows and phy's
similarity compose on merges; other new clusters get a local pass over their spikes."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from curalog.analysis.proposals.kernels import _full_pass, _hist_pass, _local_pass, _template_hist
from curalog.analysis.proposals.profiles import _compose_profiles, _Profile
from curalog.analysis.stats.similarity import template_row
from curalog.clustering import Update
from curalog.errors import InvalidActionError


class _IncrementalUpdates:
    """The update half of :class:`curalog.analysis.proposals.ProposalEngine` (a mixin)."""

    # ------------------------------------------------------------------ updates
    def on_update(self, update: Update) -> None:
        """Take note of an action, undo or redo; the work happens at the next query. A
        proposal decision recorded by anyone (another engine, the UI) applies at once."""
        note = getattr(update, "note", None)
        if note is not None:
            self._take_note(note)  # type: ignore[attr-defined]
            return
        added = tuple(int(c) for c in update.added)
        deleted = tuple(int(c) for c in update.deleted)
        merged = update.merged
        with self._lock:
            if merged is not None and merged[0] not in self._parents:
                self._parents[merged[0]] = merged[1]
                self._ancestors.clear()  # an older id may have gained parents (undo of a split)
            if added or deleted:
                self._pending = True

    def _sync(self) -> None:
        """Bring slots, profiles, coincidences, similarities and candidates up to the live
        state (lazily, on a query)."""
        if not self._initialised:
            self._initialise()
            self._initialised = True
            self._pending = False
            return
        if not self._pending:
            return
        self._pending = False
        live = [int(c) for c in self.state.cluster_ids]
        live_set = set(live)
        gone = [c for c in self._slot if c not in live_set]
        new = sorted(c for c in live if c not in self._slot)
        if not gone and not new:
            return
        local: list[int] = []
        for c in new:
            parents = self._parents.get(c)
            if parents and all(p in self._slot for p in parents) and self._is_union(c, parents):
                self._compose_row(c, parents)
            else:
                local.append(c)
        if local:
            for c in local:
                self._alloc(c)
            slot_of = self._slot_lut()
            clusters = self.state.spike_clusters
            for c in local:
                self._local(c, slot_of, clusters)
            for c in local:
                self._similarity_rows(c)
        gone_set = set(gone)
        for c in gone:
            self._release(c)
            self._topk.pop(c, None)
            self._kth.pop(c, None)
        # re-rank the clusters whose top-k may have changed
        ids = np.asarray(self.state.cluster_ids, dtype=np.int64)
        slots = np.array([self._slot[int(c)] for c in ids], dtype=np.int64)
        new_slots = np.array([self._slot[c] for c in new], dtype=np.int64)
        rerank = set(new)
        if new_slots.size:
            best_new = self._msim[np.ix_(slots, new_slots)].max(axis=1)
        else:
            best_new = np.full(ids.shape[0], -np.inf)
        for i, c in enumerate(ids.tolist()):
            if c in rerank:
                continue
            if gone_set.intersection(self._topk.get(c, ())) or best_new[i] >= self._kth.get(
                c, -np.inf
            ):
                rerank.add(c)
        for c in sorted(rerank):
            self._rank(c, ids, slots)
        self._rebuild_candidates()

    def _is_union(self, c: int, parents: Sequence[int]) -> bool:
        try:
            n = self.state.n_spikes_of(c)
        except InvalidActionError:
            return False
        return sum(self._profile_n(p) for p in parents) == n

    def _profile_n(self, c: int) -> int:
        prof = self._profiles.get(c)
        return prof.n_spikes if prof is not None else -1

    # -- slots of the coincidence and similarity matrices
    def _alloc(self, c: int) -> int:
        if self._free:
            s = self._free.pop()
        else:
            s = len(self._slot)
            cap = self._coinc.shape[0]
            if s >= cap:
                new_cap = max(64, 2 * cap, s + 1)
                grown = np.zeros((new_cap, new_cap), dtype=np.int64)
                grown[:cap, :cap] = self._coinc
                self._coinc = grown
                grown = np.zeros((new_cap, new_cap), dtype=np.int64)
                grown[:cap, :cap] = self._dup
                self._dup = grown
                sim = np.full((new_cap, new_cap), -np.inf)
                sim[:cap, :cap] = self._msim
                self._msim = sim
        self._coinc[s, :] = 0
        self._coinc[:, s] = 0
        self._dup[s, :] = 0
        self._dup[:, s] = 0
        self._msim[s, :] = -np.inf
        self._msim[:, s] = -np.inf
        self._slot[c] = s
        return s

    def _release(self, c: int) -> None:
        s = self._slot.pop(c)
        self._free.append(s)
        for d in self._dupnbrs.pop(c, ()):
            self._dupnbrs.get(d, set()).discard(c)

    def _is_duplicate(self, x: int, y: int) -> bool:
        """``x`` and ``y`` share enough duplicate detections (``duplicate_floor``)."""
        n = min(self._profile_n(x), self._profile_n(y))
        d = int(self._dup[self._slot[x], self._slot[y]])
        return n > 0 and d >= self.params.duplicate_floor * n

    def _duplicate_partners(self, c: int) -> None:
        """Record the live clusters whose duplicates with ``c`` pass the floor."""
        s = self._slot[c]
        row = self._dup[s]
        for x, sx in self._slot.items():
            if x != c and row[sx] > 0 and self._is_duplicate(c, x):
                self._dupnbrs.setdefault(c, set()).add(x)
                self._dupnbrs.setdefault(x, set()).add(c)

    def _slot_lut(self) -> np.ndarray:
        top = (
            max(max(self._slot) + 1, int(self.state.counter))
            if self._slot
            else int(self.state.counter)
        )
        lut = np.full(top + 1, -1, dtype=np.int64)
        for c, s in self._slot.items():
            lut[c] = s
        return lut

    def _compose_row(self, c: int, parents: Sequence[int]) -> None:
        """A merge of slotted clusters: every per-cluster quantity composes exactly."""
        s = self._alloc(c)  # first: it may grow the matrices
        ps = [self._slot[p] for p in parents]
        row = self._coinc[ps].sum(axis=0)
        diag = int(sum(self._coinc[q, q] for q in ps))
        drow = self._dup[ps].sum(axis=0)
        ddiag = int(sum(self._dup[q, q] for q in ps))
        for i in range(len(ps)):
            for j in range(i + 1, len(ps)):
                diag += int(self._coinc[ps[i], ps[j]])
                ddiag += int(self._dup[ps[i], ps[j]])
        srow = self._msim[ps].max(axis=0)  # sim(c, x) = max(sim(a, x), sim(b, x))
        scol = self._msim[:, ps].max(axis=1)
        self._coinc[s, :] = row
        self._coinc[:, s] = row
        self._coinc[s, s] = diag
        self._dup[s, :] = drow
        self._dup[:, s] = drow
        self._dup[s, s] = ddiag
        self._msim[s, :] = srow
        self._msim[:, s] = scol
        self._msim[s, s] = -np.inf
        for p in ps:  # the parents' columns are not live any more
            self._msim[s, p] = -np.inf
            self._msim[p, s] = -np.inf
        self._counters["rows_composed"] += 1
        if c not in self._profiles:
            self._profiles[c] = _compose_profiles([self._profiles[p] for p in parents])
            self._counters["profiles_composed"] += 1
        if c not in self._shadow:
            self._shadow[c] = self._compose_shadow(c, parents)
        for p in ps:
            self._dup[s, p] = 0
            self._dup[p, s] = 0
        self._duplicate_partners(c)

    def _compose_shadow(self, c: int, parents: Sequence[int]) -> frozenset[int]:
        """The templates of ``c`` that are duplicate detections: the parents' own, and every
        parent whose spikes mostly duplicate the others' (``duplicate_floor``) joins as a
        shadow, unless nothing would be left."""
        shadow = set().union(*(self._shadow.get(p, frozenset()) for p in parents))
        for p in parents:
            others = [q for q in parents if q != p]
            n_p, n_o = self._profile_n(p), sum(self._profile_n(q) for q in others)
            d = sum(int(self._dup[self._slot[p], self._slot[q]]) for q in others)
            if n_p <= n_o and n_p > 0 and d >= self.params.duplicate_floor * n_p:
                shadow |= set(self._profiles[p].tids.tolist())
        if shadow.issuperset(self._profiles[c].tids.tolist()):
            return frozenset()
        return frozenset(shadow)

    def _similarity_rows(self, c: int) -> None:
        """phy's similarity between a new (not composed) cluster and every slotted cluster."""
        sim = self.stats.similarity_matrix
        if sim is None:
            return
        s = self._slot[c]
        tc = self._profiles[c].tids
        row = template_row(sim, tc)
        for x, sx in self._slot.items():
            if x == c:
                continue
            tx = self._profiles[x].tids
            self._msim[s, sx] = float(row[tx].max()) if tx.size else -np.inf
            self._msim[sx, s] = float(sim[np.ix_(tx, tc)].max()) if tx.size and tc.size else -np.inf

    def _local(self, c: int, slot_of: np.ndarray, clusters: np.ndarray) -> None:
        spikes = np.ascontiguousarray(self.state.spikes(c))
        templates = self.dataset.spike_templates
        hist = _template_hist(spikes, templates, self.n_templates)
        tids = np.flatnonzero(hist).astype(np.int64)
        lut = np.full(self.n_templates, -1, dtype=np.int64)
        lut[tids] = np.arange(tids.shape[0])
        counts = np.zeros((tids.shape[0], self.nb))
        ampsum = np.zeros((tids.shape[0], self.nb))
        use_pos = self._pos is not None
        possum = np.zeros((tids.shape[0], self.nb, 2) if use_pos else (1, 1, 2))
        pos2sum = np.zeros((tids.shape[0], self.nb) if use_pos else (1, 1))
        poscount = np.zeros((tids.shape[0], self.nb) if use_pos else (1, 1))
        row = np.zeros(self._coinc.shape[0], dtype=np.int64)
        duprow = np.zeros(self._coinc.shape[0], dtype=np.int64)
        use_amp = self._amps is not None
        amps = self._amps if use_amp else np.zeros(1, dtype=np.float32)
        pos = self._pos if use_pos else np.zeros((1, 2), dtype=np.float32)
        own = self._slot[c]
        _local_pass(
            spikes,
            self.dataset.spike_times,
            clusters,
            templates,
            amps,
            use_amp,
            pos,
            use_pos,
            self._pos_stride,
            slot_of,
            own,
            lut,
            self.nb,
            self.total_samples,
            self.tau,
            self.censor,
            counts,
            ampsum,
            possum,
            pos2sum,
            poscount,
            row,
            duprow,
        )
        diag = row[own]
        self._coinc[own, :] = row
        self._coinc[:, own] = row
        self._coinc[own, own] = diag
        ddiag = duprow[own]
        self._dup[own, :] = duprow
        self._dup[:, own] = duprow
        self._dup[own, own] = ddiag
        self._counters["rows_computed"] += 1
        if c not in self._profiles:
            self._profiles[c] = _Profile(
                tids,
                counts,
                ampsum,
                int(spikes.shape[0]),
                possum if use_pos else None,
                pos2sum if use_pos else None,
                poscount if use_pos else None,
            )
            self._counters["profiles_computed"] += 1
        self._shadow.setdefault(c, frozenset())
        self._duplicate_partners(c)

    def _initialise(self) -> None:
        """Profiles and coincidences of every live cluster in one pass over all spikes, the
        similarity table, every top-k list and the candidates."""
        live = [int(c) for c in self.state.cluster_ids]
        self._slot = {}
        self._free = []
        cap = max(64, len(live) + 64)
        self._coinc = np.zeros((cap, cap), dtype=np.int64)
        self._dup = np.zeros((cap, cap), dtype=np.int64)
        self._msim = np.full((cap, cap), -np.inf)
        self._dupnbrs = {}
        for c in live:
            self._alloc(c)
        slot_of = self._slot_lut()
        clusters = self.state.spike_clusters
        templates = self.dataset.spike_templates
        n_live = len(live)
        hist = np.zeros((n_live, self.n_templates), dtype=np.int64)
        if n_live:
            _hist_pass(clusters, templates, slot_of, hist)
        nz = np.flatnonzero(hist.ravel())
        lut = np.full(hist.shape, -1, dtype=np.int64)
        lut.ravel()[nz] = np.arange(nz.shape[0])
        use_amp = self._amps is not None
        amps = self._amps if use_amp else np.zeros(1, dtype=np.float32)
        use_pos = self._pos is not None
        pos = self._pos if use_pos else np.zeros((1, 2), dtype=np.float32)
        n_spikes = int(clusters.shape[0])
        # one private output per thread: no more threads than spikes (1 M per thread) or
        # memory (256 MB of coincidence and duplicate matrices) justify
        by_memory = max(1, (256 << 20) // max(1, 8 * n_live * n_live))
        n_chunks = max(1, min(self.n_threads, n_spikes // 1_000_000 + 1, by_memory))
        n_rows = nz.shape[0]
        parts = [
            (
                np.zeros((n_rows, self.nb)),
                np.zeros((n_rows, self.nb)),
                np.zeros((n_live, n_live), dtype=np.int32),
                np.zeros((n_live, n_live), dtype=np.int32),
                np.zeros((n_rows, self.nb, 2) if use_pos else (1, 1, 2)),
                np.zeros((n_rows, self.nb) if use_pos else (1, 1)),
                np.zeros((n_rows, self.nb) if use_pos else (1, 1)),
            )
            for _ in range(n_chunks)
        ]
        bounds = [n_spikes * i // n_chunks for i in range(n_chunks + 1)]

        def run(i: int) -> None:
            c_, a_, u_, d_, p_, q_, r_ = parts[i]
            _full_pass(
                self.dataset.spike_times,
                clusters,
                templates,
                amps,
                use_amp,
                pos,
                use_pos,
                self._pos_stride,
                slot_of,
                lut,
                self.nb,
                self.total_samples,
                self.tau,
                self.censor,
                c_,
                a_,
                p_,
                q_,
                r_,
                u_,
                d_,
                bounds[i],
                bounds[i + 1],
            )

        if n_live:
            if n_chunks == 1:
                run(0)
            else:  # the kernel releases the GIL: time ranges in parallel threads
                with ThreadPoolExecutor(max_workers=n_chunks) as pool:
                    list(pool.map(run, range(n_chunks)))
        counts, ampsum, upper, dupper, possum, pos2sum, poscount = parts[0]
        for c_, a_, u_, d_, p_, q_, r_ in parts[1:]:
            counts += c_
            ampsum += a_
            upper += u_
            dupper += d_
            if use_pos:
                possum += p_
                pos2sum += q_
                poscount += r_
        if n_live:
            for target, tri in ((self._coinc, upper), (self._dup, dupper)):
                full = tri.astype(np.int64)
                full += full.T
                full[np.diag_indices(n_live)] //= 2
                target[:n_live, :n_live] = full
        rows, tcols = np.divmod(nz, self.n_templates)
        starts = np.searchsorted(rows, np.arange(n_live + 1))
        for k, c in enumerate(live):
            lo, hi = starts[k], starts[k + 1]
            if c in self._profiles:
                continue
            self._profiles[c] = _Profile(
                tcols[lo:hi].astype(np.int64),
                counts[lo:hi],
                ampsum[lo:hi],
                int(hist[k].sum()),
                possum[lo:hi] if use_pos else None,
                pos2sum[lo:hi] if use_pos else None,
                poscount[lo:hi] if use_pos else None,
            )
            self._counters["profiles_computed"] += 1
            self._shadow.setdefault(c, frozenset())
        self._counters["full_passes"] += 1
        if n_live:  # pairs detected twice, from the duplicate matrix (vectorised)
            n_of = np.array([self._profiles[c].n_spikes for c in live], dtype=np.float64)
            dm = self._dup[:n_live, :n_live].astype(np.float64)
            np.fill_diagonal(dm, 0.0)
            floor = self.params.duplicate_floor * np.minimum(n_of[:, None], n_of[None, :])
            for i, j in zip(*np.nonzero((dm > 0) & (dm >= floor)), strict=True):
                self._dupnbrs.setdefault(live[i], set()).add(live[j])
        ids, m = self._similarity_table()
        self._msim[:n_live, :n_live] = m  # slots 0..n-1 are the live ids in ascending order
        slots = np.arange(n_live, dtype=np.int64)
        self._topk, self._kth = {}, {}
        for c in live:
            self._rank(c, ids, slots)
        self._rebuild_candidates()
