"""Synthetic Kilosort-style datasets for tests, benchmarks and the demo.

The face of the package: import from here, not from the modules inside.
"""

from curalog.synth.generator import (
    TRUTH_FILE,
    TRUTH_FORMAT,
    TRUTH_VERSION,
    SynthInfo,
    channel_positions_np1,
    synthesize,
)

__all__ = [
    "TRUTH_FILE",
    "TRUTH_FORMAT",
    "TRUTH_VERSION",
    "SynthInfo",
    "channel_positions_np1",
    "synthesize",
]
