"""Small Kilosort folders with a raw recording, written by hand (independent of the
synthesizer), for the recording, waveform and interop tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FS = 30_000.0


def signal(
    n_samples: int, n_channels_dat: int, seed: int = 0, dc: float = 300.0, slow_amp: float = 80.0
) -> np.ndarray:
    """Noise + a slow oscillation + a DC offset per channel, float64 (n_samples, n_ch_dat)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / FS
    slow = slow_amp * np.sin(2 * np.pi * 4.0 * t)[:, None] * rng.uniform(0.5, 1.5, n_channels_dat)
    return (
        rng.normal(0, 20.0, (n_samples, n_channels_dat))
        + slow
        + dc * rng.uniform(-1, 1, n_channels_dat)
    )


def write_raw_folder(
    path: Path,
    *,
    n_samples: int = 60_000,
    n_channels: int = 6,
    n_channels_dat: int = 8,
    dtype: str = "int16",
    channel_map: list[int] | None = None,
    dat_path: object = "raw.dat",
    split_at: list[int] | None = None,
    offset: int = 0,
    hp_filtered: bool = False,
    seed: int = 0,
    n_templates: int = 3,
    ns: int = 40,
    extra_params: str = "",
    positions: np.ndarray | None = None,
    clean: bool = False,
) -> tuple[Path, np.ndarray]:
    """A folder whose raw file(s) hold :func:`signal` (cast to ``dtype``) plus templates at
    the spike times. Returns ``(folder, data)`` with ``data`` the file's samples
    (n_samples, n_channels_dat) as written. ``split_at`` cuts the data into several files
    (named raw0.dat, raw1.dat, ...; ``dat_path`` is then ignored and a list is written).
    ``clean``: no DC offset and no slow oscillation (what a filtered file holds)."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    cmap = np.asarray(
        channel_map if channel_map is not None else list(range(n_channels))[::-1], dtype=np.int32
    )
    assert cmap.shape[0] == n_channels
    # spikes: every 400 samples, templates round robin, from 100 to n_samples - 100
    times = np.arange(100, n_samples - 100, 400, dtype=np.int64)
    tpls = (np.arange(times.shape[0]) % n_templates).astype(np.int32)
    amps = rng.uniform(0.8, 1.2, times.shape[0]).astype(np.float32)
    x = np.linspace(-1, 1, ns)
    wave = -np.exp(-((x * 8) ** 2)) + 0.3 * np.exp(-(((x - 0.3) * 6) ** 2))
    templates = np.zeros((n_templates, ns, n_channels), dtype=np.float32)
    for t in range(n_templates):
        centre = (2 * t) % n_channels
        for c in range(n_channels):
            templates[t, :, c] = (
                wave * np.exp(-abs(c - centre) / 1.2) * (1 + 0.2 * t) * (1 - 0.03 * c)
            )  # no two channels of a template with the same amplitude
    data = (
        signal(n_samples, n_channels_dat, seed, dc=0.0, slow_amp=0.0)
        if clean  # as a pre-filtered file: noise and spikes only
        else signal(n_samples, n_channels_dat, seed)
    )
    for t0, tp, a in zip(times, tpls, amps, strict=True):
        lo = int(t0) - ns // 2
        data[lo : lo + ns, cmap] += 400.0 * a * templates[tp]
    data = np.round(data).astype(dtype) if np.dtype(dtype).kind in "iu" else data.astype(dtype)
    if split_at:
        pieces = np.split(data, split_at)
        names = []
        for i, piece in enumerate(pieces):
            name = f"raw{i}.dat"
            (path / name).write_bytes(b"\0" * offset + piece.tobytes())
            names.append(name)
        dat_repr = repr(names)
    else:
        if isinstance(dat_path, str) and dat_path not in ("None", ""):
            target = Path(dat_path) if Path(dat_path).is_absolute() else path / dat_path
            target.write_bytes(b"\0" * offset + data.tobytes())
        dat_repr = repr(dat_path)
    (path / "params.py").write_text(
        (f"dat_path = {dat_repr}\n" if dat_path is not ... else "")
        + f"n_channels_dat = {n_channels_dat}\ndtype = '{dtype}'\noffset = {offset}\n"
        f"sample_rate = {FS}\nhp_filtered = {hp_filtered}\n" + extra_params
    )
    np.save(path / "spike_times.npy", times)
    np.save(path / "spike_templates.npy", tpls)
    np.save(path / "amplitudes.npy", amps)
    np.save(path / "templates.npy", templates)
    np.save(path / "channel_map.npy", cmap)
    if positions is None:
        positions = np.column_stack([np.zeros(n_channels), 20.0 * np.arange(n_channels)])
    np.save(path / "channel_positions.npy", np.asarray(positions, dtype=np.float64))
    return path, data
