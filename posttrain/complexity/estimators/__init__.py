"""Complexity estimators: each is a program whose length is counted honestly.

bits = code length of any text or data the program carries, under the checkpoint being measured
       (posttrain.complexity.coding) + quantised parameters it ships (entropy-coded)
     + 8 x the size in bytes of the driver file that implements the strategy (the module's own source).
"""

from __future__ import annotations

from pathlib import Path


def driver_bits(module_file: str) -> int:
    """8 x the bytes of a driver's source file, measured, never typed in."""
    return Path(module_file).stat().st_size * 8
