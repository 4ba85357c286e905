"""SpikeInterface's curation format (version 2): export and import.

Export describes the current state *relative to the sorter's units* (the templates of
``spike_templates.npy``): labels, merges and splits, with every new unit id given
explicitly so that ``spikeinterface.curation.apply_curation`` on the sorter's units yields
exactly curalog's clusters, ids included.

One v2 ``Curation`` cannot chain operations on the same unit (validation rule 7: a unit is
never both merged and split) and labels only units of its ``unit_ids``. When the state
needs more, the file is a list of v2 dicts, which ``apply_curation`` reads as a
``SequentialCuration`` (explicit ids in every step, each step's ``unit_ids`` = the previous
step's result):

1. merges (of several units into one cluster, or into a temporary unit) and splits (of one
   unit into several clusters, or of a renamed unit into two temporary parts);
2. the splits of those temporary merges and the merges of those temporary parts;
3. a labels-only step on the final units, when a label sits on a cluster created above.

Labels go in category ``"quality"`` (exclusive; options good, mua, noise), free text fields
with at least two distinct values in a category of their own. Import accepts versions 0
(sortingview), 1 and 2, a single dict or a list of steps, applied to the current state: the
first step's ``unit_ids`` must be the live clusters. See docs/HISTORIES.md for the mapping.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curalog._version import __version__
from curalog.atomic import write_bytes_atomic
from curalog.curation import open_curation
from curalog.dataset import GROUP_FIELD
from curalog.errors import CuralogError, InvalidActionError
from curalog.events import STRUCTURAL_TYPES, AssignBody, MergeBody, SplitBody
from curalog.history.contingencies import contingency, linked_groups, member_mask
from curalog.io.phy_import import CurationImportError, ImportResult, rehearse
from curalog.labels import normalize_group

if TYPE_CHECKING:
    from curalog.curation import Curation

FORMAT_VERSION = "2"
#: Label category holding curalog's ``group`` (as in spikeinterface-gui).
QUALITY = "quality"
GROUP_OPTIONS = ["good", "mua", "noise"]
_GROUP_CATEGORIES = (QUALITY, GROUP_FIELD)


# ====================================================================== export
@dataclass
class _Component:
    units: list[int]  # sorter units
    clusters: list[int]  # current clusters


def _components(base: np.ndarray, now: np.ndarray) -> tuple[list[int], list[_Component]]:
    """Sorter units, and the groups of units and clusters that differ."""
    t = contingency(base, now)
    units = [int(u) for u in t.ids_a.tolist()]
    rows, cols = t.rows, t.cols
    same = (t.counts == t.sizes_a[rows]) & (t.counts == t.sizes_b[cols])
    comps: list[_Component] = []
    for r, c in zip(rows[same].tolist(), cols[same].tolist(), strict=True):
        u, k = int(t.ids_a[r]), int(t.ids_b[c])
        if u != k:
            comps.append(_Component([u], [k]))
    rest = list(zip(t.ids_a[rows[~same]].tolist(), t.ids_b[cols[~same]].tolist(), strict=True))
    comps.extend(_Component(units, clusters) for units, clusters in linked_groups(rest))
    for comp in comps:
        comp.units.sort()
        comp.clusters.sort()
    comps.sort(key=lambda c: (c.units[0], c.clusters[0]))
    return units, comps


def _split_entry(unit: int, spikes: np.ndarray, now: np.ndarray) -> dict[str, Any]:
    """A v2 split (indices mode) of a unit whose sorted spikes go to the clusters in ``now``."""
    children = now[spikes]
    ids, counts = np.unique(children, return_counts=True)
    leftover = int(ids[np.lexsort((-ids, counts))[-1]])  # the biggest child is left implicit
    indices = [np.flatnonzero(children == c).tolist() for c in ids.tolist() if c != leftover]
    new_ids = [int(c) for c in ids.tolist() if c != leftover] + [leftover]
    return {"unit_id": int(unit), "mode": "indices", "indices": indices, "new_unit_ids": new_ids}


def _empty_step(unit_ids: list[int], label_definitions: dict[str, Any]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "unit_ids": sorted(unit_ids),
        "label_definitions": label_definitions,
        "manual_labels": [],
        "removed": [],
        "merges": [],
        "splits": [],
    }


def _final_ids(step: dict[str, Any]) -> list[int]:
    ids = set(step["unit_ids"])
    for m in step["merges"]:
        ids -= set(m["unit_ids"])
        ids.add(m["new_unit_id"])
    for s in step["splits"]:
        ids.discard(s["unit_id"])
        ids.update(s["new_unit_ids"])
    return sorted(ids)


def _modified(step: dict[str, Any]) -> set[int]:
    out = {u for m in step["merges"] for u in m["unit_ids"]}
    out.update(s["unit_id"] for s in step["splits"])
    return out


def _label_definitions(cur: Curation, skipped: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Categories to export and which curalog field each holds."""
    defs: dict[str, Any] = {}
    fields: dict[str, str] = {}
    live = set(cur.cluster_ids.tolist())
    for name, values in cur.labels.fields.items():
        present = [v for c, v in values.items() if c in live and v is not None]
        if name == GROUP_FIELD:
            extra = sorted({str(v) for v in present} - set(GROUP_OPTIONS))
            defs[QUALITY] = {"label_options": GROUP_OPTIONS + extra, "exclusive": True}
            fields[QUALITY] = GROUP_FIELD
            continue
        if not present:
            continue
        options = sorted({v for v in present if isinstance(v, str)})
        if len(options) != len(set(present)) or len(options) < 2 or name == QUALITY:
            skipped.append(name)
            continue
        defs[name] = {"label_options": options, "exclusive": True}
        fields[name] = name
    return defs, fields


