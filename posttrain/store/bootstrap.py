"""The one resampling scheme behind every interval of the value probe (docs/methods.md: Estimands and intervals).

A replicate is a cluster bootstrap over prompts, stratified by topic: within each (topic, probe mode) n - 1 of the n
prompts are drawn with replacement (prompt_draws says why n - 1), once, and that one draw is shared by every
checkpoint, seed and run that probes those prompts. So every curve, drift and contrast between runs is paired: the
same prompts carry the same weights in both terms. The unit is the prompt's mean over its sampled answers; answers
within a prompt are not resampled again (the prompt mean already carries their noise, and a sample id is drawn with
the same seed at every checkpoint). Topic '(all)' is the mean over topics, each weighing the same; its replicate
averages the topics' replicates of the same index (each drawn within its own topic: the stratified bootstrap).

Three estimands (docs/methods.md):
(a) one run: the run's expected value over prompts and samples. Percentile intervals of the replicates
    (`stance_ci`, `drift_ci`).
(b) the mean over the study's seeds of a replicated run, conditional on those seeds: each replicate averages
    the seeds' replicate values (same draw), percentile intervals (`seeds_ci`, *_fixed columns).
(c) the mean over a population of seeds (only with >= 3 seeds): a random-effects (seed) model whose variance
    is estimated by moments. With S seeds, per-seed estimates T_s and their replicates T_s*,
        Var(mean) = s^2 / S + C,  C = the replicates' mean covariance between two seeds (the shared prompts'
    part, which the spread between seeds cannot show); s^2 / S already holds each seed's own sampling noise.
    Student t with S - 1 degrees of freedom, those of s^2. (Welch-Satterthwaite df, treating C as known, is
    liberal here: when s^2 comes out small by chance its df jumps, and at 3 seeds its 95 % intervals covered 88 %
    in the simulation; S - 1 covers, and is conservative only where the prompts' part C dominates.)
    tests/test_coverage.py checks by simulation that all three cover.

Intervals are clipped to the quantity's range (a magnitude of one stance lies in [-1, 1], of the balance in
[-2, 2], a drift time in [0, 1]): percentile intervals stay inside it by construction, (c) can leave it, and
clipping never removes the truth. Two-sided p-values come with every interval: for the replicates, twice the
smaller share of replicates on either side of 0; for (c), Student t. The (1 - 2 alpha) interval (`tost_lo`,
`tost_hi`) is what an equivalence test (TOST) at level alpha reads.

How it stays fast at cluster scale: prompts are first averaged over their samples, and a replicate is a row of
draw counts, so all replicates of a group are one matrix product of the (B, prompt) counts with the
(prompt, step x read-out) means, divided by the counts of the prompts present at each step.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from posttrain.stances import STANCES

KEYS = ["run", "topic", "mode"]
COLUMNS = KEYS + ["step", "prompt_id", "sample_id"] + [f"p_{s}" for s in STANCES]
METRICS = ("magnitude", "drift_time", "drift_time_settled")
# The read-outs: the three stances and the balance p_support - p_oppose (one stance alone can sit at its floor,
# and a drift of support into oppose shows in the balance twice over).
READOUTS = (*STANCES, "balance")
OVERALL = "(all)"  # the topic of the mean over topics
# The range of each metric per read-out: what an interval is clipped to.
RANGE = {"magnitude": np.array([[-1, 1]] * len(STANCES) + [[-2, 2]], dtype=float),
         "drift_time": np.array([[0, 1]] * len(READOUTS), dtype=float)}
RANGE["drift_time_settled"] = RANGE["drift_time"]
ESTIMANDS = {"run": "one run: prompts and samples vary (a)",
             "seeds_fixed": "mean over these seeds, conditional on them (b)",
             "seed_population": "mean over a population of seeds (c)"}


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
    """The draw's own random stream: the same for a (topic, mode) whatever else is in the study."""
    digest = hashlib.blake2b("\0".join(map(str, key)).encode(), digest_size=16).digest()
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=words))


