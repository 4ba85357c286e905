"""Cluster labels: the ``group`` field and free fields, and how they pass to new clusters.

``group`` is one of good, mua, noise or unsorted (unsorted = no value). Free fields hold
strings or finite numbers. The sorter's own columns (KSLabel, ContamPct, Amplitude, ...)
are not labels: they stay attached to the original clusters as read-only metadata.

Propagation on merge and split (phy's ``set_from_descendants``, per field): if the parents'
non-empty values are one value, the new clusters take it; if several, the value of the
parent with the most spikes (ties: the smaller id); only new clusters without a value are
filled. Unlike phy, undo restores exactly the previous values: inherited values are
recorded with the change that caused them and removed with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from curalog.clustering import Change
from curalog.dataset import GROUP_FIELD
from curalog.errors import InvalidActionError

GROUPS = ("good", "mua", "noise", "unsorted")
#: Groups that the wizard skips, as phy does.
MASKED_GROUPS = ("noise", "mua")

LabelValue = str | int | float | None


def normalize_group(value: Any) -> str | None:
    """``'good'`` etc.; ``'unsorted'``, ``None`` and ``''`` mean no value."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "unsorted"):
        return None
    if text not in GROUPS:
        raise InvalidActionError(f"group must be one of {', '.join(GROUPS)} (got {value!r})")
    return text


#: Columns sorters and phy write themselves (Kilosort's cluster_KSLabel.tsv,
#: cluster_ContamPct.tsv, cluster_Amplitude.tsv; SpikeInterface's phy export; phy's
#: cluster_info.tsv): a label field of that name would overwrite the sorter's file on
#: export, or shadow a cluster_info column. Compared case-insensitively (macOS and
#: Windows file names are).
SORTER_COLUMNS = (
    "KSLabel",
    "ContamPct",
    "Amplitude",
    "si_unit_id",
    "channel_group",
)
#: Names that are not fields at all: the id columns, ``cluster_info.tsv``'s own columns.
_NOT_FIELDS = ("cluster_id", "id", "info", "n_spikes", "fr", "amp", "ch", "depth", "sh")
#: A field name becomes a file name (``cluster_<name>.tsv``): at most this many bytes.
MAX_FIELD_NAME = 200


def validate_field_name(name: str, reserved: Iterable[str] | None = None) -> str:
    """A label field name, checked identically for the API, replay and ``curalog fsck``.

    Refused: empty names, surrounding spaces, control characters (NUL, tab, escape, ...),
    path separators, ``.``/``..``, more than 200 bytes, the id and ``cluster_info.tsv``
    columns, the sorter columns of :data:`SORTER_COLUMNS` and those in ``reserved``
    (the dataset's own, case-insensitively).
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise InvalidActionError(f"label field name {name!r} is empty or has surrounding spaces")
    if any(ch in name for ch in "/\\") or name in (".", "..") or not name.isprintable():
        raise InvalidActionError(
            f"label field name {name!r} is not allowed (control characters or a path)"
        )
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FIELD_NAME:
        raise InvalidActionError(f"label field name {name[:40]!r}... is too long")
    folded = name.casefold()
    if folded in {n.casefold() for n in _NOT_FIELDS}:
        raise InvalidActionError(f"label field name {name!r} is not allowed (a column of its own)")
    taken = {n.casefold(): n for n in (*SORTER_COLUMNS, *(reserved or ()))}
    if folded in taken and name != GROUP_FIELD:
        raise InvalidActionError(
            f"{name!r} is a sorter column ({taken[folded]}, read-only); choose another field name"
        )
    return name


def validate_value(value: Any) -> LabelValue:
    if value is None or isinstance(value, str):
        if isinstance(value, str) and any(ch in value for ch in "\t\r\n\x00"):
            raise InvalidActionError("label values cannot contain tabs, line breaks or NUL")
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidActionError(f"label value {value} is not finite")
        return value
    if hasattr(value, "item"):  # numpy scalar
        return validate_value(value.item())
    raise InvalidActionError(
        f"label values must be strings or numbers (got {type(value).__name__})"
    )


class LabelStore:
    """``{field: {cluster_id: value}}`` with exact undo and phy's propagation rule."""

    def __init__(self, base_groups: dict[int, str] | None = None):
        self.reset(base_groups)

    def reset(self, base_groups: dict[int, str] | None = None) -> None:
        """Back to the base labels, in place."""
        self.fields: dict[str, dict[int, LabelValue]] = {GROUP_FIELD: {}}
        for cid, g in (base_groups or {}).items():
            try:
                value = normalize_group(g)
            except InvalidActionError:
                value = str(g)  # a custom group from a sorter or phy's ':l group xyz'
            if value is not None:
                self.fields[GROUP_FIELD][int(cid)] = value

    def get(self, field: str, cid: int) -> LabelValue:
        return self.fields.get(field, {}).get(cid)

    def group(self, cid: int) -> str | None:
        return self.fields[GROUP_FIELD].get(cid)  # type: ignore[return-value]

    @property
    def field_names(self) -> list[str]:
        """``group`` first, then free fields in creation order."""
        return list(self.fields)

    def set(self, field: str, cids: list[int], value: LabelValue) -> dict[int, LabelValue]:
        """Set a value (None clears) and return the previous values, for undo."""
        values = self.fields.setdefault(field, {})
        previous = {c: values.get(c) for c in cids}
        for c in cids:
            if value is None:
                values.pop(c, None)
            else:
                values[c] = value
        return previous

    def restore(self, field: str, previous: dict[int, LabelValue]) -> None:
        values = self.fields.setdefault(field, {})
        for c, v in previous.items():
            if v is None:
                values.pop(c, None)
            else:
                values[c] = v

    def inherit(self, change: Change) -> dict[str, dict[int, LabelValue]]:
        """Fill the new clusters' empty fields from their parents; return what was filled."""
        filled: dict[str, dict[int, LabelValue]] = {}
        parents = sorted({old for old, _ in change.descendants})
        new_ids = sorted(change.added)
        for name, values in self.fields.items():
            found = {values[p] for p in parents if values.get(p) is not None}
            if not found:
                continue
            if len(found) == 1:
                value = next(iter(found))
            else:
                value = values.get(change.largest_old) if change.largest_old is not None else None
                if value is None:
                    continue
            for c in new_ids:
                if values.get(c) is None:
                    values[c] = value
                    filled.setdefault(name, {})[c] = value
        return filled

    def apply_inherited(self, filled: dict[str, dict[int, LabelValue]]) -> None:
        for name, values in filled.items():
            self.fields.setdefault(name, {}).update(values)

    def remove_inherited(self, filled: Mapping[str, Mapping[int, object]]) -> None:
        for name, values in filled.items():
            store = self.fields.get(name, {})
            for c in values:
                store.pop(c, None)

    def snapshot(self) -> dict[str, dict[int, LabelValue]]:
        return {k: dict(v) for k, v in self.fields.items()}
