"""Quality metrics against their definitions, SpikeInterface (when installed) and phylib."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curalog.analysis.stats.correlograms import make_bins
from curalog.analysis.stats.metrics import (
    MetricParams,
    StatsContext,
    _select_median,
    _uniform_histogram,
    amplitude_cutoff,
    compute_cluster_stats,
    dominant_template,
    gaussian_smooth_nearest,
    isi_violations_ratio,
    rp_contamination,
)


class FakeDataset:
    """The Dataset attributes the statistics read, in memory."""

    def __init__(
        self,
        spike_times,
        spike_templates,
        *,
        sample_rate=10_000.0,
        amplitudes=None,
        templates=None,
        template_channels=None,
        n_channels=4,
        duration=None,
        similar_templates=None,
        sorter_columns=None,
    ):
        self.spike_times = np.asarray(spike_times, dtype=np.int64)
        self.spike_templates = np.asarray(spike_templates, dtype=np.int32)
        self.sample_rate = float(sample_rate)
        self.n_templates = (
            int(self.spike_templates.max()) + 1 if templates is None else templates.shape[0]
        )
        self.amplitudes = amplitudes
        self.templates = templates
        self.template_channels = template_channels
        self.channel_map = np.arange(n_channels) + 100
        self.channel_positions = np.column_stack(
            [np.zeros(n_channels), 20.0 * np.arange(n_channels)]
        )
        self.channel_shanks = np.zeros(n_channels, dtype=np.int64)
        self.similar_templates = similar_templates
        self.sorter_columns = sorter_columns or {}
        last = float(self.spike_times[-1]) / self.sample_rate if len(self.spike_times) else 1.0
        self.duration = duration if duration is not None else max(1.0, last)

    @property
    def n_spikes(self) -> int:
        return int(self.spike_templates.shape[0])

    def optional_array(self, name):
        return None


def _ctx(ds, **kw) -> StatsContext:
    return StatsContext(ds, make_bins(ds.sample_rate), MetricParams(**kw), duration=ds.duration)


def brute_isi(t, fs, thr_s):
    ts = t / fs
    return int(np.sum(np.diff(ts) < thr_s))


def brute_rp(t, t_r):
    return sum(1 for i in range(len(t)) for j in range(i + 1, len(t)) if t[j] - t[i] <= t_r)


@st.composite
def trains(draw):
    n = draw(st.integers(1, 200))
    gaps = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
    t = np.cumsum(np.asarray(gaps, dtype=np.int64))
    tmpl = np.asarray(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.int32)
    amps = np.asarray(draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=n, max_size=n)))
    return t, tmpl, amps


@settings(max_examples=150, deadline=None)
@given(trains(), st.sampled_from([0.5, 1.5, 2.0]), st.sampled_from([0.5, 1.0, 3.0]))
def test_spike_metrics_against_definitions(data, isi_ms, rp_ms):
    t, tmpl, amps = data
    fs = 10_000.0
    ds = FakeDataset(t + 5, np.zeros_like(tmpl), sample_rate=fs, amplitudes=amps, duration=200.0)
    ctx = _ctx(ds, isi_threshold_ms=isi_ms, refractory_period_ms=rp_ms, presence_bin_s=30.0)
    spikes = np.arange(len(t))[::2] if len(t) > 3 else np.arange(len(t))
    s = compute_cluster_stats(ctx, 7, spikes)
    tt = ds.spike_times[spikes]
    n = len(spikes)
    assert s.n_spikes == n
    assert s.firing_rate == pytest.approx(n / 200.0)
    nv = brute_isi(tt, fs, isi_ms / 1000)
    assert s.isi_violations_count == nv
    assert s.isi_violations_ratio == pytest.approx(nv * 200.0 / (2 * n * n * isi_ms / 1000))
    t_r = int(round(rp_ms * fs / 1000))
    assert s.rp_violations == brute_rp(tt, t_r)
    assert (math.isnan(s.rp_contamination) and n <= 1) or s.rp_contamination == pytest.approx(
        rp_contamination(brute_rp(tt, t_r), n, 2_000_000, 0, t_r), nan_ok=True
    )
    # presence: 30 s bins over 200 s -> 6 full bins (the last partial one is dropped)
    counts = np.histogram(tt, bins=np.arange(0, 6 * 300_000 + 1, 300_000))[0]
    assert s.presence_ratio == pytest.approx(np.count_nonzero(counts) / 6)
    np.testing.assert_array_equal(s.presence_counts, counts)
    assert s.amplitude_median == np.median(amps[spikes])  # exactly numpy's
    # sparkline series: 40 bins of 5 s
    sc = np.bincount(np.minimum(tt * 40 // 2_000_000, 39), minlength=40)
    np.testing.assert_array_equal(s.series_counts, sc)
    np.testing.assert_allclose(s.fr_series, sc / 5.0)
    assert np.all(np.isnan(s.amp_series[sc == 0]))


def test_formulas_edge_cases():
    assert math.isnan(isi_violations_ratio(0, 0, 10.0, 0.0015, 0.0))
    assert isi_violations_ratio(3, 10, 100.0, 0.0015, 0.0) == pytest.approx(
        3 * 100 / (2 * 100 * 0.0015)
    )
    assert math.isnan(rp_contamination(0, 1, 1000, 0, 10))
    assert rp_contamination(0, 10, 1000, 0, 10) == 0.0
    assert rp_contamination(10_000, 10, 1000, 0, 10) == 1.0  # negative radicand
    n_v, n, ts, tr = 1, 100, 100_000, 30
    assert rp_contamination(n_v, n, ts, 0, tr) == pytest.approx(
        1 - math.sqrt(1 - n_v * ts / (n * n * tr))
    )
    assert dominant_template(np.array([2, 5, 7]), np.array([3, 4, 4])) == 5  # tie -> smaller id
    assert dominant_template(np.zeros(0, dtype=np.int32), np.zeros(0)) is None


def test_presence_nan_when_shorter_than_a_bin():
    ds = FakeDataset(np.arange(10) * 1000, np.zeros(10), duration=30.0)
    s = compute_cluster_stats(_ctx(ds), 0, np.arange(10))
    assert math.isnan(s.presence_ratio)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=300), st.integers(1, 120)
)
def test_uniform_histogram_is_numpys(values, n_bins):
    a = np.asarray(values)
    lo, hi = a.min(), a.max()
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, n_bins + 1)
    np.testing.assert_array_equal(_uniform_histogram(a, edges), np.histogram(a, n_bins)[0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=150), st.sampled_from([1.0, 2.5, 3.0]))
def test_gaussian_smoothing_matches_scipy(h, sigma):
    ndimage = pytest.importorskip("scipy.ndimage")
    h = np.asarray(h, dtype=np.int64)
    np.testing.assert_allclose(
        gaussian_smooth_nearest(h, sigma),
        ndimage.gaussian_filter1d(h.astype(np.float64), sigma, mode="nearest"),
        rtol=1e-12,
        atol=1e-12,
    )
    # the integer truncation SpikeInterface gets from filtering an integer histogram
    np.testing.assert_array_equal(
        np.trunc(gaussian_smooth_nearest(h, sigma)),
        ndimage.gaussian_filter1d(h, sigma, mode="nearest"),
    )


def test_amplitude_cutoff_behaviour():
    rng = np.random.default_rng(0)
    full = rng.normal(10, 2, 20_000)
    assert amplitude_cutoff(full) < 0.02
    cut = full[full > 9]  # about 30 % missing below the threshold
    assert 0.2 < amplitude_cutoff(cut) <= 0.5
    assert math.isnan(amplitude_cutoff(full[:499]))  # N / 100 bins < 5
    assert amplitude_cutoff(-cut) == amplitude_cutoff(cut)  # negative amplitudes flipped
    assert amplitude_cutoff(np.full(600, 3.0)) == 0.0


# ---------------------------------------------------------------------- SpikeInterface
def _si_misc():
    pytest.importorskip("spikeinterface")
    for name in (
        "spikeinterface.metrics.quality.misc_metrics",
        "spikeinterface.qualitymetrics.misc_metrics",
    ):
        try:
            return __import__(name, fromlist=["isi_violations"])
        except ImportError:
            continue
    pytest.skip("no SpikeInterface misc_metrics module")


@settings(max_examples=80, deadline=None)
@given(trains(), st.floats(0.5, 3.0), st.floats(0.0, 0.4))
def test_agrees_with_spikeinterface(data, isi_ms, min_isi_ms):
    mm = _si_misc()
    t, tmpl, amps = data
    fs = 30_000.0
    t = t * 3
    dur = max(200.0, float(t[-1]) / fs + 1)
    amps = np.abs(amps) + 1 + np.arange(len(amps)) % 7
    ds = FakeDataset(t, tmpl, sample_rate=fs, amplitudes=amps, duration=dur)
    ctx = _ctx(ds, isi_threshold_ms=isi_ms, min_isi_ms=min_isi_ms, presence_bin_s=60.0)
    sp = np.arange(len(t))
    s = compute_cluster_stats(ctx, 0, sp)
    total = ctx.total_samples
    ratio, _, count = mm.isi_violations([t / fs], total / fs, isi_ms / 1000, min_isi_ms / 1000)
    assert s.isi_violations_count == count
    assert s.isi_violations_ratio == pytest.approx(ratio, rel=1e-12)
    t_r = int(round(1.0 * fs * 1e-3))
    n_v = mm._compute_nb_violations_numba(t, t_r)
    assert s.rp_violations == n_v
    assert s.rp_contamination == pytest.approx(
        mm._compute_rp_contamination_one_unit(n_v, len(t), total, 0, t_r), nan_ok=True
    )
    b = int(60.0 * fs)
    edges = np.arange(0, total // b * b + 1, b)
    assert s.presence_ratio == pytest.approx(mm.presence_ratio(t, bin_edges=edges), nan_ok=True)
    big = np.tile(amps, 600 // len(amps) + 1)
    assert amplitude_cutoff(big) == pytest.approx(mm.amplitude_cutoff(big, 100, 3, 5), nan_ok=True)


def test_amplitude_cutoff_agrees_with_spikeinterface_on_gaussians():
    mm = _si_misc()
    rng = np.random.default_rng(3)
    for k in range(30):
        a = rng.normal(20, 4, rng.integers(400, 5000))
        a = a[a > rng.uniform(5, 22)]
        ours, theirs = amplitude_cutoff(a), mm.amplitude_cutoff(a, 100, 3, 5)
        assert ours == pytest.approx(theirs, nan_ok=True), k


# ---------------------------------------------------------------------- phy's columns
def test_best_channels_dense_rules():
    """12 closest channels on the best channel's shank, by decreasing peak-to-peak."""
    n_ch, ns = 16, 10
    templates = np.zeros((2, ns, n_ch), dtype=np.float32)
    wave = np.sin(np.linspace(0, 2 * np.pi, ns))
    for c in range(n_ch):
        templates[0, :, c] = wave * (10 - abs(c - 6))  # peak at channel 6
    templates[1, :, 15] = -5 * wave
    ds = FakeDataset(np.arange(6) * 10, [0, 0, 0, 1, 1, 0], templates=templates, n_channels=n_ch)
    ds.channel_shanks = (np.arange(n_ch) >= 8).astype(np.int64)  # channels 8.. on shank 1
    s0 = compute_cluster_stats(_ctx(ds), 0, np.array([0, 1, 2, 5]))
    assert s0.template == 0 and s0.best_channel == 6 and s0.ch == "106" and s0.shank == 0
    assert s0.depth == 120.0
    assert list(s0.best_channels) == [6, 5, 7, 4, 3, 2, 1, 0]  # shank 0 only, ties -> lower
    assert s0.template_amplitude == pytest.approx(10 * (wave.max() - wave.min()), rel=1e-6)
    s1 = compute_cluster_stats(_ctx(ds), 1, np.array([3, 4]))
    assert s1.best_channel == 15 and s1.shank == 1