def build_curation(cur: Curation) -> dict[str, Any] | list[dict[str, Any]]:
    """The current state as SpikeInterface curation format v2 (a dict, or a list of steps).

    Raises
    ------
    CuralogError
        When a cluster cannot be expressed (a one-spike unit renamed by a whole-cluster split).
    """
    ds = cur.dataset
    base = np.ascontiguousarray(ds.spike_templates)
    now = np.ascontiguousarray(cur.state.spike_clusters)
    units, comps = _components(base, now)
    skipped: list[str] = []
    defs, fields = _label_definitions(cur, skipped)
    involved = np.array(sorted({u for c in comps for u in c.units}), dtype=np.int64)
    spikes_of: dict[int, np.ndarray] = {}
    if involved.size:
        sel = np.flatnonzero(member_mask(base, involved))
        sub = base[sel]
        order = np.argsort(sub, kind="stable")
        grouped, keys = sel[order], sub[order]
        bounds = np.flatnonzero(np.diff(keys)) + 1
        for chunk, key in zip(
            np.split(grouped, bounds), keys[np.r_[0, bounds]].tolist(), strict=True
        ):
            spikes_of[int(key)] = chunk.astype(np.int64)
    final = sorted(int(c) for c in cur.cluster_ids.tolist())
    temp = max([cur.state.counter, *(u + 1 for u in units[-1:]), *(c + 1 for c in final[-1:])])
    step1 = _empty_step(units, defs)
    later: list[tuple[str, dict[str, Any]]] = []
    for comp in comps:
        if len(comp.units) == 1:
            u = comp.units[0]
            spikes = spikes_of[u]
            if len(comp.clusters) >= 2:
                step1["splits"].append(_split_entry(u, spikes, now))
                continue
            # u renamed to k: split it into two temporary parts, merge them back as k
            if spikes.shape[0] < 2:
                raise CuralogError(
                    f"cluster {comp.clusters[0]} is sorter unit {u} renamed (one spike): not expressible in the SpikeInterface format"
                )
            parts = [temp, temp + 1]
            temp += 2
            step1["splits"].append(
                {"unit_id": u, "mode": "indices", "indices": [[0]], "new_unit_ids": parts}
            )
            later.append(("merge", {"unit_ids": parts, "new_unit_id": comp.clusters[0]}))
        elif len(comp.clusters) == 1:
            step1["merges"].append({"unit_ids": comp.units, "new_unit_id": comp.clusters[0]})
        else:
            merged = temp
            temp += 1
            step1["merges"].append({"unit_ids": comp.units, "new_unit_id": merged})
            spikes = np.sort(np.concatenate([spikes_of[u] for u in comp.units]), kind="stable")
            later.append(("split", _split_entry(merged, spikes, now)))
    steps = [step1]
    if later:
        step2 = _empty_step(_final_ids(step1), defs)
        for kind, entry in later:
            step2["merges" if kind == "merge" else "splits"].append(entry)
        steps.append(step2)
    manual: list[dict[str, Any]] = []
    for c in final:
        labels = {}
        for category, name in fields.items():
            value = cur.labels.get(name, c)
            if value is not None:
                labels[category] = [str(value)]
        if labels:
            manual.append({"unit_id": c, "labels": labels})
    if manual:
        last = steps[-1]
        if {m["unit_id"] for m in manual} <= set(last["unit_ids"]) - _modified(last):
            last["manual_labels"] = manual  # labelled clusters pass through the last step unchanged
        else:
            step = _empty_step(final, defs)
            step["manual_labels"] = manual
            steps.append(step)
    steps[0]["curalog"] = {
        "version": __version__,
        "dataset_fingerprint": ds.fingerprint.short(),
        "log": str(cur.log_path),
        "seq": cur.seq,
        "head": cur.head_hash.hex(),
        "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "fields_not_exported": skipped,
    }
    return steps[0] if len(steps) == 1 else steps


