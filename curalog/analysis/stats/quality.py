"""SpikeInterface's quality-metric set per cluster: the registry of columns and their assembly.

:data:`QUALITY_COLUMNS` lists every metric column curalog computes beyond phy's table
(names as SpikeInterface 0.105's ``compute_quality_metrics`` / ``compute_template_metrics``
columns), with a short header, a format and where it comes from. The CLI (``curalog
clusters``), ``cluster_info.tsv``, the autolabel rule language and the UI's table, filter and
cluster scatter all read this one registry.

Sources (see docs/METRICS.md for each definition and its cost):

* :mod:`~curalog.analysis.stats.quality_spikes`: spike train, ``amplitudes.npy`` and spike
  depths (``spike_positions.npy`` of Kilosort 4 when present, else phy's PC-weighted depth);
* :mod:`~curalog.analysis.stats.quality_pc`: ``pc_features.npy`` / ``pc_feature_ind.npy``;
* :mod:`~curalog.analysis.stats.template_metrics`: the cluster's mean template;
* the raw recording (``snr``, ``amplitude_median``, ``sd_ratio``): only when one is open
  (:mod:`curalog.recording`); without it these columns are empty, never estimated.

Spike depths without ``spike_positions.npy`` (phylib's ``TemplateModel.get_depths``):
``depth_s = sum_j f_j y_j / sum_j f_j`` with ``f_j = max(pc_features[s, 0, j], 0)^2`` and
``y_j`` the ``y`` of channel ``pc_feature_ind[template_s, j]``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from curalog.analysis.stats.pools import pool
from curalog.analysis.stats.quality_pc import PCParams, PCSample, PCSpace
from curalog.analysis.stats.quality_spikes import SpikeMetricParams, spike_train_metrics
from curalog.analysis.stats.template_metrics import mean_template, template_waveform_metrics

__all__ = [
    "QualityColumn",
    "QUALITY_COLUMNS",
    "QUALITY_NAMES",
    "RECORDING_COLUMNS",
    "QualityContext",
    "SpikeDepths",
    "compute_quality",
]


@dataclass(frozen=True)
class QualityColumn:
    name: str  # SpikeInterface's column name (a row key)
    short: str  # table header
    fmt: str
    source: str  # spikes, amplitudes, depths, pc, template, recording
    description: str


QUALITY_COLUMNS: tuple[QualityColumn, ...] = (
    QualityColumn(
        "firing_range",
        "fr_rng",
        ".2f",
        "spikes",
        "95th - 5th percentile of the 5 s firing rate (Hz)",
    ),
    QualityColumn(
        "sliding_rp_violation",
        "srp",
        ".3f",
        "spikes",
        "minimum contamination at 90 % confidence, sliding refractory period (IBL)",
    ),
    QualityColumn(
        "amplitude_cv_median",
        "amp_cv",
        ".3f",
        "amplitudes",
        "median CV of amplitudes in ~50-spike bins",
    ),
    QualityColumn(
        "amplitude_cv_range", "cv_rng", ".3f", "amplitudes", "95th - 5th percentile of those CVs"
    ),
    QualityColumn(
        "noise_cutoff",
        "ncut",
        ".2f",
        "amplitudes",
        "low-amplitude bins vs the top quartile, in SDs (IBL 2024)",
    ),
    QualityColumn(
        "noise_ratio", "nratio", ".3f", "amplitudes", "mean low-amplitude bin count / tallest bin"
    ),
    QualityColumn(
        "drift_ptp", "drift", ".1f", "depths", "peak-to-peak of the 60 s median depth (µm)"
    ),
    QualityColumn("drift_std", "dstd", ".1f", "depths", "SD of the 60 s median depth (µm)"),
    QualityColumn(
        "drift_mad",
        "dmad",
        ".1f",
        "depths",
        "median absolute deviation of the 60 s median depth (µm)",
    ),
    QualityColumn(
        "isolation_distance",
        "iso_d",
        ".1f",
        "pc",
        "Mahalanobis isolation distance (Schmitzer-Torbert 2005)",
    ),
    QualityColumn("l_ratio", "l_rat", ".3f", "pc", "L-ratio (Schmitzer-Torbert 2005)"),
    QualityColumn("d_prime", "d'", ".2f", "pc", "LDA d-prime (Hill 2011)"),
    QualityColumn("nn_hit_rate", "nn_hit", ".3f", "pc", "nearest-neighbour hit rate (Chung 2017)"),
    QualityColumn(
        "nn_miss_rate", "nn_mis", ".3f", "pc", "nearest-neighbour miss rate (Chung 2017)"
    ),
    QualityColumn("silhouette", "silh", ".3f", "pc", "simplified silhouette (Hruschka 2004)"),
    QualityColumn(
        "peak_to_trough_duration",
        "ptt_s",
        ".5f",
        "template",
        "trough to next peak of the mean template (s)",
    ),
    QualityColumn("trough_half_width", "t_hw", ".5f", "template", "trough half width (s)"),
    QualityColumn("peak_half_width", "p_hw", ".5f", "template", "peak half width (s)"),
    QualityColumn(
        "repolarization_slope", "repol", ".3g", "template", "trough-to-baseline slope (units/s)"
    ),
    QualityColumn(
        "snr",
        "snr",
        ".2f",
        "recording",
        "mean waveform's extremum on the best channel / the channel's noise (raw)",
    ),
    QualityColumn(
        "amplitude_median",
        "amp_med",
        ".2f",
        "recording",
        "median spike amplitude on the raw recording",
    ),
    QualityColumn(
        "sd_ratio", "sd_rat", ".2f", "recording", "SD of spike amplitudes / SD of noise (raw)"
    ),
    QualityColumn(
        "raw_amplitude_uv",
        "amp_uv",
        ".0f",
        "recording",
        "peak-to-peak of the mean raw waveform on the best channel (µV; curalog's)",
    ),
)
QUALITY_NAMES: tuple[str, ...] = tuple(c.name for c in QUALITY_COLUMNS)
RECORDING_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in QUALITY_COLUMNS if c.source == "recording"
)
_SPIKE_COLUMNS = tuple(
    c.name for c in QUALITY_COLUMNS if c.source in ("spikes", "amplitudes", "depths")
)


@numba.njit(cache=True, nogil=True)
def _take_f32(values, idx):  # pragma: no cover - numba
    out = np.empty(idx.shape[0], dtype=np.float32)
    for k in range(idx.shape[0]):
        out[k] = values[idx[k]]
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pc_depths(features, st, ind, ypos, a, b, out):  # pragma: no cover - numba
    """phy's spike depth for spikes ``a..b``: the channels' ``y`` weighted by the squared
    positive part of each spike's first PC on them (NaN when every weight is 0)."""
    n_loc = features.shape[2]
    for s in range(a, b):
        t = st[s]
        num = 0.0
        den = 0.0
        for k in range(n_loc):
            f = np.float64(features[s, 0, k])
            if f > 0.0:
                w = f * f
                num += w * ypos[ind[t, k]]
                den += w
        out[s] = num / den


