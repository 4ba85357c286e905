"""The one place where the UI talks to the statistics engine (:mod:`curalog.analysis.stats`).

A thin layer over :class:`curalog.analysis.stats.StatsEngine`: the engine owns every kernel and
the id-keyed cache; this adds only the few display-oriented extracts the UI needs (the
dominant template on its best channels, amplitude-over-time points) and keeps the engine's
update subscription next to its creation. All methods may be called from worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curalog import Curation
from curalog.analysis.stats import ClusterStats, StatsEngine


@dataclass
class Waveform:
    """The dominant template of a cluster on its best channels (unwhitened)."""

    template: int
    traces: np.ndarray  # (n_samples, k) best channel first
    channel_labels: list[str]


class Stats:
    """Statistics for one curation session (thread-safe, cached by cluster id)."""

    def __init__(
        self,
        cur: Curation,
        *,
        bin_ms: float = 1.0,
        window_ms: float = 50.0,
        refractory_ms: float = 2.0,
    ):
        self.cur = cur
        self.engine = StatsEngine(
            cur.dataset,
            cur.state,
            bin_ms=bin_ms,
            window_ms=window_ms,
            recording=getattr(cur, "recording", None),
        )
        cur.subscribe(self.engine.on_update)
        self.bin_ms = bin_ms
        self.window_ms = window_ms
        self.refractory_ms = refractory_ms

    @property
    def counters(self) -> dict[str, int]:
        return self.engine.counters

    def is_cached(self, cid: int) -> bool:
        return self.engine.is_cached(cid)

    def get(self, cid: int) -> ClusterStats:
        return self.engine.get(cid)

    def row(self, st: ClusterStats) -> dict[str, Any]:
        return self.engine.row(st)  # with the label-dependent silhouette

    def similar(self, cid: int, limit: int = 100) -> list[tuple[int, float]]:
        return self.engine.similar(cid, limit)

    def ccg(self, a: int, b: int) -> np.ndarray:
        return self.engine.ccg(a, b, symmetrize=True)

    def acg(self, cid: int) -> np.ndarray:
        return self.engine.acg(cid)

    def waveform(self, cid: int, n_channels: int = 4) -> Waveform | None:
        st = self.get(cid)
        if st.template is None or st.best_channels is None:
            return None
        got = self.engine.ctx.geometry.unwhitened(int(st.template))
        if got is None:
            return None
        wave, chans = got
        column_of = {int(c): i for i, c in enumerate(chans)}
        best = [int(c) for c in st.best_channels[:n_channels] if int(c) in column_of]
        if not best:
            return None
        traces = wave[:, [column_of[c] for c in best]]
        cmap = np.asarray(self.cur.dataset.channel_map)
        labels = [str(cmap[c]) if c < cmap.shape[0] else str(c) for c in best]
        return Waveform(int(st.template), traces, labels)

    def amplitude_points(
        self, cid: int, max_points: int = 4000
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(times in s, amplitudes)`` of up to ``max_points`` evenly spaced spikes, always
        with the cluster's largest amplitude among them (so the plot's 0-max scale is the
        cluster's, the one of the amplitude view and the split screen)."""
        amps = self.cur.dataset.amplitudes
        if amps is None:
            return None
        spikes = self.cur.spikes(cid) if cid in self.cur.state else self.get(cid).spikes
        if spikes.shape[0] > max_points:
            a_all = np.asarray(amps[spikes], dtype=np.float64)
            pick = np.linspace(0, spikes.shape[0] - 1, max_points).astype(np.int64)
            if np.isfinite(a_all).any():
                pick = np.union1d(pick, [int(np.nanargmax(a_all))])
            spikes = spikes[pick]
        ds = self.cur.dataset
        t = np.asarray(ds.spike_times[spikes], dtype=np.float64) / ds.sample_rate
        return t, np.asarray(amps[spikes], dtype=np.float64)
