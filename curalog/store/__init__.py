"""The store: the append-only, crash-safe log file (branches, diffs and combining live above the core, in curalog.history).

The face of the package: import from here, not from the modules inside.
"""

from curalog.store.log import (
    CHECKSUM,
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER,
    MAX_RECORD,
    LogWriter,
    ScanResult,
    WriterLock,
    create_log,
    default_author,
    encode_frame,
    read_log,
    read_state,
    scan_bytes,
)
from curalog.store.repair import inspect_log, read_salvage, repair_log

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "MAX_RECORD",
    "MAX_HEADER",
    "CHECKSUM",
    "encode_frame",
    "default_author",
    "ScanResult",
    "scan_bytes",
    "read_log",
    "WriterLock",
    "create_log",
    "LogWriter",
    "repair_log",
    "inspect_log",
    "read_salvage",
    "read_state",
]
