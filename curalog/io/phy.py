"""phy's output files: ``spike_clusters.npy``, ``cluster_<field>.tsv``, ``cluster_info.tsv``.

Formats follow what phy writes on save (docs/PHY_SEMANTICS.md section 3): int32
``spike_clusters.npy``; one ``cluster_<field>.tsv`` per label field with a
``cluster_id<TAB><field>`` header, rows sorted by id, clusters without a value omitted and
``\\r\\n`` line ends; ``cluster_info.tsv`` with ``cluster_id`` first, the other columns
sorted, floats as ``%.8f`` and empty cells for missing values.

Unlike phy, every file is written atomically, the sorter's own columns (KSLabel,
ContamPct, ...) are never rewritten, and an existing ``spike_clusters.npy`` that no log
state explains is first kept in ``.curalog/backup/``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curalog.analysis.stats.metrics import TemplateGeometry
from curalog.analysis.stats.table import info_columns
from curalog.atomic import (
    clean_stale_tempfiles,
    save_npy_atomic,
    write_atomic,
    write_bytes_atomic,
)
from curalog.dataset import GROUP_FIELD
from curalog.errors import CuralogError, LogCorruptError
from curalog.labels import SORTER_COLUMNS

if TYPE_CHECKING:
    from curalog.curation import Curation

EXPORT_RECORD = "exports.json"


@dataclass
class ExportResult:
    out: Path
    files: list[Path]
    backups: list[Path] = field(default_factory=list)
    seq: int = 0
    head: str = ""


def format_cell(value: Any) -> str:
    """phy's cluster_info.tsv cell format: floats '%.8f', None empty, the rest str()."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.8f}"
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def tsv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def label_tsv(field_name: str, values: dict[int, Any], live: np.ndarray) -> bytes:
    """``cluster_<field>.tsv``: live clusters with a value, sorted by id, phy's ``str(value)``."""
    rows = [[str(int(c)), str(values[int(c)])] for c in live if values.get(int(c)) is not None]
    return tsv_bytes(["cluster_id", field_name], rows)


