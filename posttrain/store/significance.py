"""Benjamini-Hochberg q-values for the drift tests (tables drift_q and seeds_q; docs/methods.md: Multiplicity).

A run's per-topic tests (its topics x read-outs x probe modes) form one family, and its tests of the mean over
topics (read-outs x modes) another; a replicated run's tests over seeds form the same two families. Withheld
cells (forced choice below the label-mass floor) are not tested and get no q-value. The README's and the summary
page's stars read q < alpha.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

KEYS = ["run", "topic", "mode", "stance"]


def q_values(frame: pd.DataFrame) -> pd.DataFrame:
    """frame (run, topic, mode, stance, p_value) -> (run, topic, mode, stance, q_value), BH within each run's
    per-topic family and its mean-over-topics family."""
    frame = frame[frame["p_value"].notna()].copy()
    frame["family"] = np.where(frame["topic"] == "(all)", "overall", "topics")
    frame["q_value"] = np.nan
    for index in frame.groupby(["run", "family"]).groups.values():
        frame.loc[index, "q_value"] = multipletests(frame.loc[index, "p_value"].to_numpy(float), method="fdr_bh")[1]
    return frame[KEYS + ["q_value"]].reset_index(drop=True)


def create_tables(con, alpha: float) -> None:
    """drift_q from view drift_all, seeds_q from view drift_over_seeds_all (created by the caller)."""
    for table, view in (("drift_q", "drift_all"), ("seeds_q", "drift_over_seeds_all")):
        q = q_values(con.execute(f"SELECT run, topic, mode, stance, p_value FROM {view}").df())
        q["significant_q"] = q["q_value"] < alpha
        con.register(f"{table}_df", q)
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_df")
