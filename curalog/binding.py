"""What a log is bound to: where a folder's logs live, the header a new log starts with
(dataset fingerprint, starting labels, sorter columns, branch), and the checks that a log's
header is well-formed and fits the dataset it is opened on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from curalog._version import __version__
from curalog.dataset import Dataset, Fingerprint
from curalog.errors import FingerprintMismatchError, LogCorruptError

LOG_DIRNAME = ".curalog"
DEFAULT_BRANCH = "main"


def default_log_path(folder: str | os.PathLike[str], branch: str = DEFAULT_BRANCH) -> Path:
    """``DIR/.curalog/<branch>.log``."""
    return Path(folder) / LOG_DIRNAME / f"{branch}.log"


def make_header(
    ds: Dataset, author: str, branch: str = DEFAULT_BRANCH, parent: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The log header: what the log is bound to and its starting labels."""
    return {
        "kind": "curalog-log",
        "created": time.time_ns(),
        "author": author,
        "curalog_version": __version__,
        "dataset": ds.fingerprint.to_dict(),
        "dataset_path": str(Path(ds.path).resolve()),
        "base_groups": [[int(c), str(g)] for c, g in sorted(ds.base_groups.items())],
        # The sorter's columns as they were when curation started: later exports write
        # cluster_<field>.tsv files into the folder, which must not become sorter columns.
        "sorter_columns": {
            name: [[int(c), v] for c, v in sorted(values.items())]
            for name, values in ds.sorter_columns.items()
        },
        "branch": {"name": branch, "parent": parent},
    }


def check_header(header: dict[str, Any], log_path: Path) -> None:
    """Refuse a header whose fields are not what curalog writes (a clear error, not a crash)."""
    where = f"{log_path}: header"
    try:
        for pair in header.get("base_groups", []):
            cid, group = pair
            if not isinstance(cid, int) or not isinstance(group, str) or not 0 <= cid < 2**31 - 1:
                raise TypeError("base_groups")
        columns = header.get("sorter_columns", {})
        if not isinstance(columns, dict):
            raise TypeError("sorter_columns")
        for name, pairs in columns.items():
            if not isinstance(name, str):
                raise TypeError("sorter_columns")
            for cid, value in pairs:
                if (
                    not isinstance(cid, int)
                    or not isinstance(value, (int, float, str))
                    or isinstance(value, bool)
                ):
                    raise TypeError(f"sorter column {name}")
    except (TypeError, ValueError) as exc:
        raise LogCorruptError(f"{where}: malformed {str(exc) or 'field'}") from None


def check_binding(header: dict[str, Any], dataset: Dataset, log_path: Path) -> None:
    """Refuse a log header that is malformed or was written for another dataset."""
    check_header(header, log_path)
    try:
        logged = Fingerprint.from_dict(header["dataset"])
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        raise LogCorruptError(f"{log_path}: header has no valid dataset fingerprint") from None
    current = dataset.fingerprint
    if logged != current:
        diffs = ", ".join(current.differences(logged))
        raise FingerprintMismatchError(
            f"{log_path}: written for another dataset or the dataset changed since ({diffs}); refusing to replay onto {dataset.path}"
        )