def export_curation(cur: Curation, out_path: str | os.PathLike[str]) -> Path:
    """Write :func:`build_curation` as JSON to ``out_path`` (atomically); returns the path."""
    out = Path(out_path)
    data = json.dumps(build_curation(cur), indent=1).encode()
    try:
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
        return write_bytes_atomic(out, data)
    except OSError as exc:
        raise CuralogError(f"{out}: cannot write ({exc.strerror})") from None


# ====================================================================== import
Key = int | str


def _key(x: Any, where: str) -> Key:
    if isinstance(x, bool):
        raise CurationImportError(f"{where}: unit id {x!r} is not an id")
    if isinstance(x, int):
        return x
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, str):
        return int(x) if x.isdigit() else x
    raise CurationImportError(f"{where}: unit id {x!r} is not an id")


def _upgrade(step: Any, where: str) -> dict[str, Any]:
    """A v0 / v1 / v2 curation dict as a v2 dict with normalised fields."""
    if not isinstance(step, dict):
        raise CurationImportError(f"{where}: a curation must be a JSON object")
    version = str(step.get("format_version", "0"))
    if version == "0":
        if "labelsByUnit" not in step:
            raise CurationImportError(
                f"{where}: no format_version (and not a sortingview labelsByUnit file)"
            )
        by_unit = step.get("labelsByUnit") or {}
        merges = step.get("mergeGroups") or []
        labels = sorted({str(v) for vs in by_unit.values() for v in vs})
        units = list(dict.fromkeys([*by_unit.keys(), *(u for g in merges for u in g)]))
        return {
            "format_version": "2",
            "unit_ids": step.get("unit_ids", units),
            "label_definitions": {"all_labels": {"label_options": labels, "exclusive": False}},
            "manual_labels": [
                {"unit_id": u, "labels": {"all_labels": list(v)}} for u, v in by_unit.items()
            ],
            "merges": [{"unit_ids": list(g)} for g in merges],
            "splits": [],
            "removed": [],
        }
    if version not in ("1", "2"):
        raise CurationImportError(f"{where}: format_version {version!r} is not supported (1 or 2)")
    out = dict(step)
    if version == "1":
        if out.get("merge_unit_groups") is not None:
            out["merges"] = [{"unit_ids": list(g)} for g in out["merge_unit_groups"]]
        if out.get("removed_units") is not None:
            out["removed"] = list(out["removed_units"])
    merges = out.get("merges") or []
    if isinstance(merges, dict):
        merges = [{"unit_ids": list(g), "new_unit_id": k} for k, g in merges.items()]
    out["merges"] = [m if isinstance(m, dict) else {"unit_ids": list(m)} for m in merges]
    splits = out.get("splits") or []
    if isinstance(splits, dict):
        splits = [
            {"unit_id": k, "mode": "indices", "indices": v}
            if v and isinstance(v[0], list)
            else {"unit_id": k, "mode": "labels", "labels": v}
            for k, v in splits.items()
        ]
    out["splits"] = list(splits)
    out["removed"] = list(out.get("removed") or [])
    defs = out.get("label_definitions") or {}
    if not isinstance(defs, dict):
        raise CurationImportError(f"{where}: label_definitions must be an object")
    out["label_definitions"] = defs
    manual = []
    for m in out.get("manual_labels") or []:
        if not isinstance(m, dict) or "unit_id" not in m:
            raise CurationImportError(f"{where}: each manual label needs a unit_id")
        given = m.get("labels")
        if given is None:
            given = {k: v for k, v in m.items() if k != "unit_id"}
        manual.append({"unit_id": m["unit_id"], "labels": dict(given)})
    out["manual_labels"] = manual
    if "unit_ids" not in out or not isinstance(out["unit_ids"], list):
        raise CurationImportError(f"{where}: unit_ids (the list of units) is required")
    return out


