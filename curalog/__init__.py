"""curalog: event-sourced curation of Kilosort/phy spike sorting.

The core (this package) needs numpy, numba, msgpack and scipy (the raw recording's filter) only; the terminal UI lives in
``curalog_tui`` and is never imported from here.
"""

from curalog._version import __version__
from curalog.clustering import ClusterState, Update  # noqa: E402
from curalog.curation import Curation, default_log_path, open_curation, replay  # noqa: E402
from curalog.dataset import Dataset, load_dataset  # noqa: E402
from curalog.errors import CuralogError  # noqa: E402

open = open_curation  # noqa: A001  (curalog.open(folder) reads naturally)

__all__ = [
    "ClusterState",
    "Curation",
    "CuralogError",
    "Dataset",
    "Update",
    "__version__",
    "default_log_path",
    "load_dataset",
    "open",
    "open_curation",
    "replay",
]
