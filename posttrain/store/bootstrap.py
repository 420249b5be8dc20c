"""Bootstrap confidence intervals for the stance curves and drift metrics (filled into the database).

A replicate resamples, within each (run, topic, probe mode), the topic's prompts with replacement, once for
all checkpoints of the run (drift is a within-prompt change, so prompts stay paired over time), and then each
chosen prompt's samples with replacement, independently at every checkpoint (samples are fresh draws at each;
a prompt keeps its own sample count). A replicate's curve is the same statistic as the point estimate of the
`stance_by_topic` view: the mean over all (resampled) samples of the step. Percentile intervals at the
configured confidence. Drift metrics are recomputed on every replicate with the same definitions as the
`drift` view (drift_metrics below; a test checks both agree on the point estimate).

How it stays fast at cluster scale (millions of rows x 1000 replicates), with the same distribution as
drawing every sample index one by one:
- A replicate's curve is (sum of the chosen prompts' resampled sample sums) / (their sample counts). The
  counts, and the sums of prompts whose samples are all equal (one sample, or identical ones), do not depend
  on the sample draws: they are a matrix product of the replicate's prompt counts with per-prompt totals.
- A prompt with n samples resampled n times gives one of C(2n-1, n) multisets (126 for n = 5), each with
  probability (its number of orderings) / n^n. Drawing one integer in [0, n^n) and mapping it to its
  multiset is exactly the n independent draws; the multisets' sums are tabulated per (step, prompt), so a
  chosen prompt costs one draw and one look-up (of its three stance sums) instead of n draws and 3n
  look-ups. Above TABLE_MAX_SAMPLES samples the table would be too large and the n indices are drawn directly.
- Each group has its own random stream, derived from the seed and the group's key: a group's intervals
  do not depend on the other groups or on the number of threads, so groups run in parallel threads (numpy
  releases the GIL in the draws, gathers and sums).
- Values are centred on one of the step's own values before summing, so a step without variance gives
  intervals that equal its value exactly.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits  # a dependency of scikit-learn, which the project requires

from posttrain.stances import STANCES

KEYS = ["run", "topic", "mode"]
COLUMNS = KEYS + ["step", "prompt_id", "sample_id"] + [f"p_{s}" for s in STANCES]
METRICS = ("magnitude", "drift_time", "drift_time_settled")
TABLE_MAX_SAMPLES = 6  # 6^6 = 46,656 orderings fit a uint16 draw; 462 multisets per (step, prompt)
CHUNK = 1 << 16  # draws per numpy call: large enough to amortise the call, small enough to stay in cache


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


@cache
def _multisets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ordering -> multiset index for each of the n^n orderings of n draws from n samples, the multisets'
    sample counts (n_multisets, n)). Ordering i draws sample (i // n^j) % n at draw j."""
    orderings = np.array(list(itertools.product(range(n), repeat=n)), dtype=np.int64)
    counts = np.stack([(orderings == k).sum(axis=1) for k in range(n)], axis=1)
    multisets, index = np.unique(counts, axis=0, return_inverse=True)
    return index.ravel().astype(np.intp), multisets.astype(np.float64)


def _stream(seed: int, key: tuple) -> np.random.Generator:
    """The group's own random stream: the same for a group whatever else is in the study."""
    digest = hashlib.blake2b("\0".join(map(str, key)).encode(), digest_size=16).digest()
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=words))


