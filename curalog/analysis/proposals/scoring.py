"""Pair scoring of the proposal engine: the base score, conflicts, uniqueness and the evidence
shown for a pair (formulas in :mod:`curalog.analysis.proposals`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from curalog.analysis.proposals.kernels import _p_same
from curalog.analysis.proposals.model import Evidence, Proposal
from curalog.analysis.proposals.profiles import _Derived, _Profile
from curalog.analysis.proposals.templates import _on_channels, _TemplateInfo
from curalog.analysis.stats.metrics import rp_contamination
from curalog.errors import InvalidActionError


class _PairScoring:
    """The scoring half of :class:`curalog.analysis.proposals.ProposalEngine` (a mixin)."""

    # ------------------------------------------------------------------ scoring
    def _primary(self, c: int) -> _Profile:
        """The cluster's profile without its shadow templates (duplicate detections joined
        by a merge), which would blur its shape, position and amplitude."""
        prof = self._profiles[c]
        shadow = self._shadow.get(c)
        if not shadow:
            return prof
        keep = np.array([int(t) not in shadow for t in prof.tids], dtype=bool)
        return prof.rows(keep) if keep.any() else prof

    def _derive(self, c: int) -> _Derived:
        got = self._derived.get(c)
        if got is not None:
            return got
        prof = self._primary(c)
        n = prof.counts.sum(axis=0)
        ptp = self.templates.ptp_all()[prof.tids]
        if self.amplitude_mode == "absolute":
            ptp = np.ones_like(ptp)
        ys = self.templates.xy_all()[prof.tids, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            amp = (
                (prof.ampsum * ptp[:, None]).sum(axis=0) / n
                if self._amps is not None
                else np.full(self.nb, np.nan)
            )
            ok_y = np.isfinite(ys)
            ypos = (prof.counts[ok_y] * ys[ok_y, None]).sum(axis=0) / prof.counts[ok_y].sum(axis=0)
            loga = np.where((n > 0) & (amp > 0), np.log(np.where(amp > 0, amp, 1.0)), 0.0)
        amp = np.where(n > 0, amp, np.nan)
        ypos = np.where(n > 0, ypos, np.nan)
        pos_mean, pos_var, pos_n = None, float("nan"), None
        if prof.possum is not None and prof.pos2sum is not None and prof.poscount is not None:
            pos_n = prof.poscount.sum(axis=0)
            s1 = prof.possum.sum(axis=0)  # (nb, 2)
            s2 = prof.pos2sum.sum(axis=0)
            has = pos_n > 0
            safe = np.where(has, pos_n, 1.0)
            pos_mean = np.where(has[:, None], s1 / safe[:, None], 0.0)
            within = float(np.maximum(s2 - (s1 * s1).sum(axis=1) / safe, 0.0)[has].sum())
            dof = float(np.maximum(pos_n - 1.0, 0.0).sum())
            pos_var = within / dof if dof > 0 else float("nan")
            ypos = np.where(has, pos_mean[:, 1], ypos)  # the spikes' own depth
        occupied = n[n > 0]
        thresh = self.params.presence_fraction * (float(occupied.mean()) if occupied.size else 0.0)
        present = (n > 0) & (n >= thresh)
        got = _Derived(n, loga, amp, ypos, present, pos_mean, pos_var, pos_n)
        self._derived[c] = got
        return got

    def _position_step(self, da: _Derived, db: _Derived) -> tuple[float, float]:
        """``(step, spread)``: the RMS distance between the two clusters' mean spike
        positions in time-adjacent bins, beyond what the spikes' own scatter explains, in
        units of the smaller of the two spreads, and that spread (µm); NaN without per-spike
        positions."""
        if da.pos_mean is None or db.pos_mean is None or da.pos_n is None or db.pos_n is None:
            return math.nan, math.nan
        spread = min(da.pos_var, db.pos_var)
        if not math.isfinite(spread):
            return math.nan, math.nan
        kern = self._pos_kernel
        na, nb = da.pos_n, db.pos_n
        kb, ka = kern @ nb, kern.T @ na
        z = float(na @ kb)
        if z <= 0:
            return math.nan, math.sqrt(max(spread, 0.0))
        ma, mb = da.pos_mean, db.pos_mean
        sq_a, sq_b = (ma * ma).sum(axis=1), (mb * mb).sum(axis=1)
        cross = sum(float((na * ma[:, d]) @ kern @ (nb * mb[:, d])) for d in range(2))
        total = float((na * sq_a) @ kb + (nb * sq_b) @ ka) - 2.0 * cross
        noise = da.pos_var * float(kb[na > 0].sum()) + db.pos_var * float(ka[nb > 0].sum())
        excess = max(total - noise, 0.0) / z
        return math.sqrt(excess / max(spread, 1e-12)), math.sqrt(max(spread, 0.0))

    def _contamination(self, n_v: int, n: int) -> float:
        t_r = max(self.tau, self.censor + 1)
        return rp_contamination(int(n_v), int(n), self.total_samples, self.censor, t_r)

    def score(self, a: int, b: int) -> Proposal:
        """Score a pair of live clusters, candidate or not (cached by ids)."""
        with self._lock:
            self._sync()
            a, b = sorted((int(a), int(b)))
            if a == b:
                raise InvalidActionError("a proposal needs two different clusters")
            for c in (a, b):
                if c not in self._slot:
                    raise InvalidActionError(f"cluster {c} does not exist")
            return self._adjust(a, b)

    def _base(self, a: int, b: int) -> Proposal:
        """The pair's own score (a pure function of the two clusters: cached forever)."""
        got = self._pairs.get((a, b))
        if got is not None:
            self._counters["pair_cache_hits"] += 1
            return got
        prop = self._score(a, b)
        self._pairs[(a, b)] = prop
        self.score_log.append((a, b))
        return prop

    def _conflict(self, x: int, y: int) -> float:
        """How sure we are that ``x`` and ``y`` are two neurons *claiming the same time*:
        ``concurrency^2 * (1 - p_same)``, where ``concurrency`` is the larger of the two
        fractions of a cluster's spikes that fall in bins where the other is present (pieces
        that follow each other in time do not compete), and ``p_same`` the correlogram's
        posterior (1/2 when it cannot tell)."""
        key = (x, y) if x < y else (y, x)
        got = self._conflicts.get(key)
        if got is None:
            dx, dy = self._derive(x), self._derive(y)
            e = float((dx.n * dy.n).sum() * self._lag_fraction)
            o = float(self._coinc[self._slot[x], self._slot[y]])
            nx, ny = float(dx.n.sum()), float(dy.n.sum())
            conc = max(
                float(dx.n[dy.present].sum()) / nx if nx else 0.0,
                float(dy.n[dx.present].sum()) / ny if ny else 0.0,
            )
            got = conc * conc * (1.0 - self._posterior(o, e))
            self._conflicts[key] = got
        return got

    def _posterior(self, o: float, e: float) -> float:
        p = self.params
        lo, hi = p.diff_contamination
        return float(
            _p_same(float(o), float(e), float(p.same_max_contamination), float(lo), float(hi))
        )

    def _adjust(self, a: int, b: int) -> Proposal:
        """The base score times the uniqueness factor
        ``f_unique = 1 / (1 + (c / (ambiguity_ratio * s)) ** ambiguity_power)``, where ``c``
        is the strongest competing explanation: a neighbour ``z`` of ``a`` (in the candidate
        graph) that is another neuron than ``b`` claiming the same time, scored
        ``base(a, z) * conflict(b, z)``, or the same from ``b``'s side."""
        got = self._adjusted.get((a, b))
        if got is not None:
            return got
        base = self._base(a, b)
        comp, who = 0.0, -1
        for x, y in ((a, b), (b, a)):
            for z in sorted(self._nbrs.get(x, ())):
                if z == y:
                    continue
                k = (x, z) if x < z else (z, x)
                s = self._base(*k).score
                if s <= comp:
                    continue
                s *= self._conflict(y, z)
                if s > comp:
                    comp, who = s, z
        s0 = base.score
        pr = self.params
        if comp <= 0.0:
            f = 1.0
        elif s0 <= comp * 1e-6:
            f = 0.0
        else:
            f = 1.0 / (1.0 + (comp / (pr.ambiguity_ratio * s0)) ** pr.ambiguity_power)
        evidence = dict(base.evidence)
        evidence["competitor"] = float(who)
        evidence["competitor_score"] = comp
        factors = dict(base.factors)
        factors["f_unique"] = f
        reason = base.reason
        if f < 0.75:
            reason += f"; ambiguous: {who} is another neuron that fits as well ({comp:.2f})"
        prop = Proposal(a, b, s0 * f, evidence, factors, reason, self._changed_params)
        self._adjusted[(a, b)] = prop
        return prop

    def _score(self, a: int, b: int) -> Proposal:
        p = self.params
        pa, pb = self._primary(a), self._primary(b)
        da, db = self._derive(a), self._derive(b)
        kern = self._kernel
        kb = kern @ db.n
        z = float(da.n @ kb)
        # template-pair weights of time-adjacent spikes, G = C_a K C_b^T
        g = pa.counts @ kern @ pb.counts.T
        s_ab = self.templates.similarity_matrix(pa.tids, pb.tids)
        xy = self.templates.xy_all()
        ra, rb = xy[pa.tids], xy[pb.tids]
        d2 = ((ra[:, None, :] - rb[None, :, :]) ** 2).sum(axis=2)
        if z > 0:
            sim = float((g * s_ab).sum() / z)
            ok = np.isfinite(d2)
            dist = (
                math.sqrt(float((g[ok] * d2[ok]).sum() / max(g[ok].sum(), 1e-300)))
                if ok.any()
                else math.nan
            )
            if self._amps is not None:
                la, lb = da.loga, db.loga
                ka = kern.T @ da.n
                num = float(
                    (da.n * la * la) @ kb
                    + (db.n * lb * lb) @ ka
                    - 2.0 * (da.n * la) @ kern @ (db.n * lb)
                )
                amp_jump = math.sqrt(max(num, 0.0) / z)
            else:
                amp_jump = math.nan
        else:
            sim, dist, amp_jump = math.nan, math.nan, math.nan
        step, _spread = self._position_step(da, db)
        # presence: overlap and gap
        na, nb_ = self._profiles[a].n_spikes, self._profiles[b].n_spikes
        overlap = float(np.minimum(da.n / max(da.n.sum(), 1.0), db.n / max(db.n.sum(), 1.0)).sum())
        ia, ib = np.flatnonzero(da.present), np.flatnonzero(db.present)
        if ia.size and ib.size:
            pos = np.searchsorted(ib, ia)
            left = np.abs(ia - ib[np.clip(pos - 1, 0, ib.size - 1)])
            right = np.abs(ib[np.clip(pos, 0, ib.size - 1)] - ia)
            gap_bins = max(int(np.minimum(left, right).min()) - 1, 0)
        else:
            gap_bins = self.nb
        gap_s = gap_bins * self.bin_samples / self.sample_rate
        # refractory evidence
        sa, sb = self._slot[a], self._slot[b]
        obs = int(self._coinc[sa, sb])
        exp_ = float((da.n * db.n).sum() * self._lag_fraction)
        contam = obs / exp_ if exp_ > 0 else math.nan
        p_same = self._posterior(obs, exp_)
        va, vb = int(self._coinc[sa, sa]), int(self._coinc[sb, sb])
        isi_a = self._contamination(va, na)
        isi_b = self._contamination(vb, nb_)
        isi_m = self._contamination(va + vb + obs, na + nb_)
        phy_sim = float(max(self._msim[sa, sb], self._msim[sb, sa]))
        dups = int(self._dup[sa, sb])
        dup_fraction = min(1.0, dups / min(na, nb_)) if min(na, nb_) > 0 else 0.0
        # factors
        f_sim = (
            0.0
            if not math.isfinite(sim)
            else min(max((sim - p.similarity_floor) / (1.0 - p.similarity_floor), 0.0), 1.0) ** 2
        )
        if math.isfinite(step):  # per-spike positions: the step at the handoff
            f_pos = math.exp(-0.5 * (step / p.position_scale_sd) ** 2)
        elif math.isfinite(dist):
            f_pos = math.exp(-0.5 * (dist / p.position_scale_um) ** 2)
        else:
            f_pos = 1.0
        f_amp = (
            1.0
            if not math.isfinite(amp_jump)
            else math.exp(-0.5 * (amp_jump / p.amplitude_scale) ** 2)
        )
        f_ccg = p_same
        f_gap = math.exp(-gap_bins / p.gap_scale_bins)
        worst = max((v for v in (isi_a, isi_b) if math.isfinite(v)), default=0.0)
        f_isi = math.exp(-max(0.0, (isi_m if math.isfinite(isi_m) else 0.0) - worst) / p.isi_scale)
        fl = p.duplicate_floor
        f_dup = min(max((dup_fraction - fl) / (1.0 - fl), 0.0), 1.0) ** 2 if fl < 1 else 0.0
        continuity = f_sim * f_pos * f_amp * f_ccg * f_gap * f_isi
        twice = f_dup * f_ccg * f_isi  # one neuron detected twice: same spikes, no violation
        score = max(continuity, twice)
        evidence = {
            "similarity": sim,
            "phy_similarity": float(phy_sim),
            "distance_um": dist,
            "position_step": step,
            "amplitude_jump": amp_jump,
            "gap_s": gap_s,
            "overlap": overlap,
            "coincidences": float(obs),
            "expected": exp_,
            "cross_contamination": contam,
            "p_same": p_same,
            "duplicates": float(dups),
            "duplicate_fraction": dup_fraction,
            "isi_merged": isi_m,
            "isi_a": isi_a,
            "isi_b": isi_b,
            "n_a": float(na),
            "n_b": float(nb_),
        }
        factors = {
            "f_sim": f_sim,
            "f_pos": f_pos,
            "f_amp": f_amp,
            "f_ccg": f_ccg,
            "f_gap": f_gap,
            "f_isi": f_isi,
            "f_dup": f_dup,
        }
        self._counters["pairs_scored"] += 1
        return Proposal(a, b, float(score), evidence, factors, _reason(evidence, factors, score))

    # ------------------------------------------------------------------ evidence
    def evidence(self, a: int | Proposal, b: int | None = None) -> Evidence:
        """Everything a review screen plots for a pair (see :class:`Evidence`)."""
        if isinstance(a, Proposal):
            prop = a
        else:
            assert b is not None
            prop = self.score(int(a), int(b))
        with self._lock:
            self._sync()
            da, db = self._derive(prop.a), self._derive(prop.b)
            pa, pb = self._primary(prop.a), self._primary(prop.b)
        bin_s = self.bin_samples / self.sample_rate
        time_s = (np.arange(self.nb) + 0.5) * bin_s
        ccg = self.stats.ccg(prop.a, prop.b)
        acg_a, acg_b = self.stats.acg(prop.a), self.stats.acg(prop.b)
        chans = self._overlay_channels(pa, pb)
        return Evidence(
            proposal=prop,
            lags_ms=self.stats.bins.lags_ms(),
            ccg=ccg,
            acg_a=acg_a,
            acg_b=acg_b,
            refractory_ms=self.params.refractory_ms,
            time_s=time_s,
            rate_a=da.n / bin_s,
            rate_b=db.n / bin_s,
            amplitude_a=da.amp.copy(),
            amplitude_b=db.amp.copy(),
            position_a=da.ypos.copy(),
            position_b=db.ypos.copy(),
            channels=chans,
            channel_positions=self.templates.pos[chans] if chans.size else np.zeros((0, 2)),
            template_a=self._mean_template(pa, chans),
            template_b=self._mean_template(pb, chans),
        )

    def _overlay_channels(self, pa: _Profile, pb: _Profile, n: int = 8) -> np.ndarray:
        """The ``n`` channels where either cluster's mean template is largest (each
        normalised by its own peak), over the union of both clusters' channels."""
        union = np.union1d(self._mean_template(pa, None)[1], self._mean_template(pb, None)[1])
        amp = np.zeros(union.shape[0])
        for prof in (pa, pb):
            w = self._mean_template(prof, union)
            if w.size:
                ptp = w.max(axis=0) - w.min(axis=0)
                amp = np.maximum(amp, ptp / max(float(ptp.max()), 1e-300))
        return union[np.argsort(-amp, kind="stable")[:n]]

    def _mean_template(self, prof: _Profile, chans: np.ndarray | None) -> Any:
        infos = [self.templates.info(int(t)) for t in prof.tids]
        weights = prof.counts.sum(axis=1)
        if chans is None:
            union = np.unique(np.concatenate([i.channels for i in infos] + [np.zeros(0, np.int64)]))
            return _weighted(infos, weights, union), union
        return _weighted(infos, weights, chans)


