"""The widgets of the terminal UI and the renderers they draw with: the face of the package."""

from .cluster_table import ClusterTable
from .detail import Detail, DetailPanel
from .evidence import (
    COLOR_A,
    COLOR_B,
    EvidenceData,
    amplitude_series,
    message_lines,
    render_evidence,
)
from .fast_table import FastDataTable
from .keybar import KeyBar, bar_keys
from .rawplot import (
    SpikeMark,
    WaveformSet,
    channel_grid,
    message_block,
    noise_scale,
    render_probe,
    render_traces,
    render_waveforms,
)
from .scatter import ScatterView
from .scrollbar import LineScrollBarRender
from .similarity_table import SimilarityTable
from .status import StatusLine, status_text

__all__ = [
    "COLOR_A",
    "COLOR_B",
    "ClusterTable",
    "Detail",
    "DetailPanel",
    "EvidenceData",
    "FastDataTable",
    "KeyBar",
    "LineScrollBarRender",
    "ScatterView",
    "bar_keys",
    "SpikeMark",
    "WaveformSet",
    "channel_grid",
    "message_block",
    "noise_scale",
    "render_probe",
    "render_traces",
    "render_waveforms",
    "SimilarityTable",
    "StatusLine",
    "amplitude_series",
    "message_lines",
    "render_evidence",
    "status_text",
]
