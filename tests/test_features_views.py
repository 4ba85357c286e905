"""curalog.analysis.features: per-spike coordinates of the spike views, checked against brute force and
phylib's loader, subset and missing feature files, background, polygon splits end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import curalog
from curalog.analysis.features import (
    Dim,
    FeatureSource,
    MissingFeaturesError,
    ViewUnavailableError,
    amplitude_view,
    background_spikes,
    cluster_channels,
    compute_view,
    coordinates,
    feature_channels,
    feature_view,
    phy_feature_grid,
    points_in_polygon,
    spikes_in_polygon,
    split_preview,
    split_provenance,
    step_dim,
    template_feature_view,
    view_from_provenance,
)
from curalog.clustering import ClusterState
from curalog.synth.generator import synthesize

N_SPIKES = 30_000
N_TEMPLATES = 20


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feat") / "ks"
    synthesize(
        out, n_spikes=N_SPIKES, n_templates=N_TEMPLATES, seed=11, n_channels=32, pc_features=True
    )
    return out


@pytest.fixture(scope="module")
def subset_dir(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic folder with features for every third spike only, rows shuffled."""
    out = tmp_path_factory.mktemp("feat_subset") / "ks"
    shutil.copytree(synth_dir, out)
    ids = np.arange(0, N_SPIKES, 3)
    perm = np.random.default_rng(0).permutation(ids.shape[0])
    pc = np.load(synth_dir / "pc_features.npy")
    tf = np.load(synth_dir / "template_features.npy")
    np.save(out / "pc_features.npy", pc[ids[perm]])
    np.save(out / "pc_feature_spike_ids.npy", ids[perm])
    np.save(out / "template_features.npy", tf[ids])
    np.save(out / "template_feature_spike_ids.npy", ids)
    return out


def _open(path: Path):
    ds = curalog.load_dataset(path)
    return ds, ClusterState(ds.spike_templates), FeatureSource(ds)


def _biggest(state: ClusterState, k: int = 2) -> list[int]:
    sizes = state.sizes()
    return sorted(sizes, key=lambda c: (-sizes[c], c))[:k]


# ---------------------------------------------------------------------- brute-force references
def ref_pc(path: Path, spikes: np.ndarray, channel: int, comp: int) -> np.ndarray:
    pc = np.load(path / "pc_features.npy")
    ind = np.load(path / "pc_feature_ind.npy").astype(np.int64)
    st = np.load(path / "spike_templates.npy").reshape(-1).astype(np.int64)
    ids_path = path / "pc_feature_spike_ids.npy"
    row_of = {int(s): i for i, s in enumerate(np.load(ids_path))} if ids_path.exists() else None
    out = np.empty(spikes.shape[0])
    for k, s in enumerate(spikes):
        r = int(s) if row_of is None else row_of.get(int(s), -1)
        if r < 0:
            out[k] = np.nan
            continue
        cols = np.flatnonzero(ind[st[s]] == channel)
        out[k] = pc[r, comp, cols[0]] if cols.size else 0.0
    return out


