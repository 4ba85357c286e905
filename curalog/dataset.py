"""Kilosort / phy output folders, memory-mapped, validated and fingerprinted.

A :class:`Dataset` is the read-only base of a curation: spike times and the sorter's
template assignment (``spike_templates.npy``, the base state of every replay), plus the
files the statistics need (amplitudes, templates, probe geometry, template similarity,
sorter columns from ``cluster_*.tsv``). Real folders are messy (see docs/DESIGN.md "Real folders
are messy"); this module accepts what sorters actually write and turns everything else into
one clear :class:`~curalog.errors.DatasetError` naming the file.

Nothing here ever writes into the dataset folder.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import csv
import hashlib
import json
import mmap as mmap_module
import os
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numba
import numpy as np

from curalog.errors import DatasetError

#: Files a curation needs; everything else is optional.
REQUIRED_FILES = ("params.py", "spike_times.npy", "spike_templates.npy")

#: Sorter metadata files that are exports, never inputs.
_METADATA_EXCLUDED_STEMS = {"cluster_info"}

#: The label field every curation has (good / mua / noise / unsorted).
GROUP_FIELD = "group"


def _npy_path(folder: Path, name: str) -> Path:
    return folder / name


_PARSE_LOCK = threading.Lock()


def read_params(path: Path) -> dict[str, Any]:
    """Read ``params.py`` without executing it.

    Kilosort writes a handful of ``name = literal`` lines. Each assignment whose value is a
    Python literal is kept (keys lower-cased, as phylib does); anything else (an expression,
    a function call) is ignored rather than executed.
    """
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
        with _PARSE_LOCK:  # CPython 3.11's parser is not thread-safe (SystemError under races)
            tree = ast.parse(source, filename=str(path))
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (every Kilosort/phy folder has a params.py)") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{path}: not valid Python ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    except (MemoryError, RecursionError):
        raise DatasetError(f"{path}: too deeply nested to read") from None
    params: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    params[target.id.lower()] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
    return params


def _load_npy(path: Path, *, required: bool, mmap: bool = True) -> np.ndarray | None:
    if not path.exists():
        if required:
            raise DatasetError(f"{path}: missing (required)")
        return None
    try:
        # Always map first: a header declaring more data than the file holds is refused
        # here instead of being allocated.
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError) as exc:
        raise DatasetError(
            f"{path}: cannot be read ({exc.__class__.__name__}: {str(exc)[:120]})"
        ) from None
    except Exception as exc:  # malformed headers raise ValueError, SyntaxError, TokenError, ...
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise DatasetError(
            f"{path}: not a readable .npy array ({exc.__class__.__name__}: {first})"
        ) from None
    if not isinstance(arr, np.ndarray):
        raise DatasetError(f"{path}: not a single .npy array")
    if arr.dtype.hasobject or arr.dtype.fields is not None:
        raise DatasetError(f"{path}: unsupported dtype {arr.dtype}")
    if not mmap:
        arr = np.array(arr)
    return arr


def _as_vector(arr: np.ndarray, path: Path) -> np.ndarray:
    """Accept ``(n,)``, ``(n, 1)`` and ``(1, n)`` arrays (older Kilosort), as a 1-D view."""
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2 and 1 in arr.shape:
        return arr.reshape(-1)
    if arr.ndim == 0:
        return arr.reshape(1)
    raise DatasetError(f"{path}: expected a vector, got shape {arr.shape}")


def _as_index_vector(arr: np.ndarray, path: Path, dtype: np.dtype) -> np.ndarray:
    """An integer vector of non-negative ids, converted from unsigned or float dtypes."""
    vec = _as_vector(arr, path)
    if vec.dtype.kind == "f":
        values = np.asarray(vec)
        if not np.all(np.isfinite(values)):
            raise DatasetError(f"{path}: contains NaN or infinite ids")
        if not np.all(values == np.floor(values)):
            raise DatasetError(f"{path}: float ids that are not whole numbers")
        vec = values
    elif vec.dtype.kind not in "iub":
        raise DatasetError(f"{path}: expected integer ids, got dtype {vec.dtype}")
    if vec.size and vec.dtype.kind in "if" and vec.min() < 0:
        raise DatasetError(f"{path}: negative ids (min {vec.min()})")
    if vec.size and vec.max() > np.iinfo(dtype).max:
        raise DatasetError(f"{path}: ids too large for {np.dtype(dtype).name} (max {vec.max()})")
    return np.ascontiguousarray(vec, dtype=dtype)


@numba.njit(cache=True, nogil=True)
def _first_decrease(values: np.ndarray) -> int:
    for i in range(1, values.shape[0]):
        if values[i] < values[i - 1]:
            return i
    return -1


def _spike_times_samples(arr: np.ndarray, path: Path) -> np.ndarray:
    """Spike times in samples as int64, memory-mapped whenever the file allows it."""
    vec = _as_vector(arr, path)
    kind = vec.dtype.kind
    if kind == "f":
        values = np.asarray(vec)
        if not np.all(np.isfinite(values)):
            raise DatasetError(f"{path}: contains NaN or infinite times")
        vec = values.astype(np.int64)
    elif kind == "u" and vec.dtype.itemsize == 8:
        if vec.size and int(vec.max()) > np.iinfo(np.int64).max:
            raise DatasetError(f"{path}: times beyond the int64 range")
        vec = vec.view(np.dtype(np.int64).newbyteorder(vec.dtype.byteorder))
    elif kind not in "iu":
        raise DatasetError(f"{path}: expected integer sample times, got dtype {vec.dtype}")
    if vec.dtype != np.int64 or not vec.dtype.isnative:
        vec = np.ascontiguousarray(vec, dtype=np.int64)
    marker = _validation_marker(path)
    if marker is not None and marker.exists():
        return vec  # this exact file was checked before (same path, size, inode, times)
    bad = _first_decrease(vec) if vec.size else -1
    if bad >= 0:
        raise DatasetError(
            f"{path}: spike times must be sorted; time[{bad}]={vec[bad]} < time[{bad - 1}]={vec[bad - 1]}"
        )
    if vec.size and vec[0] < 0:
        raise DatasetError(f"{path}: negative spike time {vec[0]}")
    if marker is not None:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    return vec


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def _validation_marker(path: Path) -> Path | None:
    """A cache entry proving that this exact spike_times file was found sorted."""
    try:
        key = hashlib.sha256(("sorted|" + _file_key(path)).encode()).hexdigest()
    except OSError:
        return None
    return _fingerprint_cache_dir() / "validated" / key


def read_metadata_tsv(path: Path) -> dict[str, dict[int, Any]]:
    """Read a ``cluster_*.tsv`` / ``.csv`` file as ``{field: {cluster_id: value}}``.

    Same rules as phylib: tab-separated when the header has a tab (else comma), empty cells
    skipped, values converted int -> float -> str. Files without a ``cluster_id`` column
    (or ``id``, as phy 2.0b1 wrote) yield nothing.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    text = decode_table(data, path)
    try:
        return _parse_metadata(text, path)
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed table ({exc})") from None


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_table(data: bytes, path: Path) -> str:
    """The text of a TSV/CSV file: UTF-8, or UTF-8/16/32 with a byte-order mark (as Excel
    and Windows tools save). Anything else (Latin-1, UTF-16 without a mark) is refused with
    the line of the first undecodable byte, rather than silently garbled."""
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], name
            break
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}: line {line}: not {encoding.upper()} text (byte 0x{data[exc.start]:02x}); "
            "save it as UTF-8"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DatasetError(
            f"{path}: line {line}: NUL characters (UTF-16 without a byte-order mark?); "
            "save it as UTF-8"
        )
    return text


