"""The synthetic ground-truth model (small, vectorised numpy): probe geometry, units, their
templates and firing, and how the simulated sorter splits them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

_NP1_X = np.array([43.0, 11.0, 59.0, 27.0])
_REFRACTORY_S = 0.002
_NOISE_FRACTION = 0.075
_SPLIT_FRACTION = 1.0 / 3.0
_FOOTPRINT_CUTOFF_UM = 100.0

_MODE_SINGLE = 0
_MODE_DRIFT = 1
_MODE_AMPLITUDE = 2

# --------------------------------------------------------------------------------------------
# model construction (small, vectorised numpy)
# --------------------------------------------------------------------------------------------


def channel_positions_np1(n_channels: int) -> np.ndarray:
    """Neuropixels-1.0-like staggered positions ``(n_channels, 2)`` float64, in µm."""
    i = np.arange(n_channels)
    return np.column_stack([_NP1_X[i % 4], 20.0 * (i // 2 + 1)]).astype(np.float64)


@dataclass
class _Model:
    """Everything drawn before the spikes: units, templates, sources."""

    unit_of_template: np.ndarray  # (n_t,) int64
    templates: np.ndarray  # (n_t, ns, nc) float32
    units: list[dict[str, Any]]
    noise_templates: list[int]
    # sources = true units then noise templates
    refr: np.ndarray
    isi_mean: np.ndarray
    mode: np.ndarray
    start: np.ndarray
    k: np.ndarray
    amp_mean: np.ndarray
    jitter: np.ndarray
    cuts: np.ndarray
    tpl_flat: np.ndarray
    total_rate: float  # spikes per second, all sources
    # position-drift sources (mode 3, ``drift=True``); None in the default model
    mot: np.ndarray | None = None  # (n_src, n_knots) unit position along the probe, µm
    gain: np.ndarray | None = None  # (n_src, n_knots) amplitude gain
    knot_dt: float = 1.0  # samples between knots
    cpos: np.ndarray | None = None  # (n_templates,) per slot: the piece's centre position, µm
    cptp: np.ndarray | None = None  # (n_templates,) per slot: the piece's template peak-to-peak
    truth_extra: dict[str, Any] | None = None  # extra keys of synth_truth.json

    def drift_arrays(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
        """``(mot, gain, knot_dt, cpos, cptp)`` for the kernels (dummies without drift)."""
        n_src = self.refr.shape[0]
        n_t = self.tpl_flat.shape[0]
        mot = self.mot if self.mot is not None else np.zeros((n_src, 2))
        gain = self.gain if self.gain is not None else np.ones((n_src, 2))
        cpos = self.cpos if self.cpos is not None else np.zeros(n_t)
        cptp = self.cptp if self.cptp is not None else np.ones(n_t)
        return (
            np.ascontiguousarray(mot, dtype=np.float64),
            np.ascontiguousarray(gain, dtype=np.float64),
            float(self.knot_dt),
            np.ascontiguousarray(cpos, dtype=np.float64),
            np.ascontiguousarray(cptp, dtype=np.float64),
        )


def _isi_mean_for_rate(rate: np.ndarray, refr: np.ndarray, sample_rate: float) -> np.ndarray:
    """Mean ``m`` of E so that ISI = refr + floor(E), E ~ Exp(m), has mean ``sample_rate/rate``.

    E[floor(E)] = 1 / (exp(1/m) - 1) =: K, hence m = 1 / log1p(1 / K).
    """
    kk = sample_rate / rate - refr
    kk = np.maximum(kk, 1e-3)
    return 1.0 / np.log1p(1.0 / kk)


def _waveform(
    ns: int,
    trough: float,
    sr_scale: float,
    s1: float,
    s2: float,
    d: float,
    r: np.ndarray,
    delay: np.ndarray,
) -> np.ndarray:
    """Difference-of-Gaussians spike waveform on several channels, ``(ns, n_ch)``.

    Trough of depth 1 at ``trough + delay`` (σ ``s1``), rebound ``r`` at ``+d`` (σ ``s2``);
    all times in 30 kHz samples, scaled by ``sr_scale``.
    """
    t = (np.arange(ns, dtype=np.float64)[:, None] - trough - delay[None, :]) / sr_scale
    return -np.exp(-0.5 * (t / s1) ** 2) + r[None, :] * np.exp(-0.5 * ((t - d) / s2) ** 2)


def _write_noise_template(
    out: np.ndarray,
    rng: np.random.Generator,
    pos: np.ndarray,
    y_top: float,
    trough: int,
    sr_scale: float,
) -> None:
    """A noise template into ``out`` (n_samples, n_channels): a low, broad, oscillating
    footprint at a random place (the random draws in a fixed order: datasets stay the same)."""
    n_samples = out.shape[0]
    x = rng.uniform(0.0, 70.0)
    y = rng.uniform(0.0, y_top)
    sig_space = rng.uniform(60.0, 150.0)
    dist = np.hypot(pos[:, 0] - x, pos[:, 1] - y)
    near = dist <= 3.0 * sig_space
    if not near.any():
        near = dist == dist.min()
    f = rng.uniform(0.02, 0.08)
    phase = rng.uniform(0.0, 2 * math.pi)
    sw = rng.uniform(6.0, 14.0)
    tt = (np.arange(n_samples) - trough) / sr_scale
    w = np.exp(-0.5 * (tt / sw) ** 2) * np.sin(2 * math.pi * f * tt + phase)
    w /= max(np.abs(w).max(), 1e-12)
    fp = np.exp(-0.5 * (dist[near] / sig_space) ** 2)
    out[:, near] = rng.uniform(0.02, 0.05) * w[:, None] * fp[None, :]


def _probe_geometry(
    n_channels: int, sample_rate: float, n_samples: int
) -> tuple[np.ndarray, float, float, int]:
    """Channel positions, the probe's top (µm), the time scale vs 30 kHz and the trough sample."""
    pos = channel_positions_np1(n_channels)
    return pos, float(pos[:, 1].max()) + 20.0, sample_rate / 30_000.0, round(n_samples * 40 / 82)


