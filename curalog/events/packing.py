"""Compact arrays inside event bodies: spike selections and the values aligned with them.

Sorted selections are delta-encoded (the first value, then the deltas in the smallest
unsigned type that holds them) and zlib-compressed; values aligned with a selection are
zlib-compressed little-endian int64. :func:`unpack_array` validates everything, so a
hostile map is a :class:`~curalog.errors.LogCorruptError`, never a crash or a huge buffer.
"""

from __future__ import annotations

import zlib
from typing import Any

import numba
import numpy as np

from curalog.errors import LogCorruptError

_MAX_DECODED = 1 << 34  # bytes; guards against hostile declared sizes


#: Selections at least this long whose 16-bit deltas are not run-like are stored, not deflated.
STORE_MIN = 1024


def pack_indices(indices: np.ndarray) -> dict[str, Any]:
    """Sorted unique non-negative integers -> ``{"enc": "delta-zlib", "dtype", "n", "start", "data"}``.

    ``start`` is the first value; the data are the deltas that follow it. Deltas of a sorted
    spike selection are small, so they fit in uint16 or uint32 and compress well (a
    contiguous run of a million spikes packs to a few kilobytes).

    The zlib stream is deflated when that pays: short selections, runs of consecutive
    spikes and the zero high bytes of 32/64-bit deltas. The 16-bit deltas of a long
    selection spread over the recording (the usual split of a cluster) shrink by only 10-20 %
    for a deflate that costs more than resolving the split; they are stored (zlib level 0:
    the same format, read by any zlib decoder, and faster to inflate on replay).
    """
    arr = np.asarray(indices)
    if arr.dtype not in (np.int32, np.int64):
        arr = arr.astype(np.int64)
    start = int(arr[0]) if arr.size else 0
    deltas16 = np.empty(arr.size, dtype="<u2")
    top, short = _deltas16(arr, deltas16)
    if top < 2**16:
        dtype, raw = "<u2", deltas16.tobytes()
    else:
        wide = np.diff(arr.astype(np.int64), prepend=np.int64(start))
        dtype = "<u4" if top < 2**32 else "<u8"  # smaller = faster to inflate
        raw = wide.astype(dtype).tobytes()
    stored = dtype == "<u2" and arr.size >= STORE_MIN and 4 * short < arr.size
    return {
        "enc": "delta-zlib",
        "dtype": dtype,
        "n": int(arr.size),
        "start": start,
        "data": zlib.compress(raw, 0 if stored else 1),
    }


@numba.njit(cache=True, nogil=True)
def _deltas16(arr: np.ndarray, out: np.ndarray) -> tuple[Any, Any]:
    """One pass: the deltas (first one 0) into ``out`` while they fit in 16 bits; returns the
    largest delta and the count of deltas <= 1 (``out`` is complete only if top < 2**16)."""
    top = np.int64(0)
    short = 0
    prev = arr[0] if arr.shape[0] else 0
    for i in range(arr.shape[0]):
        d = np.int64(arr[i]) - np.int64(prev)
        prev = arr[i]
        if d > top:
            top = d
        if d <= 1:
            short += 1
        out[i] = np.uint16(d & 0xFFFF)
    return top, short


def pack_values(values: np.ndarray) -> dict[str, Any]:
    """Arbitrary integers aligned with a selection -> ``{"enc": "zlib", "dtype": "<i8", ...}``."""
    arr = np.asarray(values, dtype="<i8")
    return {
        "enc": "zlib",
        "dtype": "<i8",
        "n": int(arr.size),
        "data": zlib.compress(arr.tobytes(), 1),
    }


def unpack_array(obj: Any, where: str, max_items: int | None = None) -> np.ndarray:
    """Inverse of :func:`pack_indices` / :func:`pack_values`, validating everything.

    ``max_items`` bounds the declared length before anything is decompressed (a selection
    never has more items than the dataset has spikes).
    """
    if not isinstance(obj, dict):
        raise LogCorruptError(f"{where}: packed array is not a map")
    enc, dtype, n, data = obj.get("enc"), obj.get("dtype"), obj.get("n"), obj.get("data")
    if enc not in ("delta-zlib", "zlib") or dtype not in ("<u2", "<u4", "<u8", "<i8"):
        raise LogCorruptError(f"{where}: unknown array encoding {enc!r}/{dtype!r}")
    if not isinstance(n, int) or n < 0 or not isinstance(data, bytes):
        raise LogCorruptError(f"{where}: malformed packed array")
    if max_items is not None and n > max_items:
        raise LogCorruptError(
            f"{where}: packed array declares {n} items, more than the {max_items} possible"
        )
    itemsize = np.dtype(dtype).itemsize
    expected = n * itemsize
    if expected > _MAX_DECODED:
        raise LogCorruptError(f"{where}: packed array declares {n} items (too many)")
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, expected + 1)
    except zlib.error as exc:
        raise LogCorruptError(f"{where}: packed array does not decompress ({exc})") from None
    if len(raw) != expected:
        raise LogCorruptError(f"{where}: packed array has {len(raw)} bytes, expected {expected}")
    arr = np.frombuffer(raw, dtype=dtype).astype(np.int64)
    if enc == "delta-zlib":
        start = obj.get("start", 0)
        if not isinstance(start, int) or not 0 <= start < 2**62:
            raise LogCorruptError(f"{where}: malformed packed array start")
        arr = np.cumsum(arr)
        if start:
            arr += start
    return arr
