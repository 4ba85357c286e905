"""The cluster table as rows: what ``curalog clusters`` prints and ``cluster_info.tsv`` holds.

One row per live cluster: ``id``, ``group``, the label fields, then every statistic of the
engine (:meth:`StatsEngine.row`: phy's columns, curalog's metrics and SpikeInterface's
quality metrics), then the sorter's columns (``sorter.<name>``, and the bare name when no
computed column has it). :func:`spikeinterface_names` renames the keys that SpikeInterface
spells differently (``n_spikes`` -> ``num_spikes``), for the JSON output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from curalog.analysis.stats.engine import StatsEngine

__all__ = ["cluster_rows", "spikeinterface_names", "clean", "info_columns"]

#: curalog's key -> SpikeInterface's column name, where they differ.
SI_RENAMES = {"n_spikes": "num_spikes"}


def clean(value: Any) -> Any:
    """NaN -> None, numpy scalars -> Python (JSON-ready)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def engine_for(cur: Any) -> StatsEngine:
    """A statistics engine for a curation, on its raw recording when one opens."""
    rec = getattr(cur, "recording", None)
    return StatsEngine(cur.dataset, cur.state, recording=rec)


def cluster_rows(
    cur: Any,
    engine: StatsEngine | None = None,
    *,
    ids: Sequence[int] | None = None,
    n_threads: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the live clusters (or ``ids``), statistics computed as needed.

    ``progress(done, total)`` is called after each cluster (for a progress bar); the largest
    clusters are computed first on ``n_threads`` threads (the kernels release the GIL).
    """
    eng = engine if engine is not None else engine_for(cur)
    ids = [int(c) for c in (cur.cluster_ids if ids is None else ids)]
    total = len(ids)
    todo = sorted((c for c in ids if not eng.is_cached(c)), key=lambda c: -cur.state.n_spikes_of(c))
    done = total - len(todo)
    if progress:
        progress(done, total)
    if n_threads > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:  # statistics and quality
            for fut in as_completed([pool.submit(eng.row, c) for c in todo]):
                fut.result()
                done += 1
                if progress:
                    progress(done, total)
    else:
        for c in todo:
            eng.row(c)
            done += 1
            if progress:
                progress(done, total)
    fields = [f for f in cur.labels.fields if f != "group"]
    rows = []
    for c in ids:
        row: dict[str, Any] = {"id": c, "group": cur.group(c) or "unsorted"}
        for f in fields:
            row[f] = cur.labels.fields[f].get(c)
        stats = eng.row(c)
        for k, v in stats.items():
            if k not in row:
                row[k] = v
        rows.append(row)
    return rows


def spikeinterface_names(row: dict[str, Any]) -> dict[str, Any]:
    """The row with SpikeInterface's column names and JSON-ready values."""
    return {SI_RENAMES.get(k, k): clean(v) for k, v in row.items()}


def info_columns(
    cur: Any,
    engine: StatsEngine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, dict[str, Any]]:
    """Metric columns per live cluster for ``cluster_info.tsv`` (no id, group, labels or
    sorter columns: the export writes those itself); ``progress`` as :func:`cluster_rows`."""
    fields = set(cur.labels.fields)
    out: dict[int, dict[str, Any]] = {}
    for row in cluster_rows(cur, engine, progress=progress):
        out[int(row["id"])] = {
            k: clean(v)
            for k, v in row.items()
            if k not in ("id", "group")
            and k not in fields
            and not k.startswith("sorter.")
            and k not in cur.dataset.sorter_columns
        }
    return out
