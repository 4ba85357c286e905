"""Analyses over a curation: statistics, spike features, merge proposals, rules, evaluation.

Each sub-module is imported on its own (``curalog.analysis.stats``,
``curalog.analysis.proposals``, ...): they are heavy (numba kernels) and independent.
"""

__all__ = ["autolabel", "evaluate", "features", "proposals", "stats"]
