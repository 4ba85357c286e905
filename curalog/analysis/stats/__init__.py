"""Incremental per-cluster statistics: metrics, correlograms, similarity and their cache.

* :mod:`curalog.analysis.stats.metrics` - quality metrics and phy's table columns from the folder alone;
* :mod:`curalog.analysis.stats.correlograms` - exact numba auto/cross-correlograms, composable on merge;
* :mod:`curalog.analysis.stats.similarity` - phy's cluster similarity, ranked lists, merge updates;
* :mod:`curalog.analysis.stats.engine` - :class:`StatsEngine`, the thread-safe id-keyed cache;
* :mod:`curalog.analysis.stats.quality` - SpikeInterface's quality metrics (``quality_spikes``,
  ``quality_pc``, ``template_metrics``, ``quality_recording``), the column registry;
* :mod:`curalog.analysis.stats.timebase` - the recording's length the rates divide by;
* :mod:`curalog.analysis.stats.table` - the cluster table as rows (CLI, cluster_info.tsv).
"""

from curalog.analysis.stats.ccg_matrix import (
    BIN_STEPS_MS,
    WINDOW_STEPS_MS,
    CorrelogramMatrix,
    MatrixResult,
    isi_histogram,
    matrix_for,
    step_value,
    to_rate,
)
from curalog.analysis.stats.correlograms import (
    CorrelogramBins,
    autocorrelogram,
    compose_acg,
    cross_correlogram,
    make_bins,
    phy_symmetrize,
)
from curalog.analysis.stats.engine import TABLE_COLUMNS, StatsEngine
from curalog.analysis.stats.metrics import (
    ClusterStats,
    MetricParams,
    StatsContext,
    compute_cluster_stats,
)
from curalog.analysis.stats.quality import QUALITY_COLUMNS, QUALITY_NAMES, QualityColumn
from curalog.analysis.stats.similarity import rank_similar, template_similarity
from curalog.analysis.stats.timebase import Timebase, recording_timebase

__all__ = [
    "BIN_STEPS_MS",
    "WINDOW_STEPS_MS",
    "CorrelogramMatrix",
    "MatrixResult",
    "isi_histogram",
    "matrix_for",
    "step_value",
    "to_rate",
    "QUALITY_COLUMNS",
    "QUALITY_NAMES",
    "QualityColumn",
    "Timebase",
    "recording_timebase",
    "CorrelogramBins",
    "ClusterStats",
    "MetricParams",
    "StatsContext",
    "StatsEngine",
    "TABLE_COLUMNS",
    "autocorrelogram",
    "compose_acg",
    "compute_cluster_stats",
    "cross_correlogram",
    "make_bins",
    "phy_symmetrize",
    "rank_similar",
    "template_similarity",
]