class SpikeDepths:
    """Per-spike depth (``y``, µm): ``spike_positions.npy`` or phy's PC-weighted depth.

    Computed for every spike once, on first use, in one sequential pass (float32, 4 bytes
    per spike): a cluster's depths are then a gather from memory, not from the 144-byte
    rows of ``pc_features.npy``."""

    def __init__(self, dataset: Any, pcs: PCSpace):
        self.source = "none"
        self._pcs = pcs
        self._src = None
        self._all: np.ndarray | None = None
        self._lock = threading.Lock()
        opt = getattr(dataset, "optional_array", None)
        n = int(dataset.spike_templates.shape[0])
        try:
            pos = opt("spike_positions.npy") if opt else None
        except Exception:
            pos = None
        if pos is not None and pos.ndim == 2 and pos.shape[0] == n and pos.shape[1] >= 2:
            self._src = pos
            self.source = "spike_positions.npy"
        elif pcs.available:
            self._ypos = np.asarray(dataset.channel_positions, dtype=np.float64)[:, 1]
            self.source = "pc_features (phy)"

    def _compute_all(self) -> np.ndarray:
        if self._src is not None:
            return np.ascontiguousarray(self._src[:, 1], dtype=np.float32)
        pcs = self._pcs
        n = pcs.features.shape[0]
        out = np.empty(n, dtype=np.float32)
        st = np.asarray(pcs.spike_templates)
        ind = np.ascontiguousarray(np.clip(pcs.ind, 0, self._ypos.shape[0] - 1))
        ypos = np.ascontiguousarray(self._ypos)
        # one sequential pass over the file's rows, in two halves on two threads (the
        # kernel releases the GIL): memory-bound, ~10x numpy's chunked float64 expression
        half = n // 2
        second = pool("depths", 1).submit(_pc_depths, pcs.features, st, ind, ypos, half, n, out)
        _pc_depths(pcs.features, st, ind, ypos, 0, half, out)
        second.result()
        return out

    def all(self) -> np.ndarray | None:
        if self.source == "none":
            return None
        with self._lock:
            if self._all is None:
                self._all = self._compute_all()
            return self._all

    def of(self, spikes: np.ndarray) -> np.ndarray | None:
        d = self.all()
        if d is None or spikes.shape[0] == 0:
            return None
        return _take_f32(d, np.ascontiguousarray(spikes))  # releases the GIL (PC sample beside)


