"""The realistic over-splitting model (``drift=True``): units move along smooth probe-motion
trajectories and the simulated sorter cuts them into pieces along the drift."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from curalog.synth.model import (
    _FOOTPRINT_CUTOFF_UM,
    _MODE_AMPLITUDE,
    _REFRACTORY_S,
    _isi_mean_for_rate,
    _Model,
    _noise_count,
    _probe_geometry,
    _waveform,
    _write_noise_template,
)

# --------------------------------------------------------------------------------------------
# the realistic over-splitting model (drift=True)
# --------------------------------------------------------------------------------------------

_DRIFT_KNOTS = 256  # knots of every unit's position and gain trajectory
_DRIFT_RANGE_UM = (25.0, 50.0)  # peak-to-peak probe motion over the recording
_DRIFT_SINGLE = 0.30  # units the sorter keeps whole (one template for the whole drift)
_DRIFT_AMP_SPLIT = 0.08  # units in a stable spot, split by amplitude (concurrent pieces)
#: drift-split units: one piece per this many µm (log-uniform). On the real Kilosort 4 run
#: (±20 µm drift) a split unit has 2-9 pieces, median 3, each with ~20 % of the unit's spikes.
_DRIFT_PIECE_UM = (8.0, 25.0)
_DRIFT_MAX_PIECES = 12
#: the sorter's uncertainty about a spike's position, relative to the piece width: pieces mix
#: near their boundaries (real run: pieces of one unit share 5 % of their time course, median)
_DRIFT_JITTER_FRACTION = (0.15, 0.4)
#: the share of a piece's distance from the unit's median position left in its template (the
#: pieces of a unit on the real run are similar: phy similarity 0.95 between pieces, median)
_TEMPLATE_RESIDUAL = 0.6
_TWIN_FRACTION = 0.25  # units followed by a near-duplicate neighbour
_TWIN_DY_UM = (15.0, 30.0)


def _smooth_curve(rng: np.random.Generator, tau: np.ndarray, n_harm: int = 3) -> np.ndarray:
    """A smooth random curve on ``tau`` in [0, 1]: a linear trend plus ``n_harm`` slow
    sinusoids (amplitude 1/h), centred, scaled to a peak-to-peak range of 1."""
    c = rng.uniform(-1.0, 1.0) * (tau - 0.5)
    for h in range(1, n_harm + 1):
        c = c + rng.normal(0.0, 1.0) / h * np.sin(
            2.0 * math.pi * h * rng.uniform(0.5, 1.0) * tau + rng.uniform(0.0, 2.0 * math.pi)
        )
    c = c - c.mean()
    return c / max(float(c.max() - c.min()), 1e-9)


def _build_model_drift(
    n_spikes: int, n_templates: int, seed: int, n_channels: int, sample_rate: float, n_samples: int
) -> tuple[_Model, np.ndarray]:
    """The realistic over-splitting model (module docstring, "Drift")."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD51F7]))
    pos, y_top, sr_scale, trough = _probe_geometry(n_channels, sample_rate, n_samples)

    n_noise = _noise_count(n_templates)
    n_real = n_templates - n_noise
    ids = rng.permutation(n_templates)
    unit_of_template = np.full(n_templates, -1, dtype=np.int64)
    noise_rates = np.clip(np.exp(rng.normal(math.log(8.0), 0.6, n_noise)), 1.0, 60.0)
    noise_amps = rng.uniform(6.0, 14.0, n_noise)
    # the recording's length is set by the total rate, known once the units are drawn: the
    # trajectories are drawn on normalised time and the knots placed afterwards
    tau_k = np.linspace(0.0, 1.0, _DRIFT_KNOTS)
    tau_g = np.linspace(0.0, 1.0 / 1.05, 4096)  # the recording, for the piece boundaries
    drift_range = float(rng.uniform(*_DRIFT_RANGE_UM))
    motion = drift_range * _smooth_curve(rng, tau_k)  # the probe's motion, shared by all units

    templates = np.zeros((n_templates, n_samples, n_channels), dtype=np.float32)
    cuts = np.zeros(n_templates, dtype=np.float64)
    tpl_flat = np.zeros(n_templates, dtype=np.int32)
    cpos = np.zeros(n_templates, dtype=np.float64)
    cptp = np.ones(n_templates, dtype=np.float64)
    u_mode: list[int] = []
    u_start: list[int] = []
    u_k: list[int] = []
    u_jitter: list[float] = []
    u_mot: list[np.ndarray] = []
    u_gain: list[np.ndarray] = []
    rates: list[float] = []
    amps: list[float] = []
    units: list[dict[str, Any]] = []
    shapes: list[dict[str, float]] = []
    near_duplicates: list[list[int]] = []

    def template_at(
        x: float, y: float, sh: dict[str, float], gain_: float, wj: float
    ) -> np.ndarray:
        dist = np.hypot(pos[:, 0] - x, pos[:, 1] - y)
        near = dist <= _FOOTPRINT_CUTOFF_UM
        if not near.any():
            near = dist == dist.min()
        dn = dist[near]
        w = _waveform(
            n_samples,
            trough,
            sr_scale,
            sh["s1"] * wj,
            sh["s2"] * wj,
            sh["d"],
            sh["reb"] * (1.0 + 0.5 * dn / 100.0),
            dn / sh["speed"],
        )
        full = np.zeros((n_samples, n_channels), dtype=np.float64)
        full[:, near] = (sh["peak"] * gain_) * w * np.exp(-0.5 * (dn / sh["sig"]) ** 2)
        return full

    slot = 0
    while slot < n_real:
        u = len(units)
        left = n_real - slot
        twin_of = -1
        if units and units[-1]["twin_of"] is None and rng.random() < _TWIN_FRACTION:
            twin_of = u - 1
        rate = float(np.clip(np.exp(rng.normal(math.log(5.0), 0.85)), 0.5, 40.0))
        if twin_of >= 0:  # a different unit close by, with nearly the same waveform
            base = shapes[twin_of]
            sh = {key: v * (1.0 + rng.uniform(-0.04, 0.04)) for key, v in base.items()}
            sh["peak"] = base["peak"] * rng.uniform(0.85, 1.15)
            sh["x"] = float(np.clip(base["x"] + rng.uniform(-12.0, 12.0), 0.0, 70.0))
            dy = rng.uniform(*_TWIN_DY_UM) * (1.0 if rng.random() < 0.5 else -1.0)
            sh["y"] = float(np.clip(base["y"] + dy, 0.0, y_top))
            amp = float(np.clip(amps[twin_of] * rng.uniform(0.85, 1.15), 8.0, 80.0))
            near_duplicates.append([twin_of, u])
        else:
            sh = {
                "x": rng.uniform(0.0, 70.0),
                "y": rng.uniform(0.0, y_top),
                "sig": rng.uniform(18.0, 30.0),
                "s1": rng.uniform(2.5, 4.5),
                "s2": rng.uniform(5.0, 9.0),
                "d": rng.uniform(8.0, 14.0),
                "reb": rng.uniform(0.25, 0.55),
                "speed": rng.uniform(30.0, 60.0),
                "peak": rng.uniform(0.08, 0.3),
            }
            amp = float(np.clip(np.exp(rng.normal(math.log(25.0), 0.35)), 8.0, 80.0))
        shapes.append(sh)
        # non-rigid motion: scaled with depth, plus a small wobble of the unit's own
        traj = (
            sh["y"]
            + motion * (1.0 + 0.3 * (sh["y"] / y_top - 0.5))
            + rng.uniform(0.5, 2.0) * _smooth_curve(rng, tau_k)
        )
        g_u = np.exp(rng.uniform(0.1, 0.4) * _smooth_curve(rng, tau_k))
        y_g = np.interp(tau_g, tau_k, traj)
        span = float(y_g.max() - y_g.min())
        r = rng.random()
        piece_um = math.exp(rng.uniform(math.log(_DRIFT_PIECE_UM[0]), math.log(_DRIFT_PIECE_UM[1])))
        if r < _DRIFT_SINGLE:
            m, k = 3, 1
        elif r < _DRIFT_SINGLE + _DRIFT_AMP_SPLIT:
            m, k = _MODE_AMPLITUDE, int(rng.integers(2, 4))
        else:
            m, k = 3, int(np.clip(round(span / piece_um), 2, _DRIFT_MAX_PIECES))
        k = max(1, min(k, left))
        if k == 1:
            m = 3
        tids = ids[slot : slot + k]
        info: dict[str, Any] = {}
        jit = 0.0
        if m == _MODE_AMPLITUDE:
            nd = NormalDist()
            cuts[slot : slot + k - 1] = [nd.inv_cdf(j / k) for j in range(1, k)]
            gains = 1.0 + 0.06 * (np.arange(k) - (k - 1) / 2)
            for j, t in enumerate(tids):
                templates[t] = template_at(
                    sh["x"] + rng.uniform(-1.0, 1.0),
                    sh["y"] + rng.uniform(-1.5, 1.5),
                    sh,
                    float(gains[j]),
                    1.0 + rng.uniform(-0.03, 0.03),
                )
        else:  # position drift: pieces are position quantiles of the trajectory
            if k > 1:
                cuts[slot : slot + k - 1] = np.quantile(y_g, np.arange(1, k) / k)
            centres = np.quantile(y_g, (np.arange(k) + 0.5) / k)
            mid = float(np.median(y_g))
            for j, t in enumerate(tids):
                # the sorter's template of the piece, in its registered frame: Kilosort 4
                # corrects most of the motion, so pieces differ by a share of their distance
                at = mid + _TEMPLATE_RESIDUAL * (float(centres[j]) - mid)
                w = template_at(sh["x"], at, sh, 1.0, 1.0)
                templates[t] = w
                cpos[slot + j] = centres[j]
                cptp[slot + j] = float((w.max(axis=0) - w.min(axis=0)).max()) or 1.0
            jit = float(piece_um * rng.uniform(*_DRIFT_JITTER_FRACTION))
            info = {"drift_um": span, "jitter_um": jit}
        unit_of_template[tids] = u
        tpl_flat[slot : slot + k] = tids
        u_mode.append(m)
        u_start.append(slot)
        u_k.append(k)
        u_jitter.append(jit)
        u_mot.append(traj if m == 3 else np.zeros(_DRIFT_KNOTS))
        u_gain.append(g_u if m == 3 else np.ones(_DRIFT_KNOTS))
        rates.append(rate)
        amps.append(amp)
        units.append(
            {
                "unit": u,
                "templates": [int(t) for t in tids],
                "rate_hz": rate,
                "depth_um": float(sh["y"]),
                "x_um": float(sh["x"]),
                "amplitude_mean": amp,
                "split": "none" if k == 1 else ("amplitude" if m == _MODE_AMPLITUDE else "drift"),
                "twin_of": None if twin_of < 0 else int(twin_of),
                **info,
            }
        )
        slot += k

    n_units = len(units)
    n_src = n_units + n_noise
    noise_templates: list[int] = []
    for _ in range(n_noise):
        t = int(ids[slot])
        _write_noise_template(templates[t], rng, pos, y_top, trough, sr_scale)
        tpl_flat[slot] = t
        u_start.append(slot)
        noise_templates.append(t)
        slot += 1

    refr = np.ones(n_src, dtype=np.int64)
    refr[:n_units] = int(math.ceil(_REFRACTORY_S * sample_rate - 1e-9))
    mode = np.zeros(n_src, dtype=np.int64)
    mode[:n_units] = u_mode
    kk = np.ones(n_src, dtype=np.int64)
    kk[:n_units] = u_k
    jitter = np.zeros(n_src, dtype=np.float64)
    jitter[:n_units] = u_jitter
    mot = np.zeros((n_src, _DRIFT_KNOTS), dtype=np.float64)
    gain = np.ones((n_src, _DRIFT_KNOTS), dtype=np.float64)
    if n_units:
        mot[:n_units] = np.vstack(u_mot)
        gain[:n_units] = np.vstack(u_gain)
    all_rates = np.concatenate([np.asarray(rates), noise_rates])
    total_rate = float(all_rates.sum())
    t_nominal = n_spikes / total_rate * sample_rate
    knot_dt = 1.05 * t_nominal / (_DRIFT_KNOTS - 1)  # the knots cover the recording + 5 %
    amp_mean = np.concatenate([np.asarray(amps), noise_amps]).astype(np.float64)
    isi_mean = _isi_mean_for_rate(all_rates, refr, sample_rate)
    extra = {
        "drift": {
            "range_um": drift_range,
            "knots": _DRIFT_KNOTS,
            "knot_s": knot_dt / sample_rate,
            "motion_um": [round(float(v), 3) for v in motion],
        },
        "near_duplicates": near_duplicates,
    }
    model = _Model(
        unit_of_template,
        templates,
        units,
        sorted(noise_templates),
        refr,
        isi_mean,
        mode,
        np.asarray(u_start, dtype=np.int64),
        kk,
        amp_mean,
        jitter,
        cuts,
        tpl_flat,
        total_rate,
        mot=mot,
        gain=gain,
        knot_dt=knot_dt,
        cpos=cpos,
        cptp=cptp,
        truth_extra=extra,
    )
    return model, pos


