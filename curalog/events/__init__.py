"""Events: the envelope every log record carries, its typed bodies and their packing.

The face of the package: import from here, not from the modules inside.
"""

from curalog.events.envelope import (
    ACTION_TYPES,
    ASSIGN,
    EVENT_TYPES,
    LABEL,
    MERGE,
    NOTE,
    REDO,
    SCHEMA_VERSION,
    SPLIT,
    UNDO,
    UPCASTERS,
    Event,
    decode_envelope,
    describe,
    envelope,
    pack_indices,
    pack_values,
    unpack_array,
)

__all__ = [
    "SCHEMA_VERSION",
    "MERGE",
    "SPLIT",
    "ASSIGN",
    "LABEL",
    "UNDO",
    "REDO",
    "NOTE",
    "EVENT_TYPES",
    "ACTION_TYPES",
    "UPCASTERS",
    "Event",
    "envelope",
    "decode_envelope",
    "pack_indices",
    "pack_values",
    "unpack_array",
    "describe",
]
