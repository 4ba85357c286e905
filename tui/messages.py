"""Messages of the UI: the cluster tables' cursor, and worker threads' results posted back to
the app (``post_message`` is thread-safe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from textual.message import Message
from textual.widget import Widget

if TYPE_CHECKING:
    from .widgets import Detail


class ClusterSelected(Message):
    """The cluster under a table's cursor changed (None: the table is empty).

    Posted by both the cluster table and the similarity table; ``control`` is the table, so a
    handler picks one with a selector: ``@on(ClusterSelected, "SimilarityTable")``.
    """

    def __init__(self, table: Widget, cid: int | None):
        super().__init__()
        self.table = table
        self.cid = cid

    @property
    def control(self) -> Widget:
        return self.table


@dataclass
class StatsReady(Message):
    """Statistics of some clusters: ``(cluster id, row dict, half ACG)`` each."""

    batch: list[tuple[int, dict[str, Any], np.ndarray]]


@dataclass
class SimilarReady(Message):
    reference: int
    ranked: list[tuple[int, float]]


@dataclass
class CcgReady(Message):
    reference: int
    ccgs: list[tuple[int, np.ndarray]]


@dataclass
class DetailReady(Message):
    detail: Detail


@dataclass
class ExportDone(Message):
    message: str
    error: bool = False
