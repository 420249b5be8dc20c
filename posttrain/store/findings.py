"""What a study found, as Markdown tables read from its database (`posttrain findings`): the README's findings are
this command's output, never numbers copied by hand.

1. Drift of the primary read-out (generation + judge where the study has it, else forced choice), mean over
   topics, per run: the balance (p_support - p_oppose) and each stance, with the interval of `drift_over_seeds`
   (estimand (c), the mean over a population of seeds, where a run has >= 3 seeds; else (b), the mean over its
   seeds), stars where the Benjamini-Hochberg q-value is below alpha, and the drift time where it is reported.
2. The controls' tests fixed in the config (table control_tests; docs/methods.md: Controls as tests): the verdict
   (holds, fails or inconclusive) over seeds and in each seed on its own.
3. Power: from the study's own variance components, the smallest effect each control's test detects with the
   configured power, and the seeds or prompts an effect needs (posttrain/store/power.py).
4. The judge of the generation probe on each validation split: macro-F1, Brier score, expected calibration error.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from posttrain.store import power as power_analysis


def _interval(value, lo, hi) -> str:
    if pd.isna(value):
        return "–"
    if pd.isna(lo) or pd.isna(hi):
        return f"{value:+.3f}"
    return f"{value:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def primary_mode(con) -> str:
    modes = {m for (m,) in con.execute("SELECT DISTINCT mode FROM stance_samples").fetchall()}
    return "generation" if "generation" in modes else "forced_choice"


def _alpha(con) -> float:
    return 1 - con.execute("SELECT any_value(confidence) FROM drift_ci").fetchone()[0]


def _short(estimand: str) -> str:
    return estimand[estimand.rindex("("):] if isinstance(estimand, str) and "(" in estimand else "–"


def drift_rows(con, mode: str) -> tuple[list[str], list[list[str]]]:
    """Header and one row per run: seeds, the estimand of its intervals, each read-out's drift (mean over topics
    and seeds) with its interval and a star where q < alpha, and the balance's drift time."""
    frame = con.execute(
        "SELECT run, stance, n_seeds, estimand, magnitude, magnitude_lo, magnitude_hi, q_value, drift_time, "
        "drift_time_lo, drift_time_hi, drift_time_null_reason FROM drift_over_seeds "
        "WHERE topic = '(all)' AND mode = ? ORDER BY run", [mode]).df()
    alpha = _alpha(con)
    rows = []
    for run, g in frame.groupby("run", sort=True):
        by = g.set_index("stance")
        b = by.loc["balance"]
        cells = [run, str(int(b.n_seeds)), _short(b.estimand)]
        for stance in ("balance", "support", "neutral", "oppose"):
            r = by.loc[stance]
            cells.append("withheld (label mass)" if pd.isna(r.magnitude) else
                         _interval(r.magnitude, r.magnitude_lo, r.magnitude_hi)
                         + (" *" if pd.notna(r.q_value) and r.q_value < alpha else ""))
        if pd.notna(b.drift_time):
            cells.append(_interval(b.drift_time, b.drift_time_lo, b.drift_time_hi).replace("+", ""))
        else:
            reason = b.drift_time_null_reason if isinstance(b.drift_time_null_reason, str) else ""
            cells.append("– (2 checkpoints)" if reason.startswith("two checkpoints") else "–")
        rows.append(cells)
    return ["run", "seeds", "estimand", "balance", "p_support", "p_neutral", "p_oppose", "drift time (balance)"], rows


def drift_title(con, mode: str) -> str:
    confidence = con.execute("SELECT any_value(confidence) FROM drift_ci").fetchone()[0]
    return (f"Drift over each run, mean over topics, read by {mode.replace('_', ' ')}"
            f"{' + judge' if mode == 'generation' else ''} (mean over seeds; [{confidence:.0%} interval] of estimand "
            "(c), the mean over a population of seeds, where a run has at least 3 seeds, else (b), the mean over "
            f"its own seeds; * Benjamini-Hochberg q < {1 - confidence:.2f} over the run's read-outs and modes; "
            "drift time only where the balance drift is significant and the run has more than 2 checkpoints):")


