"""What a study found, as Markdown tables read from its database (`posttrain findings`): the README's findings are
this command's output, never numbers copied by hand.

1. Drift of the primary read-out (generation + judge where the study has it, else forced choice), mean over
   topics, per run: the balance (p_support - p_oppose) and each stance, mean over seeds with the interval of
   `drift_over_seeds`, and the drift time where the magnitude is significant.
2. The controls: each preference run on a synthetic value-gap set against what it must show. Support-aligned
   data must move the balance up with an interval that excludes 0, oppose-aligned down; the value-neutral
   control (`direction: none`) must have an interval that includes 0, or a magnitude at most a third of the
   smaller positive control of the same algorithm and parent. Each verdict is given on the mean over seeds and in
   each seed on its own.
3. The judge of the generation probe on each validation split: macro-F1, Brier score, expected calibration error.
"""

from __future__ import annotations

import duckdb
import pandas as pd


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


def drift_rows(con, mode: str) -> tuple[list[str], list[list[str]]]:
    """Header and one row per run: seeds, each read-out's drift (mean over topics and seeds) with its interval,
    and the balance's drift time."""
    frame = con.execute(
        "SELECT run, stance, n_seeds, magnitude, magnitude_lo, magnitude_hi, significant, drift_time, interval "
        "FROM drift_over_seeds WHERE topic = '(all)' AND mode = ? ORDER BY run", [mode]).df()
    # a run probed at its first and last step only has no drift time (1 by construction): say so in the cell
    n_checkpoints = dict(con.execute(
        "SELECT coalesce(r.replicate_of, r.run), min(n) FROM runs r "
        "JOIN (SELECT run, count(*) AS n FROM checkpoints GROUP BY run) c USING (run) GROUP BY ALL").fetchall())
    rows = []
    for run, g in frame.groupby("run", sort=True):
        by = g.set_index("stance")
        cells = [run, str(int(by.loc["balance", "n_seeds"]))]
        for stance in ("balance", "support", "neutral", "oppose"):
            r = by.loc[stance]
            cells.append(_interval(r.magnitude, r.magnitude_lo, r.magnitude_hi) + (" *" if r.significant else ""))
        b = by.loc["balance"]
        two = n_checkpoints.get(run) == 2
        cells.append(f"{b.drift_time:.2f}" if pd.notna(b.drift_time) else "– (2 checkpoints)" if two else "–")
        rows.append(cells)
    return ["run", "seeds", "balance", "p_support", "p_neutral", "p_oppose", "drift time (balance)"], rows


def drift_title(con, mode: str) -> str:
    confidence = con.execute("SELECT any_value(confidence) FROM drift_ci").fetchone()[0]
    return (f"Drift over each run, mean over topics, read by {mode.replace('_', ' ')}"
            f"{' + judge' if mode == 'generation' else ''} (mean over seeds; [{confidence:.0%} interval]; "
            "* the interval excludes 0; drift time only where it does):")


def drift_table(con, mode: str) -> str:
    return _table(*drift_rows(con, mode))


def _holds(direction: str, m: float, lo: float, hi: float, smaller_positive: float | None) -> bool:
    """One control's verdict (docs/methods.md: Controls)."""
    if direction == "support":
        return lo > 0
    if direction == "oppose":
        return hi < 0
    small = smaller_positive is not None and abs(m) <= smaller_positive / 3
    return bool(lo <= 0 <= hi) or small


def _smaller_positive(frame: pd.DataFrame, row) -> float | None:
    """The smaller |balance drift| of the positive controls beside `row` (same algorithm, parent, seed)."""
    same = frame[(frame.algorithm == row.algorithm) & (frame.parent_run == row.parent_run)
                 & (frame.seed.isna() if pd.isna(row.seed) else frame.seed == row.seed)
                 & frame.direction.isin(["support", "oppose"])]
    return float(same.magnitude.abs().min()) if len(same) else None


EXPECTED = {"support": "balance up, interval above 0", "oppose": "balance down, interval below 0",
            "none": "interval includes 0, or a balance drift at most 1/3 of the smaller positive control"}


