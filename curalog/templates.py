"""Template geometry: unwhitened templates, their best channels and amplitudes (phy's rules).

Moved here from :mod:`curalog.analysis.stats.metrics` (which re-exports it) so that the core
(:class:`curalog.curation.Curation`'s best channels and waveforms) can use it without
importing the analysis layer. The rules are phy's Template-GUI rules (docs/PHY_SEMANTICS.md 1.4
and 4.1); :mod:`curalog.analysis.stats.metrics`' docstring states them column by column:

* the **dominant template** of a cluster is its most frequent ``spike_templates`` value (a
  merged cluster: its spikes' templates weighted by their counts, i.e. the template with the
  most spikes; ties go to the smaller id), phy's ``get_template_for_cluster``;
* its template is unwhitened (``template @ whitening_mat_inv``), the per-channel amplitude is
  the peak-to-peak ``max_t - min_t``; dense templates keep the 12 channels nearest to the
  argmax on its shank, sparse ones (``template_ind.npy``) their own channels with signal;
  both are ordered by decreasing amplitude, so ``channels[0]`` is the best channel.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TemplateChannels", "TemplateGeometry", "dominant_template"]


def dominant_template(template_ids: np.ndarray, counts: np.ndarray) -> int | None:
    """Most frequent template (ties: smaller id); ``template_ids`` ascending."""
    if template_ids.shape[0] == 0:
        return None
    return int(template_ids[int(np.argmax(counts))])  # argmax keeps the first, i.e. smaller id


@dataclass(frozen=True)
class TemplateChannels:
    """phy's best channels of one (unwhitened) template."""

    channels: np.ndarray  # channel rows, by decreasing amplitude
    best_channel: int
    amplitude: float  # peak-to-peak on the best channel
    peak_to_trough_ms: float


class TemplateGeometry:
    """Per-template best channels and amplitude, computed lazily and cached (thread-safe)."""

    def __init__(self, dataset: Any, n_closest_channels: int = 12):
        self.dataset = dataset
        self.n_closest = n_closest_channels
        self.templates = getattr(dataset, "templates", None)
        self.template_channels = getattr(dataset, "template_channels", None)
        self.sample_rate = float(dataset.sample_rate)
        self._cache: dict[int, TemplateChannels | None] = {}
        self._close: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()
        self._wmi: np.ndarray | None = None
        self._wmi_loaded = False

    @property
    def available(self) -> bool:
        return self.templates is not None

    @property
    def wmi(self) -> np.ndarray | None:
        """Inverse whitening matrix, or None to skip unwhitening (see the module docstring)."""
        if not self._wmi_loaded:
            self._wmi = self._load_wmi()
            self._wmi_loaded = True
        return self._wmi

    def _load_wmi(self) -> np.ndarray | None:
        opt = getattr(self.dataset, "optional_array", None)
        if opt is None:
            return None
        n = int(np.asarray(self.dataset.channel_positions).shape[0])
        try:
            wmi = opt("whitening_mat_inv.npy")
            if wmi is None:
                wm = opt("whitening_mat.npy")
                if wm is not None and wm.ndim == 2 and wm.shape == (n, n):
                    wmi = np.linalg.pinv(np.asarray(wm, dtype=np.float64))
        except Exception:  # a malformed optional file only costs the unwhitening
            return None
        if wmi is None or wmi.ndim != 2 or wmi.shape != (n, n):
            return None
        return np.asarray(wmi, dtype=np.float64)

    def unwhitened(self, template_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(waveform (n_samples, k), channel rows (k,))`` of one template, unwhitened."""
        if self.templates is None or not 0 <= template_id < self.templates.shape[0]:
            return None
        w = np.asarray(self.templates[template_id], dtype=np.float64)
        wmi = self.wmi
        if self.template_channels is None:
            chans = np.arange(w.shape[1])
            if wmi is not None and wmi.shape[0] == w.shape[1]:
                w = w @ wmi
            return w, chans
        chans = np.asarray(self.template_channels[template_id], dtype=np.int64)
        mx = np.abs(w).max(axis=0) if w.size else np.zeros(0)
        keep = (mx > mx.max() * 1e-6) if mx.size else np.zeros(0, dtype=bool)
        keep &= chans >= 0
        if not keep.any():  # an all-zero template: keep its first valid channel
            keep = chans >= 0
            if not keep.any():
                return None
            keep[np.flatnonzero(keep)[1:]] = False
        w = w[:, keep]
        chans = chans[keep]
        if wmi is not None and chans.max() < wmi.shape[0]:
            w = w @ wmi[np.ix_(chans, chans)]
        return w, chans

    def get(self, template_id: int | None) -> TemplateChannels | None:
        if template_id is None:
            return None
        with self._lock:
            if template_id in self._cache:
                return self._cache[template_id]
        info = self._compute(int(template_id))
        with self._lock:
            self._cache[template_id] = info
        return info

    def _close_channels(self, best: int, n_cols: int) -> np.ndarray:
        """The ``n_closest`` channels nearest to ``best`` on its shank, ascending (cached)."""
        key = (best, n_cols)
        got = self._close.get(key)
        if got is None:
            pos = np.asarray(self.dataset.channel_positions, dtype=np.float64)
            n_ch = min(pos.shape[0], n_cols)
            x, y = pos[:n_ch, 0], pos[:n_ch, 1]
            d = (x - pos[best, 0]) ** 2 + (y - pos[best, 1]) ** 2
            # numpy's default argsort, as phy: equidistant channels are cut the same way.
            close = np.argsort(d)[: self.n_closest]
            shanks = np.asarray(self.dataset.channel_shanks)
            close = close[shanks[close] == shanks[best]]
            got = np.sort(close)
            self._close[key] = got
        return got

    def _compute(self, template_id: int) -> TemplateChannels | None:
        got = self.unwhitened(template_id)
        if got is None:
            return None
        w, chans = got
        if w.shape[1] == 0:
            return None
        amp = w.max(axis=0) - w.min(axis=0)
        best_local = int(np.argmax(amp))
        best = int(chans[best_local])
        if self.template_channels is None:
            sel = self._close_channels(best, w.shape[1])
        else:
            sel = np.arange(chans.shape[0])
        order = sel[np.argsort(-amp[sel], kind="stable")]
        channels = chans[order].astype(np.int64)
        if channels[0] != best:  # equal amplitudes: keep phy's argmax first
            channels = np.concatenate([[best], channels[channels != best]])
        return TemplateChannels(
            channels,
            best,
            float(amp[best_local]),
            _peak_to_trough_ms(w[:, best_local], self.sample_rate),
        )


def _peak_to_trough_ms(wave: np.ndarray, fs: float) -> float:
    if wave.shape[0] < 2:
        return math.nan
    i_min = int(np.argmin(wave))
    i_max = int(np.argmax(wave))
    if abs(wave[i_min]) >= abs(wave[i_max]):
        after = wave[i_min + 1 :]
        if after.shape[0] == 0:
            return math.nan
        j = i_min + 1 + int(np.argmax(after))
        return (j - i_min) * 1000.0 / fs
    after = wave[i_max + 1 :]
    if after.shape[0] == 0:
        return math.nan
    j = i_max + 1 + int(np.argmin(after))
    return (j - i_max) * 1000.0 / fs
