"""The raw recording: memory-mapped, read-only, bounded reads, high-pass filtered on the fly.

A Kilosort/phy folder names its raw file in ``params.py``: ``dat_path`` (a string, or a list
of files concatenated in time; each relative to the folder unless absolute), ``n_channels_dat``
(interleaved channels per sample; may exceed the sorter's channels), ``dtype`` (phylib's
default ``int16``), ``offset`` (bytes skipped at the start of every file), ``sample_rate`` and
``hp_filtered``. ``channel_map.npy`` maps each template channel (a row of
``channel_positions.npy``) to its row of the raw file. :func:`open_recording` checks all of it
and maps every file with ``np.memmap(mode="r")``: nothing is ever read whole, nothing written.

Reads
-----
:meth:`Recording.traces` returns ``(stop - start, n_selected)`` float32 in file units
(:attr:`Recording.uv_per_unit` converts to µV when known), for template channels.
:meth:`Recording.snippets` returns one window per spike. A read costs the requested window
(plus the filter margin) on the requested channels, whatever the file size; samples outside
the file are zeros.

Filtering
---------
When ``hp_filtered`` is false the reads are high-pass filtered as phy's default raw-data filter
does: a **3rd-order Butterworth high-pass at 150 Hz** (``scipy.signal.butter(3, 150,
"highpass", fs=sample_rate)``), applied forward then backward (zero phase, so an effective
6th order and no delay), here as second-order sections. Each read is filtered on ``[start -
margin, stop + margin]`` (cut to the file) and then cropped, so the result does not depend on
how the recording is cut into reads: ``margin`` is the length after which the filter's
impulse response has lost all but ``1e-6`` of its l1 mass (826 samples, 27.5 ms, at 30 kHz),
and each padded block first has its per-channel median over its first 64 samples subtracted
(a DC offset otherwise starts a step transient). Spike snippets use a shorter margin, where
1e-3 of the mass is left (410 samples at 30 kHz). Chunked reads equal a whole-trace filtering
to about ``1e-6`` of the signal's range (tested at 1e-4 of the range in float32); within
``margin`` of the file's two ends both cut at the same file edge, so the rule holds there too
(the filter starts from rest at the file's first and last sample in both cases). When
``hp_filtered`` is true the file is returned as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from curalog.errors import DatasetError

__all__ = [
    "FILTER_ORDER",
    "FILTER_CUTOFF_HZ",
    "HighPass",
    "Recording",
    "RecordingError",
    "open_recording",
]

#: phy's default raw-data filter (phy/apps/base.py ``RawDataFilter.add_default_filter``).
FILTER_ORDER = 3
FILTER_CUTOFF_HZ = 150.0
#: Relative l1 mass of the impulse response left beyond the margin of a trace read.
MARGIN_TOLERANCE = 1e-6
#: The same for spike snippets (a shorter margin: a raw file interleaves every channel, so a
#: snippet's margin costs whole frames of I/O; 1e-3 of a transient is far below the noise).
SNIPPET_TOLERANCE = 1e-3
_DC_SAMPLES = 64
_SNIPPET_BATCH = 256  # spikes filtered together (bounds the block: 256 x 902 x k floats)

_ALLOWED_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")


class RecordingError(DatasetError):
    """The raw recording cannot be used (one line naming the file; the curation still opens)."""


# ---------------------------------------------------------------------- filter
@numba.njit(cache=True, nogil=True, fastmath=True)
def _sos_pass(x, sos, reverse):  # pragma: no cover - numba
    """One pass of a second-order-section cascade along axis 0 of ``x`` (T, C), in place,
    from rest (transposed direct form II, float64 state; channels innermost so the
    independent channels vectorise)."""
    n_t, n_c = x.shape
    n_s = sos.shape[0]
    z0 = np.zeros((n_s, n_c))
    z1 = np.zeros((n_s, n_c))
    v = np.empty(n_c)
    for k in range(n_t):
        t = n_t - 1 - k if reverse else k
        row = x[t]
        for c in range(n_c):
            v[c] = row[c]
        for s in range(n_s):
            b0 = sos[s, 0]
            b1 = sos[s, 1]
            b2 = sos[s, 2]
            a1 = sos[s, 4]
            a2 = sos[s, 5]
            za = z0[s]
            zb = z1[s]
            for c in range(n_c):
                xi = v[c]
                y = b0 * xi + za[c]
                za[c] = b1 * xi - a1 * y + zb[c]
                zb[c] = b2 * xi - a2 * y
                v[c] = y
        for c in range(n_c):
            row[c] = v[c]


@numba.njit(cache=True, nogil=True)
def _filtfilt_blocks(x, sos):  # pragma: no cover - numba
    """Forward-backward filtering of every block ``x[i]`` (n, T, C), in place."""
    for i in range(x.shape[0]):
        _sos_pass(x[i], sos, False)
        _sos_pass(x[i], sos, True)


@numba.njit(cache=True, nogil=True)
def _gather(src, rows, out):  # pragma: no cover - numba
    """``out[t, j] = src[t, rows[j]]`` as float32 (numpy's fancy indexing is ~10x slower)."""
    for t in range(src.shape[0]):
        for j in range(rows.shape[0]):
            out[t, j] = src[t, rows[j]]


@numba.njit(cache=True, nogil=True)
def _gather_snippets(src, starts, rows, slots, out):  # pragma: no cover - numba
    """``out[t, slot * k + j] = src[start + t, rows[j]]`` for every (start, slot) pair."""
    k = rows.shape[0]
    for s in range(starts.shape[0]):
        a = starts[s]
        base = slots[s] * k
        for t in range(out.shape[0]):
            row = src[a + t]
            for j in range(k):
                out[t, base + j] = row[rows[j]]


@dataclass(frozen=True)
class HighPass:
    """phy's default high-pass (order 3, 150 Hz, forward-backward) as second-order sections."""

    sos: np.ndarray
    margin: int
    sample_rate: float
    snippet_margin: int = 0

    @classmethod
    def for_rate(cls, sample_rate: float) -> HighPass:
        from scipy.signal import butter, sosfilt

        sos = butter(FILTER_ORDER, FILTER_CUTOFF_HZ, "highpass", fs=sample_rate, output="sos")
        sos = np.ascontiguousarray(sos, dtype=np.float64)
        n = max(64, int(sample_rate))  # one second of impulse response is plenty
        impulse = np.zeros(n)
        impulse[0] = 1.0
        h = np.abs(sosfilt(sos, impulse))
        tail = np.cumsum(h[::-1])[::-1]
        margin = int(np.argmax(tail < MARGIN_TOLERANCE * tail[0]))
        short = int(np.argmax(tail < SNIPPET_TOLERANCE * tail[0]))
        return cls(
            sos=sos,
            margin=max(margin, 1),
            sample_rate=float(sample_rate),
            snippet_margin=max(short, 1),
        )

    def describe(self) -> str:
        return (
            f"Butterworth high-pass, order {FILTER_ORDER}, {FILTER_CUTOFF_HZ:g} Hz, zero phase "
            f"(forward-backward), margin {self.margin} samples"
        )

    def apply(self, blocks: np.ndarray) -> np.ndarray:
        """Filter float32 blocks ``(n, T, C)`` (or one ``(T, C)``) along T, in place."""
        one = blocks.ndim == 2
        x = blocks[None] if one else blocks
        if x.shape[1] == 0 or x.shape[2] == 0:
            return blocks
        dc = np.median(x[:, :_DC_SAMPLES, :], axis=1)
        x -= dc[:, None, :].astype(x.dtype)
        _filtfilt_blocks(x, self.sos)
        return blocks


# ---------------------------------------------------------------------- the recording
class Recording:
    """A raw recording opened by :func:`open_recording` (read-only memory maps).

    Attributes
    ----------
    paths : list of Path
        The files, in time order (concatenated).
    sample_rate : float
    n_samples : int
        Samples (frames) over all files.
    n_channels : int
        Template channels (rows of ``channel_positions.npy``), the channels reads index.
    n_channels_dat : int
        Interleaved channels per frame in the file.
    channel_map : ndarray of int64, shape (n_channels,)
        Template channel -> row of the raw file.
    dtype : numpy.dtype
    offset : int
        Bytes skipped at the start of every file.
    hp_filtered : bool
        The file is already high-pass filtered (reads are not filtered again).
    uv_per_unit : float or None
        Microvolts per file unit: ``uv_per_bit`` from params.py when given; 1.0 for float
        files without it (SpikeInterface and Kilosort 4 write float traces in µV); None
        (unknown, "file units") for integer files without it.
    highpass : HighPass or None
        The filter applied to reads (None when ``hp_filtered``).
    """

    def __init__(
        self,
        paths: list[Path],
        *,
        n_channels_dat: int,
        dtype: np.dtype,
        offset: int,
        sample_rate: float,
        channel_map: np.ndarray,
        hp_filtered: bool,
        uv_per_unit: float | None,
    ):
        self.paths = list(paths)
        self.n_channels_dat = int(n_channels_dat)
        self.dtype = np.dtype(dtype)
        self.offset = int(offset)
        self.sample_rate = float(sample_rate)
        self.channel_map = np.asarray(channel_map, dtype=np.int64)
        self.n_channels = int(self.channel_map.shape[0])
        self.hp_filtered = bool(hp_filtered)
        self.uv_per_unit = uv_per_unit
        self.highpass = None if hp_filtered else HighPass.for_rate(self.sample_rate)
        frame = self.n_channels_dat * self.dtype.itemsize
        self._maps: list[np.memmap] = []
        for p in self.paths:
            frames = (os.path.getsize(p) - self.offset) // frame
            if frames > 0:
                mm = np.memmap(
                    p, dtype=self.dtype, mode="r", offset=self.offset,
                    shape=(frames, self.n_channels_dat),
                )  # fmt: skip
            else:
                mm = np.zeros((0, self.n_channels_dat), dtype=self.dtype)
            self._maps.append(mm)
        self.bounds = np.concatenate([[0], np.cumsum([m.shape[0] for m in self._maps])]).astype(
            np.int64
        )
        self.n_samples = int(self.bounds[-1])

    # ------------------------------------------------------------------ description
    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def margin(self) -> int:
        return 0 if self.highpass is None else self.highpass.margin

    @property
    def units(self) -> str:
        return "µV" if self.uv_per_unit is not None else "file units"

    def describe(self) -> str:
        names = ", ".join(p.name for p in self.paths)
        filt = "already filtered" if self.highpass is None else self.highpass.describe()
        return (
            f"{names}: {self.n_samples:,} samples ({self.duration:.1f} s) x "
            f"{self.n_channels_dat} channels {self.dtype.name}; {filt}"
        )

    def __repr__(self) -> str:
        return f"<Recording {self.describe()}>"

    # ------------------------------------------------------------------ raw reads
    def _rows(self, channels: np.ndarray | None) -> np.ndarray:
        if channels is None:
            return self.channel_map
        ch = np.asarray(channels, dtype=np.int64).reshape(-1)
        if ch.size and (ch.min() < 0 or ch.max() >= self.n_channels):
            raise IndexError(f"channel out of range 0..{self.n_channels - 1}: {ch.tolist()}")
        return self.channel_map[ch]

    def _read_rows(self, start: int, stop: int, rows: np.ndarray, out: np.ndarray) -> None:
        """Raw samples ``[start, stop)`` (inside the file) into ``out`` (stop - start, k)."""
        b = self.bounds
        first = int(np.searchsorted(b, start, side="right")) - 1
        pos = start
        i = first
        every = rows.shape[0] == self.n_channels_dat and bool(
            np.array_equal(rows, np.arange(self.n_channels_dat))
        )
        while pos < stop:
            lo = pos - int(b[i])
            hi = min(stop, int(b[i + 1])) - int(b[i])
            dest = out[pos - start : pos - start + hi - lo]
            if every:  # every channel in file order: one vectorised cast, no gather
                dest[...] = self._maps[i][lo:hi]
            else:
                _gather(np.asarray(self._maps[i][lo:hi]), rows, dest)
            pos += hi - lo
            i += 1

    def traces(
        self,
        start: int,
        stop: int,
        channels: np.ndarray | None = None,
        *,
        filtered: bool = True,
    ) -> np.ndarray:
        """Samples ``[start, stop)`` on template ``channels`` (default all), float32.

        Filtered as the module docstring says (unless the file is already filtered, or
        ``filtered=False``). Samples outside the file are zeros; the shape is always
        ``(stop - start, n_selected)``.
        """
        start, stop = int(start), int(stop)
        if stop < start:
            raise ValueError(f"stop {stop} < start {start}")
        rows = self._rows(channels)
        m = self.margin if filtered else 0
        a, b = max(0, start - m), min(self.n_samples, stop + m)
        if b <= a or rows.shape[0] == 0:
            return np.zeros((stop - start, rows.shape[0]), dtype=np.float32)
        block = np.empty((b - a, rows.shape[0]), dtype=np.float32)
        self._read_rows(a, b, rows, block)
        if filtered and self.highpass is not None:
            self.highpass.apply(block)
        if a <= start and stop <= b:  # inside the file: the block's rows, no copy
            return block[start - a : stop - a]
        out = np.zeros((stop - start, rows.shape[0]), dtype=np.float32)
        lo, hi = max(start, a), min(stop, b)
        if hi > lo:
            out[lo - start : hi - start] = block[lo - a : hi - a]
        return out

    def snippets(
        self,
        samples: np.ndarray,
        channels: np.ndarray,
        before: int,
        after: int,
        *,
        filtered: bool = True,
    ) -> np.ndarray:
        """One window ``[s - before, s + after)`` per spike sample ``s``, float32
        ``(n_spikes, before + after, n_channels)``, each equal to ``traces(s - before, s +
        after, channels)`` up to the shorter filter margin (``SNIPPET_TOLERANCE``: 410
        samples at 30 kHz instead of 826, half the reading; the two agree to about 1e-3 of
        the local signal); zeros outside the file."""
        samples = np.asarray(samples, dtype=np.int64).reshape(-1)
        rows = self._rows(channels)
        before, after = int(before), int(after)
        width = before + after
        n = samples.shape[0]
        out = np.zeros((n, width, rows.shape[0]), dtype=np.float32)
        if n == 0 or width <= 0 or rows.shape[0] == 0:
            return out
        m = self.highpass.snippet_margin if filtered and self.highpass is not None else 0
        lo = samples - before - m
        hi = samples + after + m
        # windows inside one file are read straight from its map and filtered together
        file_of = np.searchsorted(self.bounds, lo, side="right") - 1
        inside = (lo >= 0) & (hi <= self.n_samples)
        inside &= hi <= self.bounds[np.clip(file_of + 1, 0, len(self._maps))]
        idx = np.flatnonzero(inside)
        k = rows.shape[0]
        for first in range(0, idx.size, _SNIPPET_BATCH):
            # one block (time, spike x channel) per batch: the filter runs on every spike's
            # channels at once (n_spikes x n_channels independent lanes), memory bounded
            part = idx[first : first + _SNIPPET_BATCH]
            block = np.empty((width + 2 * m, part.size * k), dtype=np.float32)
            for f in np.unique(file_of[part]).tolist():
                sel = np.flatnonzero(file_of[part] == f)
                starts = (lo[part[sel]] - self.bounds[f]).astype(np.int64)
                _gather_snippets(np.asarray(self._maps[f]), starts, rows, sel, block)
            if filtered and self.highpass is not None:
                self.highpass.apply(block)
            out[part] = block[m : m + width].reshape(width, part.size, k).transpose(1, 0, 2)
        for i in np.flatnonzero(~inside):  # at a file edge or across two files
            s = int(samples[i])
            out[i] = self._short_traces(s - before, s + after, rows, m)
        return out

    def _short_traces(self, start: int, stop: int, rows: np.ndarray, m: int) -> np.ndarray:
        """:meth:`traces` with margin ``m`` on raw-file ``rows`` (the snippets' edge case)."""
        out = np.zeros((stop - start, rows.shape[0]), dtype=np.float32)
        a, b = max(0, start - m), min(self.n_samples, stop + m)
        if b <= a:
            return out
        block = np.empty((b - a, rows.shape[0]), dtype=np.float32)
        self._read_rows(a, b, rows, block)
        if m and self.highpass is not None:
            self.highpass.apply(block)
        lo, hi = max(start, a), min(stop, b)
        if hi > lo:
            out[lo - start : hi - start] = block[lo - a : hi - a]
        return out


# ---------------------------------------------------------------------- opening
def _as_int(value: object, name: str, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordingError(f"{where}: {name} must be a whole number (got {value!r})")
    if isinstance(value, float) and not value.is_integer():
        raise RecordingError(f"{where}: {name} must be a whole number (got {value!r})")
    return int(value)


def _raw_paths(dataset, raw) -> list[Path]:
    if raw is None:
        return list(dataset.raw.dat_paths)
    items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    return [Path(os.fspath(p)) for p in items]


def open_recording(dataset, raw: str | Path | list[str | Path] | None = None) -> Recording | None:
    """Open the raw recording of ``dataset`` (``params.py``'s ``dat_path``, or ``raw``).

    Parameters
    ----------
    dataset : Dataset
    raw : path or list of paths, optional
        Overrides ``dat_path`` (files concatenated in time); the other keys still come from
        ``params.py``.

    Returns
    -------
    Recording, or None when there is no recording to open (``dat_path`` missing, ``None`` or
    ``'None'``, and no ``raw``).

    Raises
    ------
    RecordingError
        One line naming the file: a missing file, an unreadable one, a size that is not a
        whole number of ``n_channels_dat x dtype`` samples, a file shorter than the last spike
        (truncated), or a bad ``params.py`` value.
    """
    where = dataset.path / "params.py"
    paths = _raw_paths(dataset, raw)
    if not paths:
        return None
    rp = dataset.raw
    if rp.n_channels_dat is None:
        raise RecordingError(f"{where}: no n_channels_dat (needed to read {paths[0].name})")
    n_dat = _as_int(rp.n_channels_dat, "n_channels_dat", where)
    if n_dat < 1:
        raise RecordingError(f"{where}: n_channels_dat must be positive (got {n_dat})")
    if not isinstance(rp.dtype, str) or rp.dtype.strip().lower() not in _ALLOWED_DTYPES:
        raise RecordingError(
            f"{where}: dtype {rp.dtype!r} is not a raw sample type ({', '.join(_ALLOWED_DTYPES)})"
        )
    dtype = np.dtype(rp.dtype.strip().lower())
    offset = _as_int(rp.offset if rp.offset is not None else 0, "offset", where)
    if offset < 0:
        raise RecordingError(f"{where}: offset must be >= 0 (got {offset})")
    cmap = np.asarray(dataset.channel_map, dtype=np.int64)
    if cmap.size and int(cmap.max()) >= n_dat:
        raise RecordingError(
            f"{dataset.path / 'channel_map.npy'}: raw channel {int(cmap.max())} but "
            f"n_channels_dat = {n_dat}"
        )
    frame = n_dat * dtype.itemsize
    what = f"{n_dat} channels x {dtype.name} = {frame} bytes per sample"
    total = 0
    for p in paths:
        try:
            if not p.is_file():
                raise RecordingError(
                    f"{p}: raw recording missing ({'not a file' if p.exists() else 'no such file'};"
                    " dat_path in params.py, or --raw PATH)"
                )
            size = os.path.getsize(p)
            with open(p, "rb"):
                pass
        except PermissionError:
            raise RecordingError(f"{p}: raw recording not readable (permission denied)") from None
        except OSError as exc:
            raise RecordingError(f"{p}: raw recording not readable ({exc.strerror})") from None
        data = size - offset
        if data < 0 or data % frame:
            raise RecordingError(
                f"{p}: {size:,} bytes is not a whole number of samples of {what}"
                + (f" after an offset of {offset}" if offset else "")
                + " (wrong n_channels_dat or dtype, or a truncated file)"
            )
        total += data // frame
    last = int(dataset.spike_times[-1]) if dataset.n_spikes else -1
    if last >= total:
        raise RecordingError(
            f"{paths[-1]}: {total:,} samples of {what} ({total / dataset.sample_rate:.1f} s), "
            f"but spikes run to sample {last:,} ({last / dataset.sample_rate:.1f} s): "
            "truncated, or wrong n_channels_dat or dtype"
        )
    gain = rp.uv_per_bit
    if gain is not None:
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
            raise RecordingError(f"{where}: uv_per_bit must be a positive number (got {gain!r})")
        uv: float | None = float(gain)
    else:
        uv = 1.0 if dtype.kind == "f" else None
    return Recording(
        paths,
        n_channels_dat=n_dat,
        dtype=dtype,
        offset=offset,
        sample_rate=dataset.sample_rate,
        channel_map=cmap,
        hp_filtered=rp.hp_filtered,
        uv_per_unit=uv,
    )
