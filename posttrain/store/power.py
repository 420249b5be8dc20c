"""Power of the controls' tests, from the study's own variance components (docs/methods.md: Power).

For a drift or a contrast averaged over S seeds and P prompts (all topics together), estimand (c) has
    Var(S, P) = (sigma2_seed + own x P0 / P) / S + shared x P0 / P
where, measured at the study's own S0 seeds and P0 prompts (posttrain/store/bootstrap.py, seed_population):
    own           a seed's own sampling variance (its prompts' and samples' noise, not shared with other seeds)
    shared        the part of the prompts' noise all seeds share (one prompt set for every seed)
    sigma2_seed   max(0, s2 - own): the spread of the quantity between training seeds, less what sampling adds
The smallest effect a two-sided test at alpha detects with the given power is
    (t(1 - alpha/2, S - 1) + t(power, S - 1)) x sqrt(Var(S, P)),
and the smallest margin a TOST at alpha attains with that power when the truth is 0 is
    (t(1 - alpha, S - 1) + t((1 + power) / 2, S - 1)) x sqrt(Var(S, P)),
with S - 1 degrees of freedom as in the intervals. The seeds (or prompts) an effect needs are the fewest that
bring its detectable effect to or below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

MAX_SEEDS = 1000
MAX_PROMPTS_FACTOR = 1000


@dataclass(frozen=True)
class Components:
    s2: float
    own: float
    shared: float
    n_seeds: int
    n_prompts: int

    @property
    def sigma2_seed(self) -> float:
        return max(0.0, self.s2 - self.own)

    def variance(self, n_seeds: float, n_prompts: float) -> float:
        scale = self.n_prompts / n_prompts
        return (self.sigma2_seed + max(self.own, 0.0) * scale) / n_seeds + max(self.shared, 0.0) * scale


def detectable(c: Components, alpha: float, power: float, n_seeds: int | None = None,
               n_prompts: int | None = None) -> float:
    """The smallest |effect| a two-sided test at alpha detects with `power` (estimand (c))."""
    s, p = n_seeds or c.n_seeds, n_prompts or c.n_prompts
    df = s - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * np.sqrt(c.variance(s, p)))


def attainable_margin(c: Components, alpha: float, power: float, n_seeds: int | None = None,
                      n_prompts: int | None = None) -> float:
    """The smallest equivalence margin a TOST at alpha shows with `power` when the truth is 0."""
    s, p = n_seeds or c.n_seeds, n_prompts or c.n_prompts
    df = s - 1
    return float((stats.t.ppf(1 - alpha, df) + stats.t.ppf((1 + power) / 2, df)) * np.sqrt(c.variance(s, p)))


def seeds_needed(c: Components, effect: float, alpha: float, power: float, margin: bool = False) -> int | None:
    """The fewest seeds (>= 2, at the study's prompts) that detect |effect| (or attain it as a margin); None
    beyond MAX_SEEDS."""
    fn = attainable_margin if margin else detectable
    for s in range(2, MAX_SEEDS + 1):
        if fn(c, alpha, power, n_seeds=s) <= abs(effect):
            return s
    return None


def prompts_needed(c: Components, effect: float, alpha: float, power: float, margin: bool = False) -> int | None:
    """The fewest prompts in all (at the study's seeds) that detect
    |effect| (or attain it as a margin); None where no number of prompts does (the seeds' part alone is larger)."""
    fn = attainable_margin if margin else detectable
    if fn(c, alpha, power, n_prompts=c.n_prompts * MAX_PROMPTS_FACTOR) > abs(effect):
        return None
    lo, hi = 1, c.n_prompts * MAX_PROMPTS_FACTOR
    while lo < hi:  # the detectable effect falls as prompts grow
        mid = (lo + hi) // 2
        if fn(c, alpha, power, n_prompts=mid) <= abs(effect):
            hi = mid
        else:
            lo = mid + 1
    return lo
