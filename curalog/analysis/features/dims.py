"""The axes of a spike view (:class:`Dim`) and the errors of the feature layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from curalog.errors import CuralogError

#: Default number of background spikes shown by :func:`compute_view` (display only).
DEFAULT_MAX_BACKGROUND = 20_000

#: What to do with spikes that have no coordinates when selecting by polygon.
MissingPolicy = Literal["refuse", "outside"]

_PC_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# ---------------------------------------------------------------------- errors
class ViewUnavailableError(CuralogError):
    """A view cannot be shown: the folder lacks its files or the selection does not fit.

    Attributes
    ----------
    reason : str
        The one-line explanation (also the message), for the view to display.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MissingFeaturesError(CuralogError):
    """A polygon split was refused because some of the clusters' spikes have no features.

    Attributes
    ----------
    counts : dict of int to int
        Number of spikes without coordinates per cluster.
    """

    def __init__(self, message: str, counts: dict[int, int]):
        super().__init__(message)
        self.counts = counts


class PolygonError(CuralogError):
    """The polygon is not usable (fewer than 3 vertices, non-finite coordinates, bad shape)."""


# ---------------------------------------------------------------------- axes
@dataclass(frozen=True)
class Dim:
    """One axis of a spike view (see the module docstring for each kind).

    Use the constructors :meth:`pc`, :meth:`template`, :meth:`time` and :meth:`amplitude`.

    Attributes
    ----------
    kind : {"pc", "template", "time", "amplitude"}
    channel : int
        Channel row (index into ``channel_map``) for ``"pc"``, else -1.
    component : int
        Principal component (0 = first) for ``"pc"``, else 0.
    cluster : int
        Reference cluster of a ``"template"`` axis, else -1 (informative only).
    templates, weights : tuple of int
        Template ids and their counts in the reference cluster (``"template"`` only). They
        make the axis self-contained: evaluating it does not need the cluster state.
    """

    kind: Literal["pc", "template", "time", "amplitude"]
    channel: int = -1
    component: int = 0
    cluster: int = -1
    templates: tuple[int, ...] = ()
    weights: tuple[int, ...] = ()

    # -- constructors
    @classmethod
    def pc(cls, channel: int, component: int = 0) -> Dim:
        """PC feature ``component`` (0-based) on channel row ``channel``."""
        return cls("pc", channel=int(channel), component=int(component))

    @classmethod
    def template(cls, cluster: int, template_ids: Iterable[int], counts: Iterable[int]) -> Dim:
        """Projection on the templates of ``cluster`` weighted by its template counts."""
        ids = [int(t) for t in template_ids]
        cnt = [int(c) for c in counts]
        if len(ids) != len(cnt):
            raise ValueError("template_ids and counts differ in length")
        keep = [(t, c) for t, c in sorted(zip(ids, cnt, strict=True)) if c > 0]
        return cls(
            "template",
            cluster=int(cluster),
            templates=tuple(t for t, _ in keep),
            weights=tuple(c for _, c in keep),
        )

    @classmethod
    def time(cls) -> Dim:
        """Spike time in seconds."""
        return cls("time")

    @classmethod
    def amplitude(cls) -> Dim:
        """``amplitudes.npy``."""
        return cls("amplitude")

    # -- description
    def label(self, channel_map: np.ndarray | None = None) -> str:
        """A short axis label, e.g. ``"ch 12 PC1"``, ``"time (s)"``, ``"on 7's templates"``."""
        if self.kind == "pc":
            ch = self.channel
            if channel_map is not None and 0 <= ch < len(channel_map):
                ch = int(channel_map[ch])
            return f"ch {ch} PC{self.component + 1}"
        if self.kind == "template":
            return f"proj. on {self.cluster}'s templates"
        if self.kind == "time":
            return "time (s)"
        return "amplitude"

    def to_dict(self) -> dict[str, Any]:
        """A msgpack/JSON-safe description (the inverse of :meth:`from_dict`)."""
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "pc":
            d.update(channel=self.channel, pc=self.component)
        elif self.kind == "template":
            d.update(
                cluster=self.cluster, templates=list(self.templates), weights=list(self.weights)
            )
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Dim:
        kind = d.get("kind")
        if kind == "pc":
            return cls.pc(int(d["channel"]), int(d.get("pc", 0)))
        if kind == "template":
            return cls.template(int(d.get("cluster", -1)), d["templates"], d["weights"])
        if kind == "time":
            return cls.time()
        if kind == "amplitude":
            return cls.amplitude()
        raise ValueError(f"unknown axis kind {kind!r}")