def drift_table(con, mode: str) -> str:
    return _table(*drift_rows(con, mode))


def _test_text(r) -> str:
    if r.test == "equivalence":
        return f"equivalence: drift within ±{r.margin:g} (TOST)"
    against = f"drift − {r.against}'s drift" if isinstance(r.against, str) else "drift"
    return f"superiority: {against} {'> 0' if r.direction == 'up' else '< 0'}"


def _verdict_cell(r) -> str:
    if pd.isna(r.verdict):
        return f"– ({r.reason})" if isinstance(r.reason, str) else "–"
    return r.verdict


def controls(con, mode: str) -> pd.DataFrame:
    """Table control_tests for one probe mode."""
    return con.execute("SELECT * FROM control_tests WHERE mode = ? ORDER BY control, level", [mode]).df()


def controls_rows(con, mode: str) -> tuple[list[str], list[list[str]]]:
    """Header and one row per control: the test, the verdict over seeds ((c), else (b)) and (b) beside it, and
    each seed's verdict."""
    frame = controls(con, mode)
    rows = []
    for control, g in frame.groupby("control", sort=True):
        first = g.iloc[0]
        by = g.set_index("level")
        population = by.loc["seed_population"] if "seed_population" in by.index else None
        fixed = by.loc["seeds_fixed"] if "seeds_fixed" in by.index else None
        head = population if population is not None and pd.notna(population.verdict) else fixed
        per_seed = g[~g.level.isin(["seeds_fixed", "seed_population"])]
        seeds = "; ".join(f"{s.level}: {_interval(s.estimate, s.lo, s.hi)} {s.verdict if pd.notna(s.verdict) else '–'}"
                          for s in per_seed.itertuples())
        holding = f"{int((per_seed.verdict == 'holds').sum())}/{len(per_seed)}"
        rows.append([control, _test_text(first),
                     "–" if head is None else f"{_interval(head.estimate, head.lo, head.hi)} {_short(head.estimand)}",
                     "–" if head is None else _verdict_cell(head),
                     "–" if fixed is None else
                     f"{_interval(fixed.estimate, fixed.lo, fixed.hi)} {_verdict_cell(fixed)}",
                     seeds, holding])
    return (["control", "test (fixed in the config)", "over seeds", "verdict", "these seeds (b)", "each seed (a)",
             "holds in"], rows)


def controls_table(con, mode: str) -> str:
    header, rows = controls_rows(con, mode)
    verdict = header.index("verdict")
    return _table(header, [[f"**{c}**" if i == verdict and c in ("fails", "inconclusive") else c
                            for i, c in enumerate(r)] for r in rows])