def cluster_info_rows(
    cur: Curation, extra: dict[int, dict[str, Any]] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of cluster_info.tsv for the live clusters."""
    live = cur.cluster_ids
    duration = max(1.0, cur.dataset.duration)
    sorter = cur.dataset.sorter_columns
    n_templates = cur.dataset.n_templates
    rows: list[dict[str, Any]] = []
    computed = set().union(*extra.values()) if extra else set()
    # a sorter column never replaces a computed one of the same name (issue 14)
    sorter_key = {name: f"sorter.{name}" if name in computed else name for name in sorter}
    for c in live.tolist():
        n = cur.state.n_spikes_of(c)
        row: dict[str, Any] = {"n_spikes": n, "fr": float(n / duration)}
        for name, values in cur.labels.fields.items():
            row[name] = values.get(c)
        if c < n_templates:
            for name, values in sorter.items():
                row[sorter_key[name]] = values.get(c)
        else:
            for name in sorter:
                row[sorter_key[name]] = None
        if extra and c in extra:
            row.update(extra[c])
        row["cluster_id"] = c
        rows.append(row)
    columns = sorted(
        ({k for r in rows for k in r} | {GROUP_FIELD, "n_spikes", "fr"}) - {"cluster_id"}
    )
    return ["cluster_id", *columns], rows


def phy_template_columns(cur: Curation) -> dict[int, dict[str, Any]]:
    """phy's template-derived columns for every live cluster: ``amp``, ``ch``, ``depth``, ``sh``.

    As phy's Template GUI: the cluster's dominant template (most spikes; ties to the smaller
    id), its best channel (largest peak-to-peak of the unwhitened template), ``ch`` = the raw
    channel label ``channel_map[best]``, ``depth`` = ``channel_positions[best, 1]``, ``sh`` =
    ``channel_shanks[best]`` and ``amp`` = peak-to-peak amplitude on the best channel.
    Empty when the folder has no templates.npy.
    """

    ds = cur.dataset
    geom = TemplateGeometry(ds)
    if not geom.available:
        return {}
    out: dict[int, dict[str, Any]] = {}
    templates = ds.spike_templates
    for c in cur.cluster_ids.tolist():
        counts = np.bincount(templates[cur.spikes(c)], minlength=ds.n_templates)
        info = geom.get(int(np.argmax(counts)))
        if info is None:
            continue
        best = int(info.best_channel)
        out[c] = {
            "amp": float(info.amplitude),
            "ch": str(int(ds.channel_map[best])),
            "depth": float(ds.channel_positions[best, 1]),
            "sh": int(ds.channel_shanks[best]),
        }
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _explained(existing: Path, cur: Curation, record: dict[str, Any]) -> bool:
    """True if an existing spike_clusters.npy is the sorter's or one of our exports."""
    digest = _sha256_file(existing)
    if digest in record.get("spike_clusters_sha256", []):
        return True
    try:
        arr = np.load(existing, mmap_mode="r", allow_pickle=False).reshape(-1)
    except (ValueError, OSError):
        return False
    if arr.shape[0] != cur.dataset.n_spikes:
        return False
    return bool(
        np.array_equal(arr, cur.dataset.spike_templates)
        or np.array_equal(arr, cur.state.spike_clusters)
    )


def _backup(path: Path, backup_dir: Path) -> Path:
    """Keep a copy of ``path`` named by time and content (never overwriting another backup)."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    digest = _sha256_file(path)
    dest = backup_dir / f"{path.stem}-{time.strftime('%Y%m%dT%H%M%S')}-{digest[:12]}{path.suffix}"
    existing = list(backup_dir.glob(f"{path.stem}-*-{digest[:12]}{path.suffix}"))
    if existing:
        return existing[0]  # this very content is already kept
    write_atomic(dest, lambda f: f.write(path.read_bytes()))
    return dest


def export_phy(
    cur: Curation,
    out: str | Path | None = None,
    *,
    info: bool = True,
    extra_columns: dict[int, dict[str, Any]] | None = None,
    metrics: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the current state as phy's files into ``out`` (default: the dataset folder).

    ``metrics=False`` leaves the quality-metric columns out of ``cluster_info.tsv`` (phy's
    own columns stay); ``progress(done, total)`` is called while they are computed, which
    is the long part of an export (every metric of every cluster). Nothing is written
    before they are all computed.

    Writing into the dataset folder keeps an unexplained ``spike_clusters.npy`` (one that
    is neither the sorter's assignment nor a previous curalog export) in
    ``.curalog/backup/`` first.
    """
    if cur.corruption:
        raise LogCorruptError(
            f"{cur.log_path}: damaged ({cur.corruption}); refusing to export a partial "
            "history (curalog fsck --repair, or replay --upto an earlier event)"
        )
    target = Path(out) if out is not None else Path(cur.dataset.path)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CuralogError(f"{target}: cannot create the export folder ({exc.strerror})") from None
    clean_stale_tempfiles(target)  # left by killed exports; nothing else is touched
    state_dir = cur.log_path.parent
    record_path = state_dir / EXPORT_RECORD
    record: dict[str, Any] = {}
    if record_path.exists():
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record = {}
    result = ExportResult(out=target, files=[], seq=cur.seq, head=cur.head_hash.hex())
    written: list[Path] = []
    if info and extra_columns is None:
        # computed first: an interrupted metric pass leaves every file as it was
        extra_columns = phy_template_columns(cur)
        if metrics:  # every metric column of `curalog clusters`
            for c, cols in info_columns(cur, progress=progress).items():
                extra_columns.setdefault(c, {}).update(cols)
    try:
        sc_path = target / "spike_clusters.npy"
        if sc_path.exists() and not _explained(sc_path, cur, record):
            result.backups.append(_backup(sc_path, state_dir / "backup"))
        known_tsv = set(record.get("tsv_sha256", []))
        sorter_names = {n.casefold() for n in (*SORTER_COLUMNS, *cur.dataset.sorter_columns)}
        for name in cur.labels.fields:
            path = target / f"cluster_{name}.tsv"
            if not path.exists() or _sha256_file(path) in known_tsv:
                continue
            if name.casefold() in sorter_names:
                raise CuralogError(
                    f"{path}: a sorter's file (curalog did not write it); refusing to overwrite "
                    f"it with the label field {name!r} (relabel into another field)"
                )
            # not ours (e.g. phy saved it): kept before it is replaced
            result.backups.append(_backup(path, state_dir / "backup"))
        written.append(
            save_npy_atomic(sc_path, np.ascontiguousarray(cur.state.spike_clusters, dtype=np.int32))
        )
        live = cur.cluster_ids
        for name, values in cur.labels.fields.items():
            written.append(
                write_bytes_atomic(target / f"cluster_{name}.tsv", label_tsv(name, values, live))
            )
        if info:
            columns, rows = cluster_info_rows(cur, extra_columns)
            data = tsv_bytes(columns, [[format_cell(r.get(c)) for c in columns] for r in rows])
            written.append(write_bytes_atomic(target / "cluster_info.tsv", data))
    except OSError as exc:
        raise CuralogError(
            f"{target}: export failed ({exc.strerror}); previous files are intact"
        ) from None
    result.files = written
    # Remember what we wrote, so a later export knows these files are explained.
    sc_hashes = list(
        dict.fromkeys([*record.get("spike_clusters_sha256", []), _sha256_file(written[0])])
    )[-50:]
    tsv_hashes = list(
        dict.fromkeys([*record.get("tsv_sha256", []), *(_sha256_file(p) for p in written[1:])])
    )[-200:]
    new_record = {
        "spike_clusters_sha256": sc_hashes,
        "tsv_sha256": tsv_hashes,
        "last": {
            "out": str(target.resolve()),
            "seq": cur.seq,
            "head": cur.head_hash.hex(),
            "time": time.time(),
        },
    }
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(record_path, json.dumps(new_record, indent=1).encode())
    except OSError:
        pass  # the export itself succeeded; only the up-to-date indicator is lost
    return result


def export_status(cur: Curation) -> str:
    """'up to date', 'stale (seq N exported)' or 'never exported'."""
    record_path = cur.log_path.parent / EXPORT_RECORD
    try:
        last = json.loads(record_path.read_text())["last"]
    except (OSError, ValueError, KeyError, TypeError):
        return "never exported"
    if last.get("head") == cur.head_hash.hex():
        return "up to date"
    return f"stale (exported at seq {last.get('seq')})"
