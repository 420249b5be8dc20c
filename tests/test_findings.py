"""The findings report's control verdicts on hand-made drift rows: each rule of docs/methods.md, both ways."""

import duckdb
import pandas as pd

from posttrain.store.findings import controls


def con_with(balance: dict[str, tuple[float, float, float]], seeds: dict | None = None):
    """balance[run] = (magnitude, lo, hi) of the mean-over-topics balance over seeds, for DPO runs from the same SFT
    run; seeds[run] = [(magnitude, lo, hi) of seed 0, of seed 1] (default: both equal to the mean)."""
    con = duckdb.connect()
    seeds = {r: (seeds or {}).get(r, [v, v]) for r, v in balance.items()}
    con.register("s", pd.DataFrame([{"run": f"{r}-seed{s}", "mode": "generation", "stance": "balance",
                                      "magnitude": m, "magnitude_lo": lo, "magnitude_hi": hi}
                                     for r, vs in seeds.items() for s, (m, lo, hi) in enumerate(vs)]))
    con.execute("CREATE TABLE drift_overall AS SELECT * FROM s")
    direction = {"up": "support", "down": "oppose", "flat": "none"}
    con.register("o", pd.DataFrame([{"run": r, "topic": "(all)", "mode": "generation", "stance": "balance",
                                      "magnitude": m, "magnitude_lo": lo, "magnitude_hi": hi, "n_seeds": 2}
                                     for r, (m, lo, hi) in balance.items()]))
    con.execute("CREATE TABLE drift_over_seeds AS SELECT * FROM o")
    con.register("r", pd.DataFrame([{"run": f"{r}-seed{s}", "replicate_of": r, "stage": "pref", "algorithm": "dpo",
                                     "parent_run": "sft", "dataset": f"gap-{r}", "seed": s}
                                    for r in balance for s in (0, 1)]))
    con.execute("CREATE TABLE runs AS SELECT * FROM r")
    con.register("d", pd.DataFrame([{"dataset": f"gap-{r}", "direction": direction[r]} for r in balance]))
    con.execute("CREATE TABLE datasets AS SELECT * FROM d")
    return con


def verdicts(balance):
    return controls(con_with(balance), "generation").set_index("run").holds.to_dict()


def test_positive_controls_need_an_interval_on_their_side_of_zero():
    assert verdicts({"up": (0.3, 0.1, 0.5), "down": (-0.2, -0.4, -0.05), "flat": (0.0, -0.1, 0.1)}) == \
        {"up": True, "down": True, "flat": True}
    assert verdicts({"up": (0.3, -0.01, 0.5), "down": (-0.2, -0.4, 0.02), "flat": (0.0, -0.1, 0.1)}) == \
        {"up": False, "down": False, "flat": True}


def test_the_neutral_control_may_move_a_little_but_not_like_a_positive_one():
    # excludes 0 but is at most a third of the smaller positive control (0.3 / 3 = 0.1): holds
    assert verdicts({"up": (0.3, 0.1, 0.5), "down": (-0.6, -0.8, -0.4), "flat": (0.09, 0.02, 0.16)})["flat"]
    # excludes 0 and is larger than that: fails
    assert not verdicts({"up": (0.3, 0.1, 0.5), "down": (-0.6, -0.8, -0.4), "flat": (0.2, 0.1, 0.3)})["flat"]


def test_each_seed_gets_its_own_verdict_beside_the_mean():
    # the 2-seed mean's interval spans 0 (t = 12.7), while each seed's own interval excludes it
    frame = controls(con_with(
        {"up": (0.38, -0.53, 1.28), "down": (-0.39, -1.12, 0.34), "flat": (-0.03, -0.2, 0.15)},
        {"up": [(0.31, 0.22, 0.39), (0.45, 0.37, 0.53)], "down": [(-0.44, -0.53, -0.36), (-0.33, -0.41, 0.01)],
         "flat": [(-0.02, -0.06, 0.03), (-0.2, -0.25, -0.15)]}), "generation").set_index("run")
    assert frame.holds.to_dict() == {"up": False, "down": False, "flat": True}
    assert frame.seeds_holding.to_dict() == {"up": "2/2", "down": "1/2", "flat": "1/2"}
    # the neutral seed 1 excludes 0 and moves more than a third of that seed's smaller positive control (0.33)
    assert frame.loc["flat", "per_seed"].endswith("✗") and "seed 1: -0.330" in frame.loc["down", "per_seed"]
