"""The controls' tests, fixed in the config before the run (section `controls`; docs/methods.md: Controls as
tests), evaluated on the study database into table `control_tests`.

Every test reads the balance drift (p_support - p_oppose) averaged over topics, at three levels: each seed on its
own (estimand (a); a positive control's k-th seed against the negative control's k-th), the mean over the study's
seeds (b), and the mean over a population of seeds (c, with >= 3 seeds).
- superiority (a positive control): the paired contrast drift(control) - drift(negative control), or its drift
  alone where it has no negative control beside it.
    holds         its interval excludes 0 on the side of `direction`
    fails         the one-sided (1 - alpha) bound in `direction` lies below the margin: the effect in the
                  stated direction is shown smaller than the margin (a probe that misses its control)
    inconclusive  otherwise: the interval includes 0 and reaches past the margin (too little power)
- equivalence (a negative control): its own drift, TOST at level alpha = 1 - confidence.
    holds         the (1 - 2 alpha) interval lies inside (-margin, margin)
    fails         that interval lies wholly outside it on one side (shown to move more than the margin)
    inconclusive  otherwise: lack of power is never "holds"
"""

from __future__ import annotations

import math

import pandas as pd

from posttrain.store.bootstrap import ESTIMANDS

COLUMNS = ["control", "test", "direction", "against", "margin", "mode", "level", "n_seeds", "estimand", "estimate",
           "lo", "hi", "tost_lo", "tost_hi", "p_value", "verdict", "reason"]
LEVEL_ESTIMAND = {level: ESTIMANDS[level] for level in ("seeds_fixed", "seed_population")}
PER_SEED = ESTIMANDS["run"]


def superiority(direction: str, lo: float, hi: float, tost_lo: float, tost_hi: float, margin: float
                ) -> tuple[str, str]:
    up = direction == "up"
    if up and lo > 0 or not up and hi < 0:
        return "holds", f"the interval excludes 0, {'above' if up else 'below'} it"
    if up and tost_hi < margin or not up and tost_lo > -margin:
        return "fails", f"shown {'below' if up else 'above'} {'+' if up else '-'}{margin:g} (one-sided bound)"
    return "inconclusive", f"the interval includes 0 and reaches past {'+' if up else '-'}{margin:g}: too little power"


def equivalence(lo: float, hi: float, tost_lo: float, tost_hi: float, margin: float) -> tuple[str, str]:
    if -margin < tost_lo and tost_hi < margin:
        return "holds", f"TOST: the (1 - 2α) interval lies inside ±{margin:g}"
    if tost_lo > margin or tost_hi < -margin:
        return "fails", f"TOST: the interval lies outside ±{margin:g}: it moved more than the margin"
    return "inconclusive", f"TOST: the interval reaches past ±{margin:g}: too little power to show equivalence"


def _verdict(test: dict, row: dict) -> tuple[str | None, str]:
    values = [row.get(k) for k in ("lo", "hi", "tost_lo", "tost_hi")]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None, row.get("reason") or "no interval"
    if test["test"] == "superiority":
        return superiority(test["direction"], *values, test["margin"])
    return equivalence(*values, test["margin"])


def _own_drift(con, run: str, mode: str) -> list[dict]:
    """The run's own balance drift (mean over topics) per seed, (b) and (c)."""
    rows = [{"level": f"seed {'–' if pd.isna(r.seed) else int(r.seed)}", "n_seeds": 1, "estimand": PER_SEED,
             "estimate": r.magnitude, "lo": r.magnitude_lo, "hi": r.magnitude_hi, "tost_lo": r.magnitude_tost_lo,
             "tost_hi": r.magnitude_tost_hi, "p_value": r.p_value, "reason": r.withheld_reason}
            for r in con.execute("""
                SELECT r.seed, d.* FROM drift_overall d JOIN runs r USING (run)
                WHERE coalesce(r.replicate_of, r.run) = ? AND d.mode = ? AND d.stance = 'balance'
                ORDER BY r.seed, d.run""", [run, mode]).df().itertuples()]
    seeds = con.execute("SELECT * FROM drift_over_seeds WHERE run = ? AND topic = '(all)' AND mode = ? AND "
                        "stance = 'balance'", [run, mode]).df()
    for s in seeds.itertuples():
        withheld = pd.isna(s.magnitude)
        rows.append({"level": "seeds_fixed", "n_seeds": s.n_seeds, "estimand": LEVEL_ESTIMAND["seeds_fixed"],
                     "estimate": s.magnitude, "lo": s.magnitude_lo_fixed, "hi": s.magnitude_hi_fixed,
                     "tost_lo": s.magnitude_tost_lo_fixed, "tost_hi": s.magnitude_tost_hi_fixed,
                     "reason": "withheld (view drift)" if withheld else None})
        rows.append({"level": "seed_population", "n_seeds": s.n_seeds, "estimand": LEVEL_ESTIMAND["seed_population"],
                     "estimate": s.magnitude, "lo": s.magnitude_lo_population, "hi": s.magnitude_hi_population,
                     "tost_lo": s.magnitude_tost_lo_population, "tost_hi": s.magnitude_tost_hi_population,
                     "p_value": s.p_value if s.estimand.endswith("(c)") else None,
                     "reason": "withheld (view drift)" if withheld else s.population_null_reason})
    return rows


def _contrast(con, run: str, against: str, mode: str) -> list[dict]:
    withheld = con.execute("SELECT count(*) FROM drift_overall d JOIN runs r USING (run) WHERE "
                           "coalesce(r.replicate_of, r.run) IN (?, ?) AND d.mode = ? AND d.withheld_reason IS NOT NULL",
                           [run, against, mode]).fetchone()[0]
    rows = []
    for c in con.execute("SELECT * FROM contrast_ci WHERE control = ? AND reference = ? AND mode = ? AND "
                         "stance = 'balance'", [run, against, mode]).df().itertuples():
        rows.append({"level": c.level, "n_seeds": c.n_seeds,
                     "estimand": LEVEL_ESTIMAND.get(c.level, PER_SEED) + f", paired contrast with {against}",
                     "estimate": c.estimate, "lo": c.lo, "hi": c.hi, "tost_lo": c.tost_lo, "tost_hi": c.tost_hi,
                     "p_value": c.p, "reason": "withheld: forced choice below the label-mass floor" if withheld
                     else c.null_reason})
    return rows


def evaluate(con, tests: list[dict]) -> pd.DataFrame:
    """One row per control, probe mode and level (table control_tests)."""
    modes = [m for (m,) in con.execute("SELECT DISTINCT mode FROM stance_samples ORDER BY mode").fetchall()]
    runs = {r for (r,) in con.execute("SELECT DISTINCT coalesce(replicate_of, run) FROM runs").fetchall()}
    out = []
    for test in tests:
        if test["run"] not in runs or (test.get("against") and test["against"] not in runs):
            continue  # a control whose runs are not in this database (a partial study)
        for mode in modes:
            rows = (_contrast(con, test["run"], test["against"], mode) if test.get("against")
                    else _own_drift(con, test["run"], mode))
            for row in rows:
                verdict, reason = _verdict(test, row)
                out.append({**row, "control": test["run"], "test": test["test"], "direction": test.get("direction"),
                            "against": test.get("against"), "margin": test["margin"], "mode": mode,
                            "verdict": verdict, "reason": reason})
    return pd.DataFrame(out, columns=COLUMNS).astype({"direction": "string", "against": "string", "verdict": "string",
                                                      "reason": "string", "p_value": "float64"})
