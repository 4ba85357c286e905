"""Messages posted by worker threads back to the app (``post_message`` is thread-safe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from textual.message import Message


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
    detail: Any  # widgets.detail.Detail


@dataclass
class ExportDone(Message):
    message: str
    error: bool = False
