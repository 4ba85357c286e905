"""The screens the app pushes over its cluster table: the face of the package.

Each screen is handed a :class:`curalog_tui.session.CurationSession` (or the curation
alone) and never imports the app module.
"""

from .correlograms import CorrelogramHelp, CorrelogramScreen
from .help import HelpScreen, KeyTableHelp
from .history import HistoryScreen
from .proposals import ProposalsScreen, ReviewHelp
from .split import SplitScreen
from .traces import TraceHelp, TraceScreen
from .views import ViewsHelp, ViewsScreen
from .waveforms import WaveformHelp, WaveformScreen

__all__ = [
    "CorrelogramHelp",
    "CorrelogramScreen",
    "HelpScreen",
    "HistoryScreen",
    "KeyTableHelp",
    "ProposalsScreen",
    "ReviewHelp",
    "SplitScreen",
    "TraceHelp",
    "TraceScreen",
    "ViewsHelp",
    "ViewsScreen",
    "WaveformHelp",
    "WaveformScreen",
]