def _validate(step: dict[str, Any], where: str) -> None:
    """The format's validation rules (docs/CURATION_ECOSYSTEM.md 1.3), with one-line errors."""
    units = {_key(u, where) for u in step["unit_ids"]}
    defs = step["label_definitions"]
    for m in step["manual_labels"]:
        u = _key(m["unit_id"], where)
        if u not in units:
            raise CurationImportError(f"{where}: labelled unit {u} is not in unit_ids")
        for cat, values in m["labels"].items():
            if cat not in defs:
                raise CurationImportError(
                    f"{where}: unit {u} uses label category {cat!r} missing from label_definitions"
                )
            if not isinstance(values, list):
                raise CurationImportError(f"{where}: labels of unit {u} in {cat!r} must be a list")
            if (defs[cat] or {}).get("exclusive") and len(values) > 1:
                raise CurationImportError(
                    f"{where}: unit {u} has several values in exclusive category {cat!r}"
                )
    merged: set[Key] = set()
    for m in step["merges"]:
        ids = [_key(u, where) for u in m.get("unit_ids", [])]
        if len(set(ids)) < 2:
            raise CurationImportError(f"{where}: a merge needs at least two units ({ids})")
        missing = [u for u in ids if u not in units]
        if missing:
            raise CurationImportError(f"{where}: merged unit {missing[0]} is not in unit_ids")
        if merged & set(ids):
            raise CurationImportError(
                f"{where}: unit {sorted(merged & set(ids), key=str)[0]} is in two merges"
            )
        merged |= set(ids)
        new = m.get("new_unit_id")
        if new is not None and _key(new, where) in units and _key(new, where) not in ids:
            raise CurationImportError(f"{where}: merge new_unit_id {new} is already a unit")
    split: set[Key] = set()
    for s in step["splits"]:
        if not isinstance(s, dict) or "unit_id" not in s:
            raise CurationImportError(f"{where}: each split needs a unit_id")
        u = _key(s["unit_id"], where)
        if u not in units:
            raise CurationImportError(f"{where}: split unit {u} is not in unit_ids")
        if u in split:
            raise CurationImportError(f"{where}: unit {u} is split twice")
        split.add(u)
        mode = s.get("mode", "indices")
        new = s.get("new_unit_ids")
        if mode == "indices":
            idx = s.get("indices")
            if not idx or not all(isinstance(g, list) for g in idx):
                raise CurationImportError(f"{where}: split of unit {u} has no indices")
            flat = [i for g in idx for i in g]
            if len(flat) != len(set(flat)):
                raise CurationImportError(f"{where}: split of unit {u} has duplicate indices")
            if new is not None and len(new) not in (len(idx), len(idx) + 1):
                raise CurationImportError(
                    f"{where}: split of unit {u}: {len(new)} new ids for {len(idx)} index groups"
                )
        elif mode == "labels":
            lab = s.get("labels")
            if not lab:
                raise CurationImportError(f"{where}: split of unit {u} has no labels")
            if new is not None and len(new) != len(set(lab)):
                raise CurationImportError(
                    f"{where}: split of unit {u}: {len(new)} new ids for {len(set(lab))} labels"
                )
        else:
            raise CurationImportError(f"{where}: split of unit {u} has unknown mode {mode!r}")
        for n in new or []:
            if _key(n, where) in units:
                raise CurationImportError(f"{where}: split new id {n} is already a unit")
    removed = {_key(u, where) for u in step["removed"]}
    if removed - units:
        raise CurationImportError(
            f"{where}: removed unit {sorted(removed - units, key=str)[0]} is not in unit_ids"
        )
    for a, b, what in (
        (removed, merged, "removed and merged"),
        (removed, split, "removed and split"),
        (merged, split, "merged and split"),
    ):
        if a & b:
            raise CurationImportError(f"{where}: unit {sorted(a & b, key=str)[0]} is both {what}")


