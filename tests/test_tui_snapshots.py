"""Text snapshots of the main, split and history screens (80x24 and 160x45).

The screens are captured as plain text (no colours; log hashes and clock times masked)
from a small hand-made dataset, so a change in layout or content shows up as a readable
diff. Regenerate after an intended change with::

    CURALOG_UPDATE_SNAPSHOTS=1 pytest tests/test_tui_snapshots.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curalog_tui.app import CuralogApp
from curalog_tui.session import open_session
from curalog_tui.testing import screen_text, settle

from conftest import check_snapshot as check


def write_dataset(path: Path, seed: int = 0) -> Path:
    """12 templates on 16 channels, 30 s at 30 kHz, refractory spike trains (deterministic)."""
    rng = np.random.default_rng(seed)
    fs, duration, n_t, n_ch, ns = 30_000.0, 30.0, 12, 16, 40
    times, tpls, amps = [], [], []
    for t in range(n_t):
        rate = 2.0 + 3.0 * t
        isi = rng.exponential(1.0 / rate, size=int(rate * duration * 1.5)) + 0.002
        st = np.cumsum(isi)
        st = st[st < duration]
        times.append((st * fs).astype(np.int64))
        tpls.append(np.full(st.shape[0], t, dtype=np.int32))
        amps.append(rng.normal(10 + t, 1.5, st.shape[0]).astype(np.float32))
    order = np.argsort(np.concatenate(times), kind="stable")
    path.mkdir(parents=True)
    (path / "params.py").write_text(
        f"dat_path = 'raw.dat'\nn_channels_dat = {n_ch}\ndtype = 'int16'\n"
        f"offset = 0\nsample_rate = {fs}\nhp_filtered = False\n"
    )
    np.save(path / "spike_times.npy", np.concatenate(times)[order])
    np.save(path / "spike_templates.npy", np.concatenate(tpls)[order])
    np.save(path / "amplitudes.npy", np.concatenate(amps)[order])
    x = np.linspace(-1, 1, ns)
    wave = (-np.exp(-((x * 8) ** 2)) + 0.3 * np.exp(-(((x - 0.3) * 6) ** 2))).astype(np.float32)
    templates = np.zeros((n_t, ns, n_ch), dtype=np.float32)
    for t in range(n_t):
        centre = t % n_ch
        for c in range(n_ch):
            templates[t, :, c] = wave * np.exp(-abs(c - centre) / 1.5) * (1 + 0.1 * t)
    np.save(path / "templates.npy", templates)
    np.save(
        path / "channel_positions.npy", np.column_stack([np.zeros(n_ch), 20.0 * np.arange(n_ch)])
    )
    (path / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n"
        + "".join(f"{t}\t{'mua' if t in (2, 7) else 'good'}\n" for t in range(n_t))
    )
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "small")


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_snapshot_main_split_history(small, size):
    session = open_session(small, author="snapshot")
    app = CuralogApp(session.cur, owns_curation=True, cursor_blink=False)
    w, h = size
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        check(f"main_{w}x{h}", screen_text(app))
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        check(f"main_after_merge_label_{w}x{h}", screen_text(app))
        await pilot.press("k")
        await settle(pilot)
        check(f"split_{w}x{h}", screen_text(app))
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("H")
        await settle(pilot)
        check(f"history_{w}x{h}", screen_text(app))
