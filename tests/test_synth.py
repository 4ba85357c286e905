"""Tests of curalog.synth: the synthetic Kilosort-style datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curalog.synth import generator as synth
from curalog.synth.generator import SynthInfo, synthesize

N_SPIKES = 40_000
N_TEMPLATES = 48
N_CHANNELS = 64

PER_SPIKE = ("spike_times.npy", "spike_templates.npy", "amplitudes.npy")


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> SynthInfo:
    out = tmp_path_factory.mktemp("synth") / "ks"
    return synthesize(out, N_SPIKES, N_TEMPLATES, seed=7, n_channels=N_CHANNELS)


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> SynthInfo:
    out = tmp_path_factory.mktemp("synth_legacy")
    return synthesize(out, 5_000, 16, seed=1, n_channels=32, legacy_quirks=True, pc_features=True)


def _load(info: SynthInfo, name: str) -> np.ndarray:
    return np.load(info.path / name)


def _truth(info: SynthInfo) -> dict:
    return json.loads((info.path / synth.TRUTH_FILE).read_text())


def _read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [ln.split("\t") for ln in lines[1:]]


def test_counts_dtypes_shapes(ds: SynthInfo) -> None:
    st = _load(ds, "spike_times.npy")
    tp = _load(ds, "spike_templates.npy")
    amp = _load(ds, "amplitudes.npy")
    assert (st.dtype, tp.dtype, amp.dtype) == (np.int64, np.int32, np.float32)
    assert st.shape == tp.shape == amp.shape == (N_SPIKES,)
    assert ds.n_spikes == N_SPIKES and ds.n_templates == N_TEMPLATES
    assert np.all(np.diff(st) >= 0)
    assert st[0] >= 0 and np.all(amp > 0)
    # ties in time are ordered by template id
    dt = np.diff(st)
    assert np.all((dt > 0) | (np.diff(tp) > 0))
    assert ds.duration == pytest.approx((st[-1] + 1) / ds.sample_rate)

    templates = _load(ds, "templates.npy")
    assert templates.dtype == np.float32 and templates.shape == (N_TEMPLATES, 82, N_CHANNELS)
    cmap = _load(ds, "channel_map.npy")
    assert cmap.dtype == np.int32 and np.array_equal(cmap, np.arange(N_CHANNELS))
    pos = _load(ds, "channel_positions.npy")
    assert pos.dtype == np.float64 and pos.shape == (N_CHANNELS, 2)
    assert np.array_equal(pos[:4], [[43, 20], [11, 20], [59, 40], [27, 40]])
    assert len({tuple(p) for p in pos}) == N_CHANNELS
    shanks = _load(ds, "channel_shanks.npy")
    assert shanks.dtype == np.int32 and not shanks.any()
    for name in ("whitening_mat.npy", "whitening_mat_inv.npy"):
        w = _load(ds, name)
        assert w.dtype == np.float64 and np.array_equal(w, np.eye(N_CHANNELS))

    params: dict = {}
    exec((ds.path / "params.py").read_text(), {}, params)
    assert params == {
        "dat_path": "raw.dat",
        "n_channels_dat": N_CHANNELS,
        "dtype": "int16",
        "offset": 0,
        "sample_rate": 30_000.0,
        "hp_filtered": False,
    }
    assert not (ds.path / "templates_ind.npy").exists()
    assert not (ds.path / "pc_features.npy").exists()
    assert not list(ds.path.glob(".*partial*"))


def test_templates_look_like_spikes(ds: SynthInfo) -> None:
    templates = _load(ds, "templates.npy")
    real = np.flatnonzero(ds.unit_of_template >= 0)
    for t in real:
        w = templates[t]
        ptp = w.max(0) - w.min(0)
        best = int(ptp.argmax())
        trace = w[:, best]
        assert trace.argmin() < trace.argmax()  # trough, then rebound
        assert -trace.min() > trace.max() > 0
        assert 4 <= np.count_nonzero(ptp > 0.05 * ptp.max()) <= 24  # a local footprint


def test_template_ids_consistent(ds: SynthInfo) -> None:
    tp = _load(ds, "spike_templates.npy")
    assert tp.min() >= 0 and tp.max() < N_TEMPLATES
    assert np.all(np.bincount(tp, minlength=N_TEMPLATES) > 0)


def test_similar_templates(ds: SynthInfo) -> None:
    sim = _load(ds, "similar_templates.npy")
    assert sim.dtype == np.float32 and sim.shape == (N_TEMPLATES, N_TEMPLATES)
    assert np.allclose(np.diag(sim), 1.0)
    assert sim.min() >= 0.0 and sim.max() <= 1.0
    assert np.allclose(sim, sim.T, atol=1e-6)
    x = _load(ds, "templates.npy").reshape(N_TEMPLATES, -1).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = np.clip(x @ x.T, 0, 1)
    np.fill_diagonal(ref, 1)
    assert np.allclose(sim, ref, atol=1e-5)


def test_unit_isi_refractory(ds: SynthInfo) -> None:
    st = _load(ds, "spike_times.npy")
    unit = ds.unit_of_template[_load(ds, "spike_templates.npy")]
    min_isi = 0.002 * ds.sample_rate
    for u in range(ds.n_units):
        t = st[unit == u]
        if t.size > 1:
            assert np.diff(t).min() >= min_isi, u
    # noise templates fire without refractoriness (at a pooled rate, some ISIs are < 2 ms)
    noise = np.diff(st[unit == -1])
    assert noise.size and noise.min() < min_isi


def test_oversplit_templates_similar(ds: SynthInfo) -> None:
    sim = _load(ds, "similar_templates.npy")
    units = _truth(ds)["units"]
    split = [u for u in units if len(u["templates"]) > 1]
    assert split and all(2 <= len(u["templates"]) <= 4 for u in split)
    for u in split:
        ts = u["templates"]
        assert sim[np.ix_(ts, ts)].min() > 0.9, u


def test_model_proportions() -> None:
    info_units, n_split, n_noise, rates = 0, 0, 0, []
    for seed in range(3):
        model, _ = synth._build_model(1_000_000, 300, seed, 96, 30_000.0, 82)
        info_units += len(model.units)
        n_split += sum(len(u["templates"]) > 1 for u in model.units)
        n_noise += len(model.noise_templates)
        rates += [u["rate_hz"] for u in model.units]
    assert 0.2 < n_split / info_units < 0.45
    assert 0.05 <= n_noise / 900 <= 0.10
    assert min(rates) >= 0.5 and max(rates) <= 40 and 3 < np.median(rates) < 8


def test_truth_file(ds: SynthInfo) -> None:
    truth = _truth(ds)
    assert truth["format"] == "curalog-synth-truth" and truth["version"] == 1
    assert truth["seed"] == 7
    uot = np.asarray(truth["unit_of_template"])
    assert np.array_equal(uot, ds.unit_of_template)
    assert truth["noise_templates"] == sorted(np.flatnonzero(uot == -1).tolist())
    assert 0 < len(truth["noise_templates"]) < N_TEMPLATES // 5
    assert [u["unit"] for u in truth["units"]] == list(range(ds.n_units))
    seen = []
    for u in truth["units"]:
        assert all(uot[t] == u["unit"] for t in u["templates"])
        assert 0.5 <= u["rate_hz"] <= 40 and u["depth_um"] >= 0
        seen += u["templates"]
    assert sorted(seen + truth["noise_templates"]) == list(range(N_TEMPLATES))
    # phylib loads every *.tsv / *.csv and spike_*.npy: the truth must not look like one
    assert not synth.TRUTH_FILE.endswith((".tsv", ".csv")) and "spike_" not in synth.TRUTH_FILE


def test_sorter_columns(ds: SynthInfo) -> None:
    cols = {}
    for field in ("KSLabel", "ContamPct", "Amplitude", "group"):
        header, rows = _read_tsv(ds.path / f"cluster_{field}.tsv")
        assert header == ["cluster_id", field]
        assert [int(r[0]) for r in rows] == list(range(N_TEMPLATES))
        cols[field] = [r[1] for r in rows]
    assert cols["group"] == cols["KSLabel"]
    assert set(cols["KSLabel"]) <= {"good", "mua"}
    contam = np.array(cols["ContamPct"], dtype=float)
    real = ds.unit_of_template >= 0
    assert np.all(contam[real] == 0.0)  # no 1.5 ms violation in a refractory unit
    assert np.all(contam[~real] > 50.0)  # Poisson noise
    assert [lab == "good" for lab in cols["KSLabel"]] == list(contam < 10)
    assert np.all(np.array(cols["Amplitude"], dtype=float) > 0)


def test_legacy_quirks(legacy: SynthInfo) -> None:
    n, nt, nc = 5_000, 16, 32
    st = _load(legacy, "spike_times.npy")
    tp = _load(legacy, "spike_templates.npy")
    amp = _load(legacy, "amplitudes.npy")
    assert (st.dtype, st.shape) == (np.uint64, (n, 1))
    assert (tp.dtype, tp.shape) == (np.uint32, (n, 1))
    assert (amp.dtype, amp.shape) == (np.float64, (n, 1))
    assert np.all(np.diff(st[:, 0].astype(np.int64)) >= 0)
    cmap = _load(legacy, "channel_map.npy")
    assert (cmap.dtype, cmap.shape) == (np.int32, (nc, 1))
    ind = _load(legacy, "templates_ind.npy")
    assert ind.shape == (nt, nc) and np.array_equal(ind, np.tile(np.arange(nc), (nt, 1)))
    assert not (legacy.path / "template_ind.npy").exists()


def test_pc_features(legacy: SynthInfo) -> None:
    n, nt = 5_000, 16
    pc = _load(legacy, "pc_features.npy")
    pci = _load(legacy, "pc_feature_ind.npy")
    tf = _load(legacy, "template_features.npy")
    tfi = _load(legacy, "template_feature_ind.npy")
    assert (pc.dtype, pc.shape) == (np.float32, (n, 3, 12))
    assert (pci.dtype, pci.shape) == (np.uint32, (nt, 12))
    assert (tf.dtype, tf.shape) == (np.float32, (n, 8))
    assert (tfi.dtype, tfi.shape) == (np.uint32, (nt, 8))
    assert np.array_equal(tfi[:, 0], np.arange(nt))
    templates = _load(legacy, "templates.npy")
    peak = (templates.max(1) - templates.min(1)).argmax(1)
    assert np.array_equal(pci[:, 0], peak)
    assert all(len(set(row)) == 12 for row in pci.tolist())
    assert np.all(np.isfinite(pc)) and np.all(np.isfinite(tf))
    # features cluster by template: spread within a template well below the spread of means
    tp = _load(legacy, "spike_templates.npy")[:, 0]
    big = [t for t in range(nt) if np.count_nonzero(tp == t) > 50]
    for t in big:
        f = pc[tp == t, 0, :]
        assert np.linalg.norm(f.std(0)) < 0.5 * np.linalg.norm(f.mean(0))


def test_determinism(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", 3_000, 12, seed=11, n_channels=32)
    b = synthesize(tmp_path / "b", 3_000, 12, seed=11, n_channels=32)
    c = synthesize(tmp_path / "c", 3_000, 12, seed=12, n_channels=32)
    names = (
        *PER_SPIKE,
        "templates.npy",
        "similar_templates.npy",
        synth.TRUTH_FILE,
        "cluster_ContamPct.tsv",
    )
    for name in names:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    for name in ("spike_times.npy", "spike_templates.npy"):
        assert (a.path / name).read_bytes() != (c.path / name).read_bytes(), name


def test_chunking_does_not_change_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = synthesize(tmp_path / "a", 20_000, 24, seed=3, n_channels=32)
    # tiny windows and buffers too small for them: exercises carry-over and the retry path
    monkeypatch.setattr(synth, "_CHUNK", 512)
    monkeypatch.setattr(synth, "_CAP_HEADROOM", 0.8)
    monkeypatch.setattr(synth, "_CAP_EXTRA", 0)
    calls: list[tuple[int, int]] = []
    b = synthesize(
        tmp_path / "b",
        20_000,
        24,
        seed=3,
        n_channels=32,
        progress=lambda d, t: calls.append((d, t)),
    )
    for name in (*PER_SPIKE, "cluster_ContamPct.tsv", "cluster_Amplitude.tsv"):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    assert len(calls) > 20 and calls[-1] == (20_000, 20_000)
    done = [d for d, _ in calls]
    assert done == sorted(done) and all(t == 20_000 for _, t in calls)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    synthesize(tmp_path, 1_000, 4, n_channels=16)
    before = (tmp_path / "spike_times.npy").read_bytes()
    with pytest.raises(FileExistsError):
        synthesize(tmp_path, 1_000, 4, seed=5, n_channels=16)
    assert (tmp_path / "spike_times.npy").read_bytes() == before


def test_creates_missing_folder_and_validates(tmp_path: Path) -> None:
    info = synthesize(
        tmp_path / "x" / "y", 500, 3, n_channels=8, n_samples=61, sample_rate=25_000.0
    )
    assert info.path.is_dir()
    uot = info.unit_of_template
    assert uot.shape == (3,) and set(uot[uot >= 0].tolist()) == set(range(info.n_units))
    assert _load(info, "templates.npy").shape == (3, 61, 8)
    with pytest.raises(ValueError):
        synthesize(tmp_path / "z", 0, 3)


@pytest.mark.interop
def test_phylib_reads_it(legacy: SynthInfo, ds: SynthInfo) -> None:
    model_mod = pytest.importorskip("phylib.io.model")
    for info in (ds, legacy):
        model = model_mod.load_model(info.path / "params.py")
        try:
            assert model.n_spikes == info.n_spikes
            assert model.n_templates == info.n_templates
            assert set(model.metadata) == {"KSLabel", "ContamPct", "Amplitude", "group"}
            assert len(model.get_template(0).channel_ids) <= 12
        finally:
            model.close()


# ---------------------------------------------------------------------- drift=True
@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory) -> SynthInfo:
    out = tmp_path_factory.mktemp("synth_drift") / "ks"
    return synthesize(out, 400_000, 100, seed=3, n_channels=64, drift=True)


def test_default_model_unchanged_bit_for_bit(tmp_path: Path) -> None:
    """The drift model left the original one alone: a digest of a dataset written before
    drift=True existed."""
    import hashlib

    synthesize(tmp_path, 20_000, 16, seed=1, n_channels=32, legacy_quirks=True, pc_features=True)
    h = hashlib.sha256()
    for f in sorted(tmp_path.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    assert h.hexdigest()[:16] == "1aed8af213b46d01"


def test_drift_truth(drift: SynthInfo) -> None:
    truth = _truth(drift)
    assert truth["format"] == "curalog-synth-truth" and truth["version"] == 1
    uot = np.asarray(truth["unit_of_template"])
    assert np.array_equal(uot, drift.unit_of_template)
    units = truth["units"]
    seen = sorted(t for u in units for t in u["templates"]) + truth["noise_templates"]
    assert sorted(seen) == list(range(100))
    kinds = {u["split"] for u in units}
    assert kinds == {"none", "drift", "amplitude"}
    assert max(len(u["templates"]) for u in units) >= 4  # several pieces for some units
    assert 25.0 <= truth["drift"]["range_um"] <= 50.0
    assert len(truth["drift"]["motion_um"]) == truth["drift"]["knots"]
    twins = truth["near_duplicates"]
    assert twins and all(units[v]["twin_of"] == u for u, v in twins)
    for u, v in twins:
        dy = abs(units[u]["depth_um"] - units[v]["depth_um"])
        assert dy <= 30.0 + 1e-9 and units[u]["unit"] != units[v]["unit"]
    for u in units:
        if u["split"] == "drift":
            assert u["drift_um"] > 10 and 1.0 <= u["jitter_um"] <= 10.0


def test_drift_pieces_follow_the_motion(drift: SynthInfo) -> None:
    """Pieces are cut along the drift: piece j fires where the probe motion puts the unit in
    its range, so the mean motion at its spikes grows with j (positions are in order)."""
    truth = _truth(drift)
    st = _load(drift, "spike_times.npy")
    tp = _load(drift, "spike_templates.npy")
    motion = np.asarray(truth["drift"]["motion_um"])
    knot = truth["drift"]["knot_s"] * drift.sample_rate
    checked = 0
    for u in truth["units"]:
        if u["split"] != "drift" or len(u["templates"]) < 3:
            continue
        means = [
            np.interp(st[tp == t] / knot, np.arange(motion.size), motion).mean()
            for t in u["templates"]
        ]
        assert np.all(np.diff(means) > 0), u["unit"]
        checked += 1
    assert checked >= 3


def test_drift_units_refractory_and_pieces_similar(drift: SynthInfo) -> None:
    st = _load(drift, "spike_times.npy")
    unit = drift.unit_of_template[_load(drift, "spike_templates.npy")]
    for u in range(drift.n_units):
        t = st[unit == u]
        if t.size > 1:
            assert np.diff(t).min() >= 0.002 * drift.sample_rate, u
    sim = _load(drift, "similar_templates.npy")
    for u in _truth(drift)["units"]:
        ts = u["templates"]
        if u["split"] == "drift":  # neighbouring pieces look alike
            assert all(sim[a, b] > 0.7 for a, b in zip(ts, ts[1:], strict=False)), u["unit"]


def test_drift_determinism(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", 30_000, 24, seed=8, n_channels=32, drift=True)
    b = synthesize(tmp_path / "b", 30_000, 24, seed=8, n_channels=32, drift=True)
    c = synthesize(tmp_path / "c", 30_000, 24, seed=9, n_channels=32, drift=True)
    for name in (*PER_SPIKE, "templates.npy", synth.TRUTH_FILE, "spike_positions.npy"):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    assert (a.path / "spike_times.npy").read_bytes() != (c.path / "spike_times.npy").read_bytes()
    pos = np.load(a.path / "spike_positions.npy")  # Kilosort 4's per-spike positions
    assert pos.shape == (30_000, 2) and pos.dtype == np.float32 and np.isfinite(pos).all()
    plain = synthesize(tmp_path / "d", 30_000, 24, seed=8, n_channels=32)
    assert not (plain.path / "spike_positions.npy").exists()  # the default model: Kilosort 2/3
    assert (a.path / "spike_templates.npy").read_bytes() != (
        plain.path / "spike_templates.npy"
    ).read_bytes()
