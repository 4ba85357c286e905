"""Per-template data of the proposal engine: unwhitened waveforms, peak-to-peak, position and
support of every template, and their cosine on shared channels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curalog.analysis.proposals.model import ProposalParams
from curalog.templates import TemplateGeometry


# ---------------------------------------------------------------------- per-template data
@dataclass(frozen=True)
class _TemplateInfo:
    channels: np.ndarray  # extended support (ptp >= 2 % of max), channel rows ascending
    waves: np.ndarray  # (n_samples, len(channels)) float64, unwhitened
    support: np.ndarray  # bool, len(channels): ptp >= support_fraction * max
    ptp: float  # peak-to-peak on the best channel
    position: np.ndarray  # (2,) centroid in µm (NaN for an empty template)
    best: np.ndarray  # channel rows by decreasing ptp (at most 8)


class _Templates:
    """Per-template geometry and shared-channel similarities, computed lazily and cached."""

    def __init__(
        self,
        geometry: TemplateGeometry,
        channel_positions: np.ndarray,
        params: ProposalParams,
        n_templates: int,
        counters: dict[str, int],
        fallback: Callable[[], np.ndarray | None] | None = None,
    ):
        self.geometry = geometry
        self.fallback = fallback
        self.pos = np.asarray(channel_positions, dtype=np.float64)
        self.params = params
        self.n_templates = n_templates
        self._info: dict[int, _TemplateInfo] = {}
        self._sim: dict[tuple[int, int], float] = {}
        self._counters = counters
        self._ptp: np.ndarray | None = None
        self._xy: np.ndarray | None = None

    def info(self, t: int) -> _TemplateInfo:
        got = self._info.get(t)
        if got is None:
            got = self._compute(t)
            self._info[t] = got
        return got

    def _compute(self, t: int) -> _TemplateInfo:
        got = self.geometry.unwhitened(int(t)) if self.geometry is not None else None
        if got is None or got[0].shape[1] == 0:
            return _TemplateInfo(
                np.zeros(0, np.int64),
                np.zeros((1, 0)),
                np.zeros(0, bool),
                0.0,
                np.array([np.nan, np.nan]),
                np.zeros(0, np.int64),
            )
        w, chans = got
        w = np.asarray(w, dtype=np.float64)
        chans = np.asarray(chans, dtype=np.int64)
        ptp = w.max(axis=0) - w.min(axis=0)
        mx = float(ptp.max())
        if not mx > 0:
            return _TemplateInfo(
                np.zeros(0, np.int64),
                np.zeros((w.shape[0], 0)),
                np.zeros(0, bool),
                0.0,
                np.array([np.nan, np.nan]),
                np.zeros(0, np.int64),
            )
        ext = ptp >= 0.02 * mx
        order = np.argsort(chans[ext], kind="stable")
        ch = chans[ext][order]
        waves = w[:, ext][:, order]
        p = ptp[ext][order]
        support = p >= self.params.support_fraction * mx
        cen = ptp >= self.params.centroid_fraction * mx
        ok = chans[cen] < self.pos.shape[0]
        wts = ptp[cen][ok]
        xy = (
            (self.pos[chans[cen][ok]] * wts[:, None]).sum(axis=0) / wts.sum()
            if wts.size
            else np.array([np.nan, np.nan])
        )
        best = chans[np.argsort(-ptp, kind="stable")[:8]]
        return _TemplateInfo(ch, waves, support, mx, xy, best)

    def ptp_all(self) -> np.ndarray:
        if self._ptp is None:
            self._ptp = np.array(
                [self.info(t).ptp for t in range(self.n_templates)], dtype=np.float64
            )
        return self._ptp

    def xy_all(self) -> np.ndarray:
        if self._xy is None:
            self._xy = np.array(
                [self.info(t).position for t in range(self.n_templates)], dtype=np.float64
            ).reshape(self.n_templates, 2)
        return self._xy

    def similarity(self, p: int, q: int) -> float:
        """Cosine of two unwhitened templates on the union of their supports (phy's
        similarity when a template is missing)."""
        if p == q:
            return 1.0
        key = (p, q) if p < q else (q, p)
        got = self._sim.get(key)
        if got is not None:
            return got
        a, b = self.info(key[0]), self.info(key[1])
        union = np.union1d(a.channels[a.support], b.channels[b.support])
        if a.channels.size == 0 or b.channels.size == 0:  # no template: phy's similarity
            fb = self.fallback() if self.fallback is not None else None
            val = float(max(fb[p, q], fb[q, p])) if fb is not None else 0.0
        elif union.size == 0:
            val = 0.0
        else:
            va = _on_channels(a, union)
            vb = _on_channels(b, union)
            na, nb = float(np.sqrt((va * va).sum())), float(np.sqrt((vb * vb).sum()))
            val = float((va * vb).sum() / (na * nb)) if na > 0 and nb > 0 else 0.0
        self._sim[key] = val
        self._counters["template_pairs"] += 1
        return val

    def similarity_matrix(self, ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
        return np.array(
            [[self.similarity(int(p), int(q)) for q in tb] for p in ta], dtype=np.float64
        )


def _on_channels(info: _TemplateInfo, chans: np.ndarray) -> np.ndarray:
    """The template's waveform on ``chans`` (zeros where it has no signal)."""
    out = np.zeros((info.waves.shape[0], chans.shape[0]), dtype=np.float64)
    pos = np.searchsorted(info.channels, chans)
    pos[pos >= info.channels.shape[0]] = 0
    hit = info.channels.shape[0] > 0
    if hit:
        m = info.channels[pos] == chans
        out[:, m] = info.waves[:, pos[m]]
    return out
