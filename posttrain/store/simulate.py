"""Synthetic value-probe studies with a known truth, for checking that the store's intervals cover
(tests/test_coverage.py, benchmarks/coverage.py; docs/methods.md: Coverage).

A study has two replicated runs, a control that moves the balance (p_support - p_oppose) by `drift` on average
over topics and a reference that does not, each over `n_seeds` training seeds, probed at two checkpoints on
`n_topics` x `n_prompts` prompts with `n_samples` answers each (the default study's sizes by default). Every
source of variance the estimators must carry is there, each drawn from a bounded (uniform) law so that no
probability is ever clipped and the truth is exact:
- topic: each topic's drift differs from the run's mean drift by a fixed offset (the stratification);
- prompt: each prompt has its own level, and its own drift effect (mean 0 over the prompt population), partly
  shared by the two runs (a prompt that moves in one run tends to move in the other: what pairing cancels);
- seed: each training seed of a run shifts the run's drift (mean 0 over the seed population);
- seed x prompt: each seed moves each prompt a little differently;
- sample: each answer's noise, with a part shared by the same sample id at both checkpoints (one sampling
  seed per prompt and sample, as the probe draws them).
The truths: estimand (a) of a seed = the run's drift + that seed's shift; (b) = the run's drift + the mean
shift of its seeds; (c) = the run's drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class Design:
    n_seeds: int = 3
    n_topics: int = 11
    n_prompts: int = 10       # per topic: the default's generation read-out
    n_samples: int = 2
    drift: float = 0.2        # the control's mean balance drift over topics (the reference's is 0)
    topic_spread: float = 0.1    # half-range of the topics' offsets from the mean drift
    prompt_drift: float = 0.12   # half-range of a prompt's own drift effect
    prompt_shared: float = 0.5   # the share of a prompt's drift effect common to both runs
    seed_drift: float = 0.06     # half-range of a training seed's shift of the drift
    seed_prompt: float = 0.04    # half-range of the seed x prompt interaction
    sample_noise: float = 0.12   # half-range of an answer's noise (half of it shared across checkpoints)


def _uniform(rng, half, size):
    return rng.uniform(-half, half, size=size)


def study(design: Design, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(samples with the store's columns, replicates (run, replicate_of, seed), truths). truths[(estimand, run)]
    for run 'control' and 'reference' and estimand 'fixed' / 'population'; truths[('run', <run>-seed<k>)] per
    seed; and the contrasts' under ('contrast_fixed', 'control'), ('contrast_population', 'control') and
    ('contrast_run', k)."""
    d = design
    topics = [f"t{i:02d}" for i in range(d.n_topics)]
    offsets = np.linspace(-d.topic_spread, d.topic_spread, d.n_topics)  # fixed: the truth is their mean
    n_p = d.n_topics * d.n_prompts
    level_support, level_oppose = rng.uniform(0.4, 0.45, n_p), rng.uniform(0.4, 0.45, n_p)
    common = _uniform(rng, d.prompt_drift, n_p)
    rows, replicates, truths = [], [], {}
    shifts = {}
    for run, mean_drift in (("control", d.drift), ("reference", 0.0)):
        own = _uniform(rng, d.prompt_drift, n_p)
        prompt_effect = np.sqrt(d.prompt_shared) * common + np.sqrt(1 - d.prompt_shared) * own
        shifts[run] = _uniform(rng, d.seed_drift, d.n_seeds)
        truths[("population", run)] = mean_drift
        truths[("fixed", run)] = mean_drift + shifts[run].mean()
        for s in range(d.n_seeds):
            name = f"{run}-seed{s}"
            replicates.append({"run": name, "replicate_of": run, "seed": s})
            truths[("run", name)] = mean_drift + shifts[run][s]
            move = (mean_drift + np.repeat(offsets, d.n_prompts) + prompt_effect
                    + shifts[run][s] + _uniform(rng, d.seed_prompt, n_p))  # balance change per prompt
            shared_noise = _uniform(rng, d.sample_noise / 2, (n_p, d.n_samples))
            for step, frac in ((0, 0.0), (8, 1.0)):
                noise = shared_noise + _uniform(rng, d.sample_noise / 2, (n_p, d.n_samples))
                support = level_support[:, None] + frac * move[:, None] / 2 + noise
                oppose = level_oppose[:, None] - frac * move[:, None] / 2 - noise
                for i in range(n_p):
                    for k in range(d.n_samples):
                        rows.append((name, topics[i // d.n_prompts], step, f"q{i:04d}", k, support[i, k],
                                     1 - support[i, k] - oppose[i, k], oppose[i, k]))
    for s in range(d.n_seeds):
        truths[("contrast_run", s)] = truths[("run", f"control-seed{s}")] - truths[("run", f"reference-seed{s}")]
    truths[("contrast_fixed", "control")] = truths[("fixed", "control")] - truths[("fixed", "reference")]
    truths[("contrast_population", "control")] = d.drift
    samples = pd.DataFrame(rows, columns=["run", "topic", "step", "prompt_id", "sample_id", "p_support",
                                          "p_neutral", "p_oppose"])
    samples["mode"] = "generation"
    return samples, pd.DataFrame(replicates), truths


def _hits(args: tuple) -> dict[str, list]:
    """Which intervals of one simulated study cover their truth (balance drift, mean over topics)."""
    from posttrain.store.bootstrap import intervals

    design, resamples, seed, index = args
    samples, replicates, truth = study(design, np.random.default_rng([seed, index]))
    found = intervals(samples, resamples, 0.95, 0.95, index, replicates, [("control", "reference")])
    hits: dict[str, list] = {}

    def add(name, lo, hi, value):
        hits.setdefault(name, []).append(bool(lo <= value <= hi))

    drift = found.drift_ci.query("topic == '(all)' and stance == 'balance'")
    for r in drift.itertuples():
        add("(a) one run", r.magnitude_lo, r.magnitude_hi, truth[("run", r.run)])
    topics = found.drift_ci.query("topic != '(all)' and stance == 'balance' and run.str.startswith('reference')")
    for r in topics.itertuples():  # the reference's topics all drift by their fixed offset
        offset = np.linspace(-design.topic_spread, design.topic_spread, design.n_topics)[int(r.topic[1:])]
        add("(a) one run, one topic", r.magnitude_lo, r.magnitude_hi,
            truth[("run", r.run)] + offset)
    seeds = found.seeds_ci.query("topic == '(all)' and stance == 'balance'")
    for r in seeds.itertuples():
        add("(b) mean over these seeds", r.magnitude_lo_fixed, r.magnitude_hi_fixed, truth[("fixed", r.run)])
        add("(c) mean over a population of seeds", r.magnitude_lo_population, r.magnitude_hi_population,
            truth[("population", r.run)])
        add("wrong: (b)'s interval for (c)", r.magnitude_lo_fixed, r.magnitude_hi_fixed, truth[("population", r.run)])
        # two estimators of (c) that were tried and not chosen (docs/methods.md: Coverage)
        between, shared = r.magnitude_s2_population / design.n_seeds, max(r.magnitude_shared_population, 0)
        df = (between + shared) ** 2 / (between ** 2 / (design.n_seeds - 1))
        half = stats.t.ppf(0.975, df) * r.magnitude_se_population
        add("not chosen: (c) with Welch-Satterthwaite df", r.magnitude - half, r.magnitude + half,
            truth[("population", r.run)])
        reps = np.stack([found.overall_replicates[(run, "(all)", "generation")][1][:, -1] for run in r.runs])
        pick = np.random.default_rng(index).integers(0, len(reps), size=(reps.shape[1], len(reps)))
        crossed = reps[pick, np.arange(reps.shape[1])[:, None]].mean(axis=1)  # seeds resampled too
        add("not chosen: (c) by a crossed seed x prompt bootstrap", *np.percentile(crossed, [2.5, 97.5]),
            truth[("population", r.run)])
    contrast = found.contrast_ci.query("stance == 'balance'")
    for r in contrast.itertuples():
        if r.level == "seeds_fixed":
            add("contrast (b)", r.lo, r.hi, truth[("contrast_fixed", "control")])
        elif r.level == "seed_population":
            add("contrast (c)", r.lo, r.hi, truth[("contrast_population", "control")])
        else:
            add("contrast (a), per seed pair", r.lo, r.hi, truth[("contrast_run", int(r.level.split()[1]))])
    return hits


def coverage(design: Design, n_studies: int, resamples: int = 400, seed: int = 0, workers: int = 1
             ) -> dict[str, np.ndarray]:
    """Per interval kind, whether each of n_studies simulated studies' 95 % interval covered the truth."""
    jobs = [(design, resamples, seed, i) for i in range(n_studies)]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_hits, jobs, chunksize=max(1, n_studies // (4 * workers))))
    else:
        results = [_hits(job) for job in jobs]
    out: dict[str, list] = {}
    for r in results:
        for k, v in r.items():
            out.setdefault(k, []).extend(v)
    return {k: np.array(v) for k, v in out.items()}