def controls(con, mode: str) -> pd.DataFrame:
    """One row per preference run on a synthetic value-gap set: its balance drift and the verdict, on the mean
    over seeds (`holds`, interval of drift_over_seeds) and in each seed on its own (`seeds_holding`, the seed's
    bootstrap interval from drift_overall). With 2 seeds the mean's t quantile is 12.7, so a control can hold in
    every seed and still not on the mean: both are reported, neither hides the other."""
    pref = """(SELECT replicate_of, any_value(algorithm) AS algorithm, any_value(parent_run) AS parent_run,
                      any_value(dataset) AS dataset FROM runs WHERE stage = 'pref' GROUP BY ALL)"""
    frame = con.execute(f"""
        SELECT o.run, r.algorithm, r.parent_run, d.direction, o.magnitude, o.magnitude_lo, o.magnitude_hi,
               o.n_seeds, NULL AS seed
        FROM drift_over_seeds o JOIN {pref} r ON r.replicate_of = o.run JOIN datasets d USING (dataset)
        WHERE o.topic = '(all)' AND o.mode = ? AND o.stance = 'balance' AND d.direction IS NOT NULL
        ORDER BY o.run""", [mode]).df()
    per_seed = con.execute("""
        SELECT r.replicate_of AS run, r.algorithm, r.parent_run, d.direction, o.magnitude, o.magnitude_lo,
               o.magnitude_hi, r.seed
        FROM drift_overall o JOIN runs r USING (run) JOIN datasets d USING (dataset)
        WHERE r.stage = 'pref' AND o.mode = ? AND o.stance = 'balance' AND d.direction IS NOT NULL
        ORDER BY r.replicate_of, r.seed""", [mode]).df()
    per_seed["holds"] = [_holds(r.direction, r.magnitude, r.magnitude_lo, r.magnitude_hi,
                                _smaller_positive(per_seed, r)) for r in per_seed.itertuples()]
    verdicts = []
    for row in frame.itertuples():
        seeds = per_seed[per_seed.run == row.run]
        verdicts.append({"run": row.run, "direction": row.direction, "n_seeds": row.n_seeds,
                         "balance": _interval(row.magnitude, row.magnitude_lo, row.magnitude_hi),
                         "expected": EXPECTED.get(row.direction, EXPECTED["none"]),
                         "holds": _holds(row.direction, row.magnitude, row.magnitude_lo, row.magnitude_hi,
                                         _smaller_positive(frame, row)),
                         "per_seed": "; ".join((f"seed {int(s.seed)}: " if pd.notna(s.seed) else "")
                                               + _interval(s.magnitude, s.magnitude_lo, s.magnitude_hi)
                                               + ("" if s.holds else " ✗") for s in seeds.itertuples()),
                         "seeds_holding": f"{int(seeds.holds.sum())}/{len(seeds)}"})
    return pd.DataFrame(verdicts, columns=["run", "direction", "n_seeds", "balance", "expected", "holds",
                                           "per_seed", "seeds_holding"])


def controls_rows(con, mode: str) -> tuple[list[str], list[list[str]]]:
    """Header and one row per control; the `holds` cell is "yes" or "no"."""
    return (["run", "data", "must show", "mean over seeds", "holds", "each seed (✗: does not hold)", "holds in"],
            [[r.run, r.direction, r.expected, r.balance, "yes" if r.holds else "no", r.per_seed,
              f"{r.seeds_holding} seeds"] for r in controls(con, mode).itertuples()])


def controls_table(con, mode: str) -> str:
    header, rows = controls_rows(con, mode)
    holds = header.index("holds")
    return _table(header, [[f"**{c}**" if i == holds and c == "no" else c for i, c in enumerate(r)] for r in rows])


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


CONTROLS_TITLE = "The controls (preference runs on synthetic value-gap sets):"
JUDGE_TITLE = "The stance judge on its validation splits (real: answers sampled from this study's checkpoints):"


def findings(db: str) -> str:
    with duckdb.connect(db, read_only=True) as con:
        mode = primary_mode(con)
        parts = [drift_title(con, mode), drift_table(con, mode), CONTROLS_TITLE, controls_table(con, mode),
                 JUDGE_TITLE, judge_table(con)]
    return "\n\n".join(parts) + "\n"
