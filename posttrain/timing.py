"""Where a job's time goes, phase by phase, printed as one line at its end (the job's log keeps it).

    with timing.phase("load"): ...
    print(timing.summary())   # "load 1.9 s (7 %), forced_choice 20.1 s (74 %), ..."

Snakemake's `benchmark:` files give each job's total; this line splits it, so the share of model loading and
tokenisation in a probe job can be read from its log.
"""

from __future__ import annotations

import contextlib
import time

_seconds: dict[str, float] = {}
_start = time.perf_counter()


@contextlib.contextmanager
def phase(name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        _seconds[name] = _seconds.get(name, 0.0) + time.perf_counter() - start


def summary() -> str:
    """The phases so far, with their share of the wall time since the process imported this module."""
    total = time.perf_counter() - _start
    parts = [f"{n} {s:.1f} s ({100 * s / total:.0f} %)" for n, s in _seconds.items()]
    return f"phases: {', '.join(parts)}; total {total:.1f} s"
