"""The raw recording reader (curalog.recording): params.py forms, dtypes, errors, filtering."""

from __future__ import annotations

import numpy as np
import pytest
from rawlib import FS, write_raw_folder
from scipy.signal import sosfilt

import curalog
from curalog.dataset import load_dataset
from curalog.recording import (
    FILTER_CUTOFF_HZ,
    FILTER_ORDER,
    HighPass,
    RecordingError,
    open_recording,
)

from conftest import snapshot_dir


def _raw(folder):
    rec = open_recording(load_dataset(folder))
    assert rec is not None
    return rec


# ---------------------------------------------------------------------- dat_path forms, dtypes
@pytest.mark.parametrize("dtype", ["int16", "float32", "uint16"])
def test_dtypes_read_exactly_through_channel_map(tmp_path, dtype):
    # n_channels_dat (8) exceeds the template channels (6); channel_map reverses them
    folder, data = write_raw_folder(tmp_path / "f", dtype=dtype, n_channels_dat=8, seed=2)
    if dtype == "uint16":  # an unsigned file: the signal shifted to positive values
        data = (data.astype(np.int64) + 32768).astype(np.uint16)
        (folder / "raw.dat").write_bytes(data.tobytes())
    rec = _raw(folder)
    assert rec.n_samples == data.shape[0] and rec.n_channels == 6 and rec.n_channels_dat == 8
    assert rec.dtype == np.dtype(dtype)
    got = rec.traces(1000, 3000, filtered=False)
    cmap = np.load(folder / "channel_map.npy")
    np.testing.assert_array_equal(got, data[1000:3000][:, cmap].astype(np.float32))
    sub = rec.traces(1000, 3000, np.array([4, 1]), filtered=False)
    np.testing.assert_array_equal(sub, data[1000:3000][:, cmap[[4, 1]]].astype(np.float32))


