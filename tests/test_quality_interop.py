"""Each quality metric equals SpikeInterface 0.105's own value on the same data.

Spike-train and amplitude metrics: ``compute_quality_metrics`` on the analyzer SpikeInterface
itself builds from the folder (``read_kilosort_as_analyzer``, no recording, so its duration
is the last spike + 1 s like curalog's fallback), with ``amplitudes.npy`` attached as the
``spike_amplitudes`` extension. PC and template metrics: SpikeInterface's metric functions
(``mahalanobis_metrics``, ``d_prime_metric``, ``nearest_neighbors_metrics``,
``simplified_silhouette_score``, ``get_trough_and_peak_idx`` + the waveform functions) on
the very point sets / mean templates curalog chose (the selection rule is curalog's,
documented in quality_pc; the formulas are what is compared).

Tolerances, per metric, and why:

* exact (``rtol 1e-9``): counts, ratios, percentiles, cutoffs, sliding RP, firing range,
  presence, amplitude CV (``1e-12`` absolute: SpikeInterface's ``np.std`` sums in another
  order), template metrics;
* drift_*: ``1e-4`` µm absolute: SpikeInterface takes medians of the float32 positions in
  float32, curalog in float64;
* isolation_distance, l_ratio: ``rtol 1e-6``: same formula, curalog's quadratic form vs
  scipy's ``cdist(..., "mahalanobis")``;
* d_prime: ``rtol 1e-6`` on the magnitude: scikit-learn's LDA axis sign is arbitrary (an
  SVD's), curalog orients it so d' >= 0;
* nn rates: exact unless two neighbours are equidistant (never with continuous features);
* silhouette: ``rtol 1e-9``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from curalog import open_curation
from curalog.analysis.stats.engine import StatsEngine
from curalog.analysis.stats.template_metrics import mean_template

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parents[1]


def _shared(name: str) -> Path:
    for base in (REPO.parent / "shared" / "data", REPO.parents[1] / "shared" / "data"):
        if (base / name).is_dir():
            return base / name
    pytest.skip(f"../shared/data/{name} is not beside the repository")


SPIKE_METRICS = [
    "presence_ratio",
    "isi_violation",
    "rp_violation",
    "firing_range",
    "amplitude_cv",
    "amplitude_cutoff",
    "noise_cutoff",
    "sliding_rp_violation",
    "drift",
    "firing_rate",
]
EXACT = {"rtol": 1e-9, "atol": 1e-12}
TOL = {
    "drift_ptp": {"rtol": 0, "atol": 1e-4},
    "drift_std": {"rtol": 0, "atol": 1e-4},
    "drift_mad": {"rtol": 0, "atol": 1e-4},
}


def _si_analyzer(folder: Path):
    pytest.importorskip("spikeinterface")
    pytest.importorskip("pandas")
    from spikeinterface.extractors import read_kilosort_as_analyzer
    from spikeinterface.postprocessing import ComputeSpikeAmplitudes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        an = read_kilosort_as_analyzer(folder)
    amps = np.load(folder / "amplitudes.npy").reshape(-1)
    clusters = np.load(folder / "spike_clusters.npy").reshape(-1)
    data = np.zeros(amps.shape[0])
    where = an.sorting.get_spike_vector_to_indices()[0]
    for u in an.sorting.unit_ids:  # each unit's spikes in time order on both sides
        data[where[u]] = amps[clusters == u]
    ext = ComputeSpikeAmplitudes(an)
    ext.data = {"amplitudes": data}
    ext.params = {}
    ext.run_info = {"run_completed": True}
    an.extensions["spike_amplitudes"] = ext
    return an


def _our_rows(folder: Path) -> tuple[StatsEngine, dict[int, dict]]:
    cur = open_curation(folder, readonly=True)
    eng = StatsEngine(cur.dataset, cur.state)
    return eng, {r["id"]: r for r in eng.table_rows()}


def _compare(qm, rows) -> list[str]:
    bad = []
    for col in qm.columns:
        theirs = qm[col].to_numpy(dtype=float)
        ours = np.array([rows[int(u)].get(col, np.nan) for u in qm.index], dtype=float)
        tol = TOL.get(col, EXACT)
        same_nan = np.isnan(ours) == np.isnan(theirs)
        close = np.isclose(ours, theirs, equal_nan=True, **tol)
        if not (same_nan.all() and close.all()):
            i = int(np.flatnonzero(~(same_nan & close))[0])
            bad.append(f"{col}: unit {qm.index[i]} ours {ours[i]!r} SpikeInterface {theirs[i]!r}")
    return bad


def _spike_metrics_case(folder: Path) -> None:
    import spikeinterface.full as si

    an = _si_analyzer(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = si.compute_quality_metrics(an, metric_names=SPIKE_METRICS, skip_pc_metrics=True)
    eng, rows = _our_rows(folder)
    assert eng.ctx.total_samples == an.get_total_samples()
    assert set(qm.columns) >= {"drift_ptp", "sliding_rp_violation", "noise_cutoff"}
    assert _compare(qm, rows) == []


def test_spike_metrics_equal_spikeinterface_on_ks4(tmp_path):
    _spike_metrics_case(_shared("ks4-drift-train"))


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    from curalog.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "ds"
    synthesize(out, n_spikes=60_000, n_templates=16, seed=3, n_channels=32, pc_features=True)
    clusters = np.load(out / "spike_templates.npy")
    np.save(out / "spike_clusters.npy", clusters)  # read_phy needs it
    return out


def test_spike_metrics_equal_spikeinterface_on_synthetic(synth_folder):
    pytest.importorskip("spikeinterface")
    # no spike_positions.npy: drift comes from PC-weighted depths, which SpikeInterface's
    # reader does not have; everything else is compared
    import spikeinterface.full as si

    an = _si_analyzer(synth_folder)
    names = [m for m in SPIKE_METRICS if m != "drift"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = si.compute_quality_metrics(an, metric_names=names, skip_pc_metrics=True)
    _, rows = _our_rows(synth_folder)
    assert np.isfinite(qm["presence_ratio"]).all()
    assert _compare(qm, rows) == []


def _pc_case(folder: Path, min_clusters: int) -> None:
    pytest.importorskip("spikeinterface")
    pytest.importorskip("sklearn")
    from spikeinterface.metrics.quality.pca_metrics import (
        d_prime_metric,
        mahalanobis_metrics,
        nearest_neighbors_metrics,
        simplified_silhouette_score,
    )

    eng, rows = _our_rows(folder)
    pcs = eng.ctx.quality.pcs
    checked = 0
    for cid, row in rows.items():
        pc = eng.quality(cid)[1]
        if pc is None or pc.self_spikes.shape[0] < 30 or pc.other_spikes.shape[0] < 30:
            continue
        x = pcs.gather(pc.self_spikes, pc.channels)
        y = pcs.gather(pc.other_spikes, pc.channels)
        lab = np.asarray(eng.state.clusters_of(pc.other_spikes))
        all_pcs = np.concatenate([x, y])
        all_labels = np.concatenate([np.full(x.shape[0], cid), lab])
        iso, lr = mahalanobis_metrics(all_pcs, all_labels, cid)
        assert row["isolation_distance"] == pytest.approx(iso, rel=1e-6)
        assert row["l_ratio"] == pytest.approx(lr, rel=1e-6, abs=1e-12)
        dp = d_prime_metric(all_pcs, all_labels, cid)
        assert row["d_prime"] == pytest.approx(abs(dp), rel=1e-6)
        hit, miss = nearest_neighbors_metrics(all_pcs, all_labels, cid, 10_000, 5)
        assert row["nn_hit_rate"] == pytest.approx(hit, abs=1e-12)
        assert row["nn_miss_rate"] == pytest.approx(miss, abs=1e-12)
        sil = simplified_silhouette_score(all_pcs, all_labels, cid)
        assert row["silhouette"] == pytest.approx(sil, rel=1e-9)
        checked += 1
    assert checked >= min_clusters


def test_pc_metrics_equal_spikeinterface_functions_on_ks4():
    _pc_case(_shared("ks4-drift-train"), 40)


def test_pc_metrics_equal_spikeinterface_functions_on_synthetic(synth_folder):
    _pc_case(synth_folder, 8)


def _template_case(folder: Path, min_clusters: int) -> None:
    pytest.importorskip("spikeinterface")
    from scipy.signal import resample_poly
    from spikeinterface.metrics.template.metrics import (
        get_half_widths,
        get_peak_to_trough_duration,
        get_repolarization_slope,
        get_trough_and_peak_idx,
    )

    eng, rows = _our_rows(folder)
    fs = eng.ctx.sample_rate
    checked = 0
    for cid, row in rows.items():
        e = eng.get(cid)
        wave = mean_template(eng.ctx.geometry, e.template_ids, e.template_counts, e.best_channel)
        up = resample_poly(wave, up=10, down=1)
        info = get_trough_and_peak_idx(up, fs * 10, 0.3, 0.09, 0.2, 3)
        if info["trough_index"] < 0 or info["peak_after_index"] < 0:
            continue  # SpikeInterface indexes with -1 there; curalog reports NaN
        assert row["peak_to_trough_duration"] == pytest.approx(
            get_peak_to_trough_duration(info, fs * 10), rel=1e-12
        )
        thw, phw = get_half_widths(up, fs * 10, info)
        np.testing.assert_allclose(
            [row["trough_half_width"], row["peak_half_width"]], [thw, phw], rtol=1e-12
        )
        np.testing.assert_allclose(
            row["repolarization_slope"], get_repolarization_slope(up, fs * 10, info), rtol=1e-9
        )
        checked += 1
    assert checked >= min_clusters


def test_template_metrics_equal_spikeinterface_on_ks4():
    _template_case(_shared("ks4-drift-train"), 40)


def test_template_metrics_equal_spikeinterface_on_phy_template():
    _template_case(_shared("phy-template"), 20)


@pytest.fixture(scope="module")
def synth_with_raw(tmp_path_factory) -> Path:
    from curalog.synth import synthesize

    out = tmp_path_factory.mktemp("raw") / "ds"
    synthesize(out, n_spikes=20_000, n_templates=10, seed=4, n_channels=24, recording=True)
    return out


@pytest.fixture(scope="module")
def si_on_raw(synth_with_raw):
    """curalog's rows and SpikeInterface's analyzer of the same synthetic folder and raw
    recording: the file read with its gain (µV), the same channels and probe, SpikeInterface's
    own order-3 150 Hz Butterworth high-pass, curalog's best channels as main channels,
    500 random spikes per unit, 1 ms / 2 ms templates, noise levels and spike amplitudes."""
    pytest.importorskip("spikeinterface")
    import spikeinterface.full as si
    from probeinterface import Probe

    folder = synth_with_raw
    with open_curation(folder, readonly=True) as cur:
        assert cur.recording is not None
        eng = StatsEngine(cur.dataset, cur.state, recording=cur.recording)
        rows = {r["id"]: r for r in eng.table_rows()}
        assert eng.ctx.duration_source == "raw file"
        rec0 = cur.recording
        times = np.asarray(cur.dataset.spike_times)
        labels = np.asarray(cur.dataset.spike_templates)
        fs = float(cur.dataset.sample_rate)
        positions = np.asarray(cur.dataset.channel_positions, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = si.read_binary(
            folder / "raw.dat",
            sampling_frequency=fs,
            dtype=rec0.dtype.name,
            num_channels=rec0.n_channels_dat,
            gain_to_uV=rec0.uv_per_unit,
            offset_to_uV=0.0,
        )
        rec = rec.select_channels(rec.channel_ids[rec0.channel_map])
        probe = Probe(si_units="um")
        probe.set_contacts(positions)
        probe.set_device_channel_indices(np.arange(rec0.n_channels))
        rec.set_probe(probe, in_place=True)
        rec = si.highpass_filter(rec, freq_min=150.0, filter_order=3, ftype="butter")
        sorting = si.NumpySorting.from_samples_and_labels([times], [labels], fs)
        units = sorting.unit_ids
        main = np.array([rows[int(u)]["best_channel"] for u in units])
        an = si.create_sorting_analyzer(sorting, rec, sparse=False, main_channel_indices=main)
        an.compute("random_spikes", max_spikes_per_unit=500, seed=0)
        an.compute("templates", ms_before=1.0, ms_after=2.0)
        an.compute("noise_levels")
        an.compute("spike_amplitudes")
    return rows, an, units, rec0


def _si_metrics(an, names):
    import spikeinterface.full as si

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return si.compute_quality_metrics(an, metric_names=names)


def test_snr_and_amplitude_median_against_spikeinterface(si_on_raw):
    """snr: SpikeInterface picks its own 500 random spikes per unit and its own random noise
    chunks, and filters with its own implementation of the same Butterworth high-pass, so
    the values agree to sampling error only: 5 % per unit (about 1 % typical). The main
    channel is given to SpikeInterface (curalog's best channel), so both use the same one.
    amplitude_median: SpikeInterface takes every spike's amplitude at the template's peak
    sample; curalog 500 of them at the mean waveform's extremum: 5 %."""
    rows, an, units, rec0 = si_on_raw
    qm = _si_metrics(an, ["snr", "amplitude_median"])
    ours = np.array([rows[int(u)]["snr"] for u in units])
    theirs = qm["snr"].to_numpy(dtype=float)
    np.testing.assert_allclose(ours, theirs, rtol=0.05)
    ours = np.array([rows[int(u)]["amplitude_median"] for u in units])
    theirs = qm["amplitude_median"].to_numpy(dtype=float)
    np.testing.assert_allclose(ours, theirs, rtol=0.05)  # both in µV (uv_per_bit given)
    # the raw amplitude: the peak-to-peak of the mean waveform SpikeInterface's snr uses
    assert rec0.uv_per_unit is not None
    for u in units:
        r = rows[int(u)]
        assert r["raw_amplitude_uv"] > abs(r["amplitude_median"]) * 0.9


def test_sd_ratio_against_spikeinterface(si_on_raw):
    """sd_ratio: SpikeInterface's ``compute_sd_ratio`` with its defaults (4 ms censoring,
    drift and template corrections) on the same filtered recording and main channels.
    SpikeInterface takes every kept spike (about 2,000 per unit here), curalog 500 of them:
    an SD from 500 amplitudes has a relative standard error of ~3 %, and the noise chunks
    differ, so 8 % per unit and 3 % on the mean (measured: at most 3.2 %, 1.3 % mean)."""
    rows, an, units, _ = si_on_raw
    qm = _si_metrics(an, ["sd_ratio"])
    ours = np.array([rows[int(u)]["sd_ratio"] for u in units], dtype=float)
    theirs = qm["sd_ratio"].to_numpy(dtype=float)
    assert np.isfinite(theirs).all() and np.isfinite(ours).all()
    rel = np.abs(ours - theirs) / theirs
    print("sd_ratio relative differences:", np.round(rel, 3))
    assert rel.max() < 0.08, (ours, theirs)
    assert rel.mean() < 0.03, (ours, theirs)


def test_censoring_keeps_first_iteratively():
    from curalog.analysis.stats.quality_recording import censor_keep_first

    t = np.array([0, 50, 100, 130, 250, 251, 400], dtype=np.int64)
    # period 120: 0 kept; 50, 100 within 120 of 0; 130 > 120 from 0 -> kept; 250 within 120 of
    # 130; 251 > 120 from 130 -> kept; 400 kept
    assert censor_keep_first(t, 120).tolist() == [True, False, False, True, False, True, True]
    assert censor_keep_first(t[:0], 120).tolist() == []
