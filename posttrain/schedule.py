"""Checkpoint schedules, fixed at parse time so the workflow knows every checkpoint before training starts."""

from __future__ import annotations

import numpy as np


def checkpoint_steps(schedule: dict, max_steps: int) -> list[int]:
    """Sorted optimizer steps to snapshot: step 0 (the starting weights) always, max_steps always.

    {"steps": [...]} is taken as given (steps past max_steps are an error);
    {"log_spaced": N} gives N distinct steps log-spaced over 1..max_steps (dense early, where drift happens),
    plus step 0;
    {"dense_early": {"every": E, "early_every": e, "early_until": U}} gives every e-th step up to U, then every
    E-th step (the paper's "every 100 steps early, 500 later").
    """
    if "steps" in schedule:
        steps = set(schedule["steps"])
        too_late = sorted(s for s in steps if s > max_steps)
        if too_late:
            raise ValueError(f"checkpoints.steps {too_late} lie past max_steps={max_steps}")
    elif "log_spaced" in schedule:
        n = min(schedule["log_spaced"], max_steps)
        steps = set()
        # Rounding merges neighbours early on; widen the grid until n distinct steps come out.
        for k in range(n, 50 * n):
            steps = {round(float(s)) for s in np.geomspace(1, max_steps, k)}
            if len(steps) >= n:
                break
    elif "dense_early" in schedule:
        d = schedule["dense_early"]
        early_until = min(d["early_until"], max_steps)
        steps = set(range(0, early_until + 1, d["early_every"])) | set(range(0, max_steps + 1, d["every"]))
    else:
        raise ValueError(f"a checkpoint schedule needs 'steps', 'log_spaced' or 'dense_early', got {schedule}")
    return sorted(steps | {0, max_steps})