def test_phy_template_columns_against_phylib(phy_template):
    from curalog.analysis.stats import StatsEngine
    from curalog.clustering import ClusterState
    from curalog.dataset import load_dataset

    ds = load_dataset(phy_template)
    eng = StatsEngine(ds, ClusterState(ds.spike_templates))
    rows = {r["id"]: r for r in eng.table_rows()}
    assert len(rows) == 62 and sum(r["n_spikes"] for r in rows.values()) == 314
    # no raw file beside it: the recording's length is the last spike + 1 s (SpikeInterface)
    assert eng.ctx.duration_source == "last spike + 1 s"
    assert eng.ctx.duration == pytest.approx(ds.duration + 1.0, abs=1.0 / ds.sample_rate)
    assert all(
        r["firing_rate"] == pytest.approx(r["n_spikes"] / eng.ctx.duration) for r in rows.values()
    )
    assert math.isnan(rows[0]["presence_ratio"])  # 11.9 s < one 60 s bin
    model_mod = pytest.importorskip("phylib.io.model")
    model = model_mod.load_model(phy_template / "params.py")
    for cid, r in rows.items():
        tm = model.get_template(cid)
        assert list(eng.get(cid).best_channels) == list(tm.channel_ids)
        assert r["best_channel"] == int(tm.best_channel)
        assert r["ch"] == str(model.channel_mapping[tm.best_channel])
        assert r["depth"] == float(model.channel_positions[tm.best_channel, 1])
        amp = float((tm.template.max(0) - tm.template.min(0)).max())
        assert r["template_amplitude"] == pytest.approx(amp, rel=1e-5)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1.0, -2.5])),
        min_size=1,
        max_size=400,
    )
)
def test_select_median_is_numpys_exactly(values):
    a = np.asarray(values, dtype=np.float64)
    assert _select_median(a, a.min(), a.max()) == np.median(a)
