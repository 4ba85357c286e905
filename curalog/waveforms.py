"""Raw spike waveforms of a cluster: best channels, spike sample, windows, mean, amplitudes.

The rules (phy's, docs/PHY_SEMANTICS.md 1.4, 4.1; docs/VIEWS.md "Waveforms"):

* **Best channels** of a cluster: its dominant template (the most frequent
  ``spike_templates`` value among its spikes; a merged cluster's spikes' templates weighted
  by count, ties to the smaller id), that template's channels ordered by decreasing
  unwhitened peak-to-peak amplitude (:class:`curalog.templates.TemplateGeometry`: up to 12
  channels near the peak on its shank). Asking for more channels than that appends the
  next-nearest channels to the best one (same shank first, then by distance). Without
  ``templates.npy``: channels 0, 1, ...
* **Spikes**: up to ``n`` (default 100, as phy) spread evenly over the cluster's whole
  lifetime: the spikes of ranks ``round(linspace(0, N - 1, n))`` in time order (all of them
  when ``N <= n``), never the first ``n``.
* **Window**: phy's default, the template length ``ns = templates.shape[1]`` (82 for
  Kilosort 2/3, 61 for Kilosort 4; 82 at 30 kHz without templates), ``before = ns // 2``
  samples before the spike sample and ``ns - before`` from it on, as phylib's
  ``extract_waveforms``.
* **Mean** waveform: the plain mean over the sampled spikes. **Amplitude** of a spike: the
  peak-to-peak (max - min over the window) on the best channel, in file units (times
  ``uv_per_unit`` for µV).
* **Template** overlay: the count-weighted mean of the cluster's unwhitened templates on the
  same channels, its sample ``template_offset`` (the sorter's alignment: the most common
  trough position over all templates, 41 / 20 for Kilosort 2-3 / 4) placed on the spike
  sample; :meth:`ClusterWaveforms.fitted_template` scales it to the mean by least squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curalog.errors import InvalidActionError
from curalog.recording import Recording, RecordingError, open_recording
from curalog.templates import TemplateGeometry, dominant_template

__all__ = [
    "ClusterWaveforms",
    "RecordingMixin",
    "sample_spikes",
    "waveform_window",
]

DEFAULT_N_SPIKES = 100
_CACHE_SIZE = 64


def sample_spikes(spikes: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` of the sorted ``spikes``, evenly spread over their ranks (all if fewer)."""
    spikes = np.asarray(spikes)
    if n <= 0:
        return spikes[:0]
    if spikes.shape[0] <= n:
        return spikes.copy()
    ranks = np.unique(np.round(np.linspace(0, spikes.shape[0] - 1, n)).astype(np.int64))
    return spikes[ranks]


def waveform_window(dataset: Any) -> tuple[int, int]:
    """phy's default ``(before, after)`` in samples (see the module docstring)."""
    tmpl = dataset.templates
    ns = int(tmpl.shape[1]) if tmpl is not None else int(round(82 * dataset.sample_rate / 30000))
    before = ns // 2
    return before, ns - before


@dataclass
class ClusterWaveforms:
    """Waveforms of one cluster (see the module docstring for every rule).

    Attributes
    ----------
    waveforms : float32 (n_spikes, n_samples, n_channels)
        File units (``uv_per_unit`` converts to µV), filtered like the recording's reads.
    spike_ids : int64 (n_spikes,)
    channels : int64 (n_channels,)
        Template channels (rows of ``channel_positions.npy``), best first.
    channel_ids : int64 (n_channels,)
        The same channels as rows of the raw file (``channel_map[channels]``).
    """

    cluster_id: int
    spike_ids: np.ndarray
    channels: np.ndarray
    channel_ids: np.ndarray
    waveforms: np.ndarray
    before: int
    after: int
    sample_rate: float
    uv_per_unit: float | None
    n_cluster_spikes: int
    template: np.ndarray | None = None
    template_offset: int = 0

    @property
    def n_spikes(self) -> int:
        return int(self.spike_ids.shape[0])

    @property
    def mean(self) -> np.ndarray:
        """Mean waveform ``(n_samples, n_channels)`` float32 (zeros without spikes)."""
        if self.n_spikes == 0:
            return np.zeros(self.waveforms.shape[1:], dtype=np.float32)
        return self.waveforms.mean(axis=0, dtype=np.float64).astype(np.float32)

    @property
    def amplitudes(self) -> np.ndarray:
        """Peak-to-peak of every spike on the best channel, float32 (file units)."""
        if self.waveforms.shape[2] == 0:
            return np.zeros(self.n_spikes, dtype=np.float32)
        w = self.waveforms[:, :, 0]
        return (w.max(axis=1) - w.min(axis=1)).astype(np.float32)

    @property
    def amplitudes_uv(self) -> np.ndarray | None:
        return None if self.uv_per_unit is None else self.amplitudes * self.uv_per_unit

    def aligned_template(self) -> np.ndarray | None:
        """The template on the waveform window ``(n_samples, n_channels)`` (zeros where it
        does not reach), unscaled; None without templates."""
        if self.template is None:
            return None
        ns = self.before + self.after
        out = np.zeros((ns, self.template.shape[1]), dtype=np.float32)
        shift = self.before - self.template_offset  # window index of template sample 0
        lo, hi = max(0, shift), min(ns, shift + self.template.shape[0])
        if hi > lo:
            out[lo:hi] = self.template[lo - shift : hi - shift]
        return out

    def fitted_template(self) -> np.ndarray | None:
        """:meth:`aligned_template` scaled to the mean waveform by least squares."""
        t = self.aligned_template()
        if t is None:
            return None
        denom = float(np.sum(t.astype(np.float64) ** 2))
        k = float(np.sum(t * self.mean)) / denom if denom > 0 else 0.0
        return (t * k).astype(np.float32)

    def to_npz(self, path) -> None:
        np.savez(
            path,
            waveforms=self.waveforms.astype(np.float32, copy=False),
            spike_ids=self.spike_ids.astype(np.int64),
            channel_ids=self.channel_ids.astype(np.int64),
            channels=self.channels.astype(np.int64),
            mean=self.mean,
            amplitudes=self.amplitudes,
            before=np.int64(self.before),
            after=np.int64(self.after),
            sample_rate=np.float64(self.sample_rate),
            uv_per_unit=np.float64(np.nan if self.uv_per_unit is None else self.uv_per_unit),
            cluster_id=np.int64(self.cluster_id),
        )