def prompt_draws(n_prompts: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, prompt) counts: how often each prompt is drawn in each of `resamples` draws of n_prompts - 1 with
    replacement (of 1 where there is one prompt). Drawing n - 1 of n (McCarthy and Snowden 1985; the Rao-Wu
    rescaled bootstrap with m = n - 1) makes the replicates' variance of a mean s^2 / n, unbiased; drawing n
    gives (n - 1) / n of it, which at the default's 10 prompts a topic under-covers (docs/methods.md: Coverage)."""
    draws = max(n_prompts - 1, 1)
    pick = rng.integers(0, n_prompts, size=(resamples, draws))
    counts = np.zeros((resamples, n_prompts))
    np.add.at(counts, (np.repeat(np.arange(resamples), draws), pick.ravel()), 1.0)
    return counts


def prompt_means(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per run, topic, mode, step and prompt: the mean of p_* over the prompt's samples, and the balance.
    Bad rows (missing columns, non-finite values, a sample id twice) are named."""
    missing = [c for c in COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"stance samples lack column(s) {missing}")
    p = [f"p_{s}" for s in STANCES]
    for column in COLUMNS[:6]:
        if samples[column].isna().any():
            raise ValueError(f"stance samples: column {column} has missing values")
    bad = ~np.isfinite(samples[p].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        r = samples[bad].iloc[0]
        raise ValueError(f"stance samples: p_support, p_neutral and p_oppose must be finite; run {r['run']}, "
                         f"step {r['step']}, prompt {r['prompt_id']}, sample {r['sample_id']} is not")
    twice = samples.duplicated(COLUMNS[:6])
    if twice.any():
        r = samples[twice].iloc[0]
        raise ValueError(f"stance samples: run {r['run']}, topic {r['topic']}, mode {r['mode']}, step {r['step']}, "
                         f"prompt {r['prompt_id']} has sample {r['sample_id']} twice")
    means = samples.groupby(KEYS + ["step", "prompt_id"], sort=True, observed=True)[p].mean().reset_index()
    means["p_balance"] = means["p_support"] - means["p_oppose"]
    return means


def replicate_curves(step: np.ndarray, prompt: np.ndarray, values: np.ndarray, n_prompts: int, counts: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, point curve (step, read-out), replicate curves (B, step, read-out)) of one run, topic and mode from
    its prompt means: step and prompt (index into the draw's prompts) of each row, values (row, read-out).
    The point curve is the mean over the prompts present at each step (each prompt weighs the same); a replicate
    weighs each prompt by its draw count. Values are centred on one of the step's own values before summing,
    so a step without variance gives exactly that value back."""
    steps, step_index = np.unique(step, return_inverse=True)
    x = np.full((len(steps), n_prompts, values.shape[1]), np.nan)
    x[step_index, prompt] = values
    present = ~np.isnan(x[..., 0])
    ref = x[np.arange(len(steps)), present.argmax(axis=1)]  # (step, read-out)
    centred = np.where(present[..., None], x - ref[:, None, :], 0.0)
    point = ref + centred.sum(axis=1) / present.sum(axis=1)[:, None]
    sums = counts @ centred.transpose(1, 0, 2).reshape(n_prompts, -1)  # (B, step x read-out)
    denominator = counts @ present.T.astype(float)  # (B, step)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = ref + sums.reshape(len(counts), len(steps), -1) / denominator[..., None]
    return steps, point, reps


def _percentiles(values: np.ndarray, q: list[float]) -> np.ndarray:
    """(len(q), ...) percentiles over axis 0 of the finite values (NaN where there are none). A replicate can
    lack a value (a drift time where its curve never moves): such columns take the percentiles of the rest."""
    out = np.percentile(values, q, axis=0)
    for idx in zip(*np.nonzero(~np.isfinite(values).all(axis=0))):
        column = values[(slice(None),) + idx]
        column = column[np.isfinite(column)]
        out[(slice(None),) + idx] = np.percentile(column, q) if len(column) else np.nan
    return out


def bootstrap_p(reps: np.ndarray) -> np.ndarray:
    """Two-sided p-value of 'the quantity is 0' from replicates (B, ...): twice the smaller share of finite
    replicates at or beyond 0 on either side, (count + 1) / (B + 1) so that it is never 0."""
    finite = np.isfinite(reps)
    n = finite.sum(axis=0)
    below = (np.where(finite, reps, np.inf) <= 0).sum(axis=0)
    above = (np.where(finite, reps, -np.inf) >= 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(1.0, 2 * np.minimum(below + 1, above + 1) / (n + 1))
    return np.where(n > 0, p, np.nan)


@dataclass(frozen=True)
class Levels:
    """The quantiles every percentile interval is read at: the confidence interval and the TOST one (1 - 2 alpha).
    Expanded for few prompts (Hesterberg 2015, the expanded percentile interval): with df = n - 1 prompts' worth
    of degrees of freedom, a tail of alpha/2 is read at the normal quantile of Student's t(1 - alpha/2, df), so
    a topic's 10 prompts read the 1.2 % and 98.8 % percentiles where many prompts read 2.5 % and 97.5 %. Without
    it a topic's interval covered 0.908 in the simulation (docs/methods.md: Coverage)."""
    confidence: float
    df: float = np.inf

    def _tail(self, alpha: float) -> float:
        return float(stats.norm.sf(stats.t.ppf(1 - alpha, self.df))) if np.isfinite(self.df) and self.df > 0 \
            else alpha

    @property
    def q(self) -> list[float]:
        alpha = 1 - self.confidence
        two, one = self._tail(alpha / 2), self._tail(alpha)
        return [100 * two, 100 * (1 - two), 100 * one, 100 * (1 - one)]


def percentile_summary(point: np.ndarray, reps: np.ndarray, levels: Levels) -> dict[str, np.ndarray]:
    """lo, hi (the interval), tost_lo, tost_hi and p of replicates (B, ...) around a point estimate (...)."""
    lo, hi, tost_lo, tost_hi = _percentiles(reps, levels.q)
    return {"estimate": point, "lo": lo, "hi": hi, "tost_lo": tost_lo, "tost_hi": tost_hi, "p": bootstrap_p(reps)}


def seed_population(points: np.ndarray, reps: np.ndarray, levels: Levels, bounds: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """Estimand (c) from per-seed estimates points (S, ...) and their shared-draw replicates (S, B, ...).
    Var(mean) = s^2 / S + C, Student t with S - 1 df (module docstring).
    Also returns the variance components (power.py reads them): s2 (between seeds), shared (C, the prompts'
    common part) and own (each seed's own sampling variance, the replicates' mean variance minus C)."""
    n = points.shape[0]
    mean = points.mean(axis=0)
    s2 = points.var(axis=0, ddof=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # drift times: a replicate where no seed's curve moves
        own_total = np.nanvar(reps, axis=1, ddof=1).mean(axis=0)  # mean over seeds of each seed's variance
        var_of_mean = np.nanvar(np.nanmean(reps, axis=0), axis=0, ddof=1)
    shared = (var_of_mean - own_total / n) * n / (n - 1)
    between = s2 / n
    variance = between + np.maximum(shared, 0)
    se = np.sqrt(variance)
    df = np.full(np.shape(mean), n - 1.0)  # not Welch-Satterthwaite, which is liberal at 3 seeds (module docstring)
    alpha = 1 - levels.confidence
    t_ci, t_tost = stats.t.ppf(1 - alpha / 2, df), stats.t.ppf(1 - alpha, df)
    lower, upper = bounds[..., 0], bounds[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(se > 0, 2 * stats.t.sf(np.abs(mean) / se, df), np.where(mean == 0, 1.0, 0.0))
    return {"estimate": mean, "lo": np.clip(mean - t_ci * se, lower, upper),
            "hi": np.clip(mean + t_ci * se, lower, upper), "tost_lo": np.clip(mean - t_tost * se, lower, upper),
            "tost_hi": np.clip(mean + t_tost * se, lower, upper), "p": p, "se": se, "df": df,
            "s2": s2, "shared": shared, "own": own_total - shared}


_SUMMARY = ("lo", "hi", "tost_lo", "tost_hi", "p")
_POPULATION = (*_SUMMARY, "se", "df", "s2", "shared", "own")
DRIFT_CI_COLUMNS = KEYS + ["stance"] + [f"{m}_{k}" for m in METRICS for k in _SUMMARY]
SEEDS_CI_COLUMNS = (KEYS + ["n_seeds", "seeds", "runs", "stance"]
                    + [c for m in METRICS for c in [m] + [f"{m}_{k}_fixed" for k in _SUMMARY]
                       + [f"{m}_{k}_population" for k in _POPULATION]] + ["null_reason"])
CONTRAST_CI_COLUMNS = (["control", "reference", "mode", "level", "runs", "n_seeds", "stance", "estimate"]
                       + list(_POPULATION) + ["null_reason"])


@dataclass
class Intervals:
    """The store's interval tables (posttrain/store/build.py writes each as a table of the same name)."""
    stance_ci: pd.DataFrame     # (a) per run, topic, mode, step and read-out
    drift_ci: pd.DataFrame      # (a) per run, topic, mode and read-out: magnitude and drift times
    seeds_ci: pd.DataFrame      # (b) and (c) per replicated run, topic, mode and read-out
    contrast_ci: pd.DataFrame   # paired contrasts between runs' drifts: per seed pair, (b) and (c)
    # (run, '(all)', mode) -> (point, replicates (B, read-out)) of each run's drift over topics (not a table:
    # benchmarks/coverage.py builds other estimators from them to compare)
    overall_replicates: dict = field(default_factory=dict)


class _Run:
    """The replicates one run needs after its topics are done: the mean over topics, and its drift."""

    def __init__(self):
        self.steps, self.point, self.reps, self.n = None, None, None, 0
        self.aligned = True

    def add(self, steps, point, reps):
        if self.steps is None:
            self.steps, self.point, self.reps, self.n = steps, point.copy(), reps.copy(), 1
        elif self.aligned and np.array_equal(self.steps, steps):
            self.point += point
            self.reps += reps
            self.n += 1
        else:  # topics probed at different checkpoints: no mean over topics
            self.aligned = False


def _metrics(steps, point, reps, fraction):
    """Drift metrics of the point curve (read-out,) and of the replicates (B, read-out), per metric."""
    return (drift_metrics(steps, point.T, fraction),
            drift_metrics(steps, np.moveaxis(reps, -1, 1), fraction))


def _rows(key: dict, summary: dict[str, np.ndarray]) -> list[dict]:
    return [{**key, "stance": r, **{k: float(v[i]) for k, v in summary.items()}} for i, r in enumerate(READOUTS)]


def intervals(samples: pd.DataFrame, resamples: int, confidence: float, fraction: float, seed: int = 0,
              replicates: pd.DataFrame | None = None, contrasts: list[tuple[str, str]] = ()) -> Intervals:
    """Every interval table of the value probe from its samples (columns COLUMNS).
    `replicates` (run, replicate_of, seed) groups runs that replicate one run over training seeds (default: each
    run its own group); `contrasts` lists (x, y) pairs of such groups whose drift difference x - y is wanted
    (paired: one shared draw, and seeds paired in seed order)."""
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"bootstrap: resamples must be >= 1 and confidence in (0, 1), got {resamples}, {confidence}")
    means = prompt_means(samples)
    runs = sorted(means["run"].unique()) if len(means) else []
    group_of = {r: (r, None) for r in runs}
    if replicates is not None:
        group_of |= {r.run: (r.replicate_of if pd.notna(r.replicate_of) else r.run, r.seed)
                     for r in replicates.itertuples() if r.run in group_of}
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(group_of[run][0], []).append(run)
    for members in groups.values():  # seeds in seed order (pairs contrasts)
        members.sort(key=lambda r: (group_of[r][1] is None, group_of[r][1] if group_of[r][1] is not None else 0, r))
    universes = {k: np.array(sorted(g["prompt_id"].unique()), dtype=object)
                 for k, g in means.groupby(["topic", "mode"], sort=True)}
    draws = {k: prompt_draws(len(u), resamples, _stream(seed, k)) for k, u in universes.items()}
    # the percentile levels of each (topic, mode), expanded by its prompts' degrees of freedom (Levels); the mean
    # over topics has the topics' together
    level_of = {k: Levels(confidence, max(len(u) - 1, 1)) for k, u in universes.items()}
    for mode in {m for _, m in universes}:
        level_of[(OVERALL, mode)] = Levels(confidence, sum(max(len(u) - 1, 1) for (_, m), u in universes.items()
                                                           if m == mode))

    stance_rows, drift_rows, seed_rows = [], [], []
    topic_means: dict[tuple[str, str], _Run] = {}
    magnitudes: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}  # (run, topic, mode) -> point, reps

    def one_run(run, topic, mode, steps, point, reps):
        """(a) rows of one run's curve and drift; returns the metrics for the seeds' levels."""
        levels = level_of[(topic, mode)]
        lo, hi = _percentiles(reps, levels.q[:2])
        for i, step in enumerate(steps):
            stance_rows.extend({"run": run, "topic": topic, "mode": mode, "step": int(step), "stance": r,
                                "lo": float(lo[i, j]), "hi": float(hi[i, j])} for j, r in enumerate(READOUTS))
        point_m, rep_m = _metrics(steps, point, reps, fraction)
        row = {m: percentile_summary(point_m[m], rep_m[m], levels) for m in METRICS}
        for j, r in enumerate(READOUTS):
            drift_rows.append({"run": run, "topic": topic, "mode": mode, "stance": r,
                               **{f"{m}_{k}": float(v[j]) for m in METRICS for k, v in row[m].items()
                                  if k != "estimate"}})
        if topic == OVERALL:
            magnitudes[(run, topic, mode)] = (point_m["magnitude"], rep_m["magnitude"])
        return point_m, rep_m

    def over_seeds(group, topic, mode, members, per_run):
        """(b) and (c) rows of a replicated run: per_run holds each seed's (steps, point metrics, rep metrics)."""
        levels = level_of[(topic, mode)]
        seeds = [group_of[r][1] for r in members]
        key = {"run": group, "topic": topic, "mode": mode, "n_seeds": len(members),
               "seeds": [None if s is None else int(s) for s in seeds], "runs": list(members)}
        if len({tuple(p[0]) for p in per_run}) > 1:
            reason = "its seeds were probed at different checkpoints"
            seed_rows.extend({**key, "stance": r, "null_reason": reason} for r in READOUTS)
            return
        rows = [{**key, "stance": r} for r in READOUTS]
        for m in METRICS:
            points = np.stack([p[1][m] for p in per_run])  # (S, read-out)
            reps = np.stack([p[2][m] for p in per_run])  # (S, B, read-out)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a replicate where no seed's curve moves
                fixed = percentile_summary(points.mean(axis=0), np.nanmean(reps, axis=0), levels)
            population = (seed_population(points, reps, levels, RANGE[m]) if len(members) >= 3 else None)
            for j, row in enumerate(rows):
                row[m] = float(fixed["estimate"][j])
                row |= {f"{m}_{k}_fixed": float(v[j]) for k, v in fixed.items() if k != "estimate"}
                if population is not None and np.isfinite(points[:, j]).all():
                    row |= {f"{m}_{k}_population": float(v[j]) for k, v in population.items() if k != "estimate"}
                elif m == "magnitude":
                    row["null_reason"] = ("fewer than 3 seeds: no population of seeds to estimate"
                                          if population is None else "a seed's curve never moves")
        seed_rows.extend(rows)

    by_group: dict[tuple, list] = {}
    keys = means[KEYS].astype(object).to_numpy()
    step_of = means["step"].to_numpy()
    values = means[[f"p_{r}" for r in READOUTS]].to_numpy(dtype=float)
    prompt_of = np.empty(len(means), dtype=np.int64)
    for (topic, mode), index in means.groupby(["topic", "mode"], sort=False).indices.items():
        prompt_of[index] = np.searchsorted(universes[(topic, mode)], means["prompt_id"].to_numpy(dtype=object)[index])
    bounds = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(means)]) if len(means) else []:
        run, topic, mode = keys[lo]
        steps, point, reps = replicate_curves(step_of[lo:hi], prompt_of[lo:hi], values[lo:hi],
                                              len(universes[(topic, mode)]), draws[(topic, mode)])
        topic_means.setdefault((run, mode), _Run()).add(steps, point, reps)
        point_m, rep_m = one_run(run, topic, mode, steps, point, reps)
        by_group.setdefault((group_of[run][0], topic, mode), []).append((run, (steps, point_m, rep_m)))
    for (run, mode), acc in sorted(topic_means.items()):
        if acc.aligned:
            point_m, rep_m = one_run(run, OVERALL, mode, acc.steps, acc.point / acc.n, acc.reps / acc.n)
            by_group.setdefault((group_of[run][0], OVERALL, mode), []).append((run, (acc.steps, point_m, rep_m)))
    for (group, topic, mode), members in sorted(by_group.items()):
        members.sort(key=lambda m: groups[group].index(m[0]))
        over_seeds(group, topic, mode, [m[0] for m in members], [m[1] for m in members])

    contrast_rows = []
    for x, y in contrasts:
        contrast_rows += _contrast(x, y, groups, group_of, magnitudes, level_of)
    stance_ci = pd.DataFrame(stance_rows, columns=["run", "topic", "mode", "step", "stance", "lo", "hi"])
    drift_ci = pd.DataFrame(drift_rows, columns=DRIFT_CI_COLUMNS)
    drift_ci.insert(4, "n_resamples", resamples)
    drift_ci.insert(5, "confidence", confidence)
    return Intervals(stance_ci, drift_ci, pd.DataFrame(seed_rows, columns=SEEDS_CI_COLUMNS),
                     pd.DataFrame(contrast_rows, columns=CONTRAST_CI_COLUMNS), magnitudes)


def _contrast(x: str, y: str, groups, group_of, magnitudes, level_of: dict) -> list[dict]:
    """Rows of the paired contrast x - y of two replicated runs' drift (mean over topics), per mode and
    read-out: per seed pair (x's k-th seed against y's k-th), (b) and (c). One shared draw makes every level
    paired over prompts; seeds are independent training runs, paired in seed order only to form differences."""
    rows = []
    for mode in sorted({k[2] for k in magnitudes}):
        xs = [r for r in groups.get(x, []) if (r, OVERALL, mode) in magnitudes]
        ys = [r for r in groups.get(y, []) if (r, OVERALL, mode) in magnitudes]
        key, levels = {"control": x, "reference": y, "mode": mode}, level_of[(OVERALL, mode)]
        if not xs or not ys or len(xs) != len(ys):
            rows += [{**key, "stance": r, "level": "seeds_fixed", "n_seeds": min(len(xs), len(ys)),
                      "null_reason": f"{x} has {len(xs)} seed(s) and {y} {len(ys)}: no pairs"} for r in READOUTS]
            continue
        points = np.stack([magnitudes[(a, OVERALL, mode)][0] - magnitudes[(b, OVERALL, mode)][0]
                           for a, b in zip(xs, ys)])
        reps = np.stack([magnitudes[(a, OVERALL, mode)][1] - magnitudes[(b, OVERALL, mode)][1]
                         for a, b in zip(xs, ys)])
        bounds = np.stack([RANGE["magnitude"][:, 0] - RANGE["magnitude"][:, 1],
                           RANGE["magnitude"][:, 1] - RANGE["magnitude"][:, 0]], axis=-1)
        for k, (a, b) in enumerate(zip(xs, ys)):
            rows += _rows({**key, "level": f"seed {group_of[a][1]} - seed {group_of[b][1]}", "runs": [a, b],
                           "n_seeds": 1}, percentile_summary(points[k], reps[k], levels))
        rows += _rows({**key, "level": "seeds_fixed", "n_seeds": len(xs)},
                      percentile_summary(points.mean(axis=0), reps.mean(axis=0), levels))
        if len(xs) >= 3:
            rows += _rows({**key, "level": "seed_population", "n_seeds": len(xs)},
                          seed_population(points, reps, levels, bounds))
        else:
            rows += [{**key, "stance": r, "level": "seed_population", "n_seeds": len(xs),
                      "null_reason": "fewer than 3 seeds: no population of seeds to estimate"} for r in READOUTS]
    return rows
