"""Text snapshots of the spike views screen (80x24 and 160x45): feature view, a polygon being
drawn, the split preview, template-feature view, amplitude view with its histogram, cluster
scatter, and a folder without ``pc_features.npy``.

A small hand-made dataset with PC and template features (deterministic, independent of the
synthesizer) is captured as plain text. Regenerate after an intended change with::

    CURALOG_UPDATE_SNAPSHOTS=1 pytest tests/test_tui_views_snapshots.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curalog_tui.app import CuralogApp
from curalog_tui.screens.views import ViewsScreen
from curalog_tui.session import open_session
from curalog_tui.testing import screen_text, settle

from conftest import check_snapshot as check

RECTANGLE = [
    ("shift+left", "shift+up"),
    ("shift+right", "shift+right"),
    ("shift+down", "shift+down"),
    ("shift+left", "shift+left"),
]


def write_feature_dataset(path: Path, seed: int = 0) -> Path:
    """8 templates on 16 channels, 20 s at 30 kHz, with pc_features (3 PCs on 4 channels per
    template) and template_features (4 templates per spike). Template 0 has two
    sub-populations in feature space (something to split)."""
    rng = np.random.default_rng(seed)
    fs, duration, n_t, n_ch, ns = 30_000.0, 20.0, 8, 16, 40
    times, tpls, amps = [], [], []
    for t in range(n_t):
        rate = 150.0 if t == 0 else 4.0 + 3.0 * t
        isi = rng.exponential(1.0 / rate, size=int(rate * duration * 1.5)) + 0.002
        st = np.cumsum(isi)
        st = st[st < duration]
        times.append((st * fs).astype(np.int64))
        tpls.append(np.full(st.shape[0], t, dtype=np.int32))
        amps.append(rng.normal(10 + t, 1.5, st.shape[0]).astype(np.float32))
    order = np.argsort(np.concatenate(times), kind="stable")
    spike_times = np.concatenate(times)[order]
    spike_templates = np.concatenate(tpls)[order]
    amplitudes = np.concatenate(amps)[order]
    n = spike_times.shape[0]
    path.mkdir(parents=True)
    (path / "params.py").write_text(
        f"dat_path = 'raw.dat'\nn_channels_dat = {n_ch}\ndtype = 'int16'\n"
        f"offset = 0\nsample_rate = {fs}\nhp_filtered = False\n"
    )
    np.save(path / "spike_times.npy", spike_times)
    np.save(path / "spike_templates.npy", spike_templates)
    np.save(path / "amplitudes.npy", amplitudes)
    x = np.linspace(-1, 1, ns)
    wave = (-np.exp(-((x * 8) ** 2)) + 0.3 * np.exp(-(((x - 0.3) * 6) ** 2))).astype(np.float32)
    centres = [2 * t + 1 for t in range(n_t)]
    templates = np.zeros((n_t, ns, n_ch), dtype=np.float32)
    for t in range(n_t):
        for c in range(n_ch):
            templates[t, :, c] = wave * np.exp(-abs(c - centres[t]) / 1.5) * (1 + 0.1 * t)
    np.save(path / "templates.npy", templates)
    np.save(
        path / "channel_positions.npy", np.column_stack([np.zeros(n_ch), 20.0 * np.arange(n_ch)])
    )
    # pc features: the 4 channels nearest each template's centre (best first)
    ind = np.array(
        [sorted(range(n_ch), key=lambda c, t=t: (abs(c - centres[t]), c))[:4] for t in range(n_t)],
        dtype=np.uint32,
    )
    pcs = np.zeros((n, 3, 4), dtype=np.float32)
    for t in range(n_t):
        m = spike_templates == t
        k = int(m.sum())
        for j, ch in enumerate(ind[t]):
            scale = 12.0 * np.exp(-abs(int(ch) - centres[t]) / 1.5)
            pcs[m, 0, j] = scale * (amplitudes[m] / (10 + t)) + rng.normal(0, 0.8, k)
            pcs[m, 1, j] = rng.normal(0, 1.5, k) + 0.3 * scale
            pcs[m, 2, j] = rng.normal(0, 1.0, k)
        if t == 0:  # a second sub-population on the second channel
            sub = np.flatnonzero(m)[rng.random(k) < 0.4]
            pcs[sub, 0, 1] -= 6.0
    np.save(path / "pc_features.npy", pcs)
    np.save(path / "pc_feature_ind.npy", ind)
    tind = np.array([[(t + d) % n_t for d in (0, 1, -1, 2)] for t in range(n_t)], dtype=np.uint32)
    tf = rng.normal(3.0, 1.0, size=(n, 4)).astype(np.float32)
    tf[:, 0] += 15.0 + amplitudes - amplitudes.mean()
    np.save(path / "template_features.npy", tf)
    np.save(path / "template_feature_ind.npy", tind)
    (path / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n" + "".join(f"{t}\t{'mua' if t == 5 else 'good'}\n" for t in range(n_t))
    )
    return path


@pytest.fixture
def featured(tmp_path: Path) -> Path:
    return write_feature_dataset(tmp_path / "feat")


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_snapshot_views(featured, size):
    session = open_session(featured, author="snapshot")
    app = CuralogApp(session.cur, owns_curation=True, cursor_blink=False)
    w, h = size
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ViewsScreen)
        check(f"views_feature_{w}x{h}", screen_text(app))
        for keys in RECTANGLE:
            await pilot.press(*keys, "space")
        await settle(pilot)
        check(f"views_polygon_{w}x{h}", screen_text(app))
        await pilot.press("enter")
        await settle(pilot)
        check(f"views_preview_{w}x{h}", screen_text(app))
        await pilot.press("escape")
        for key, name in (("t", "template_feature"), ("a", "amplitude"), ("c", "clusters")):
            await pilot.press(key)
            await settle(pilot)
            check(f"views_{name}_{w}x{h}", screen_text(app))


async def test_snapshot_views_without_features(featured):
    (featured / "pc_features.npy").unlink()
    session = open_session(featured, author="snapshot")
    app = CuralogApp(session.cur, owns_curation=True, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        check("views_no_pc_features_80x24", screen_text(app))
