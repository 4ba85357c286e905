"""Synthetic Kilosort-style output folders: demo, test and benchmark data for curalog.

:func:`synthesize` writes a complete folder that phy / phylib, SpikeInterface and curalog read
like a real Kilosort 2/3 output (``params.py``, ``spike_times.npy``, ``spike_templates.npy``,
``amplitudes.npy``, ``templates.npy``, channel files, ``similar_templates.npy``, whitening
matrices and the sorter's ``cluster_*.tsv`` columns), plus a ground-truth file
``synth_truth.json`` that phylib does not pick up, and (``recording=``) the raw recording
``raw.dat`` that ``params.py`` names, consistent with the spikes (:mod:`curalog.synth.recording`).

The generative model
--------------------
*Probe.* A Neuropixels-1.0-like layout: two channels per row, 20 µm vertical pitch, the four
staggered columns x = 43, 11, 59, 27 µm (channel ``i`` sits at ``x = (43, 11, 59, 27)[i % 4]``,
``y = 20 * (i // 2 + 1)``), one shank, identity whitening.

*Units.* True units sit at a random position along the probe. Each has a log-normal firing
rate (median 5 Hz, clipped to 0.5–40 Hz), a log-normal mean amplitude scaling (median 25) and a
waveform: a difference of Gaussians in time (a sharp negative trough followed by a broad
positive rebound), scaled on every channel by a Gaussian spatial footprint of the distance to
the unit (σ = 18–30 µm, exactly zero beyond 100 µm, so about a dozen channels carry signal),
with a small propagation delay and a rebound that grows with distance.

*The "sorter".* About a third of the units are over-split into 2–4 templates. A split unit
deals its spikes to its templates either by time segment (drift-like: the recording is cut into
segments of at least 15 % of its length, with a soft, randomly jittered boundary) or by
amplitude (equal-probability amplitude quantiles). The templates of a split unit are copies of
the unit's waveform with a few µm of position shift, a few % of width change and (amplitude
splits) ±6 % amplitude, so their similarity is > 0.9. About 7.5 % of the templates are *noise*:
low-amplitude, oscillatory waveforms with a broad footprint, firing as Poisson processes
without refractoriness. Template ids are a random permutation (the sorter's ids carry no
ground-truth order).

*Spike trains.* Each true unit (and each noise template) is an independent renewal process in
integer samples: ISI = R + floor(E) with R = ceil(2 ms · sample_rate) (1 sample for noise) and E
exponential, its mean chosen so the process has exactly the unit's rate, started in its
stationary state at time 0. A unit therefore never has an ISI below 2 ms, whichever templates
its spikes were dealt to. The amplitude scaling factor of every spike is ~ N(mean_u,
0.15 · mean_u), clipped to > 0. Each source has its own counter-based random stream
(splitmix64) seeded from ``seed``, so every spike train is a deterministic function of the
seed that does not depend on how the recording is cut into chunks. The output is the merge of
all trains in (time, template id) order, cut to exactly ``n_spikes`` spikes; the recording
duration is the time of the last spike (about ``n_spikes / total rate``).

*Sorter columns.* ``cluster_ContamPct.tsv`` is the template's 1.5 ms ISI-violation count
relative to a Poisson process of the same rate (≈ 0 for real units, ≈ 100 for noise, clipped
to 100), ``cluster_KSLabel.tsv`` says ``good`` below 10 % and ``mua`` otherwise,
``cluster_Amplitude.tsv`` is the mean amplitude scaling times the template's peak-to-peak, and
``cluster_group.tsv`` is a copy of KSLabel, as Kilosort writes it.

*Features* (``pc_features=True``). ``pc_feature_ind`` holds the 12 channels nearest to the
template's peak channel (peak first), ``pc_features`` the projection of the template on those
channels onto the 3 leading temporal principal components of all templates, times the spike's
amplitude, plus Gaussian noise; ``template_features`` are the spike's amplitude times the
similarity to the 8 most similar templates (itself first), plus noise.

Drift (``drift=True``): realistic over-splitting
------------------------------------------------
A separate model (the default one above is unchanged bit for bit) for the merge proposals
(:mod:`curalog.analysis.proposals`), after what drifting Neuropixels recordings do to a sorter:

*Motion.* The probe moves: a smooth random trajectory (a linear trend plus three slow
sinusoids, often back and forth) with a peak-to-peak range of 25-50 µm over the recording.
Every unit follows it, scaled by ``1 + 0.3 (depth / probe length - 1/2)`` (non-rigid motion),
plus a 0.5-2 µm wobble of its own. Trajectories are piecewise linear with 256 knots.

*Pieces.* 30 % of the units are kept whole (one template at their median position); 8 % sit
in a stable spot and are split by amplitude into 2-3 concurrent pieces (as above); the rest
are split *along the drift*: one piece per ``w`` µm of the unit's range (``w`` log-uniform
in 1.5-16 µm, so 2 to 32 pieces, tens for some units). Piece ``j`` covers the ``j``-th
``1/k`` quantile range of the unit's positions (equal shares of its spikes); its template is
the unit's waveform at the middle of that range. A spike goes to the piece of its position
``p(t) + N(0, s^2)`` (``s`` 0.5-2 µm: the sorter's uncertainty, so neighbouring pieces mix
where one hands over to the next) and its amplitude scaling is multiplied by a slow gain
(``exp`` of a smooth curve, 10-40 % peak to peak) and by ``P(p) / P_j``, the template
peak-to-peak interpolated at ``p`` over that of its piece, so that the true amplitude
(scaling times template) is continuous across a handoff. Pieces of a unit whose drift goes
back and forth appear in several time intervals.

*Near-duplicate neighbours.* 25 % of the units are followed by a *twin*: a different unit
15-30 µm away along the probe (and up to 12 µm across), with the same waveform parameters
within 4 %, a peak amplitude within 15 %, its own rate and its own pieces. Twins drift
together, so a twin's piece can sit where the unit was a while ago: similar templates at
similar positions, but two neurons firing at the same time. They must not be merged.

*Per-spike positions.* Like Kilosort 4, a drift dataset has ``spike_positions.npy``
(``(n_spikes, 2)`` float32, µm): a unit's *registered* position (its median depth; Kilosort 4
corrects the probe motion, imperfectly: 15 % of the unit's motion is left, as a real unit's
registered depth still moves by ~6 µm over a ±20 µm drift on the training run) plus its own
Gaussian scatter (0.7-2.5 µm per unit, the range measured there); noise templates scatter by
5 µm around their centroid. The scatter is a function of the seed and the spike's index.

*Truth.* ``synth_truth.json`` gets, besides ``unit_of_template``: per unit ``split`` (none,
drift, amplitude), ``twin_of`` (the unit it duplicates, or null), ``drift_um`` (its range)
and ``jitter_um`` (``s``), ``templates`` in position order for drift splits; and the keys
``drift`` (range, knots, the probe motion in µm at every knot) and ``near_duplicates``
(the ``[unit, twin]`` pairs).

Streaming
---------
Time windows expected to hold ``2**19`` spikes are generated by a numba kernel (source after
source), sorted by an O(n) bucket sort and appended by a writer thread to ``.npy`` files whose
header was written first, so memory stays bounded (a few tens of MB beyond the templates) at
any size: 50 M spikes and 1,000 templates take about 8 s on 2 cores. ``spike_times.npy`` is
written under a temporary name and renamed last, so an interrupted run never looks like a
complete dataset.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from curalog.synth.drift import _build_model_drift, _similarity, _SpikePositions
from curalog.synth.kernels import _accumulate, _gen_window, _init_sources, _sort_window
from curalog.synth.model import _REFRACTORY_S, _build_model, channel_positions_np1
from curalog.synth.recording import raw_bytes, write_recording

__all__ = ["SynthInfo", "synthesize", "channel_positions_np1"]

TRUTH_FILE = "synth_truth.json"
TRUTH_FORMAT = "curalog-synth-truth"
TRUTH_VERSION = 1

_CHUNK = 1 << 19  # spikes per streamed chunk (buffers stay cache-resident)
_CAP_HEADROOM = 1.3  # window buffers: capacity = headroom * expected spikes + extra
_CAP_EXTRA = 4096
_FEATURE_BLOCK = 1 << 16  # spikes per feature block (bounds the temporaries)
_VIOLATION_S = 0.0015
_AMP_CV = 0.15


@dataclass(frozen=True)
class SynthInfo:
    """Summary of a synthesized dataset.

    Attributes
    ----------
    path : Path
        The dataset folder.
    n_spikes, n_templates, n_units, n_channels : int
        Sizes. ``n_units`` counts true units only (not noise templates).
    sample_rate : float
        Samples per second.
    duration : float
        Recording duration in seconds: ``(last spike sample + 1) / sample_rate``.
    unit_of_template : np.ndarray
        ``(n_templates,)`` int64, the true unit of every template, -1 for noise templates.
    """

    path: Path
    n_spikes: int
    n_templates: int
    n_units: int
    n_channels: int
    sample_rate: float
    duration: float
    unit_of_template: np.ndarray
    #: The raw recording written beside the sorting (None: not written; see ``recording``).
    recording: Path | None = None
    #: Its size in bytes (written or, when skipped, as it would have been).
    recording_bytes: int = 0


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


class _NpyWriter:
    """Append rows to a ``.npy`` file whose header (final shape) is written up front."""

    def __init__(self, path: Path, dtype: np.dtype | type, shape: tuple[int, ...]):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.rows = 0
        self._f: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(self._f, header)

    def write(self, rows: np.ndarray) -> None:
        a = np.ascontiguousarray(rows, dtype=self.dtype)
        if a.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: rows of shape {a.shape[1:]}, expected {self.shape[1:]}")
        self._f.write(memoryview(a).cast("B"))
        self.rows += a.shape[0]

    def close(self) -> None:
        self._f.close()
        if self.rows != self.shape[0]:
            raise RuntimeError(f"{self.path}: wrote {self.rows} rows, expected {self.shape[0]}")

    def abort(self) -> None:
        self._f.close()


def _write_tsv(path: Path, field: str, values: list[str]) -> None:
    lines = [f"cluster_id\t{field}"] + [f"{i}\t{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def _pc_setup(
    templates: np.ndarray, pos: np.ndarray, sim: np.ndarray, n_pc_ch: int, n_tf: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature channel sets, mean PC projections and template-feature neighbours."""
    n_t = templates.shape[0]
    ptp = templates.max(axis=1) - templates.min(axis=1)  # (n_t, nc)
    peak = ptp.argmax(axis=1)
    d = np.hypot(pos[peak, 0][:, None] - pos[None, :, 0], pos[peak, 1][:, None] - pos[None, :, 1])
    pc_ind = np.argsort(d, axis=1, kind="stable")[:, :n_pc_ch]
    wav = np.take_along_axis(templates, pc_ind[:, None, :], axis=2)  # (n_t, ns, n_pc_ch)
    flat = wav.transpose(0, 2, 1).reshape(-1, templates.shape[1]).astype(np.float64)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    pcs = np.zeros((3, templates.shape[1]))  # (3, ns) temporal principal components
    pcs[: min(3, vt.shape[0])] = vt[:3]  # (zero-padded if there are fewer than 3)
    proj = np.einsum("ps,tsc->tpc", pcs, wav.astype(np.float64))  # (n_t, 3, n_pc_ch)
    s = sim.astype(np.float64).copy()
    np.fill_diagonal(s, 2.0)  # itself first
    tf_ind = np.argsort(-s, axis=1, kind="stable")[:, :n_tf]
    tf_mean = np.take_along_axis(sim, tf_ind, axis=1).astype(np.float64)  # (n_t, n_tf)
    assert tf_ind.shape == (n_t, n_tf)
    return pc_ind, proj, tf_ind, tf_mean