def parse_cluster_id(text: str) -> int | None:
    """A cluster id cell: ASCII digits (``12``, or ``12.0`` as some tools write), else None.

    Python's ``int`` would also take ``'1_0'`` and full-width digits (``'１'``)."""
    cell = text.strip()
    if not cell or not cell.isascii():
        return None
    if cell.isdigit():
        return int(cell)
    whole, dot, frac = cell.partition(".")
    if dot and whole.isdigit() and (frac == "" or set(frac) == {"0"}):
        return int(whole)
    return None


def _parse_metadata(text: str, path: Path | None = None) -> dict[str, dict[int, Any]]:
    lines = text.splitlines()
    if not lines:
        return {}
    delimiter = "\t" if "\t" in lines[0] else ","
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    id_col = "cluster_id" if "cluster_id" in header else ("id" if "id" in header else None)
    if id_col is None:
        return {}
    idx = header.index(id_col)
    out: dict[str, dict[int, Any]] = {h: {} for i, h in enumerate(header) if i != idx and h}
    for row in reader:
        if len(row) <= idx:
            continue
        cid = parse_cluster_id(row[idx])
        if cid is None:
            cell = row[idx].strip()
            if cell and not cell.isascii() and path is not None:
                raise DatasetError(
                    f"{path}: line {reader.line_num}: cluster id {row[idx]!r} is not written "
                    "in ASCII digits"
                )
            continue
        if not 0 <= cid < 2**31 - 1:
            continue
        for i, name in enumerate(header):
            if i == idx or not name or i >= len(row):
                continue
            cell = row[i].strip()
            if cell == "":
                continue
            out[name][cid] = parse_value(cell)
    return {k: v for k, v in out.items() if v}