def _template_offset(dataset: Any, geometry: TemplateGeometry) -> int:
    """The sorter's alignment: the most common trough sample of the templates' best channel."""
    tmpl = dataset.templates
    if tmpl is None or tmpl.shape[0] == 0:
        return 0
    step = max(1, tmpl.shape[0] // 200)  # a sample of templates is plenty
    troughs = []
    for t in range(0, tmpl.shape[0], step):
        info = geometry.get(t)
        got = geometry.unwhitened(t)
        if info is None or got is None:
            continue
        w, chans = got
        col = int(np.flatnonzero(chans == info.best_channel)[0])
        troughs.append(int(np.argmin(w[:, col])))
    if not troughs:
        return int(tmpl.shape[1]) // 2
    return int(np.bincount(troughs).argmax())


def _template_on(
    geometry: TemplateGeometry, t: int, channels: np.ndarray, dataset: Any
) -> np.ndarray | None:
    """Template ``t`` unwhitened on ``channels`` only, ``(n_samples, len(channels))``
    float64 (a dense template needs ``template @ wmi[:, channels]``, not the whole product)."""
    tmpl = geometry.templates
    if tmpl is None or not 0 <= t < tmpl.shape[0]:
        return None
    if geometry.template_channels is None:
        w = np.asarray(tmpl[t], dtype=np.float64)
        wmi = geometry.wmi
        if wmi is not None and wmi.shape[0] == w.shape[1]:
            return w @ wmi[:, channels]
        return w[:, channels]
    got = geometry.unwhitened(t)
    if got is None:
        return None
    w, chans = got
    full = np.zeros((w.shape[0], int(dataset.n_channels)))
    full[:, chans] = w
    return full[:, channels]


class RecordingMixin:
    """The raw-recording side of :class:`curalog.curation.Curation` (best channels, waveforms).

    Expects ``self.dataset``, ``self.state`` and optionally ``self._raw`` (the ``raw=``
    override of :func:`curalog.curation.open_curation`).
    """

    dataset: Any
    state: Any
    _raw: Any = None

    # ------------------------------------------------------------------ recording
    def _open_recording_once(self) -> None:
        if getattr(self, "_recording_opened", False):
            return
        self._recording_opened = True
        self._recording: Recording | None = None
        self._recording_error: str | None = None
        try:
            self._recording = open_recording(self.dataset, getattr(self, "_raw", None))
            if self._recording is None:
                self._recording_error = (
                    f"{self.dataset.path / 'params.py'}: no raw recording (dat_path is "
                    "missing or None; give one with --raw PATH)"
                )
        except RecordingError as exc:
            self._recording_error = str(exc)

    @property
    def recording(self) -> Recording | None:
        """The raw recording (opened on first use), or None: see :attr:`recording_error`."""
        self._open_recording_once()
        return self._recording

    @property
    def recording_error(self) -> str | None:
        """Why :attr:`recording` is None (one line naming the file), else None."""
        self._open_recording_once()
        return self._recording_error

    # ------------------------------------------------------------------ channels
    @property
    def template_geometry(self) -> TemplateGeometry:
        geom = getattr(self, "_template_geometry", None)
        if geom is None:
            geom = self._template_geometry = TemplateGeometry(self.dataset)
        return geom

    def _cluster_spikes(self, cluster_id: int) -> np.ndarray:
        cid = int(cluster_id)
        spikes = self.state.spikes(cid)  # InvalidActionError for an unknown cluster
        if spikes.shape[0] == 0:
            raise InvalidActionError(f"cluster {cid} does not exist (no spikes)")
        return spikes

    def template_counts(self, cluster_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(template ids, spike counts)`` of a cluster, ascending ids (cached by id: a
        cluster id is never reused, so its spikes never change)."""
        spikes = self._cluster_spikes(cluster_id)
        cache: dict = self.__dict__.setdefault("_template_counts_cache", {})
        hit = cache.get(int(cluster_id))
        if hit is not None and hit[0] is spikes:
            return hit[1], hit[2]
        st = np.asarray(self.dataset.spike_templates)[spikes]
        counts = np.bincount(st, minlength=int(self.dataset.n_templates))
        ids = np.flatnonzero(counts)
        if len(cache) >= 4 * _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[int(cluster_id)] = (spikes, ids, counts[ids])
        return ids, counts[ids]

    def best_channels(self, cluster_id: int, k: int | None = None) -> np.ndarray:
        """The cluster's best template channels, best first (see the module docstring)."""
        ids, counts = self.template_counts(cluster_id)
        n_ch = int(self.dataset.n_channels)
        info = self.template_geometry.get(dominant_template(ids, counts))
        base = (
            info.channels.astype(np.int64)
            if info is not None
            else np.arange(min(n_ch, 12), dtype=np.int64)
        )
        if k is None:
            return base.copy()
        k = max(1, min(int(k), n_ch))
        if k <= base.shape[0]:
            return base[:k].copy()
        pos = np.asarray(self.dataset.channel_positions, dtype=np.float64)
        shanks = np.asarray(self.dataset.channel_shanks)
        best = int(base[0])
        d = np.hypot(pos[:, 0] - pos[best, 0], pos[:, 1] - pos[best, 1])
        other_shank = (shanks != shanks[best]).astype(np.float64)
        order = np.lexsort((np.arange(n_ch), d, other_shank))
        extra = order[~np.isin(order, base)]
        return np.concatenate([base, extra[: k - base.shape[0]]]).astype(np.int64)

    # ------------------------------------------------------------------ waveforms
    def waveforms(
        self,
        cluster_id: int,
        n: int = DEFAULT_N_SPIKES,
        channels: int | np.ndarray | None = None,
        *,
        filtered: bool = True,
    ) -> ClusterWaveforms:
        """Raw waveforms of up to ``n`` spikes of a cluster (see the module docstring).

        ``channels``: None for the best channels, an int ``k`` for the ``k`` best, or an
        array of template channels. Results are cached by cluster id (ids are never reused,
        so an entry never goes stale).

        Raises
        ------
        RecordingError
            Without a usable recording (:attr:`recording_error` says why).
        InvalidActionError
            For a cluster that does not exist.
        """
        rec = self.recording
        if rec is None:
            raise RecordingError(self.recording_error or "no raw recording")
        if isinstance(channels, (int, np.integer)) or channels is None:
            chans = self.best_channels(cluster_id, None if channels is None else int(channels))
        else:
            chans = np.asarray(channels, dtype=np.int64).reshape(-1)
        key = (int(cluster_id), int(n), tuple(chans.tolist()), bool(filtered))
        cache: dict = self.__dict__.setdefault("_waveform_cache", {})
        hit = cache.get(key)
        if hit is not None:
            return hit
        spikes = self._cluster_spikes(cluster_id)
        chosen = sample_spikes(spikes, int(n))
        before, after = waveform_window(self.dataset)
        samples = np.asarray(self.dataset.spike_times)[chosen]
        data = rec.snippets(samples, chans, before, after, filtered=filtered)
        out = ClusterWaveforms(
            cluster_id=int(cluster_id),
            spike_ids=chosen.astype(np.int64),
            channels=chans,
            channel_ids=rec.channel_map[chans],
            waveforms=data,
            before=before,
            after=after,
            sample_rate=rec.sample_rate,
            uv_per_unit=rec.uv_per_unit,
            n_cluster_spikes=int(spikes.shape[0]),
            template=self.cluster_template(cluster_id, chans),
            template_offset=self.template_offset,
        )
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = out
        return out

    @property
    def template_offset(self) -> int:
        off = getattr(self, "_template_offset_value", None)
        if off is None:
            off = self._template_offset_value = _template_offset(
                self.dataset, self.template_geometry
            )
        return off

    def cluster_template(self, cluster_id: int, channels: np.ndarray) -> np.ndarray | None:
        """Count-weighted mean of the cluster's unwhitened templates on ``channels``
        ``(n_samples_template, len(channels))``, or None without ``templates.npy``."""
        if self.dataset.templates is None:
            return None
        ids, counts = self.template_counts(cluster_id)
        keep = counts >= 0.01 * counts.max()  # the templates that shape the mean
        ids, counts = ids[keep], counts[keep].astype(np.float64)
        acc = None
        for t, c in zip(ids.tolist(), counts.tolist(), strict=True):
            part = _template_on(self.template_geometry, int(t), channels, self.dataset)
            if part is None:
                continue
            acc = part * c if acc is None else acc + part * c
        if acc is None:
            return None
        return (acc / counts.sum()).astype(np.float32)