def read_curation(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and validate a curation file: its steps as normalised v2 dicts."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CurationImportError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CurationImportError(f"{p}: not a readable JSON file ({exc})") from None
    if isinstance(raw, dict) and "curation_steps" in raw:
        raw = raw["curation_steps"]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise CurationImportError(f"{p}: no curation steps")
    steps = []
    for i, item in enumerate(items):
        where = f"{p}" if len(items) == 1 else f"{p}: step {i + 1}"
        step = _upgrade(item, where)
        _validate(step, where)
        steps.append(step)
    return steps


@dataclass
class _Ids:
    """Ids of the file -> curalog cluster ids, and the ids this history ever used."""

    used: set[int]
    mapping: dict[Key, int] = field(default_factory=dict)

    def get(self, x: Any, where: str) -> int:
        k = _key(x, where)
        if k in self.mapping:
            return self.mapping[k]
        if isinstance(k, int):
            return k
        raise CurationImportError(f"{where}: unit {k!r} is not a cluster id of this dataset")

    def fresh(self, wanted: list[Any], where: str) -> list[int] | None:
        """``wanted`` as curalog ids if they are distinct integers this history never used
        (so an id never names two different spike sets), else None."""
        try:
            keys = [_key(x, where) for x in wanted]
        except CurationImportError:
            return None
        if not all(isinstance(k, int) for k in keys) or len(set(keys)) != len(keys):
            return None
        ints = [int(k) for k in keys]
        if any(k in self.used or k >= 2**31 - 1 for k in ints):
            return None
        return ints


def used_ids(cur: Curation) -> set[int]:
    """Every id the history ever gave a cluster: the sorter's (all below the initial
    counter) and every id an event created, undone or not."""
    base = np.asarray(cur.dataset.spike_templates)
    used = set(range(int(base.max()) + 1 if base.size else 0))
    for e in cur.events:
        if e.type in STRUCTURAL_TYPES:
            data = e.data
            assert isinstance(data, MergeBody | SplitBody | AssignBody)
            used.update(data.added)
    return used


def _apply_step(
    cur: Curation,
    step: dict[str, Any],
    ids: _Ids,
    removed: set[int],
    where: str,
    source: str,
    result: ImportResult,
) -> None:
    live = set(cur.cluster_ids.tolist()) - removed
    listed = {ids.get(u, where) for u in step["unit_ids"]}
    if listed != live:
        extra, missing = sorted(listed - live), sorted(live - listed)
        detail = (
            f"unit {extra[0]} is not a live cluster"
            if extra
            else f"cluster {missing[0]} is not listed"
        )
        base = set(np.unique(np.asarray(cur.dataset.spike_templates)).tolist())
        hint = (
            (
                "; it describes the sorter's units: import it into a branch started at 0"
                " (curalog branch DIR NAME --at 0; curalog import DIR --log ...)"
            )
            if listed == base
            else ""
        )
        raise CurationImportError(
            f"{where}: unit_ids ({len(listed)}) do not match the curation's {len(live)} clusters ({detail}){hint}"
        )
    reason = f"imported from SpikeInterface curation {source}"
    # 1. labels, on the step's units
    defs = step["label_definitions"]
    by_value: dict[tuple[str, Any], list[int]] = {}
    for m in step["manual_labels"]:
        c = ids.get(m["unit_id"], where)
        for cat, values in m["labels"].items():
            if not values:
                continue
            if cat in _GROUP_CATEGORIES and len(values) == 1:
                try:
                    value: Any = normalize_group(values[0])
                except InvalidActionError:
                    result.warnings.append(
                        f"{where}: unit {c}: {cat} {values[0]!r} is not a curalog group; skipped"
                    )
                    continue
                by_value.setdefault((GROUP_FIELD, value), []).append(c)
            else:
                name = cat
                if name in cur.dataset.sorter_columns or name in ("cluster_id", "id"):
                    result.warnings.append(
                        f"{where}: category {cat!r} is a sorter column name; skipped"
                    )
                    continue
                exclusive = (defs.get(cat) or {}).get("exclusive", False)
                value = (
                    str(values[0])
                    if exclusive or len(values) == 1
                    else ",".join(sorted(map(str, values)))
                )
                by_value.setdefault((name, value), []).append(c)
    for (name, value), cids in by_value.items():
        todo = [c for c in cids if cur.labels.get(name, c) != value]
        if not todo:
            continue
        if name == GROUP_FIELD:
            cur.label(todo, group=value if value is not None else "unsorted", reason=reason)
        else:
            cur.label(todo, field=name, value=value, reason=reason)
        result.events.append(cur.events[-1])
        result.n_labels += 1
    # 2. removed units: curalog keeps every spike; they become noise
    gone = [ids.get(u, where) for u in step["removed"]]
    if gone:
        todo = [c for c in gone if cur.labels.get(GROUP_FIELD, c) != "noise"]
        if todo:
            cur.label(todo, group="noise", reason=f"removed in SpikeInterface curation {source}")
            result.events.append(cur.events[-1])
            result.n_labels += 1
        removed.update(gone)
    meta = {"source": "spikeinterface", "file": source}
    # 3. merges
    for m in step["merges"]:
        members = [ids.get(u, where) for u in m["unit_ids"]]
        new = m.get("new_unit_id")
        fresh = ids.fresh([new], where) if new is not None else None
        if fresh:
            spikes = np.sort(np.concatenate([cur.spikes(c) for c in members]).astype(np.int64))
            cur.assign(spikes, np.full(spikes.shape[0], fresh[0], np.int64), meta=meta)
            cid = fresh[0]
        else:
            cid = cur.merge(members, meta=meta)
        ids.used.add(cid)
        if new is not None:
            ids.mapping[_key(new, where)] = cid
            if cid != _key(new, where):
                result.id_map[str(new)] = cid
        result.events.append(cur.events[-1])
        result.n_structural += 1
    # 4. splits
    for s in step["splits"]:
        unit = ids.get(s["unit_id"], where)
        spikes = np.asarray(cur.spikes(unit), dtype=np.int64)
        n = spikes.shape[0]
        group = np.full(n, -1, dtype=np.int64)
        if s.get("mode", "indices") == "indices":
            for g, idx in enumerate(s["indices"]):
                arr = np.asarray(idx, dtype=np.int64)
                if arr.size and (arr.min() < 0 or arr.max() >= n):
                    raise CurationImportError(
                        f"{where}: split of unit {s['unit_id']}: index out of range (unit has {n} spikes)"
                    )
                group[arr] = g
            if (group < 0).any():
                group[group < 0] = len(s["indices"])
        else:
            labels = np.asarray(s["labels"])
            if labels.shape[0] != n:
                raise CurationImportError(
                    f"{where}: split of unit {s['unit_id']}: {labels.shape[0]} labels for {n} spikes"
                )
            group = np.unique(labels, return_inverse=True)[1].astype(np.int64)
        n_groups = int(group.max()) + 1
        if n_groups < 2 or np.unique(group).shape[0] != n_groups:
            raise CurationImportError(
                f"{where}: split of unit {s['unit_id']} does not make two or more non-empty parts"
            )
        wanted = s.get("new_unit_ids")
        if wanted is not None and len(wanted) != n_groups:
            raise CurationImportError(
                f"{where}: split of unit {s['unit_id']}: {len(wanted)} new ids for {n_groups} parts"
            )
        fresh = ids.fresh(wanted, where) if wanted is not None else None
        if fresh:
            cur.assign(spikes, np.asarray(fresh, dtype=np.int64)[group], meta=meta)
            got = fresh
        else:
            cur.split(spikes, group, meta=meta)
            got = [
                int(cur.state.spike_clusters[spikes[np.flatnonzero(group == g)[0]]])
                for g in range(n_groups)
            ]
        ids.used.update(got)
        for w, g in zip(wanted or [], got, strict=False):
            ids.mapping[_key(w, where)] = g
            if g != _key(w, where):
                result.id_map[str(w)] = g
        result.events.append(cur.events[-1])
        result.n_structural += 1


def import_curation_into(cur: Curation, path: str | os.PathLike[str]) -> ImportResult:
    """Append the labels, merges and splits of a curation file to ``cur`` (all or nothing)."""
    steps = read_curation(path)
    source = Path(path).name

    def run(c: Curation) -> ImportResult:
        result = ImportResult(c.log_path)
        ids = _Ids(used_ids(c))
        removed: set[int] = set()
        for i, step in enumerate(steps):
            where = f"{path}" if len(steps) == 1 else f"{path}: step {i + 1}"
            _apply_step(c, step, ids, removed, where, source, result)
        return result

    return rehearse(cur, run)


def import_spikeinterface(
    folder: str | os.PathLike[str],
    path: str | os.PathLike[str],
    log: str | os.PathLike[str] | None = None,
    *,
    author: str | None = None,
) -> ImportResult:
    """Import a SpikeInterface curation file into the folder's log (default ``main``)."""

    read_curation(path)  # a bad file fails before the log is even created
    with open_curation(folder, log, author=author) as cur:
        return import_curation_into(cur, path)


__all__ = [
    "FORMAT_VERSION",
    "QUALITY",
    "build_curation",
    "export_curation",
    "import_curation_into",
    "import_spikeinterface",
    "read_curation",
]