def power_rows(con, mode: str) -> tuple[list[str], list[list[str]]] | None:
    """Header and one row per control with >= 3 seeds: the smallest effect its test detects (superiority) or the
    smallest margin it attains (equivalence) with the configured power, and the seeds and prompts an effect needs
    (the observed contrast for a positive control, the margin for a negative one); None without such controls."""
    power = con.execute("SELECT any_value(power) FROM controls").fetchone()[0] or 0.8
    alpha = _alpha(con)
    tests = con.execute("SELECT * FROM controls ORDER BY run").df()
    rows = []
    for t in tests.itertuples():
        if t.test == "superiority" and isinstance(t.against, str):
            c = con.execute("SELECT * FROM contrast_ci WHERE control = ? AND reference = ? AND mode = ? AND stance = "
                            "'balance' AND level = 'seed_population'", [t.run, t.against, mode]).df()
            if c.empty or pd.isna(c.s2.iloc[0]):
                continue
            c = c.iloc[0]
            s2, own, shared, n_seeds, effect = c.s2, c.own, c.shared, int(c.n_seeds), c.estimate
        else:
            c = con.execute("SELECT * FROM seeds_ci WHERE run = ? AND topic = '(all)' AND mode = ? AND stance = "
                            "'balance'", [t.run, mode]).df()
            if c.empty or pd.isna(c.magnitude_s2_population.iloc[0]):
                continue
            c = c.iloc[0]
            s2, own, shared, n_seeds = c.magnitude_s2_population, c.magnitude_own_population, \
                c.magnitude_shared_population, int(c.n_seeds)
            effect = t.margin if t.test == "equivalence" else c.magnitude
        n_prompts = con.execute("SELECT count(DISTINCT prompt_id) FROM stance_samples s JOIN runs r USING (run) "
                                "WHERE coalesce(r.replicate_of, r.run) = ? AND s.mode = ?", [t.run, mode]).fetchone()[0]
        comp = power_analysis.Components(s2, own, shared, n_seeds, n_prompts)
        margin = t.test == "equivalence"
        smallest = (power_analysis.attainable_margin if margin else power_analysis.detectable)(comp, alpha, power)
        seeds = power_analysis.seeds_needed(comp, effect, alpha, power, margin)
        prompts = power_analysis.prompts_needed(comp, effect, alpha, power, margin)
        rows.append([t.run, f"{n_seeds} × {n_prompts}",
                     f"margin ±{smallest:.3f}" if margin else f"{smallest:.3f}",
                     f"±{effect:g} (the margin)" if margin else f"{effect:+.3f} (observed)",
                     "more than 1000" if seeds is None else str(seeds),
                     "no number (the seeds' part alone is larger)" if prompts is None else str(prompts),
                     f"{comp.sigma2_seed ** 0.5:.3f} / {max(own, 0) ** 0.5:.3f} / {max(shared, 0) ** 0.5:.3f}"])
    header = ["control", "seeds × prompts", f"smallest detectable ({power:.0%} power)", "effect",
              "seeds it needs", "prompts it needs", "sd: seeds / own sampling / shared prompts"]
    return (header, rows) if rows else None


NO_POWER = "No control with at least 3 seeds: no variance components to size it by."


def power_table(con, mode: str) -> str:
    found = power_rows(con, mode)
    return NO_POWER if found is None else _table(*found)


NO_JUDGE = "No judge validation in this study."


def judge_rows(con) -> tuple[list[str], list[list[str]]] | None:
    """Header and one row per judge and validation split; None where the study validated no judge."""
    tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "judge_eval" not in tables:
        return None
    judges = [j for (j,) in con.execute(
        "SELECT DISTINCT judge FROM stance_samples WHERE mode = 'generation' ORDER BY judge").fetchall()]
    frame = con.execute("SELECT judge, split, metric, value FROM judge_eval WHERE stance IS NULL AND metric IN "
                        "('n', 'macro_f1', 'brier', 'ece')").df()
    wide = frame.pivot_table(index=["judge", "split"], columns="metric", values="value").reset_index()
    rows = []
    for r in wide.sort_values(["judge", "split"]).itertuples():
        used = " (the probe's)" if r.judge in judges else ""
        rows.append([f"{r.judge}{used}", r.split, f"{int(r.n)}", f"{r.macro_f1:.3f}",
                     "–" if pd.isna(getattr(r, "brier", None)) else f"{r.brier:.3f}",
                     "–" if pd.isna(getattr(r, "ece", None)) else f"{r.ece:.3f}"])
    return ["judge", "split", "n", "macro-F1", "Brier", "ECE"], rows


def judge_table(con) -> str:
    found = judge_rows(con)
    return NO_JUDGE if found is None else _table(*found)


CONTROLS_TITLE = ("The controls' tests, fixed in the config before the run (balance drift, mean over topics; "
                  "verdicts holds / fails / inconclusive, docs/methods.md: Controls as tests):")
POWER_TITLE = ("Power, from this study's variance components (estimand (c); the seeds it needs at this study's "
               "prompts, the prompts at its seeds):")
JUDGE_TITLE = ("The stance judge on its validation splits (real: the labelled real answers of "
               "probes.judge_eval.real_answers; the default's, stance-real-v1, come from an earlier, longer "
               "default study, not from this one's checkpoints):")


def findings(db: str) -> str:
    with duckdb.connect(db, read_only=True) as con:
        mode = primary_mode(con)
        parts = [drift_title(con, mode), drift_table(con, mode), CONTROLS_TITLE, controls_table(con, mode),
                 POWER_TITLE, power_table(con, mode), JUDGE_TITLE, judge_table(con)]
    return "\n\n".join(parts) + "\n"