def test_dat_path_absolute_relative_and_offset(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "rec.bin"
    elsewhere.parent.mkdir()
    folder, data = write_raw_folder(tmp_path / "a", dat_path=str(elsewhere), offset=128)
    rec = _raw(folder)
    assert rec.paths == [elsewhere] and rec.offset == 128
    cmap = np.load(folder / "channel_map.npy")
    np.testing.assert_array_equal(rec.traces(0, 500, filtered=False), data[:500][:, cmap])
    folder2, data2 = write_raw_folder(tmp_path / "b", dat_path="sub.dat")
    assert _raw(folder2).paths == [folder2 / "sub.dat"]


def test_dat_path_list_is_concatenated_in_time(tmp_path):
    folder, data = write_raw_folder(tmp_path / "f", split_at=[20_000, 45_000], offset=64)
    rec = _raw(folder)
    assert [p.name for p in rec.paths] == ["raw0.dat", "raw1.dat", "raw2.dat"]
    assert rec.n_samples == data.shape[0]
    cmap = np.load(folder / "channel_map.npy")
    # a read across both boundaries equals the single-file data
    np.testing.assert_array_equal(
        rec.traces(19_000, 46_000, filtered=False), data[19_000:46_000][:, cmap]
    )
    # and filtering does not see the file boundaries
    whole, _ = write_raw_folder(tmp_path / "g", offset=64)
    np.testing.assert_allclose(
        rec.traces(19_900, 20_100), _raw(whole).traces(19_900, 20_100), rtol=0, atol=1e-3
    )


@pytest.mark.parametrize("value", [None, "None", "", ...])
def test_no_dat_path_means_no_recording(tmp_path, value):
    folder, _ = write_raw_folder(tmp_path / "f", dat_path=value)
    assert open_recording(load_dataset(folder)) is None
    with curalog.open_curation(folder, readonly=True) as cur:
        assert cur.recording is None
        assert "no raw recording" in cur.recording_error
        assert "params.py" in cur.recording_error


def test_raw_override(tmp_path):
    folder, data = write_raw_folder(tmp_path / "f", dat_path="None")
    other, data2 = write_raw_folder(tmp_path / "g", seed=5)
    with curalog.open_curation(folder, readonly=True, raw=other / "raw.dat") as cur:
        assert cur.recording is not None and cur.recording_error is None
        assert cur.recording.paths == [other / "raw.dat"]
        cmap = np.load(folder / "channel_map.npy")
        np.testing.assert_array_equal(
            cur.recording.traces(0, 100, filtered=False), data2[:100][:, cmap]
        )
    parts, _ = write_raw_folder(tmp_path / "h", split_at=[30_000])
    rec = open_recording(load_dataset(folder), [parts / "raw0.dat", str(parts / "raw1.dat")])
    assert rec.n_samples == 60_000


# ---------------------------------------------------------------------- errors
def _error(folder, raw=None) -> str:
    with pytest.raises(RecordingError) as info:
        open_recording(load_dataset(folder), raw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_file_is_one_line_and_the_curation_still_opens(tmp_path):
    folder, _ = write_raw_folder(tmp_path / "f")
    (folder / "raw.dat").unlink()
    msg = _error(folder)
    assert str(folder / "raw.dat") in msg and "missing" in msg
    before = snapshot_dir(folder)
    with curalog.open_curation(folder, readonly=True) as cur:
        assert cur.recording is None and cur.recording_error == msg
        # the template side keeps working
        assert cur.best_channels(0).shape[0] > 0
        from curalog.analysis.stats.engine import StatsEngine

        rows = StatsEngine(cur.dataset, cur.state).table_rows(list(cur.cluster_ids))
        assert len(rows) == 3 and all(r["n_spikes"] > 0 for r in rows)
        with pytest.raises(RecordingError, match="missing"):
            cur.waveforms(0)
    assert snapshot_dir(folder) == before


def test_mis_sized_file_names_size_and_frame(tmp_path):
    folder, _ = write_raw_folder(tmp_path / "f", n_channels_dat=8, dtype="int16")
    with open(folder / "raw.dat", "ab") as f:
        f.write(b"\0" * 6)  # 3 int16 values: not a whole sample of 8 channels
    msg = _error(folder)
    size = (folder / "raw.dat").stat().st_size
    assert f"{size:,} bytes" in msg and "8 channels x int16 = 16 bytes per sample" in msg
    assert str(folder / "raw.dat") in msg


def test_wrong_n_channels_dat_or_dtype_is_refused(tmp_path):
    # the file holds 8 int16 channels; params.py claims 7 channels: not a whole number
    folder, _ = write_raw_folder(tmp_path / "f", n_channels_dat=8, extra_params="")
    text = (folder / "params.py").read_text().replace("n_channels_dat = 8", "n_channels_dat = 7")
    (folder / "params.py").write_text(text)
    assert "7 channels x int16" in _error(folder)
    # float32 claimed for an int16 file: whole samples, but half as many: truncated
    text = text.replace("n_channels_dat = 7", "n_channels_dat = 8").replace("int16", "float32")
    (folder / "params.py").write_text(text)
    msg = _error(folder)
    assert "spikes run to sample" in msg and "8 channels x float32" in msg


def test_truncated_file_is_refused(tmp_path):
    folder, data = write_raw_folder(tmp_path / "f")
    raw = folder / "raw.dat"
    raw.write_bytes(raw.read_bytes()[: 16 * 30_000])  # half the recording, whole samples
    msg = _error(folder)
    assert "30,000 samples" in msg and "truncated" in msg and str(raw) in msg


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("dtype = 'complex64'", "dtype 'complex64'"),
        ("n_channels_dat = 0", "n_channels_dat must be positive"),
        ("n_channels_dat = 'eight'", "n_channels_dat must be a whole number"),
        ("offset = -4", "offset must be >= 0"),
        ("uv_per_bit = -1", "uv_per_bit must be a positive number"),
    ],
)
def test_bad_params_values(tmp_path, line, expected):
    folder, _ = write_raw_folder(tmp_path / "f", extra_params=line + "\n")
    msg = _error(folder)
    assert expected in msg and "params.py" in msg


def test_channel_map_beyond_n_channels_dat(tmp_path):
    folder, _ = write_raw_folder(tmp_path / "f", n_channels_dat=8, channel_map=[0, 1, 2, 3, 4, 7])
    text = (folder / "params.py").read_text().replace("n_channels_dat = 8", "n_channels_dat = 6")
    (folder / "params.py").write_text(text)
    msg = _error(folder)
    assert "channel_map.npy" in msg and "raw channel 7" in msg