def ref_tf(path: Path, spikes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """phy's formula: the dense (n, n_templates) projections averaged with template counts."""
    tf = np.load(path / "template_features.npy")
    ind = np.load(path / "template_feature_ind.npy").astype(np.int64)
    st = np.load(path / "spike_templates.npy").reshape(-1).astype(np.int64)
    ids_path = path / "template_feature_spike_ids.npy"
    row_of = {int(s): i for i, s in enumerate(np.load(ids_path))} if ids_path.exists() else None
    dense = np.zeros((spikes.shape[0], weights.shape[0]))
    missing = np.zeros(spikes.shape[0], bool)
    for k, s in enumerate(spikes):
        r = int(s) if row_of is None else row_of.get(int(s), -1)
        if r < 0:
            missing[k] = True
            continue
        dense[k, ind[st[s]]] = tf[r]
    out = np.average(dense, weights=weights, axis=1)
    out[missing] = np.nan
    return out


# ---------------------------------------------------------------------- values
def test_pc_values_match_brute_force(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    c = _biggest(state, 1)[0]
    spikes = state.spikes(c)
    for ch in (int(cluster_channels(src, spikes)[0]), int(cluster_channels(src, spikes)[5]), 31):
        for comp in range(3):
            (got,) = src.values(spikes, [Dim.pc(ch, comp)])
            np.testing.assert_array_equal(got, ref_pc(synth_dir, spikes, ch, comp))


def test_template_projection_matches_phy_formula(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    a, b = _biggest(state, 2)
    spec = template_feature_view(src, [(a, state.spikes(a)), (b, state.spikes(b))])
    for cid in (a, b):
        spikes = state.spikes(cid)
        x, y = coordinates(spec, spikes)
        wa = np.bincount(ds.spike_templates[state.spikes(a)], minlength=ds.n_templates)
        wb = np.bincount(ds.spike_templates[state.spikes(b)], minlength=ds.n_templates)
        np.testing.assert_allclose(x, ref_tf(synth_dir, spikes, wa), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y, ref_tf(synth_dir, spikes, wb), rtol=1e-12, atol=1e-12)


def test_merged_cluster_weights_span_its_templates(synth_dir: Path, tmp_path: Path):
    ds, state, src = _open(synth_dir)
    a, b, c = _biggest(state, 3)
    merged = np.sort(np.concatenate([state.spikes(a), state.spikes(b)]))
    spec = template_feature_view(src, [(99, merged), (c, state.spikes(c))])
    assert spec.x.templates == (min(a, b), max(a, b))
    w = np.bincount(ds.spike_templates[merged], minlength=ds.n_templates)
    x, _ = coordinates(spec, state.spikes(c))
    np.testing.assert_allclose(x, ref_tf(synth_dir, state.spikes(c), w), rtol=1e-12, atol=1e-12)


def test_amplitude_view_values(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    c = _biggest(state, 1)[0]
    spec = amplitude_view(src, {c: state.spikes(c)})
    data = compute_view(spec)
    s = state.spikes(c)
    np.testing.assert_array_equal(data.layers[0].x, ds.spike_times[s] / ds.sample_rate)
    np.testing.assert_array_equal(data.layers[0].y, np.asarray(ds.amplitudes)[s].astype(np.float64))
    assert data.background is not None and not np.isin(data.background.spike_ids, s).any()


# ---------------------------------------------------------------------- channels and axes
def test_feature_channels_follow_phys_rule(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    ids = _biggest(state, 3)
    spikes = [state.spikes(c) for c in ids]
    per = [list(cluster_channels(src, s)) for s in spikes]
    got = list(feature_channels(src, spikes))
    common = [c for c in per[0] if all(c in p for p in per[1:])]
    assert got == common + [c for c in per[0] if c not in common]
    spec = feature_view(src, list(zip(ids, spikes, strict=True)))
    assert (spec.x, spec.y) == (Dim.pc(got[0], 0), Dim.pc(got[1], 0))
    assert spec.channels == tuple(got)


def test_step_dim_and_grid():
    chans = [7, 3, 9]
    d = Dim.pc(7, 0)
    assert step_dim(d, chans, 3, channel_step=1) == Dim.pc(3, 0)
    assert step_dim(d, chans, 3, channel_step=-1) == Dim.pc(9, 0)
    assert step_dim(d, chans, 3, pc_step=-1) == Dim.pc(7, 2)
    assert step_dim(Dim.time(), chans, 3, channel_step=1) == Dim.time()
    grid = phy_feature_grid(chans)
    assert grid[1][0] == (Dim.pc(7, 0), Dim.pc(3, 0))
    assert grid[2][2] == (Dim.time(), Dim.pc(7, 1))
    assert all(len(row) == 4 for row in grid) and len(grid) == 4


def test_dims_round_trip():
    for d in (Dim.pc(3, 2), Dim.time(), Dim.amplitude(), Dim.template(5, [4, 2, 9], [3, 0, 1])):
        assert Dim.from_dict(d.to_dict()) == d
    assert Dim.template(5, [4, 2, 9], [3, 0, 1]).templates == (4, 9)


# ---------------------------------------------------------------------- polygon selection
def test_spikes_in_polygon_takes_every_spike_not_only_displayed(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    a, b = _biggest(state, 2)
    spec = feature_view(src, [(a, state.spikes(a)), (b, state.spikes(b))])
    data = compute_view(spec, max_background=100)
    xs = np.concatenate([ly.x for ly in data.layers])
    ys = np.concatenate([ly.y for ly in data.layers])
    cx, cy = np.median(xs), np.median(ys)
    poly = [
        (cx, data.y_range[0]),
        (data.x_range[1], data.y_range[0]),
        (data.x_range[1], cy),
        (cx, data.y_range[1] * 2),
    ]
    got = spikes_in_polygon(spec, poly)
    every = np.concatenate([state.spikes(a), state.spikes(b)])
    rx = ref_pc(synth_dir, every, spec.x.channel, 0)
    ry = ref_pc(synth_dir, every, spec.y.channel, 0)
    want = np.sort(every[points_in_polygon(rx, ry, poly)])
    np.testing.assert_array_equal(got, want)
    assert 0 < got.shape[0] < every.shape[0]
    prev = split_preview(data, poly)
    assert sum(prev.n_inside.values()) == got.shape[0]


def test_split_by_polygon_end_to_end(synth_dir: Path, tmp_path: Path):
    folder = tmp_path / "ks"
    shutil.copytree(synth_dir, folder)
    with curalog.open(folder, author="test") as cur:
        src = FeatureSource(cur.dataset)
        c = _biggest(cur.state, 1)[0]
        before = cur.spikes(c).copy()
        spec = feature_view(src, {c: cur.spikes(c)})
        data = compute_view(spec)
        x0, x1 = data.x_range
        y0, y1 = data.y_range
        mid = float(np.median(data.layers[0].x))
        poly = [(x0, y0), (mid, y0), (mid, y1), (x0, y1)]
        sel = spikes_in_polygon(spec, poly)
        meta = split_provenance(spec, poly)
        new = cur.split(sel, meta=meta)
        assert len(new) == 2
        np.testing.assert_array_equal(cur.spikes(new[0]), sel)
        np.testing.assert_array_equal(
            np.sort(np.concatenate([cur.spikes(new[0]), cur.spikes(new[1])])), before
        )
        event = cur.history[-1]
        assert event.body["meta"]["polygon_split"]["polygon"] == [list(map(float, v)) for v in poly]
    # the provenance alone reproduces the selection on the state before the split
    with curalog.open(folder, readonly=True, upto=0) as old:
        spec2 = view_from_provenance(FeatureSource(old.dataset), meta["polygon_split"], old.spikes)
        np.testing.assert_array_equal(
            spikes_in_polygon(spec2, meta["polygon_split"]["polygon"]), sel
        )


def test_template_feature_polygon(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    a, b = _biggest(state, 2)
    spec = template_feature_view(src, [(a, state.spikes(a)), (b, state.spikes(b))])
    data = compute_view(spec, background=False)
    assert data.background is None
    x0, x1 = data.x_range
    y0, y1 = data.y_range
    poly = [(x0, y0), (x1, y0), (x0, y1)]  # lower-left triangle
    got = spikes_in_polygon(spec, poly)
    every = np.concatenate([state.spikes(a), state.spikes(b)])
    x, y = coordinates(spec, every)
    np.testing.assert_array_equal(got, np.sort(every[points_in_polygon(x, y, poly)]))


# ---------------------------------------------------------------------- subsets and missing files
def test_subset_folder(subset_dir: Path):
    ds, state, src = _open(subset_dir)
    assert src.is_subset("pc") and src.is_subset("template")
    c = _biggest(state, 1)[0]
    spikes = state.spikes(c)
    spec = feature_view(src, {c: spikes})
    x, y = coordinates(spec, spikes)
    np.testing.assert_array_equal(x, ref_pc(subset_dir, spikes, spec.x.channel, 0))
    has = spikes % 3 == 0
    assert np.isnan(x[~has]).all() and np.isfinite(x[has]).all()
    data = compute_view(spec)
    assert data.n_without[c] == int((~has).sum()) and len(data.layers[0]) == int(has.sum())
    assert "without features" in (data.note or "")
    assert data.background is not None and np.all(data.background.spike_ids % 3 == 0)
    poly = [
        (data.x_range[0], data.y_range[0]),
        (data.x_range[1], data.y_range[0]),
        (data.x_range[1], data.y_range[1]),
        (data.x_range[0], data.y_range[1]),
    ]
    with pytest.raises(MissingFeaturesError, match="no coordinates") as err:
        spikes_in_polygon(spec, poly)
    assert err.value.counts == {c: int((~has).sum())}
    got = spikes_in_polygon(spec, poly, missing="outside")
    np.testing.assert_array_equal(got, spikes[has])  # the whole box: every spike with features
    amp = amplitude_view(src, {c: spikes})
    assert spikes_in_polygon(amp, [(-1e9, -1e9), (1e9, -1e9), (0, 1e9)]).shape == spikes.shape


def test_no_feature_files(synth_dir: Path, tmp_path: Path):
    folder = tmp_path / "ks"
    shutil.copytree(synth_dir, folder)
    for name in (
        "pc_features.npy",
        "pc_feature_ind.npy",
        "template_features.npy",
        "template_feature_ind.npy",
    ):
        (folder / name).unlink()
    ds, state, src = _open(folder)
    assert "pc_features.npy is missing" in src.unavailable("pc")
    assert "template_features.npy is missing" in src.unavailable("template")
    assert src.n_pcs == 0
    a, b = _biggest(state, 2)
    with pytest.raises(ViewUnavailableError, match="pc_features.npy"):
        feature_view(src, {a: state.spikes(a)})
    with pytest.raises(ViewUnavailableError, match="template_features.npy"):
        template_feature_view(src, {a: state.spikes(a), b: state.spikes(b)})
    assert (
        len(compute_view(amplitude_view(src, {a: state.spikes(a)})).layers[0])
        == state.spikes(a).shape[0]
    )


def test_malformed_feature_files_name_the_file(synth_dir: Path, tmp_path: Path):
    folder = tmp_path / "ks"
    shutil.copytree(synth_dir, folder)
    np.save(folder / "pc_feature_ind.npy", np.zeros((3, 12), np.int64))  # too few templates
    np.save(folder / "template_features.npy", np.zeros((5, 8), np.float32))  # wrong length
    ds, state, src = _open(folder)
    assert "pc_feature_ind.npy" in src.unavailable("pc")
    assert "template_features.npy" in src.unavailable("template")
    (folder / "amplitudes.npy").unlink()
    ds, state, src = _open(folder)
    assert "amplitudes.npy is missing" in src.unavailable("amplitude")


def test_template_feature_view_needs_two_clusters(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    a = _biggest(state, 1)[0]
    with pytest.raises(ViewUnavailableError, match="two clusters"):
        template_feature_view(src, {a: state.spikes(a)})


def test_background_is_bounded_deterministic_and_excludes(synth_dir: Path):
    ds, state, src = _open(synth_dir)
    a, b = _biggest(state, 2)
    ex = [state.spikes(a), state.spikes(b)]
    bg = background_spikes(src, ex, 1000)
    assert 0 < bg.shape[0] <= 1000 and np.all(np.diff(bg) > 0)
    assert not np.isin(bg, np.concatenate(ex)).any()
    np.testing.assert_array_equal(bg, background_spikes(src, ex, 1000))
    assert background_spikes(src, ex, 0).shape == (0,)
    assert background_spikes(src, [], 10 * N_SPIKES).shape == (N_SPIKES,)


def test_features_module_does_not_import_textual():
    code = "import sys, curalog.analysis.features\nprint(any(m.split('.')[0] == 'textual' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------- phylib's loader


def _phylib(folder: Path):
    model_mod = pytest.importorskip("phylib.io.model")
    return model_mod.load_model(folder / "params.py")


@pytest.mark.interop
@pytest.mark.parametrize("which", ["real", "synthetic", "subset"])
def test_against_phylib(
    which: str, phy_template: Path, synth_dir: Path, subset_dir: Path, tmp_path: Path
):
    src_dir = {"real": phy_template, "synthetic": synth_dir, "subset": subset_dir}[which]
    folder = tmp_path / "copy"
    shutil.copytree(src_dir, folder)  # phylib writes into the folder
    model = _phylib(folder)
    ds, state, src = _open(folder)
    cids = _biggest(state, 2)
    for c in cids:
        spikes = state.spikes(c)
        t = int(np.bincount(ds.spike_templates[spikes]).argmax())
        phy_channels = np.asarray(model.get_template(t).channel_ids)
        np.testing.assert_array_equal(cluster_channels(src, spikes), phy_channels)
        chans = phy_channels[:3]
        ref = model.get_features(spikes, chans)  # (n, n_channels, n_pcs), NaN rows = no feature
        for j, ch in enumerate(chans):
            for comp in range(ref.shape[2]):
                (got,) = src.values(spikes, [Dim.pc(int(ch), comp)])
                np.testing.assert_allclose(got, ref[:, j, comp], rtol=1e-6, equal_nan=True)
    if which == "subset":
        return  # phylib's get_template_features cannot take spikes outside the subset
    a, b = cids
    spec = template_feature_view(src, [(a, state.spikes(a)), (b, state.spikes(b))])
    for c in cids:
        dense = model.get_template_features(state.spikes(c))
        for dim, ref_c in ((spec.x, a), (spec.y, b)):
            w = np.bincount(ds.spike_templates[state.spikes(ref_c)], minlength=dense.shape[1])
            (got,) = src.values(state.spikes(c), [dim])
            np.testing.assert_allclose(
                got, np.average(dense, weights=w[: dense.shape[1]], axis=1), rtol=1e-6, atol=1e-9
            )