def _noise_count(n_templates: int) -> int:
    """How many templates are noise (at least one from 4 templates on)."""
    n_noise = int(round(_NOISE_FRACTION * n_templates))
    return max(1, n_noise) if n_templates >= 4 else n_noise


def _build_model(
    n_spikes: int, n_templates: int, seed: int, n_channels: int, sample_rate: float, n_samples: int
) -> tuple[_Model, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    pos, y_top, sr_scale, trough = _probe_geometry(n_channels, sample_rate, n_samples)

    # -- how many noise templates, how templates are dealt to units
    n_noise = _noise_count(n_templates)
    n_real = n_templates - n_noise
    ks: list[int] = []
    left = n_real
    while left > 0:
        if left >= 2 and rng.random() < _SPLIT_FRACTION:
            k = int(rng.integers(2, min(4, left) + 1))
        else:
            k = 1
        ks.append(k)
        left -= k
    n_units = len(ks)
    ids = rng.permutation(n_templates)  # sorter's template ids carry no ground-truth order
    unit_of_template = np.full(n_templates, -1, dtype=np.int64)

    rates = np.clip(np.exp(rng.normal(math.log(5.0), 0.85, n_units)), 0.5, 40.0)
    amps = np.clip(np.exp(rng.normal(math.log(25.0), 0.35, n_units)), 8.0, 80.0)
    noise_rates = np.clip(np.exp(rng.normal(math.log(8.0), 0.6, n_noise)), 1.0, 60.0)
    noise_amps = rng.uniform(6.0, 14.0, n_noise)
    total_rate = float(rates.sum() + noise_rates.sum())
    t_nominal = n_spikes / total_rate * sample_rate  # expected duration, samples

    templates = np.zeros((n_templates, n_samples, n_channels), dtype=np.float32)
    n_src = n_units + n_noise
    refr_samples = int(math.ceil(_REFRACTORY_S * sample_rate - 1e-9))
    refr = np.zeros(n_src, dtype=np.int64)
    refr[:n_units] = refr_samples
    refr[n_units:] = 1  # noise: Poisson-like, but never two spikes in one sample
    mode = np.zeros(n_src, dtype=np.int64)
    start = np.zeros(n_src, dtype=np.int64)
    kk = np.ones(n_src, dtype=np.int64)
    jitter = np.zeros(n_src, dtype=np.float64)
    cuts = np.zeros(n_templates, dtype=np.float64)
    tpl_flat = np.zeros(n_templates, dtype=np.int32)
    units: list[dict[str, Any]] = []

    slot = 0
    for u, k in enumerate(ks):
        x = rng.uniform(0.0, 70.0)
        y = rng.uniform(0.0, y_top)
        sig_space = rng.uniform(18.0, 30.0)
        s1 = rng.uniform(2.5, 4.5)
        s2 = rng.uniform(5.0, 9.0)
        d = rng.uniform(8.0, 14.0)
        reb = rng.uniform(0.25, 0.55)
        speed = rng.uniform(30.0, 60.0)  # µm per sample
        peak = rng.uniform(0.08, 0.3)
        m = _MODE_SINGLE if k == 1 else int(rng.choice([_MODE_DRIFT, _MODE_AMPLITUDE]))
        if m == _MODE_DRIFT:
            seg = 0.15 + (1.0 - 0.15 * k) * rng.dirichlet(np.ones(k))
            cuts[slot : slot + k - 1] = np.cumsum(seg)[:-1] * t_nominal
            jitter[u] = rng.uniform(0.01, 0.04) * t_nominal
            step = rng.uniform(1.5, 2.5) * (1 if rng.random() < 0.5 else -1)
            dys = (np.arange(k) - (k - 1) / 2) * step
            dxs = np.zeros(k)
            gains = np.ones(k)
        elif m == _MODE_AMPLITUDE:
            nd = NormalDist()
            cuts[slot : slot + k - 1] = [nd.inv_cdf(j / k) for j in range(1, k)]
            dys = rng.uniform(-1.5, 1.5, k)
            dxs = rng.uniform(-1.0, 1.0, k)
            gains = 1.0 + 0.06 * (np.arange(k) - (k - 1) / 2)
        else:
            dys = dxs = np.zeros(1)
            gains = np.ones(1)
        tids = ids[slot : slot + k]
        for j, t in enumerate(tids):
            dist = np.hypot(pos[:, 0] - (x + dxs[j]), pos[:, 1] - (y + dys[j]))
            near = dist <= _FOOTPRINT_CUTOFF_UM
            if not near.any():  # unit beyond the probe's ends: use the nearest channel
                near = dist == dist.min()
            dn = dist[near]
            wj = 1.0 + (rng.uniform(-0.03, 0.03) if k > 1 else 0.0)
            w = _waveform(
                n_samples,
                trough,
                sr_scale,
                s1 * wj,
                s2 * wj,
                d,
                reb * (1.0 + 0.5 * dn / 100.0),
                dn / speed,
            )
            templates[t][:, near] = (peak * gains[j]) * w * np.exp(-0.5 * (dn / sig_space) ** 2)
            unit_of_template[t] = u
        tpl_flat[slot : slot + k] = tids
        mode[u] = m
        start[u] = slot
        kk[u] = k
        units.append(
            {
                "unit": u,
                "templates": [int(t) for t in tids],
                "rate_hz": float(rates[u]),
                "depth_um": float(y),
                "x_um": float(x),
                "amplitude_mean": float(amps[u]),
                "split": ["none", "drift", "amplitude"][m],
            }
        )
        slot += k

    noise_templates: list[int] = []
    for i in range(n_noise):
        t = int(ids[slot])
        _write_noise_template(templates[t], rng, pos, y_top, trough, sr_scale)
        src = n_units + i
        tpl_flat[slot] = t
        start[src] = slot
        noise_templates.append(t)
        slot += 1

    amp_mean = np.concatenate([amps, noise_amps]).astype(np.float64)
    isi_mean = _isi_mean_for_rate(np.concatenate([rates, noise_rates]), refr, sample_rate)
    model = _Model(
        unit_of_template,
        templates,
        units,
        sorted(noise_templates),
        refr,
        isi_mean,
        mode,
        start,
        kk,
        amp_mean,
        jitter,
        cuts,
        tpl_flat,
        total_rate,
    )
    return model, pos