def synthesize(
    out: str | Path,
    n_spikes: int = 200_000,
    n_templates: int = 64,
    seed: int = 0,
    *,
    n_channels: int = 96,
    sample_rate: float = 30_000.0,
    n_samples: int = 82,
    legacy_quirks: bool = False,
    pc_features: bool = False,
    drift: bool = False,
    progress: Callable[[int, int], None] | None = None,
    recording: bool | None = False,
    max_recording_bytes: int = 1 << 30,
    recording_progress: Callable[[int, int], None] | None = None,
) -> SynthInfo:
    """Write a synthetic Kilosort-style output folder (see the module docstring for the model).

    Parameters
    ----------
    out : str or Path
        Folder to write into; created if missing.
    n_spikes : int
        Exact number of spikes.
    n_templates : int
        Number of templates (true units' templates plus ~7.5 % noise templates).
    seed : int
        Seed: the whole dataset is a deterministic function of the arguments.
    n_channels : int
        Channels of the Neuropixels-1.0-like probe.
    sample_rate : float
        Samples per second.
    n_samples : int
        Samples per template (82 as Kilosort 2/3, 61 as Kilosort 4).
    legacy_quirks : bool
        Write old-Kilosort shapes and dtypes: ``(n, 1)`` uint64 spike times, uint32 spike
        templates, float64 amplitudes, ``(n_ch, 1)`` channel map, and ``templates_ind.npy``
        (float64, ``arange(n_channels)`` on every row, ignored by phylib like Kilosort's).
    pc_features : bool
        Also write ``pc_features.npy`` float32 ``(n, 3, 12)``, ``pc_feature_ind.npy`` uint32
        ``(n_templates, 12)``, ``template_features.npy`` float32 ``(n, 8)`` and
        ``template_feature_ind.npy`` uint32 ``(n_templates, 8)`` (12 and 8 become
        ``n_channels`` / ``n_templates`` when smaller). Only sensible for small datasets:
        176 bytes per spike.
    drift : bool
        The realistic over-splitting model (module docstring, "Drift"): units drift with the
        probe and are split by the "sorter" into pieces along the drift (tens of pieces for
        some), some units have a near-duplicate neighbour (a different unit on nearby
        channels with a nearly identical waveform), and the truth file records both. The
        default (False) is the original model, unchanged bit for bit.
    progress : callable, optional
        Called as ``progress(done_spikes, n_spikes)`` after every written chunk.
    recording : bool or None
        Also write the raw recording ``raw.dat`` (int16, 0.195 µV per bit; the spikes'
        templates x amplitudes plus noise, :mod:`curalog.synth.recording`): True always, None
        when it is at most ``max_recording_bytes``, False (default) never. ``params.py``'s
        ``dat_path`` names it either way.
    recording_progress : callable, optional
        Called as ``progress(done_samples, n_samples)`` while the recording is written.

    Returns
    -------
    SynthInfo

    Raises
    ------
    FileExistsError
        If ``out`` already contains ``spike_times.npy``.
    ValueError
        For non-positive sizes.

    Notes
    -----
    ``spike_times`` are sorted by (time, template id): ties in time are allowed (different
    templates) and ordered by template id. No template has two spikes in one sample.
    With few spikes per template (below a few hundred on average) a low-rate template can end
    up with no spike at all; a warning is issued then.
    """
    n_spikes = int(n_spikes)
    n_templates = int(n_templates)
    n_channels = int(n_channels)
    n_samples = int(n_samples)
    sample_rate = float(sample_rate)
    if n_spikes < 1 or n_templates < 1 or n_channels < 1 or n_samples < 8 or sample_rate <= 0:
        raise ValueError(
            "n_spikes, n_templates, n_channels >= 1, n_samples >= 8, sample_rate > 0 required"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "spike_times.npy").exists():
        raise FileExistsError(f"{out} already contains a dataset (spike_times.npy)")

    build = _build_model_drift if drift else _build_model
    model, pos = build(n_spikes, n_templates, seed, n_channels, sample_rate, n_samples)
    templates = model.templates
    sim = _similarity(templates)

    # -- static files
    (out / "params.py").write_text(
        "dat_path = 'raw.dat'\n"
        f"n_channels_dat = {n_channels}\n"
        "dtype = 'int16'\n"
        "offset = 0\n"
        f"sample_rate = {sample_rate!r}\n"
        "hp_filtered = False\n"
    )
    np.save(out / "templates.npy", templates)
    cmap = np.arange(n_channels, dtype=np.int32)
    np.save(out / "channel_map.npy", cmap[:, None] if legacy_quirks else cmap)
    np.save(out / "channel_positions.npy", pos)
    np.save(out / "channel_shanks.npy", np.zeros(n_channels, dtype=np.int32))
    np.save(out / "similar_templates.npy", sim)
    np.save(out / "whitening_mat.npy", np.eye(n_channels, dtype=np.float64))
    np.save(out / "whitening_mat_inv.npy", np.eye(n_channels, dtype=np.float64))
    if legacy_quirks:
        np.save(
            out / "templates_ind.npy",
            np.tile(np.arange(n_channels, dtype=np.float64), (n_templates, 1)),
        )

    # -- streamed per-spike files
    col = (n_spikes, 1) if legacy_quirks else (n_spikes,)
    tmp_times = out / ".spike_times.npy.partial"
    writers = [
        _NpyWriter(tmp_times, np.uint64 if legacy_quirks else np.int64, col),
        _NpyWriter(out / "spike_templates.npy", np.uint32 if legacy_quirks else np.int32, col),
        _NpyWriter(out / "amplitudes.npy", np.float64 if legacy_quirks else np.float32, col),
    ]
    n_pc_ch = min(12, n_channels)
    n_tf = min(8, n_templates)
    if pc_features:
        pc_ind, proj, tf_ind, tf_mean = _pc_setup(templates, pos, sim, n_pc_ch, n_tf)
        np.save(out / "pc_feature_ind.npy", pc_ind.astype(np.uint32))
        np.save(out / "template_feature_ind.npy", tf_ind.astype(np.uint32))
        # mean amplitude scaling of every template's source sets the feature noise scale
        amp_t = np.repeat(model.amp_mean, model.k)[np.argsort(model.tpl_flat)]
        pc_sd = 0.08 * amp_t * np.abs(proj).max(axis=(1, 2)) + 1e-3
        tf_sd = 0.05 * amp_t + 1e-3
        writers.append(_NpyWriter(out / "pc_features.npy", np.float32, (n_spikes, 3, n_pc_ch)))
        writers.append(_NpyWriter(out / "template_features.npy", np.float32, (n_spikes, n_tf)))

    positions = _SpikePositions(model, pos, seed) if drift else None
    if positions is not None:  # Kilosort 4's per-spike positions
        writers.append(_NpyWriter(out / "spike_positions.npy", np.float32, (n_spikes, 2)))
    n_src = model.refr.shape[0]
    rng_state = np.random.SeedSequence([seed, 0x591C3]).generate_state(n_src, dtype=np.uint64)
    next_t = np.zeros(n_src, dtype=np.int64)
    next_tpl = np.zeros(n_src, dtype=np.int32)
    next_amp = np.zeros(n_src, dtype=np.float64)
    count = np.zeros(n_templates, dtype=np.int64)
    amp_sum = np.zeros(n_templates, dtype=np.float64)
    last_t = np.full(n_templates, -1, dtype=np.int64)
    viol = np.zeros(n_templates, dtype=np.int64)
    viol_win = int(round(_VIOLATION_S * sample_rate))
    src = (
        rng_state,
        model.refr,
        model.isi_mean,
        model.mode,
        model.start,
        model.k,
        model.amp_mean,
        _AMP_CV,
        model.jitter,
        model.cuts,
        model.tpl_flat,
        *model.drift_arrays(),
    )
    state = (next_t, next_tpl, next_amp)
    _init_sources(*src, *state)

    # time windows expected to hold `target` spikes; buffers with ample headroom (a window
    # that overflows them is retried at half its length)
    target = min(_CHUNK, n_spikes)
    window = max(1, int(math.ceil((1.02 * target + 64) / model.total_rate * sample_rate)))
    cap = int(_CAP_HEADROOM * target) + _CAP_EXTRA
    gen = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.float64))
    # two sorted buffers: a writer thread writes chunk i while chunk i + 1 is generated
    srts = [
        (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.float64))
        for _ in range(2)
    ]
    hist = np.empty(cap + 1, dtype=np.int64)
    shape1 = (lambda m: (m, 1)) if legacy_quirks else (lambda m: (m,))

    def write_chunk(i_chunk: int, m: int, srt: tuple[np.ndarray, ...], first: int = 0) -> None:
        st, stpl, samp = srt[0][:m], srt[1][:m], srt[2][:m]
        writers[0].write(st.reshape(shape1(m)))
        writers[1].write(stpl.reshape(shape1(m)))
        writers[2].write(samp.reshape(shape1(m)))
        if pc_features:
            _write_features(
                writers[3], writers[4], i_chunk, stpl, samp, proj, pc_sd, tf_mean, tf_sd, seed
            )
        if positions is not None:
            writers[-1].write(positions.chunk(first, st, stpl))

    done = 0
    written = 0
    t0 = 0
    i_chunk = 0
    last_sample = 0
    pending: tuple[Future[None], int] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            while done < n_spikes:
                saved = (rng_state.copy(), *(a.copy() for a in state))
                while True:
                    n = _gen_window(t0 + window, *gen, *src, *state)
                    if n >= 0:
                        break
                    for dst, val in zip((rng_state, *state), saved, strict=True):
                        dst[:] = val
                    window = max(1, window // 2)
                t1 = t0 + window
                # this buffer's previous write (chunk i - 2) was awaited during chunk i - 1
                srt = srts[i_chunk % 2]
                _sort_window(n, t0, t1, *gen, *srt, hist)
                m = min(n, n_spikes - done)
                first = done
                _accumulate(m, srt[0], srt[1], srt[2], count, amp_sum, last_t, viol, viol_win)
                if m:
                    last_sample = int(srt[0][m - 1])
                    done += m
                if pending is not None:
                    pending[0].result()
                    written += pending[1]
                    if progress is not None:
                        progress(written, n_spikes)
                pending = (pool.submit(write_chunk, i_chunk, m, srt, first), m) if m else None
                t0 = t1
                i_chunk += 1
            if pending is not None:
                pending[0].result()
                written += pending[1]
                if progress is not None:
                    progress(written, n_spikes)
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            w.abort()
        raise
    os.replace(tmp_times, out / "spike_times.npy")

    # -- sorter columns
    duration_samples = last_sample + 1
    ptp_max = (templates.max(axis=1) - templates.min(axis=1)).max(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_amp = np.where(count > 0, amp_sum / np.maximum(count, 1), 0.0)
        contam = np.where(
            count > 1,
            100.0 * viol * duration_samples / (count.astype(np.float64) ** 2 * viol_win),
            100.0,
        )
    contam = np.minimum(contam, 100.0)
    ks_label = ["good" if c < 10.0 else "mua" for c in contam]
    _write_tsv(out / "cluster_KSLabel.tsv", "KSLabel", ks_label)
    _write_tsv(out / "cluster_group.tsv", "group", ks_label)
    _write_tsv(out / "cluster_ContamPct.tsv", "ContamPct", [f"{c:.1f}" for c in contam])
    _write_tsv(out / "cluster_Amplitude.tsv", "Amplitude", [f"{a:.1f}" for a in mean_amp * ptp_max])

    truth = {
        "format": TRUTH_FORMAT,
        "version": TRUTH_VERSION,
        "seed": int(seed),
        "n_spikes": n_spikes,
        "sample_rate": sample_rate,
        "refractory_ms": _REFRACTORY_S * 1e3,
        "unit_of_template": [int(u) for u in model.unit_of_template],
        "noise_templates": model.noise_templates,
        "units": model.units,
    }
    if model.truth_extra:
        truth.update(model.truth_extra)
    (out / TRUTH_FILE).write_text(json.dumps(truth, indent=1) + "\n")

    empty = np.flatnonzero(count == 0)
    if empty.size:
        warnings.warn(
            f"{empty.size} template(s) got no spike (too few spikes per template)",
            RuntimeWarning,
            stacklevel=2,
        )
    raw_path, raw_size = None, raw_bytes(last_sample + n_samples, n_channels)
    if recording or (recording is None and raw_size <= max_recording_bytes):
        raw_path = write_recording(out, seed=seed, progress=recording_progress)
    return SynthInfo(
        path=out,
        n_spikes=n_spikes,
        n_templates=n_templates,
        n_units=len(model.units),
        n_channels=n_channels,
        sample_rate=sample_rate,
        duration=duration_samples / sample_rate,
        unit_of_template=model.unit_of_template.copy(),
        recording=raw_path,
        recording_bytes=raw_size,
    )


def _write_features(
    pc_writer: _NpyWriter,
    tf_writer: _NpyWriter,
    i_chunk: int,
    tpl: np.ndarray,
    amp: np.ndarray,
    proj: np.ndarray,
    pc_sd: np.ndarray,
    tf_mean: np.ndarray,
    tf_sd: np.ndarray,
    seed: int,
) -> None:
    """PC and template features of one chunk of spikes, appended to the writers.

    A spike's features are its template's mean features scaled by its amplitude, plus
    Gaussian noise (``pc_sd`` / ``tf_sd`` per template), from a stream seeded by
    ``(seed, chunk, block)``; blocks of ``_FEATURE_BLOCK`` spikes bound the temporaries.
    """
    n = tpl.shape[0]
    for i in range(0, n, _FEATURE_BLOCK):
        end = min(n, i + _FEATURE_BLOCK)
        r = np.random.default_rng(np.random.SeedSequence([seed, 0xFEA7, i_chunk, i]))
        t = tpl[i:end]
        a = amp[i:end]
        pcn = r.standard_normal((end - i,) + proj.shape[1:], dtype=np.float32)
        pc = proj[t] * a[:, None, None] + pcn * pc_sd[t][:, None, None]
        tfn = r.standard_normal((end - i, tf_mean.shape[1]), dtype=np.float32)
        tf = tf_mean[t] * a[:, None] + tfn * tf_sd[t][:, None]
        pc_writer.write(pc.astype(np.float32))
        tf_writer.write(tf.astype(np.float32))
