"""Bootstrap confidence intervals for the stance curves and drift metrics (filled into the database).

A replicate resamples, within each (run, topic, probe mode), the topic's prompts with replacement, and then
each chosen prompt's sample ids with replacement (as many as the prompt has), once for all checkpoints of the
run. Both stay paired over time: drift is a within-prompt change, and a sample id is drawn with the same seed
at every checkpoint, so sample k at step 0 and sample k at step 60 are not independent draws. Resampling them
separately at each checkpoint would treat the shared part of their noise as independent and widen (or, for a
change, mis-state) every interval. A replicate's curve is the same statistic as the point estimate of the
`stance_by_topic` view: the mean, at each step, over the resampled (prompt, sample) pairs present at that step.
Percentile intervals at the configured confidence. Drift metrics are recomputed on every replicate with the
same definitions as the `drift` view (drift_metrics below; a test checks both agree on the point estimate).

What it leaves out: the spread between training seeds. These intervals are over the prompts and samples of
one training run.

How it stays fast at cluster scale (millions of rows x 1000 replicates): a replicate is a vector of weights,
how often each (prompt, sample) was drawn, so all replicates' curves of a group are one matrix product of the
(B, prompt x sample) weights with the (prompt x sample, step x stance) values, divided by the product of the
weights with which (prompt, sample) pairs are present at each step. Each group has its own random stream,
derived from the seed and the group's key: a group's intervals do not depend on the other groups or on the
number of threads, so groups run in parallel threads (numpy releases the GIL in the draws and products).
Values are centred on one of the step's own values before summing, so a step without variance gives
intervals that equal its value exactly.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits  # a dependency of scikit-learn, which the project requires

from posttrain.stances import STANCES

KEYS = ["run", "topic", "mode"]
COLUMNS = KEYS + ["step", "prompt_id", "sample_id"] + [f"p_{s}" for s in STANCES]
METRICS = ("magnitude", "drift_time", "drift_time_settled")
# The read-outs with intervals: the three stances and the balance p_support - p_oppose (one stance alone can sit
# at its floor, and a drift of support into oppose shows in the balance twice over).
READOUTS = (*STANCES, "balance")
OVERALL = "(all)"  # the topic of the mean over topics


def drift_metrics(steps: np.ndarray, values: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """Drift metrics of curves `values` (..., n_steps) over `steps`:
    magnitude           last - first (signed)
    drift_time          (first step whose change from the first has the sign of the extremum's change and at
                         least fraction x its size - first step) / (last step - first step). The extremum is the
                         first step with the largest |change|. A curve that jumps +0.15 and ends at -0.152 has
                         its extremum at the end, and the early jump in the other direction does not count.
    drift_time_settled  the same for the first step after which the curve stays within
                        (1 - fraction) x the largest |change| of its final value (robust to a passing spike)
    Both times are NaN when the curve never moves."""
    steps = np.asarray(steps, dtype=float)
    change = values - values[..., :1]
    max_abs = np.abs(change).max(axis=-1)
    moved = max_abs > 0
    span = steps[-1] - steps[0] if len(steps) > 1 else np.nan
    sign = np.sign(np.take_along_axis(change, np.abs(change).argmax(axis=-1)[..., None], axis=-1))
    reached = sign * change >= fraction * max_abs[..., None]
    inside = np.abs(values - values[..., -1:]) <= (1 - fraction) * max_abs[..., None] + 1e-12
    stays = np.flip(np.logical_and.accumulate(np.flip(inside, axis=-1), axis=-1), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        drift_time = np.where(moved, (steps[reached.argmax(axis=-1)] - steps[0]) / span, np.nan)
        settled = np.where(moved, (steps[stays.argmax(axis=-1)] - steps[0]) / span, np.nan)
    return {"magnitude": values[..., -1] - values[..., 0], "drift_time": drift_time, "drift_time_settled": settled}


def _stream(seed: int, key: tuple) -> np.random.Generator:
    """The group's own random stream: the same for a group whatever else is in the study."""
    digest = hashlib.blake2b("\0".join(map(str, key)).encode(), digest_size=16).digest()
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=words))


def replicate_weights(present: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, prompt, sample) draw counts of `resamples` replicates. present[step, prompt, sample] says which
    sample ids each prompt has at each step; a prompt's ids are those it has at any step. Prompts are drawn
    with replacement, then each drawn prompt's ids, as many as it has, the same ids for every step."""
    _, n_prompts, width = present.shape
    has = present.any(axis=0)  # (prompt, sample)
    n_ids = has.sum(axis=1)
    ids = np.argsort(~has, axis=1, kind="stable")  # each prompt's own sample slots first
    pick = rng.integers(0, n_prompts, size=(resamples, n_prompts))
    weights = np.zeros((resamples, n_prompts, width))
    for n in np.unique(n_ids[n_ids > 0]):
        b, j = np.nonzero(n_ids[pick] == n)  # the draws of prompts with n sample ids
        prompt = pick[b, j]
        slot = ids[prompt[:, None], rng.integers(0, n, size=(len(prompt), n))]
        np.add.at(weights, (np.repeat(b, n), np.repeat(prompt, n), slot.ravel()), 1.0)
    return weights


