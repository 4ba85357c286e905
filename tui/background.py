"""Thread workers of the curation screen: statistics, similarity, CCGs, detail, export.

Every worker computes off the UI thread and posts a message; the handlers (in the app)
only copy results into widgets. Exclusive groups cancel stale work when the selection
moves on (a cancelled thread finishes its current step and drops its result).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from textual import work
from textual.worker import get_current_worker

from curalog.errors import CuralogError
from curalog.io.phy import export_phy

from .messages import CcgReady, DetailReady, ExportDone, SimilarReady, StatsReady
from .widgets import Detail

if TYPE_CHECKING:
    from .feeder import Feeder
    from .model import ClusterModel
    from .stats_adapter import Stats


class BackgroundMixin:
    """Mixed into the App: needs ``stats``, ``model``, ``feeder`` and ``post_message``."""

    stats: Stats
    model: ClusterModel
    feeder: Feeder
    post_message: Any

    def want_stats(self, ids: list[int], *, front: bool = True) -> None:
        ids = [c for c in ids if c not in self.model.stats]
        if ids and self.feeder.want(ids, front=front):
            self._stats_worker()

    @work(thread=True, group="stats", exit_on_error=False, description="cluster statistics")
    def _stats_worker(self) -> None:
        worker = get_current_worker()
        batch: list[tuple[int, dict[str, Any], np.ndarray]] = []
        last = time.monotonic()
        while True:
            cid = None if worker.is_cancelled else self.feeder.pop()
            if cid is not None and cid not in self.model.stats:
                entry = self._stats_entry(cid)
                if entry is not None:
                    batch.append(entry)
            now = time.monotonic()
            # the last message goes out even when empty: the status line's pending count
            # is refreshed by it (it stayed at "stats 1" when the last id was already known)
            if (batch or cid is None) and (cid is None or len(batch) >= 64 or now - last > 0.05):
                self.post_message(StatsReady(batch))
                batch, last = [], now
            if cid is None:
                return

    def _stats_entry(self, cid: int) -> tuple[int, dict[str, Any], np.ndarray] | None:
        """``(id, row, ACG half)`` of one cluster for the table (worker threads); None for a
        cluster deleted meanwhile: nothing to show."""
        try:
            st = self.stats.get(cid)
            return cid, self.stats.row(st), st.acg_half
        except (CuralogError, KeyError, ValueError, IndexError):
            return None

    def refresh_silhouettes(self, deleted: list[int]) -> None:
        """Recompute the silhouettes an action made stale (see
        :meth:`StatsEngine.silhouette_dependents`), in the background."""
        ids = [c for c in self.stats.engine.silhouette_dependents(deleted) if c in self.model.stats]
        if ids:
            self._silhouette_worker(ids)

    @work(thread=True, group="silhouette", exit_on_error=False, description="silhouettes")
    def _silhouette_worker(self, ids: list[int]) -> None:
        worker = get_current_worker()
        batch: list[tuple[int, dict[str, Any], np.ndarray]] = []
        for cid in ids:
            if worker.is_cancelled:
                return
            if cid in self.stats.cur.state:
                entry = self._stats_entry(cid)
                if entry is not None:
                    batch.append(entry)
        if batch:
            self.post_message(StatsReady(batch))

    @work(
        thread=True,
        exclusive=True,
        group="similar",
        exit_on_error=False,
        description="similar clusters",
    )
    def _similar_worker(self, reference: int) -> None:
        try:
            ranked = self.stats.similar(reference, 100)
        except (CuralogError, KeyError, ValueError):
            ranked = []
        if not get_current_worker().is_cancelled:
            self.post_message(SimilarReady(reference, ranked))

    @work(
        thread=True,
        exclusive=True,
        group="ccg",
        exit_on_error=False,
        description="cross-correlograms",
    )
    def _ccg_worker(self, reference: int, others: list[int]) -> None:
        worker = get_current_worker()
        batch = []
        last = time.monotonic()
        for other in others:
            if worker.is_cancelled:
                return
            try:
                batch.append((other, self.stats.ccg(reference, other)))
            except (CuralogError, KeyError, ValueError, IndexError):
                continue
            if len(batch) >= 16 or time.monotonic() - last > 0.05:
                self.post_message(CcgReady(reference, batch))
                batch, last = [], time.monotonic()
        if batch and not worker.is_cancelled:
            self.post_message(CcgReady(reference, batch))

    @work(
        thread=True, exclusive=True, group="detail", exit_on_error=False, description="detail panel"
    )
    def _detail_worker(self, best: int, similar: int | None, group: str | None) -> None:
        worker = get_current_worker()
        s = self.stats
        try:
            st = s.get(best)
            ccg = s.ccg(best, similar) if similar is not None and similar != best else None
            row = s.row(st)
            detail = Detail(
                best=best,
                similar=similar,
                group=group,
                n_spikes=st.n_spikes,
                row=row,
                acg=s.acg(best),
                ccg=ccg,
                waveform=s.waveform(best),
                amp_points=s.amplitude_points(best),
                fr_series=st.fr_series,
                duration=float(s.cur.dataset.duration),
                bin_ms=s.bin_ms,
                window_ms=s.window_ms,
                refractory_ms=s.refractory_ms,
                raw_uv=row.get("raw_amplitude_uv"),
            )
        except (CuralogError, KeyError, ValueError, IndexError):
            return
        if not worker.is_cancelled:
            self.post_message(DetailReady(detail))

    @work(thread=True, exclusive=True, group="export", exit_on_error=False, description="export")
    def _export_worker(self, out: str | None) -> None:
        try:
            result = export_phy(self.stats.cur, out or None)
        except CuralogError as exc:
            self.post_message(ExportDone(str(exc), error=True))
            return
        except OSError as exc:
            self.post_message(ExportDone(f"export failed: {exc}", error=True))
            return
        names = ", ".join(p.name for p in result.files[:3]) + (
            " ..." if len(result.files) > 3 else ""
        )
        backups = (
            f"; kept {len(result.backups)} previous file(s) in .curalog/backup"
            if result.backups
            else ""
        )
        self.post_message(
            ExportDone(f"exported seq {result.seq} to {result.out}: {names}{backups}")
        )