def parse_value(text: str) -> int | float | str:
    """int -> float -> str, like phylib's ``_try_make_number``."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Fingerprint:
    """What binds a log to its dataset: sizes and content hashes of the base arrays."""

    n_spikes: int
    n_templates: int
    spike_templates_sha256: str
    spike_times_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_spikes": self.n_spikes,
            "n_templates": self.n_templates,
            "spike_templates_sha256": self.spike_templates_sha256,
            "spike_times_sha256": self.spike_times_sha256,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fingerprint:
        return cls(
            int(d["n_spikes"]),
            int(d["n_templates"]),
            str(d["spike_templates_sha256"]),
            str(d["spike_times_sha256"]),
        )

    def short(self) -> str:
        return self.spike_templates_sha256[:12]

    def differences(self, other: Fingerprint) -> list[str]:
        """Names of what differs, for an error message."""
        out = []
        if self.n_spikes != other.n_spikes:
            out.append(f"n_spikes {other.n_spikes} != {self.n_spikes}")
        if self.n_templates != other.n_templates:
            out.append(f"n_templates {other.n_templates} != {self.n_templates}")
        if self.spike_templates_sha256 != other.spike_templates_sha256:
            out.append("spike_templates.npy content")
        if self.spike_times_sha256 != other.spike_times_sha256:
            out.append("spike_times.npy content")
        return out


def release_pages(arr: np.ndarray) -> None:
    """Tell the kernel we are done reading a memory-mapped array for now (its pages drop
    out of our resident memory; reading it again just maps them back in). Views of a
    memory map (``ascontiguousarray``, ``reshape``) release the map they come from."""
    mm = None
    base: Any = arr
    while base is not None and mm is None:
        mm = getattr(base, "_mmap", None)
        base = getattr(base, "base", None)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap_module, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap_module.MADV_DONTNEED)


def _sha256_of(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    flat = arr.reshape(-1)
    step = 1 << 24
    for start in range(0, flat.shape[0], step):
        h.update(memoryview(np.ascontiguousarray(flat[start : start + step])).cast("B"))
    return h.hexdigest()


@dataclass(frozen=True)
class RawParams:
    """What ``params.py`` says about the raw recording, as written (validation is
    :func:`curalog.recording.open_recording`'s, so a bad value there never stops a curation).

    Attributes
    ----------
    dat_paths : list of Path
        ``dat_path`` as a string or a list of files concatenated in time, each relative to
        the folder unless absolute. Empty when the key is missing, ``None``, ``'None'`` or ``''``.
    n_channels_dat : object
        Interleaved channels per sample in the file (``n_channels_dat``; may exceed the
        template channels of ``channel_map.npy``). None when missing.
    dtype : object
        ``dtype`` (phylib's default ``'int16'`` when missing).
    offset : object
        Bytes to skip at the start of every file (``offset``, default 0).
    hp_filtered : bool
        True when the sorter says the file is already high-pass filtered (Kilosort's key).
    uv_per_bit : object
        Optional ``uv_per_bit`` (curalog's key, ignored by phy): microvolts per file unit.
    """

    dat_paths: list[Path]
    n_channels_dat: Any
    dtype: Any
    offset: Any
    hp_filtered: bool
    uv_per_bit: Any = None

    @classmethod
    def from_params(cls, params: dict[str, Any], folder: Path) -> RawParams:
        raw = params.get("dat_path")
        items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        paths = [
            Path(item) if Path(item).is_absolute() else folder / item
            for item in items
            if isinstance(item, str) and item.strip() not in ("", "None")
        ]
        return cls(
            dat_paths=paths,
            n_channels_dat=params.get("n_channels_dat"),
            dtype=params.get("dtype", "int16"),
            offset=params.get("offset", 0),
            hp_filtered=bool(params.get("hp_filtered", False)),
            uv_per_bit=params.get("uv_per_bit"),
        )


@dataclass
class Dataset:
    """A Kilosort/phy output folder, loaded lazily and never modified.

    Attributes
    ----------
    path : Path
        The folder.
    params : dict
        Literal assignments of ``params.py`` (keys lower-cased).
    sample_rate : float
        Samples per second (``params.py``'s ``sample_rate``).
    spike_times : ndarray of int64, shape (n_spikes,)
        Spike times in samples, sorted (memory-mapped when the file is int64 or uint64).
    spike_templates : ndarray of int32, shape (n_spikes,)
        The sorter's template per spike: the base cluster assignment.
    n_templates : int
        ``templates.npy``'s first dimension when present, else ``max(spike_templates) + 1``.
    """

    path: Path
    params: dict[str, Any]
    sample_rate: float
    spike_times: np.ndarray
    spike_templates: np.ndarray
    n_templates: int
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ sizes
    @property
    def n_spikes(self) -> int:
        return int(self.spike_templates.shape[0])

    @property
    def duration(self) -> float:
        """Recording duration in seconds (last spike time; at least one second)."""
        if self.n_spikes == 0:
            return 1.0
        return max(1.0, float(self.spike_times[-1]) / self.sample_rate)

    # ------------------------------------------------------------------ optional files
    def _optional(self, name: str, loader) -> Any:
        if name not in self._cache:
            self._cache[name] = loader()
        return self._cache[name]

    @property
    def amplitudes(self) -> np.ndarray | None:
        """Per-spike amplitudes (template scaling factors), float, or None."""

        def load() -> np.ndarray | None:
            path = self.path / "amplitudes.npy"
            arr = _load_npy(path, required=False)
            if arr is None:
                return None
            vec = _as_vector(arr, path)
            if vec.shape[0] != self.n_spikes:
                raise DatasetError(f"{path}: {vec.shape[0]} rows but {self.n_spikes} spikes")
            if vec.dtype.kind not in "fiu":
                raise DatasetError(f"{path}: expected numbers, got dtype {vec.dtype}")
            return vec

        return self._optional("amplitudes", load)

    @property
    def templates(self) -> np.ndarray | None:
        """Template waveforms ``(n_templates, n_samples, n_channels_loc)`` or None."""
        return self._optional("templates", self._load_templates)

    def _load_templates(self) -> np.ndarray | None:
        path = self.path / "templates.npy"
        arr = _load_npy(path, required=False)
        if arr is None:
            return None
        if arr.ndim != 3 or arr.dtype.kind != "f":
            raise DatasetError(
                f"{path}: expected float (n_templates, n_samples, n_channels), got {arr.dtype} {arr.shape}"
            )
        return arr

    @property
    def template_channels(self) -> np.ndarray | None:
        """Channel index of each template column for sparse templates, else None (dense).

        ``template_ind.npy`` (phy, SpikeInterface) marks sparse templates. Kilosort writes
        ``templates_ind.npy`` (plural), which phylib ignores; curalog uses it only when it
        is not the trivial ``arange`` per row.
        """

        def load() -> np.ndarray | None:
            for name in ("template_ind.npy", "templates_ind.npy"):
                path = self.path / name
                arr = _load_npy(path, required=False, mmap=False)
                if arr is None:
                    continue
                templates = self.templates
                if arr.ndim != 2:
                    raise DatasetError(
                        f"{path}: expected (n_templates, n_channels), got shape {arr.shape}"
                    )
                if templates is not None and arr.shape != (templates.shape[0], templates.shape[2]):
                    raise DatasetError(
                        f"{path}: shape {arr.shape} does not match templates.npy {templates.shape[::2]}"
                    )
                ind = np.asarray(arr)
                if ind.dtype.kind == "f":
                    ind = np.where(np.isfinite(ind), ind, -1)
                ind = ind.astype(np.int64)
                if name == "templates_ind.npy" and np.array_equal(
                    ind, np.broadcast_to(np.arange(ind.shape[1]), ind.shape)
                ):
                    return None
                return ind
            return None

        return self._optional("template_channels", load)

    @property
    def channel_map(self) -> np.ndarray:
        """Raw channel label of each channel row (``channel_map.npy``; default arange)."""

        def load() -> np.ndarray:
            path = self.path / "channel_map.npy"
            arr = _load_npy(path, required=False, mmap=False)
            if arr is None:
                n = self.n_channels_from_files()
                return np.arange(n, dtype=np.int64)
            return _as_index_vector(arr, path, np.int64)

        return self._optional("channel_map", load)

    def n_channels_from_files(self) -> int:
        pos = self.path / "channel_positions.npy"
        if pos.exists():
            arr = _load_npy(pos, required=False)
            if arr is not None and arr.ndim == 2:
                return int(arr.shape[0])
        templates = self.templates
        return int(templates.shape[2]) if templates is not None else 0

    @property
    def n_channels(self) -> int:
        return int(self.channel_map.shape[0])

    @property
    def channel_positions(self) -> np.ndarray:
        """``(n_channels, 2)`` probe coordinates in µm (default: a vertical line)."""

        def load() -> np.ndarray:
            path = self.path / "channel_positions.npy"
            arr = _load_npy(path, required=False, mmap=False)
            n = self.n_channels
            if arr is None:
                return np.column_stack([np.zeros(n), np.arange(n, dtype=float)])
            if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
                raise DatasetError(f"{path}: expected ({n}, 2), got shape {arr.shape}")
            return np.asarray(arr[:, :2], dtype=np.float64)

        return self._optional("channel_positions", load)

    @property
    def channel_shanks(self) -> np.ndarray:
        """Shank of each channel (float files accepted; default zeros)."""

        def load() -> np.ndarray:
            path = self.path / "channel_shanks.npy"
            arr = _load_npy(path, required=False, mmap=False)
            n = self.n_channels
            if arr is None:
                return np.zeros(n, dtype=np.int64)
            vec = _as_vector(arr, path)
            if vec.shape[0] != n:
                raise DatasetError(f"{path}: {vec.shape[0]} rows but {n} channels")
            return np.nan_to_num(np.asarray(vec, dtype=np.float64)).astype(np.int64)

        return self._optional("channel_shanks", load)

    @property
    def similar_templates(self) -> np.ndarray | None:
        """``(n_templates, n_templates)`` template similarity or None when absent."""

        def load() -> np.ndarray | None:
            path = self.path / "similar_templates.npy"
            arr = _load_npy(path, required=False, mmap=False)
            if arr is None:
                return None
            if arr.shape != (self.n_templates, self.n_templates):
                raise DatasetError(
                    f"{path}: shape {arr.shape}, expected ({self.n_templates}, {self.n_templates})"
                )
            return np.nan_to_num(np.asarray(arr, dtype=np.float32))

        return self._optional("similar_templates", load)

    def optional_array(self, name: str) -> np.ndarray | None:
        """Any other optional ``.npy`` of the folder (pc_features, template_features, ...),
        memory-mapped, or None. Validation is the caller's."""
        return self._optional(name, lambda: _load_npy(self.path / name, required=False))

    @property
    def sorter_metadata(self) -> dict[str, dict[int, Any]]:
        """Columns of every ``cluster_*.tsv`` / ``*.csv`` (except cluster_info), sorted by file name.

        Includes ``group`` (from cluster_group.tsv) when present. Read-only sorter provenance:
        curalog never rewrites these files except ``cluster_group.tsv`` and the label fields
        it owns on export.
        """

        def load() -> dict[str, dict[int, Any]]:
            out: dict[str, dict[int, Any]] = {}
            files = sorted(self.path.glob("*.csv")) + sorted(self.path.glob("*.tsv"))
            for path in files:
                if path.stem in _METADATA_EXCLUDED_STEMS or not path.is_file():
                    continue
                for name, values in read_metadata_tsv(path).items():
                    out.setdefault(name, {}).update(values)
            return out

        return self._optional("sorter_metadata", load)

    def pin_sorter_metadata(self, header: dict[str, Any]) -> None:
        """Use the sorter's columns recorded in a log header instead of the folder's files.

        A curation log records ``cluster_group.tsv`` and the other ``cluster_*.tsv`` columns
        when it is created; files written into the folder afterwards (our own exports, or
        phy rewriting cluster_KSLabel.tsv) then change nothing.
        """
        pinned: dict[str, dict[int, Any]] = {
            name: {int(c): v for c, v in pairs}
            for name, pairs in header.get("sorter_columns", {}).items()
        }
        pinned[GROUP_FIELD] = {int(c): g for c, g in header.get("base_groups", [])}
        self._cache["sorter_metadata"] = pinned

    @property
    def base_groups(self) -> dict[int, str]:
        """Initial ``group`` labels (``cluster_group.tsv``, as Kilosort writes it), ids < n_templates."""
        groups = self.sorter_metadata.get(GROUP_FIELD, {})
        return {int(c): str(v) for c, v in groups.items() if 0 <= int(c) < self.n_templates}

    @property
    def sorter_columns(self) -> dict[str, dict[int, Any]]:
        """Sorter metadata without ``group``: KSLabel, ContamPct, Amplitude, si_unit_id, ..."""
        return {k: v for k, v in self.sorter_metadata.items() if k != GROUP_FIELD}

    def phy_spike_clusters(self) -> np.ndarray | None:
        """``spike_clusters.npy`` as int32 when present (phy's saved state), else None."""
        path = self.path / "spike_clusters.npy"
        arr = _load_npy(path, required=False)
        if arr is None:
            return None
        vec = _as_index_vector(arr, path, np.int32)
        if vec.shape[0] != self.n_spikes:
            raise DatasetError(f"{path}: {vec.shape[0]} rows but {self.n_spikes} spikes")
        return vec

    # ------------------------------------------------------------------ raw recording
    @property
    def raw(self) -> RawParams:
        """The raw-recording keys of ``params.py`` (see :class:`RawParams`); never raises."""
        return self._optional("raw_params", lambda: RawParams.from_params(self.params, self.path))

    # ------------------------------------------------------------------ fingerprint
    @cached_property
    def fingerprint(self) -> Fingerprint:
        """Content hashes of the base arrays (cached on disk by file stat when possible)."""
        return compute_fingerprint(self)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "n_spikes": self.n_spikes,
            "n_templates": self.n_templates,
            "sample_rate": self.sample_rate,
            "duration_s": round(self.duration, 3),
        }


# ---------------------------------------------------------------------- fingerprints
_FP_CACHE_ENV = "CURALOG_CACHE_DIR"


def _fingerprint_cache_dir() -> Path:
    base = os.environ.get(_FP_CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "curalog",
    )
    return Path(base)


def _stat_key(ds: Dataset) -> str:
    parts = [_file_key(ds.path / name) for name in ("spike_templates.npy", "spike_times.npy")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def compute_fingerprint(ds: Dataset, use_cache: bool = True) -> Fingerprint:
    """Hash the dtype-normalised contents of spike_templates (int32) and spike_times (int64).

    Hashing 50 M spikes takes about half a second, so the result is cached in the user's
    cache directory keyed by the files' path, size, inode and modification times: rewriting
    either file invalidates it.
    """
    key = None
    cache_file = None
    if use_cache:
        try:
            key = _stat_key(ds)
            cache_file = _fingerprint_cache_dir() / "fingerprints" / f"{key}.json"
            if cache_file.exists():
                return Fingerprint.from_dict(json.loads(cache_file.read_text()))
        except (OSError, ValueError, KeyError):
            cache_file = None
    fp = Fingerprint(
        n_spikes=ds.n_spikes,
        n_templates=ds.n_templates,
        spike_templates_sha256=_sha256_of(ds.spike_templates.astype("<i4", copy=False)),
        spike_times_sha256=_sha256_of(np.asarray(ds.spike_times).astype("<i8", copy=False)),
    )
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(fp.to_dict()))
            os.replace(tmp, cache_file)
        except OSError:
            pass  # a read-only home directory only costs a re-hash next time
    return fp


# ---------------------------------------------------------------------- loading
def load_dataset(folder: str | os.PathLike[str]) -> Dataset:
    """Open a Kilosort/phy folder.

    Reads ``params.py``, ``spike_times.npy`` and ``spike_templates.npy`` eagerly (times stay
    memory-mapped when stored as 64-bit integers; template ids become an int32 array) and
    validates lengths, ranges and sortedness. Other files load lazily on first use and are
    validated then, each error naming its file.

    Raises
    ------
    DatasetError
        One line naming the file at fault.
    """
    path = Path(folder)
    if not path.exists():
        raise DatasetError(f"{path}: no such folder")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder (give the Kilosort/phy output folder)")
    params_path = path / "params.py"
    params = read_params(params_path)
    sr = params.get("sample_rate")
    if sr is None:
        raise DatasetError(f"{params_path}: no sample_rate")
    try:
        sample_rate = float(sr)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{params_path}: sample_rate is not a number ({sr!r})") from None
    if not np.isfinite(sample_rate) or sample_rate <= 0:
        raise DatasetError(f"{params_path}: sample_rate must be positive ({sr!r})")

    st_path = path / "spike_times.npy"
    times = _spike_times_samples(_load_npy(st_path, required=True), st_path)
    tp_path = path / "spike_templates.npy"
    templates_ids = _as_index_vector(_load_npy(tp_path, required=True), tp_path, np.int32)
    if templates_ids.shape[0] != times.shape[0]:
        raise DatasetError(
            f"{tp_path}: {templates_ids.shape[0]} spikes but spike_times.npy has {times.shape[0]}"
        )
    max_template = int(templates_ids.max()) if templates_ids.size else -1
    n_templates = max_template + 1
    tmpl_path = path / "templates.npy"
    if tmpl_path.exists():
        tmpl = _load_npy(tmpl_path, required=False)
        if tmpl is not None:
            if tmpl.ndim != 3:
                raise DatasetError(f"{tmpl_path}: expected 3 dimensions, got shape {tmpl.shape}")
            if max_template >= tmpl.shape[0]:
                raise DatasetError(
                    f"{tp_path}: template id {max_template} out of range (templates.npy has {tmpl.shape[0]})"
                )
            n_templates = int(tmpl.shape[0])
    ds = Dataset(
        path=path,
        params=params,
        sample_rate=sample_rate,
        spike_times=times,
        spike_templates=templates_ids,
        n_templates=n_templates,
    )
    return ds
