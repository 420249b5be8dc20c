"""Bootstrap intervals on fixtures whose answer is known in closed form, and the drift metrics against the
SQL view they mirror."""

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from posttrain.store.bootstrap import drift_metrics, intervals


def rows(values: dict[int, list[list[float]]], topic="t", mode="forced_choice"):
    """values[step][prompt] = the p_support of each sample (the rest of the mass is neutral)."""
    return pd.DataFrame([
        {"run": "r", "topic": topic, "mode": mode, "step": step, "prompt_id": f"p{i:03d}", "sample_id": k,
         "p_support": v, "p_neutral": 1 - v, "p_oppose": 0.0}
        for step, prompts in values.items() for i, samples in enumerate(prompts) for k, v in enumerate(samples)
    ])


def test_interval_of_a_proportion_matches_the_normal_approximation():
    n, share = 400, 0.3  # 120 prompts say support with certainty, 280 not: CI = p -/+ 1.96 sqrt(p(1-p)/n)
    prompts = [[1.0] if i < n * share else [0.0] for i in range(n)]
    stance, _ = intervals(rows({0: prompts, 10: prompts}), resamples=4000, confidence=0.95, fraction=0.95)
    row = stance[(stance.step == 0) & (stance.stance == "support")].iloc[0]
    half = 1.96 * math.sqrt(share * (1 - share) / n)
    assert row.lo == pytest.approx(share - half, abs=0.01)
    assert row.hi == pytest.approx(share + half, abs=0.01)


def test_samples_within_prompts_are_resampled():
    # every prompt has the same mean (0.5) but its 2 samples disagree: the spread comes from samples alone
    prompts = [[0.0, 1.0] for _ in range(50)]
    stance, _ = intervals(rows({0: prompts}), resamples=4000, confidence=0.95, fraction=0.95)
    row = stance[stance.stance == "support"].iloc[0]
    half = 1.96 * math.sqrt(0.25 / 2 / 50)  # a prompt's mean of 2 resampled draws has variance 0.25 / 2
    assert row.hi - row.lo == pytest.approx(2 * half, rel=0.2)
    assert row.lo < 0.5 < row.hi


def test_prompts_stay_paired_across_checkpoints():
    # prompts start anywhere in [0, 0.6] but every one moves by exactly +0.3: the magnitude's interval is a point
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 0.6, size=60)
    frame = rows({0: [[v] for v in start], 5: [[v + 0.2] for v in start], 20: [[v + 0.3] for v in start]})
    stance, drift = intervals(frame, resamples=2000, confidence=0.95, fraction=0.95)
    support = drift[drift.stance == "support"].iloc[0]
    assert support.magnitude_lo == pytest.approx(0.3) and support.magnitude_hi == pytest.approx(0.3)
    level = stance[(stance.step == 0) & (stance.stance == "support")].iloc[0]
    assert level.hi - level.lo > 0.05  # the level itself is uncertain; only the change is not
    assert support.drift_time_lo == support.drift_time_hi == 1.0  # 0.2 < 0.95 x 0.3: reached at the last step


def test_a_constant_curve_has_point_intervals_and_no_drift_time():
    prompts = [[0.4] for _ in range(10)]
    stance, drift = intervals(rows({0: prompts, 3: prompts}), resamples=500, confidence=0.9, fraction=0.95)
    assert (stance.lo == stance.hi).all()
    assert drift.magnitude_lo.eq(0).all() and drift.drift_time_lo.isna().all()


def test_drift_times_on_a_curve_with_a_spike():
    steps = np.array([0, 1, 2, 4, 8, 16])
    curve = np.array([0.0, 0.97, 0.2, 0.5, 0.98, 1.0])  # passes 95 % at step 1, settles only from step 8
    m = drift_metrics(steps, curve, 0.95)
    assert m["magnitude"] == pytest.approx(1.0)
    assert m["drift_time"] == pytest.approx(1 / 16)
    assert m["drift_time_settled"] == pytest.approx(8 / 16)


def test_numpy_metrics_agree_with_the_drift_view():
    rng = np.random.default_rng(3)
    steps = [0, 1, 3, 7, 15, 40]
    curves = {f"t{i}": rng.uniform(0, 1, size=len(steps)) for i in range(8)}
    curves["flat"] = np.full(len(steps), 0.25)
    con = duckdb.connect()
    con.execute("CREATE TABLE checkpoints AS SELECT 'r' AS run, unnest($s)::BIGINT AS step, 0.0 AS progress",
                {"s": steps})
    samples = pd.DataFrame([{"run": "r", "step": s, "topic": t, "mode": "forced_choice", "prompt_id": "p",
                             "sample_id": 0, "p_support": v[i], "p_neutral": 1 - v[i], "p_oppose": 0.0}
                            for t, v in curves.items() for i, s in enumerate(steps)])
    con.register("samples_df", samples)
    con.execute("CREATE TABLE stance_samples AS SELECT * FROM samples_df")
    stance_ci, drift_ci = intervals(samples, 100, 0.95, 0.9)
    con.register("stance_ci", stance_ci)
    con.register("drift_ci", drift_ci)
    from posttrain.store.__main__ import VIEWS

    con.execute(VIEWS.read_text().format(extremum_fraction=0.9))
    view = con.execute("SELECT topic, magnitude, drift_time, drift_time_settled FROM drift "
                       "WHERE stance = 'support' ORDER BY topic").df()
    for row in view.itertuples():
        m = drift_metrics(np.array(steps), curves[row.topic], 0.9)
        assert row.magnitude == pytest.approx(m["magnitude"])
        for name in ("drift_time", "drift_time_settled"):
            expected, got = float(m[name]), getattr(row, name)
            assert (math.isnan(expected) and pd.isna(got)) or got == pytest.approx(expected), (row.topic, name)