def test_cli_waveforms_without_recording_exits_2(tmp_path, capsys):
    from curalog.cli import main

    folder, _ = write_raw_folder(tmp_path / "f")
    (folder / "raw.dat").unlink()
    assert main(["waveforms", str(folder), "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "raw.dat" in err[0] and "missing" in err[0]
    assert not (folder / ".curalog").exists()


# ---------------------------------------------------------------------- filtering
def _reference(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Forward-backward sosfilt from rest (phy's lfilter, flip, lfilter, flip), float64."""
    x = x - np.median(x[:64], axis=0)
    return sosfilt(sos, sosfilt(sos, x, axis=0)[::-1], axis=0)[::-1]


def test_filter_is_phys_butterworth():
    hp = HighPass.for_rate(FS)
    from scipy.signal import butter

    np.testing.assert_allclose(
        hp.sos, butter(FILTER_ORDER, FILTER_CUTOFF_HZ, "highpass", fs=FS, output="sos")
    )
    assert (FILTER_ORDER, FILTER_CUTOFF_HZ) == (3, 150.0)
    # a 1 kHz sine passes, a 20 Hz one is removed (zero phase: no delay)
    t = np.arange(30_000) / FS
    for f, gain in ((1000.0, 1.0), (20.0, 0.0)):
        x = np.sin(2 * np.pi * f * t)[:, None].astype(np.float32)
        y = hp.apply(x.copy())[5000:25000, 0]
        amp = np.abs(y).max()
        assert amp == pytest.approx(gain, abs=0.02)
        if gain:
            assert np.argmax(np.correlate(y, x[5000:25000, 0], "full")) == 19_999


def test_whole_file_filtering_matches_scipy(tmp_path):
    folder, data = write_raw_folder(tmp_path / "f", dtype="int16")
    rec = _raw(folder)
    cmap = np.load(folder / "channel_map.npy")
    whole = rec.traces(0, rec.n_samples)
    ref = _reference(data[:, cmap].astype(np.float64), rec.highpass.sos)
    np.testing.assert_allclose(whole, ref, rtol=0, atol=1e-4 * np.ptp(ref))


@pytest.mark.parametrize("chunk", [997, 4096, 30_000])
def test_chunked_filtering_equals_whole(tmp_path, chunk):
    folder, data = write_raw_folder(tmp_path / "f", dtype="int16", seed=4)
    rec = _raw(folder)
    whole = rec.traces(0, rec.n_samples)
    pieces = [rec.traces(s, min(s + chunk, rec.n_samples)) for s in range(0, rec.n_samples, chunk)]
    chunked = np.concatenate(pieces)
    # the stated tolerance: 1e-4 of the signal's range (float32), everywhere including the
    # file's edges (both cut the filter's padding at the same file edge)
    tol = 1e-4 * float(np.ptp(whole))
    assert np.abs(chunked - whole).max() <= tol
    # and reads that reach outside the file are zeros there, the rest unchanged
    edge = rec.traces(-50, 100)
    assert np.all(edge[:50] == 0)
    np.testing.assert_allclose(edge[50:], whole[:100], rtol=0, atol=tol)


def test_hp_filtered_file_is_returned_as_is(tmp_path):
    folder, data = write_raw_folder(tmp_path / "f", hp_filtered=True)
    rec = _raw(folder)
    assert rec.highpass is None and rec.margin == 0
    cmap = np.load(folder / "channel_map.npy")
    np.testing.assert_array_equal(rec.traces(10, 510), data[10:510][:, cmap])


def test_snippets_equal_traces_everywhere(tmp_path):
    folder, data = write_raw_folder(tmp_path / "f", split_at=[25_000])
    rec = _raw(folder)
    assert rec.highpass.snippet_margin == 410 and rec.margin == 826  # at 30 kHz
    chans = np.array([3, 0, 5])
    samples = np.array([5, 900, 24_990, 25_010, 40_000, 59_990])  # edges, file boundary
    for filtered in (True, False):
        snips = rec.snippets(samples, chans, 20, 21, filtered=filtered)
        assert snips.shape == (6, 41, 3) and snips.dtype == np.float32
        for i, s in enumerate(samples):
            ref = rec.traces(s - 20, s + 21, chans, filtered=filtered)
            # the shorter snippet margin: within 1e-3 of the local signal's range
            tol = 1e-3 * float(np.ptp(rec.traces(s - 900, s + 900, chans))) if filtered else 0
            np.testing.assert_allclose(snips[i], ref, rtol=0, atol=tol + 1e-4)


def test_reads_are_read_only_and_bounded(tmp_path):
    folder, _ = write_raw_folder(tmp_path / "f")
    before = snapshot_dir(folder)
    rec = _raw(folder)
    assert all(not m.flags.writeable for m in rec._maps)
    rec.traces(0, 1000)
    rec.snippets(np.array([500, 5000]), np.arange(6), 20, 20)
    assert snapshot_dir(folder) == before
    with pytest.raises(IndexError):
        rec.traces(0, 10, np.array([6]))


def test_units(tmp_path):
    f16, _ = write_raw_folder(tmp_path / "a", dtype="int16")
    assert _raw(f16).uv_per_unit is None and _raw(f16).units == "file units"
    f32, _ = write_raw_folder(tmp_path / "b", dtype="float32")
    assert _raw(f32).uv_per_unit == 1.0
    g, _ = write_raw_folder(tmp_path / "c", dtype="int16", extra_params="uv_per_bit = 0.195\n")
    assert _raw(g).uv_per_unit == pytest.approx(0.195) and _raw(g).units == "µV"


def test_many_snippets_are_filtered_in_batches_like_one(tmp_path):
    folder, _ = write_raw_folder(tmp_path / "f", seed=9)
    rec = _raw(folder)
    samples = np.arange(1_000, 59_000, 190)  # 306 spikes: two batches of the filter
    chans = np.array([1, 4])
    many = rec.snippets(samples, chans, 15, 16)
    for i in (0, 255, 256, 305):
        one = rec.snippets(samples[i : i + 1], chans, 15, 16)[0]
        np.testing.assert_allclose(many[i], one, rtol=0, atol=1e-4)
