"""Incremental per-cluster statistics: metrics, correlograms, similarity and their cache.

* :mod:`curalog.analysis.stats.metrics` - quality metrics and phy's table columns from the folder alone;
* :mod:`curalog.analysis.stats.correlograms` - exact numba auto/cross-correlograms, composable on merge;
* :mod:`curalog.analysis.stats.similarity` - phy's cluster similarity, ranked lists, merge updates;
* :mod:`curalog.analysis.stats.engine` - :class:`StatsEngine`, the thread-safe id-keyed cache.
"""

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
from curalog.analysis.stats.similarity import rank_similar, template_similarity

__all__ = [
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