def _weighted(infos: list[_TemplateInfo], weights: np.ndarray, chans: np.ndarray) -> np.ndarray:
    ns = max((i.waves.shape[0] for i in infos), default=1)
    out = np.zeros((ns, chans.shape[0]))
    tot = float(weights.sum())
    for info, w in zip(infos, weights, strict=True):
        if info.waves.shape[0] == ns and tot > 0:
            out += (w / tot) * _on_channels(info, chans)
    return out


def _reason(ev: dict[str, float], fac: dict[str, float], score: float) -> str:
    """One line: how the pieces sit in time, the refractory evidence, shape and continuity
    (or, for one neuron detected twice, the shared spikes)."""
    parts: list[str] = []
    q = ev.get("duplicate_fraction", 0.0)
    continuity = math.prod(v for k, v in fac.items() if k != "f_dup")
    if fac.get("f_dup", 0.0) * fac["f_ccg"] * fac["f_isi"] > continuity:
        parts.append(
            f"detected twice: {q:.0%} of the smaller cluster's spikes coincide with the other's"
        )
        o, e = ev["coincidences"], ev["expected"]
        if e >= 1.0:
            parts.append(f"refractory dip beside them ({o:.0f} of {e:.0f} expected)")
        d = ev["distance_um"]
        if math.isfinite(d):
            parts.append(f"{d:.0f} µm apart (other channels)")
        return "; ".join(parts)
    ov, gap = ev["overlap"], ev["gap_s"]
    if gap > 0:
        parts.append(f"{gap / 60:.0f} min apart in time")
    elif ov < 0.2:
        parts.append("tile time")
    elif ov > 0.6:
        parts.append("fire together")
    else:
        parts.append(f"overlap {ov:.0%} in time")
    o, e = ev["coincidences"], ev["expected"]
    if e < 1.0:
        parts.append("no overlap to test the refractory period")
    elif o <= 0.2 * e:
        parts.append(f"refractory dip ({o:.0f} of {e:.0f} expected coincidences)")
    else:
        parts.append(f"NO refractory dip ({o:.0f} of {e:.0f} expected)")
    sim = ev["similarity"]
    parts.append(f"template similarity {sim:.2f}" if math.isfinite(sim) else "no template")
    d = ev["distance_um"]
    if math.isfinite(d):
        parts.append(f"{d:.0f} µm apart")
    step = ev.get("position_step", math.nan)
    if math.isfinite(step):
        parts.append(f"position step {step:.1f} sd")
    j = ev["amplitude_jump"]
    if math.isfinite(j):
        parts.append(f"amplitude step {100 * (math.exp(j) - 1):.0f} %")
    weakest = min((k for k in fac if k != "f_dup"), key=lambda k: fac[k])
    if fac[weakest] < 0.5:
        parts.append(f"weakest: {weakest[2:]}")
    return "; ".join(parts)