class QualityContext:
    """Dataset-wide inputs of the quality metrics, resolved once (lazily, thread-safe)."""

    def __init__(
        self,
        dataset: Any,
        geometry: Any,
        total_samples: int,
        spike_params: SpikeMetricParams | None = None,
        pc_params: PCParams | None = None,
    ):
        self.dataset = dataset
        self.geometry = geometry
        self.fs = float(dataset.sample_rate)
        self.total_samples = int(total_samples)
        self.spike_params = spike_params or SpikeMetricParams()
        self.pcs = PCSpace(dataset, pc_params)
        self.depths = SpikeDepths(dataset, self.pcs)
        self.recording_metrics: Any = None  # quality_recording.RecordingMetrics, if any
        self._lock = threading.Lock()
        self._template_rows: dict[tuple, dict[str, float]] = {}

    def set_recording(self, recording: Any) -> None:
        """Compute ``snr`` / ``amplitude_median`` on this recording (None: leave them empty)."""
        from curalog.analysis.stats.quality_recording import RecordingMetrics

        self.recording_metrics = None if recording is None else RecordingMetrics(recording)

    def template_row(
        self, template_ids: np.ndarray, template_counts: np.ndarray, channel: int | None
    ) -> dict[str, float]:
        """Waveform metrics of a template mix (cached by the mix: a merge of two clusters
        with the same templates and counts costs nothing)."""
        if channel is None or not self.geometry.available:
            return template_waveform_metrics(None, self.fs)
        key = (int(channel), template_ids.tobytes(), template_counts.tobytes())
        with self._lock:
            got = self._template_rows.get(key)
        if got is None:
            wave = mean_template(self.geometry, template_ids, template_counts, int(channel))
            got = template_waveform_metrics(wave, self.fs)
            with self._lock:
                self._template_rows[key] = got
        return got


def compute_quality(
    q: QualityContext,
    spikes: np.ndarray,
    times: np.ndarray,
    amps: np.ndarray | None,
    template: int | None,
    template_ids: np.ndarray,
    template_counts: np.ndarray,
    best_channel: int | None,
    parents_pc: list[PCSample] | None = None,
) -> tuple[dict[str, Any], PCSample | None]:
    """Every label-free quality column of one cluster and its PC sample.

    ``silhouette`` (label-dependent) is left out: :meth:`StatsEngine.row` adds it.
    Recording columns are None without a recording.
    """
    # the PC sample runs beside the spike-train metrics (their kernels release the GIL)
    fut = pool("quality", 2).submit(
        q.pcs.sample, spikes, template, template_ids, template_counts, parents_pc
    )
    depths = q.depths.of(spikes)
    row: dict[str, Any] = spike_train_metrics(
        times, amps, depths, q.fs, q.total_samples, q.spike_params
    )
    row.update(q.template_row(template_ids, template_counts, best_channel))
    pc = fut.result()
    if pc is not None:
        row.update(pc.values)
    else:
        row.update(
            dict.fromkeys(
                ("isolation_distance", "l_ratio", "d_prime", "nn_hit_rate", "nn_miss_rate"),
                math.nan,
            )
        )
    for name in RECORDING_COLUMNS:
        row[name] = None
    if q.recording_metrics is not None:
        row.update(q.recording_metrics.metrics(spikes, times, best_channel))
    return row, pc
