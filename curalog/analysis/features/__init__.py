"""Per-spike coordinates for the spike views, and exact polygon selection.

This module is the pure, UI-independent layer behind the terminal's spike views (feature,
template-feature and amplitude views, see ``docs/VIEWS.md``). It never imports Textual.

What a view plots
-----------------
A view is a :class:`ViewSpec`: a set of clusters (with **all** their spikes) and two axes,
each a :class:`Dim`:

``Dim.pc(channel, pc)``
    The spike's principal-component feature ``pc`` (0 = first PC) on channel row ``channel``,
    read from Kilosort's sparse ``pc_features.npy`` ``(n_rows, n_pcs, n_loc)``: the row of
    the spike (see *subsets* below), the column ``l`` where ``pc_feature_ind[template, l] ==
    channel`` for the spike's **original template** (``spike_templates``, never the cluster,
    as phylib). When that template has no feature on the channel the value is ``0.0`` (phylib
    does the same: a sparse feature absent from the file is zero).
``Dim.template(cluster, template_ids, counts)``
    phy's template-feature projection: with ``tf`` the spike's row of
    ``template_features.npy`` and ``template_feature_ind[t]`` the templates those columns
    refer to, the value is ``sum_k tf[k] * w[ind[t, k]] / sum(w)``, where ``w`` are the
    template counts of the reference cluster (how many of its spikes came from each
    template). This is phy's ``np.average`` of the dense per-template projections weighted
    by the template counts; templates absent from the spike's row count as zero.
``Dim.time()``
    Spike time in seconds (``spike_times / sample_rate``).
``Dim.amplitude()``
    ``amplitudes.npy`` (Kilosort's per-spike template scaling).

Channel and PC choice (phy's FeatureView)
-----------------------------------------
A cluster's channels are the best channels of its **dominant template** (the template most of
its spikes came from; ties to the smaller id), computed as phy's Template GUI does
(:class:`curalog.analysis.stats.metrics.TemplateGeometry`: unwhitened peak-to-peak amplitude, best
channel first, 12 nearest channels on the same shank for dense templates). Without
``templates.npy`` the dominant template's ``pc_feature_ind`` row is used instead. For several
clusters (:func:`feature_channels`) the list starts with the first cluster's channels that
every selected cluster has too, followed by the first cluster's other channels (phy keeps the
same two groups; curalog keeps the first cluster's order within each). The default axes are
phy's grid cell ``0A,1A``: x = best channel PC 1, y = second channel PC 1
(:func:`default_feature_dims`); :func:`phy_feature_grid` gives phy's full 4 x 4 grid and
:func:`step_dim` steps an axis through channels and components.

Subsets and missing files
-------------------------
``pc_feature_spike_ids.npy`` (resp. ``template_feature_spike_ids.npy``) lists which spike each
row of ``pc_features.npy`` (``template_features.npy``) belongs to; without it, row ``i`` is
spike ``i`` and the file must cover every spike. A spike with no row has **no feature**: its
coordinate is NaN, it is not plotted, and :func:`spikes_in_polygon` refuses to split a
cluster that has such spikes unless told what to do with them (``missing="outside"``: they
stay in the remainder). A folder without ``pc_features.npy`` (``template_features.npy``,
``amplitudes.npy``) has no feature (template-feature, amplitude) view:
:meth:`FeatureSource.unavailable` says why, and building the view raises
:class:`ViewUnavailableError` with that one-line message.

Polygon selection
-----------------
:func:`points_in_polygon` is the even-odd (crossing-number) rule in float64 with **closed**
boundary semantics: a point exactly on an edge or a vertex is inside. The test on the boundary
and the crossing decisions use the sign of one cross product, so they are exact whenever
that product is exactly representable (e.g. integer coordinates below 2**24 in magnitude,
or multiples of a common power of two such as the braille grid's dot centres); otherwise a
point within rounding error (~1e-16 relative) of an edge may land on either side, always the
same way for the same inputs. The polygon is closed implicitly (last vertex to first);
repeated vertices and self-intersections are allowed (even-odd: a region covered twice is
outside). NaN points are never inside.

Background
----------
:func:`background_spikes` is for display only: a deterministic, bounded, evenly strided
subsample of the spikes of all other clusters (restricted to spikes that have features when
the axes need them). Selections never use it.
"""

from curalog.analysis.features.dims import (
    DEFAULT_MAX_BACKGROUND,
    Dim,
    MissingFeaturesError,
    MissingPolicy,
    PolygonError,
    ViewUnavailableError,
)
from curalog.analysis.features.polygon import points_in_polygon
from curalog.analysis.features.selection import (
    SplitPreview,
    spikes_in_polygon,
    split_preview,
    split_provenance,
)
from curalog.analysis.features.source import FeatureSource
from curalog.analysis.features.views import (
    Layer,
    ViewData,
    ViewSpec,
    amplitude_view,
    background_spikes,
    cluster_channels,
    compute_view,
    coordinates,
    default_feature_dims,
    feature_channels,
    feature_view,
    phy_feature_grid,
    step_dim,
    template_feature_view,
    view_from_provenance,
)

__all__ = [
    "DEFAULT_MAX_BACKGROUND",
    "MissingPolicy",
    "SplitPreview",
    "Dim",
    "FeatureSource",
    "Layer",
    "MissingFeaturesError",
    "PolygonError",
    "ViewData",
    "ViewSpec",
    "ViewUnavailableError",
    "amplitude_view",
    "background_spikes",
    "cluster_channels",
    "compute_view",
    "coordinates",
    "default_feature_dims",
    "feature_channels",
    "feature_view",
    "phy_feature_grid",
    "points_in_polygon",
    "split_preview",
    "split_provenance",
    "spikes_in_polygon",
    "step_dim",
    "template_feature_view",
    "view_from_provenance",
]