def _replicate_curves(cube: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap curves (B, step, stance) of one group. cube[step, prompt, sample, stance] is NaN where that
    prompt has no such sample id at that step."""
    n_steps = cube.shape[0]
    present = ~np.isnan(cube[..., 0])
    # centre each step on one of its own values: a step without variance gives exactly that value back
    first = present.reshape(n_steps, -1).argmax(axis=1)
    ref = cube.reshape(n_steps, -1, 3)[np.arange(n_steps), first]  # (step, stance)
    x = np.where(np.isnan(cube), 0.0, cube - ref[:, None, None, :])
    weights = replicate_weights(present, resamples, rng).reshape(resamples, -1)
    sums = weights @ x.transpose(1, 2, 0, 3).reshape(weights.shape[1], -1)  # (B, step x stance)
    denominator = weights @ present.transpose(1, 2, 0).reshape(weights.shape[1], -1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ref + sums.reshape(resamples, n_steps, 3) / denominator[..., None]


def _percentiles(values: np.ndarray, q: list[float]) -> np.ndarray:
    """(2, ...) percentiles over axis 0 of the finite values (NaN where there are none)."""
    finite = np.isfinite(values)
    if finite.all():
        return np.percentile(values, q, axis=0)
    out = np.full((2,) + values.shape[1:], np.nan)
    for idx in np.ndindex(values.shape[1:]):
        column = values[(slice(None),) + idx]
        if finite[(slice(None),) + idx].any():
            out[(slice(None),) + idx] = np.percentile(column[np.isfinite(column)], q)
    return out


def _summarise(steps: np.ndarray, curves: np.ndarray, q: list[float], fraction: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(curve lo/hi (2, step, read-out), drift lo/hi (metric, 2, read-out)) of replicate curves (B, step, read-out)."""
    metrics = drift_metrics(steps, np.moveaxis(curves, -1, 1), fraction)  # each (B, read-out)
    return _percentiles(curves, q), np.stack([_percentiles(metrics[m], q) for m in METRICS])


class _TopicMeans:
    """Replicate curves summed over the topics of each (run, mode): a replicate of the mean over topics takes
    every topic's replicate of the same index, each resampled within its topic (a stratified bootstrap)."""

    def __init__(self):
        self.lock, self.sums = threading.Lock(), {}

    def add(self, key: tuple, steps: np.ndarray, curves: np.ndarray) -> None:
        run, _, mode = key
        with self.lock:
            have = self.sums.get((run, mode))
            if have is None:
                self.sums[(run, mode)] = [steps, curves.copy(), 1]
            elif have[0] is not None and np.array_equal(have[0], steps):
                have[1] += curves
                have[2] += 1
            else:  # topics probed at different checkpoints: no mean over topics
                have[0] = None

    def curves(self):
        for (run, mode), (steps, total, n) in sorted(self.sums.items()):
            if steps is not None:
                yield (run, OVERALL, mode), steps, total / n


def _group(key: tuple, steps: np.ndarray, cube: np.ndarray, resamples: int, q: list[float], fraction: float,
           seed: int, means: _TopicMeans) -> tuple[np.ndarray, np.ndarray]:
    """(curve lo/hi (2, step, read-out), drift lo/hi (metric, 2, read-out)) of one group."""
    curves = _replicate_curves(cube, resamples, _stream(seed, key))
    curves = np.concatenate([curves, curves[..., :1] - curves[..., 2:3]], axis=-1)  # + the balance
    means.add(key, steps, curves)
    return _summarise(steps, curves, q, fraction)


def _groups(samples: pd.DataFrame):
    """Yield (key, steps, cube) per (run, topic, mode), keys in sorted order; cube[step, prompt, sample id,
    stance], prompts and sample ids sorted, NaN where a prompt lacks that sample id at that step."""
    codes, uniques = [], []  # int32 codes and freed once sorted: at 8 M rows every copy is ~30-60 MB
    for column in KEYS + ["step", "prompt_id", "sample_id"]:
        code, unique = pd.factorize(samples[column], sort=True)
        if (code < 0).any():
            raise ValueError(f"stance samples: column {column} has missing values")
        codes.append(code.astype(np.int32))
        uniques.append(unique)
    sizes = [len(u) for u in uniques]
    if np.prod(np.array(sizes, dtype=float)) < 2.0 ** 62:  # one int64 key: sorts faster than lexsort
        key = np.zeros(len(samples), dtype=np.int64)
        for code, size in zip(codes, sizes):
            key = key * size + code
        order = np.argsort(key, kind="stable")
        del key
    else:
        order = np.lexsort(codes[::-1])
    run, topic, mode, step, prompt, sample = (code[order] for code in codes)
    del codes
    values = np.stack([samples[f"p_{s}"].to_numpy(dtype=np.float64)[order] for s in STANCES], axis=1)
    if not np.isfinite(values).all():
        bad = samples.iloc[order[np.flatnonzero(~np.isfinite(values).all(axis=1))[0]]]
        raise ValueError(f"stance samples: p_support, p_neutral and p_oppose must be finite; run {bad['run']}, "
                         f"step {bad['step']}, prompt {bad['prompt_id']}, sample {bad['sample_id']} is not")
    group = (run.astype(np.int64) * len(uniques[1]) + topic) * len(uniques[2]) + mode
    bounds = np.flatnonzero(np.diff(group)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(group)]):
        step_codes, step_index = np.unique(step[lo:hi], return_inverse=True)
        prompt_codes, prompt_index = np.unique(prompt[lo:hi], return_inverse=True)
        sample_codes, sample_index = np.unique(sample[lo:hi], return_inverse=True)
        cell = (step_index * len(prompt_codes) + prompt_index) * len(sample_codes) + sample_index
        if len(cell) > 1 and (np.diff(cell) == 0).any():  # rows are sorted: a repeat is next to its twin
            bad = samples.iloc[order[lo + np.flatnonzero(np.diff(cell) == 0)[0]]]
            raise ValueError(f"stance samples: run {bad['run']}, topic {bad['topic']}, mode {bad['mode']}, step "
                             f"{bad['step']}, prompt {bad['prompt_id']} has sample {bad['sample_id']} twice")
        cube = np.full((len(step_codes) * len(prompt_codes) * len(sample_codes), 3), np.nan)
        cube[cell] = values[lo:hi]
        key = (uniques[0][run[lo]], uniques[1][topic[lo]], uniques[2][mode[lo]])
        yield (key, np.asarray(uniques[3][step_codes], dtype=np.int64),
               cube.reshape(len(step_codes), len(prompt_codes), len(sample_codes), 3))


