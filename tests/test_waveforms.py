"""Cluster waveforms (curalog.waveforms): best channels, spike sampling, synthetic truth, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import curalog
from curalog.errors import InvalidActionError
from curalog.synth.generator import synthesize
from curalog.synth.recording import NOISE_UV, UV_PER_BIT, UV_PER_TEMPLATE_UNIT
from curalog.templates import TemplateGeometry
from curalog.waveforms import sample_spikes, waveform_window


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wf") / "synth"
    info = synthesize(out, 4_000, 10, seed=2, n_channels=32, recording=True)
    assert info.recording == out / "raw.dat"
    return out


def test_synth_writes_a_recording_only_when_asked_or_small(tmp_path):
    plain = synthesize(tmp_path / "a", 1_000, 4, seed=1, n_channels=8)
    assert plain.recording is None and not (tmp_path / "a" / "raw.dat").exists()
    big = synthesize(
        tmp_path / "b", 1_000, 4, seed=1, n_channels=8, recording=None, max_recording_bytes=1000
    )
    assert big.recording is None and big.recording_bytes > 1000
    small = synthesize(tmp_path / "c", 1_000, 4, seed=1, n_channels=8, recording=None)
    assert small.recording is not None
    assert small.recording.stat().st_size == small.recording_bytes
    assert f"uv_per_bit = {UV_PER_BIT}" in (tmp_path / "c" / "params.py").read_text()
    # the same seed writes the same file; the spikes are those of the plain dataset
    again = synthesize(tmp_path / "d", 1_000, 4, seed=1, n_channels=8, recording=True)
    assert again.recording.read_bytes() == small.recording.read_bytes()
    for name in ("spike_times.npy", "spike_templates.npy", "amplitudes.npy", "templates.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


def test_sample_spikes_spread_over_the_lifetime():
    spikes = np.arange(10_000) * 3
    got = sample_spikes(spikes, 100)
    assert got.shape == (100,) and got[0] == spikes[0] and got[-1] == spikes[-1]
    gaps = np.diff(got)
    assert gaps.min() >= 3 * 100 and gaps.max() <= 3 * 102  # even, never the first N
    np.testing.assert_array_equal(sample_spikes(spikes[:50], 100), spikes[:50])
    assert sample_spikes(spikes, 0).shape == (0,)


def test_window_is_phys_default(synth):
    with curalog.open_curation(synth, readonly=True) as cur:
        assert waveform_window(cur.dataset) == (41, 41)  # 82-sample templates: ns//2, ns - ns//2


def test_best_channels_follow_the_dominant_template(synth):
    with curalog.open_curation(synth, log=synth / "b.log") as cur:
        geom = TemplateGeometry(cur.dataset)
        sizes = cur.state.sizes()
        a, b = sorted(sizes, key=lambda c: -sizes[c])[:2]
        np.testing.assert_array_equal(cur.best_channels(a), geom.get(a).channels)
        np.testing.assert_array_equal(cur.best_channels(a, 3), geom.get(a).channels[:3])
        # a merged cluster: its spikes' templates weighted by count -> the bigger one's channels
        m = cur.merge([a, b])
        np.testing.assert_array_equal(cur.best_channels(m), geom.get(a).channels)
        ids, counts = cur.template_counts(m)
        assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == {a: sizes[a], b: sizes[b]}
        # more channels than the template's: the next nearest to the best channel
        base = geom.get(a).channels
        more = cur.best_channels(m, 20)
        assert more.shape == (20,) and len(set(more.tolist())) == 20
        np.testing.assert_array_equal(more[: base.shape[0]], base)
        pos = cur.dataset.channel_positions
        d = np.hypot(*(pos[more[base.shape[0] :]] - pos[base[0]]).T)
        rest = np.setdiff1d(np.arange(32), more)
        assert d.max() <= np.hypot(*(pos[rest] - pos[base[0]]).T).min() + 1e-9
        with pytest.raises(InvalidActionError):
            cur.best_channels(a)  # merged away


def _expected(cur, spikes, chans, before, after):
    ds = cur.dataset
    amp = np.asarray(ds.amplitudes)[spikes].astype(np.float64)
    tmpl = np.asarray(ds.templates)[np.asarray(ds.spike_templates)[spikes]][:, :, chans]
    exp = tmpl * amp[:, None, None] * (UV_PER_TEMPLATE_UNIT / UV_PER_BIT)
    assert exp.shape[1] == before + after  # template sample ns//2 sits on the spike sample
    return exp


def test_synthetic_waveforms_equal_templates_times_amplitudes(synth):
    noise_bits = NOISE_UV / UV_PER_BIT
    with curalog.open_curation(synth, readonly=True) as cur:
        rec = cur.recording
        assert rec is not None and rec.uv_per_unit == pytest.approx(UV_PER_BIT)
        sizes = cur.state.sizes()
        checked = 0
        for cid in sorted(sizes, key=lambda c: -sizes[c])[:4]:
            # unfiltered: each spike's window is the template x amplitude plus the noise (and
            # the slow oscillation, a constant over 2.7 ms, removed by the per-window median)
            raw = cur.waveforms(cid, n=100, filtered=False)
            exp = _expected(cur, raw.spike_ids, raw.channels, raw.before, raw.after)
            res = (raw.waveforms - np.median(raw.waveforms, axis=1, keepdims=True)) - (
                exp - np.median(exp, axis=1, keepdims=True)
            )
            assert res.std() == pytest.approx(noise_bits, rel=0.15)
            assert np.abs(res.mean(axis=0)).max() < 6 * noise_bits / np.sqrt(raw.n_spikes) + 8
            # filtered: the mean waveform is the filtered template x amplitude
            wf = cur.waveforms(cid)
            m = rec.margin
            padded = np.zeros((exp.shape[0], exp.shape[1] + 2 * m, exp.shape[2]), np.float32)
            padded[:, m:-m] = exp
            exp_f = rec.highpass.apply(padded)[:, m:-m]
            diff = wf.mean - exp_f.mean(axis=0)
            peak = np.abs(exp_f.mean(axis=0)).max()
            assert np.abs(diff).max() < 0.08 * peak + 6 * noise_bits / np.sqrt(wf.n_spikes)
            # the per-spike amplitude is the peak-to-peak on the best channel
            np.testing.assert_allclose(wf.amplitudes, np.ptp(wf.waveforms[:, :, 0], axis=1))
            np.testing.assert_allclose(wf.amplitudes_uv, wf.amplitudes * UV_PER_BIT, rtol=1e-6)
            # in µV, the signal's peak-to-peak plus what the noise adds to a maximum - minimum
            true_uv = np.median(np.ptp(exp_f[:, :, 0], axis=1)) * UV_PER_BIT
            if true_uv > 5 * NOISE_UV:  # (a noise template is all noise)
                checked += 1
                assert true_uv - NOISE_UV < np.median(wf.amplitudes_uv) < true_uv + 4 * NOISE_UV
            # the template overlay lines up with the mean waveform
            fit = wf.fitted_template()
            if true_uv > 5 * NOISE_UV:
                assert np.corrcoef(fit.ravel(), wf.mean.ravel())[0, 1] > 0.9
        assert checked >= 2


def test_waveforms_are_cached_by_cluster_and_validated(synth):
    with curalog.open_curation(synth, readonly=True) as cur:
        c = int(cur.cluster_ids[0])
        assert cur.waveforms(c) is cur.waveforms(c)
        assert cur.waveforms(c, n=10).n_spikes == 10
        assert cur.waveforms(c, channels=np.array([0, 5])).waveforms.shape[2] == 2
        with pytest.raises(InvalidActionError):
            cur.waveforms(10_000)


def test_cli_waveforms_writes_npz(synth, tmp_path, capsys):
    from curalog.cli import main

    out = tmp_path / "w.npz"
    with curalog.open_curation(synth, readonly=True) as cur:
        c = int(max(cur.state.sizes().items(), key=lambda kv: kv[1])[0])
        n_c = cur.state.n_spikes_of(c)
        spikes = cur.spikes(c)
        cmap = cur.dataset.channel_map
    assert main(["waveforms", str(synth), str(c), "--n", "30", "--channels", "5"]) == 0
    assert main(["waveforms", str(synth), str(c), "--n", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"cluster {c}: 30 of {n_c:,} spikes" in text and "µV" in text
    z = np.load(out)
    assert z["waveforms"].dtype == np.float32 and z["waveforms"].shape[0] == 30
    assert z["waveforms"].shape[1] == 82
    assert np.isin(z["spike_ids"], spikes).all()
    np.testing.assert_array_equal(z["channel_ids"], cmap[z["channels"]])
    assert main(["waveforms", str(synth), str(c), "--n", "0"]) == 2
    assert main(["waveforms", str(synth), str(c), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["waveforms", str(synth), "99999"]) == 2
    assert "99999" in capsys.readouterr().err