def _chunks(total: int, per_row: int):
    step = max(1, CHUNK // max(per_row, 1))
    return [slice(a, min(a + step, total)) for a in range(0, total, step)]


def _replicate_curves(cube: np.ndarray, counts: np.ndarray, resamples: int, rng: np.random.Generator
                      ) -> np.ndarray:
    """Bootstrap curves (B, step, stance) of one group. cube[step, prompt, sample, stance], NaN-padded past
    counts[step, prompt] samples (0 where the prompt is missing at that step)."""
    n_steps, n_prompts, _, _ = cube.shape
    present = counts > 0
    # centre each step on one of its own values: a step without variance gives exactly that value back
    ref = cube[np.arange(n_steps), present.argmax(axis=1), 0]  # (step, stance)
    x = np.where(np.isnan(cube), 0.0, cube - ref[:, None, None, :])
    first = cube[:, :, :1]
    same = (np.isnan(cube) | (cube == first)).all(axis=(2, 3))  # padding is NaN: only real samples compared
    fixed = present & same  # one sample, or all equal: no sampling variance, nothing to draw
    random = present & ~fixed

    pick = rng.integers(0, n_prompts, size=(resamples, n_prompts))  # the prompts of each replicate
    weight = np.bincount((np.arange(resamples)[:, None] * n_prompts + pick).ravel(),
                         minlength=resamples * n_prompts).reshape(resamples, n_prompts).astype(np.float64)
    total = np.where(fixed[..., None], x.sum(axis=2), 0.0)  # (step, prompt, stance)
    sums = (weight @ total.transpose(1, 0, 2).reshape(n_prompts, -1)).reshape(resamples, n_steps, 3)
    denominator = weight @ counts.T.astype(np.float64)  # (B, step)

    for n in np.unique(counts[random]):
        n = int(n)
        # this sample count's cells; every other cell contributes 0 here (it is counted in `sums` or by its n).
        # Rows of 4 (the 3 stances and a 0): numpy gathers a 32-byte row as fast as one float.
        values = np.zeros((n_steps, n_prompts, n, 4))
        values[..., :3] = np.where((random & (counts == n))[..., None, None], x[:, :, :n], 0.0)
        if n <= TABLE_MAX_SAMPLES:
            ordering, multisets = _multisets(n)
            table = (multisets @ values).reshape(n_steps, -1, 4)  # [step, prompt * n_multisets + multiset, c]
            base, width, high = pick.T * len(multisets), n_prompts, n ** n  # an ordering per chosen prompt
        else:  # draw the n sample indices of every chosen prompt one by one
            table = values.reshape(n_steps, -1, 4)  # [step, prompt * n + sample, c]
            base, width, high = np.repeat(pick.T * n, n, axis=0), n_prompts * n, n  # n indices per chosen prompt
        dtype = np.uint16 if high <= 1 << 16 else np.int64  # small draws are cheaper
        for rows in _chunks(resamples, width):
            for s in range(n_steps):
                draws = rng.integers(0, high, size=(width, rows.stop - rows.start), dtype=dtype)
                index = np.take(ordering, draws) if n <= TABLE_MAX_SAMPLES else draws.astype(np.intp)
                index += base[:, rows]
                sums[rows, s] += np.take(table[s], index, axis=0).sum(axis=0)[:, :3]  # over the chosen prompts
    with np.errstate(invalid="ignore", divide="ignore"):
        return ref + sums / denominator[..., None]


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


def _group(key: tuple, steps: np.ndarray, cube: np.ndarray, counts: np.ndarray, resamples: int,
           q: list[float], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(stance lo/hi (2, step, stance), drift lo/hi (metric, 2, stance)) of one group."""
    curves = _replicate_curves(cube, counts, resamples, _stream(seed, key))
    metrics = drift_metrics(steps, np.moveaxis(curves, -1, 1), fraction)  # each (B, stance)
    return _percentiles(curves, q), np.stack([_percentiles(metrics[m], q) for m in METRICS])


def _groups(samples: pd.DataFrame):
    """Yield (key, steps, cube, counts) per (run, topic, mode), keys in sorted order, prompts sorted by id,
    samples in sample_id order."""
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
    run, topic, mode, step, prompt = (code[order] for code in codes[:5])
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
        cell = step_index * len(prompt_codes) + prompt_index  # non-decreasing: rows are sorted
        counts = np.bincount(cell, minlength=len(step_codes) * len(prompt_codes))
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        rank = np.arange(hi - lo) - starts[cell]
        cube = np.full((len(step_codes) * len(prompt_codes), counts.max(), 3), np.nan)
        cube[cell, rank] = values[lo:hi]
        key = (uniques[0][run[lo]], uniques[1][topic[lo]], uniques[2][mode[lo]])
        yield (key, np.asarray(uniques[3][step_codes], dtype=np.int64),
               cube.reshape(len(step_codes), len(prompt_codes), -1, 3),
               counts.reshape(len(step_codes), len(prompt_codes)))


def intervals(samples: pd.DataFrame, resamples: int, confidence: float, fraction: float, seed: int = 0,
              threads: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stance_ci, drift_ci) tables: per run, step, topic, mode and stance the interval of the mean stance;
    per run, topic, mode and stance the intervals of magnitude, drift_time and drift_time_settled.
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
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(1, threads)) as pool:
        done = list(pool.map(lambda g: (g[0], g[1], _group(*g, resamples, q, fraction, seed)),
                             _groups(samples) if len(samples) else []))
    groups, results = [(key, steps) for key, steps, _ in done], [r for _, _, r in done]

    keys = np.empty(len(groups), dtype=object)
    keys[:] = [g[0] for g in groups]
    n_steps = np.array([len(g[1]) for g in groups], dtype=np.int64)
    stance_keys = np.repeat(keys, 3 * n_steps)
    stance_q = np.concatenate([r[0].reshape(2, -1) for r in results], axis=1) if results else np.empty((2, 0))
    stance_ci = pd.DataFrame({
        **{k: [key[i] for key in stance_keys] for i, k in enumerate(KEYS)},
        "step": np.repeat(np.concatenate([g[1] for g in groups]) if groups else np.empty(0, np.int64), 3),
        "stance": np.tile(np.array(STANCES, dtype=object), int(n_steps.sum())),
        "lo": stance_q[0], "hi": stance_q[1]})
    drift_q = np.stack([r[1] for r in results]) if results else np.empty((0, len(METRICS), 2, 3))  # g, m, end, stance
    drift_keys = np.repeat(keys, 3)
    drift_ci = pd.DataFrame({
        **{k: [key[i] for key in drift_keys] for i, k in enumerate(KEYS)},
        "stance": np.tile(np.array(STANCES, dtype=object), len(groups)),
        "n_resamples": np.full(3 * len(groups), resamples, dtype=np.int64),
        "confidence": np.full(3 * len(groups), confidence, dtype=np.float64),
        **{f"{m}_{end}": drift_q[:, i, j, :].ravel() for i, m in enumerate(METRICS)
           for j, end in enumerate(("lo", "hi"))}})
    return stance_ci, drift_ci