def intervals(samples: pd.DataFrame, resamples: int, confidence: float, fraction: float, seed: int = 0,
              threads: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stance_ci, drift_ci) tables: per run, step, topic, mode and read-out (each stance and the balance) the
    interval of the mean; per run, topic, mode and read-out the intervals of magnitude, drift_time and
    drift_time_settled. Topic OVERALL is the mean over topics, where a run's topics share their checkpoints.
    `threads` (default: the cores this process may use) only changes the speed, never the numbers."""
    missing = [c for c in COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"stance samples lack column(s) {missing}")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"bootstrap: resamples must be >= 1 and confidence in (0, 1), got {resamples}, {confidence}")
    threads = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    # one BLAS thread per group: the groups already use the cores, and idle BLAS threads spin-wait on them.
    # Groups are handed to the threads as they are cut out of the table, so the two overlap.
    means = _TopicMeans()
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(1, threads)) as pool:
        done = list(pool.map(lambda g: (g[0], g[1], _group(*g, resamples, q, fraction, seed, means)),
                             _groups(samples) if len(samples) else []))
    done += [(key, steps, _summarise(steps, curves, q, fraction)) for key, steps, curves in means.curves()]
    groups, results = [(key, steps) for key, steps, _ in done], [r for _, _, r in done]
    n = len(READOUTS)

    keys = np.empty(len(groups), dtype=object)
    keys[:] = [g[0] for g in groups]
    n_steps = np.array([len(g[1]) for g in groups], dtype=np.int64)
    stance_keys = np.repeat(keys, n * n_steps)
    stance_q = np.concatenate([r[0].reshape(2, -1) for r in results], axis=1) if results else np.empty((2, 0))
    stance_ci = pd.DataFrame({
        **{k: [key[i] for key in stance_keys] for i, k in enumerate(KEYS)},
        "step": np.repeat(np.concatenate([g[1] for g in groups]) if groups else np.empty(0, np.int64), n),
        "stance": np.tile(np.array(READOUTS, dtype=object), int(n_steps.sum())),
        "lo": stance_q[0], "hi": stance_q[1]})
    drift_q = np.stack([r[1] for r in results]) if results else np.empty((0, len(METRICS), 2, n))  # g, m, end, r
    drift_keys = np.repeat(keys, n)
    drift_ci = pd.DataFrame({
        **{k: [key[i] for key in drift_keys] for i, k in enumerate(KEYS)},
        "stance": np.tile(np.array(READOUTS, dtype=object), len(groups)),
        "n_resamples": np.full(n * len(groups), resamples, dtype=np.int64),
        "confidence": np.full(n * len(groups), confidence, dtype=np.float64),
        **{f"{m}_{end}": drift_q[:, i, j, :].ravel() for i, m in enumerate(METRICS)
           for j, end in enumerate(("lo", "hi"))}})
    return stance_ci, drift_ci