def _similarity(templates: np.ndarray) -> np.ndarray:
    """Cosine similarity of flattened templates, clipped to [0, 1], unit diagonal (float32)."""
    x = templates.reshape(templates.shape[0], -1)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)
    xn = x / np.maximum(norms, 1e-12)[:, None]
    sim = xn @ xn.T
    np.clip(sim, 0.0, 1.0, out=sim)
    np.fill_diagonal(sim, 1.0)
    return sim.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# per-spike positions (Kilosort 4's spike_positions.npy) of the drift model
# --------------------------------------------------------------------------------------------

#: the share of the drift left in the positions (Kilosort 4 registers the probe motion; on the
#: real training run a unit's registered depth still moves by ~6 µm over a ±20 µm drift)
_POSITION_RESIDUAL = 0.15
_POSITION_SD_UM = (0.4, 1.4)  # a unit's per-spike scatter per axis (real run: median 0.6)
_NOISE_POSITION_SD_UM = 5.0


class _SpikePositions:
    """Per-spike ``(x, y)`` positions for a drift model, written like Kilosort 4's
    ``spike_positions.npy``: a unit's registered position (its median depth plus
    ``_POSITION_RESIDUAL`` of its motion) plus its own Gaussian scatter; noise templates scatter
    around their centroid. Deterministic per chunk of spikes."""

    def __init__(self, model: _Model, pos: np.ndarray, seed: int):
        self.seed = seed
        uot = np.asarray(model.unit_of_template, dtype=np.int64)
        n_t = uot.shape[0]
        templates = model.templates
        ptp = templates.max(axis=1) - templates.min(axis=1)  # (n_t, n_ch)
        mx = ptp.max(axis=1, keepdims=True)
        w = np.where(ptp >= 0.3 * np.maximum(mx, 1e-12), ptp, 0.0)
        centroid = (w @ pos) / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B05]))
        n_units = len(model.units)
        sd_unit = np.exp(rng.uniform(*np.log(_POSITION_SD_UM), max(n_units, 1)))
        self.x = centroid[:, 0].astype(np.float64)
        self.y = centroid[:, 1].astype(np.float64)
        self.sd = np.full(n_t, _NOISE_POSITION_SD_UM)
        self.unit = uot
        self.moving = np.zeros(n_t, dtype=bool)
        mot = model.mot
        mode = np.asarray(model.mode)
        self.mot = np.zeros((max(n_units, 1), 2)) if mot is None else mot[: max(n_units, 1)]
        self.median = np.zeros(self.mot.shape[0])
        for u, unit in enumerate(model.units):
            sel = uot == u
            self.x[sel] = float(unit.get("x_um", self.x[sel].mean() if sel.any() else 0.0))
            self.y[sel] = float(unit.get("depth_um", self.y[sel].mean() if sel.any() else 0.0))
            self.sd[sel] = sd_unit[u]
            if mot is not None and u < mode.shape[0] and int(mode[u]) == 3:
                self.median[u] = float(np.median(mot[u]))
                self.y[sel] = self.median[u]
                self.moving[sel] = True
        self.knot_dt = float(model.knot_dt)

    def chunk(self, first: int, times: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """``(m, 2)`` float32 positions of the spikes ``first, first + 1, ...`` (the scatter
        is a function of the seed and the spike's index, not of the chunking)."""
        tpl = templates.astype(np.int64)
        x = self.x[tpl].copy()
        y = self.y[tpl].copy()
        mv = self.moving[tpl]
        if mv.any():
            u = self.unit[tpl[mv]]
            n_knots = self.mot.shape[1]
            k = np.clip(times[mv].astype(np.float64) / self.knot_dt, 0.0, n_knots - 1.0)
            k0 = np.minimum(k.astype(np.int64), n_knots - 2)
            f = k - k0
            traj = self.mot[u, k0] * (1.0 - f) + self.mot[u, k0 + 1] * f
            y[mv] += _POSITION_RESIDUAL * (traj - self.median[u])
        sd = self.sd[tpl]
        zx, zy = _index_normals(self.seed, first, tpl.shape[0])
        out = np.empty((tpl.shape[0], 2), dtype=np.float32)
        out[:, 0] = x + sd * zx
        out[:, 1] = y + sd * zy
        return out


def _index_normals(seed: int, first: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Two standard normals per spike index ``first .. first + m - 1`` (splitmix64 of the
    seeded index, Box-Muller)."""
    with np.errstate(over="ignore"):
        z = (np.arange(first, first + m, dtype=np.uint64) + np.uint64(1)) * np.uint64(
            0x9E3779B97F4A7C15
        ) + np.uint64((seed * 0x5851F42D4C957F2D + 0x5B06) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u1 = ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 9007199254740992.0
    u2 = ((z & np.uint64(0x1FFFFF)).astype(np.float64) + 0.5) / 2097152.0
    r = np.sqrt(-2.0 * np.log(u1))
    return r * np.cos(2.0 * math.pi * u2), r * np.sin(2.0 * math.pi * u2)
