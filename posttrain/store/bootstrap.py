"""Bootstrap confidence intervals for the stance curves and drift metrics (filled into the database).

A replicate resamples, within each (run, topic, probe mode), the topic's prompts with replacement, once for
all checkpoints of the run (drift is a within-prompt change, so prompts stay paired over time), and then each
chosen prompt's samples with replacement, independently at every checkpoint (samples are fresh draws at each).
Percentile intervals at the configured confidence. Drift metrics are recomputed on every replicate with the
same definitions as the `drift` view (drift_metrics below; a test checks both agree on the point estimate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STANCES = ("support", "neutral", "oppose")
KEYS = ["run", "topic", "mode"]


def drift_metrics(steps: np.ndarray, values: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """Drift metrics of curves `values` (..., n_steps) over `steps`:
    magnitude           last - first (signed)
    drift_time          (first step whose |change from the first| reaches fraction x the largest |change|
                         - first step) / (last step - first step)
    drift_time_settled  the same for the first step after which the curve stays within
                        (1 - fraction) x the largest |change| of its final value (robust to a passing spike)
    Both times are NaN when the curve never moves."""
    steps = np.asarray(steps, dtype=float)
    change = values - values[..., :1]
    max_abs = np.abs(change).max(axis=-1)
    moved = max_abs > 0
    span = steps[-1] - steps[0] if len(steps) > 1 else np.nan
    reached = np.abs(change) >= fraction * max_abs[..., None]
    inside = np.abs(values - values[..., -1:]) <= (1 - fraction) * max_abs[..., None] + 1e-12
    stays = np.flip(np.logical_and.accumulate(np.flip(inside, axis=-1), axis=-1), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        drift_time = np.where(moved, (steps[reached.argmax(axis=-1)] - steps[0]) / span, np.nan)
        settled = np.where(moved, (steps[stays.argmax(axis=-1)] - steps[0]) / span, np.nan)
    return {"magnitude": values[..., -1] - values[..., 0], "drift_time": drift_time, "drift_time_settled": settled}


def _cube(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(steps, X) with X[step, prompt, sample, stance]; NaN where a prompt has fewer samples at a step."""
    steps = np.sort(group["step"].unique())
    prompts = {p: i for i, p in enumerate(sorted(group["prompt_id"].unique()))}
    rank = group.groupby(["step", "prompt_id"]).cumcount().to_numpy()
    cube = np.full((len(steps), len(prompts), rank.max() + 1, 3), np.nan)
    cube[np.searchsorted(steps, group["step"].to_numpy()), group["prompt_id"].map(prompts).to_numpy(), rank] = \
        group[[f"p_{s}" for s in STANCES]].to_numpy()
    return steps, cube


def intervals(samples: pd.DataFrame, resamples: int, confidence: float, fraction: float, seed: int = 0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stance_ci, drift_ci) tables: per run, step, topic, mode and stance the interval of the mean stance;
    per run, topic, mode and stance the intervals of magnitude, drift_time and drift_time_settled."""
    rng = np.random.default_rng(seed)
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    stance_rows, drift_rows = [], []
    for key, group in samples.sort_values(KEYS + ["step", "prompt_id", "sample_id"]).groupby(KEYS, sort=True):
        steps, cube = _cube(group)
        n_steps, n_prompts, n_samples, _ = cube.shape
        pick_prompt = rng.integers(0, n_prompts, size=(resamples, 1, n_prompts, 1))
        pick_sample = rng.integers(0, n_samples, size=(resamples, n_steps, n_prompts, n_samples))
        step_idx = np.arange(n_steps)[None, :, None, None]
        # each resampled prompt keeps its own sample count: draw among its non-missing samples
        counts = (~np.isnan(cube[..., 0])).sum(axis=2)  # (step, prompt)
        chosen_counts = counts[step_idx[..., 0], pick_prompt[..., 0]][..., None]
        pick_sample = pick_sample % np.maximum(chosen_counts, 1)
        curves = np.nanmean(cube[step_idx, pick_prompt, pick_sample], axis=(2, 3))  # (B, step, stance)
        lo, hi = np.nanpercentile(curves, q, axis=0)
        for i, step in enumerate(steps):
            for j, s in enumerate(STANCES):
                stance_rows.append({**dict(zip(KEYS, key)), "step": int(step), "stance": s,
                                    "lo": lo[i, j], "hi": hi[i, j]})
        metrics = drift_metrics(steps, np.moveaxis(curves, -1, 1), fraction)  # each (B, stance)
        for j, s in enumerate(STANCES):
            row = {**dict(zip(KEYS, key)), "stance": s, "n_resamples": resamples, "confidence": confidence}
            for name, values in metrics.items():
                finite = values[:, j][np.isfinite(values[:, j])]
                row[f"{name}_lo"], row[f"{name}_hi"] = np.percentile(finite, q) if len(finite) else (np.nan, np.nan)
            drift_rows.append(row)
    return pd.DataFrame(stance_rows), pd.DataFrame(drift_rows)
