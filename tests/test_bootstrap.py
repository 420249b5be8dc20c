"""The one resampling scheme (posttrain/store/bootstrap.py) on fixtures whose answer is known in closed form, the
drift metrics against the SQL view they mirror, and the scheme written out draw by draw. Coverage on simulated
studies is tests/test_coverage.py."""

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from posttrain.store.bootstrap import READOUTS, drift_metrics, intervals


def rows(values: dict[int, list[list[float]]], topic="t", mode="forced_choice"):
    """values[step][prompt] = the p_support of each sample (the rest of the mass is neutral)."""
    return pd.DataFrame([
        {"run": "r", "topic": topic, "mode": mode, "step": step, "prompt_id": f"p{i:03d}", "sample_id": k,
         "p_support": v, "p_neutral": 1 - v, "p_oppose": 0.0}
        for step, prompts in values.items() for i, samples in enumerate(prompts) for k, v in enumerate(samples)
    ])


def test_interval_of_a_proportion_matches_the_normal_approximation():
    n, share = 400, 0.3  # 120 prompts say support with certainty, 280 not: CI = p -/+ 1.96 sqrt(p(1-p)/(n-1))
    prompts = [[1.0] if i < n * share else [0.0] for i in range(n)]
    stance = intervals(rows({0: prompts, 10: prompts}), resamples=4000, confidence=0.95, fraction=0.95).stance_ci
    row = stance[(stance.step == 0) & (stance.stance == "support")].iloc[0]
    half = 1.966 * math.sqrt(share * (1 - share) / (n - 1))  # s^2 / n with s^2 the sample variance; t(0.975, 399)
    assert row.lo == pytest.approx(share - half, abs=0.01)
    assert row.hi == pytest.approx(share + half, abs=0.01)


def test_answers_within_a_prompt_are_not_resampled_again():
    # every prompt's mean is 0.5 but its 2 answers disagree: a cluster bootstrap over prompts sees no spread (the
    # answers' noise enters only through the prompts' means)
    prompts = [[0.0, 1.0] for _ in range(50)]
    stance = intervals(rows({0: prompts}), resamples=500, confidence=0.95, fraction=0.95).stance_ci
    row = stance[stance.stance == "support"].iloc[0]
    assert row.lo == row.hi == 0.5


def test_prompts_stay_paired_across_checkpoints():
    # prompts start anywhere in [0, 0.6] but every one moves by exactly +0.3: the magnitude's interval is a point
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 0.6, size=60)
    frame = rows({0: [[v] for v in start], 5: [[v + 0.2] for v in start], 20: [[v + 0.3] for v in start]})
    found = intervals(frame, resamples=2000, confidence=0.95, fraction=0.95)
    stance, drift = found.stance_ci, found.drift_ci
    support = drift[drift.stance == "support"].iloc[0]
    assert support.magnitude_lo == pytest.approx(0.3) and support.magnitude_hi == pytest.approx(0.3)
    level = stance[(stance.step == 0) & (stance.stance == "support")].iloc[0]
    assert level.hi - level.lo > 0.05  # the level itself is uncertain; only the change is not
    assert support.drift_time_lo == support.drift_time_hi == 1.0  # 0.2 < 0.95 x 0.3: reached at the last step


def test_sample_ids_stay_paired_across_checkpoints():
    # samples of a prompt disagree widely, but each sample id (one seed) moves by exactly +0.25: resampling
    # the ids once for all checkpoints gives a point interval for the change; drawing them afresh at each
    # checkpoint would not
    rng = np.random.default_rng(1)
    start = rng.uniform(0, 0.7, size=(20, 4))
    frame = rows({0: start.tolist(), 9: (start + 0.25).tolist()})
    drift = intervals(frame, resamples=2000, confidence=0.95, fraction=0.95).drift_ci
    support = drift[drift.stance == "support"].iloc[0]
    assert support.magnitude_lo == pytest.approx(0.25) and support.magnitude_hi == pytest.approx(0.25)


def test_a_sample_id_twice_at_one_checkpoint_is_named():
    frame = rows({0: [[0.2, 0.4]]})
    frame.loc[1, "sample_id"] = 0
    with pytest.raises(ValueError, match="prompt p000 has sample 0 twice"):
        intervals(frame, 10, 0.95, 0.95)


def test_a_constant_curve_has_point_intervals_and_no_drift_time():
    prompts = [[0.4] for _ in range(10)]
    found = intervals(rows({0: prompts, 3: prompts}), resamples=500, confidence=0.9, fraction=0.95)
    stance, drift = found.stance_ci, found.drift_ci
    assert (stance.lo == stance.hi).all()
    assert drift.magnitude_lo.eq(0).all() and drift.drift_time_lo.isna().all()


def test_drift_times_on_a_curve_with_a_spike():
    steps = np.array([0, 1, 2, 4, 8, 16])
    curve = np.array([0.0, 0.97, 0.2, 0.5, 0.98, 1.0])  # passes 95 % at step 1, settles only from step 8
    m = drift_metrics(steps, curve, 0.95)
    assert m["magnitude"] == pytest.approx(1.0)
    assert m["drift_time"] == pytest.approx(1 / 16)
    assert m["drift_time_settled"] == pytest.approx(8 / 16)


def test_drift_time_follows_the_sign_of_the_drift():
    steps = np.array([0, 1, 2, 3, 60])
    # the review's curve: +0.15 at step 1, then down to -0.152 at the end. |+0.15| >= 0.95 x 0.152, but it is a
    # change the other way: the drift (down) reaches 95 % of its extremum only at the last step
    m = drift_metrics(steps, np.array([0.5, 0.65, 0.5, 0.45, 0.348]), 0.95)
    assert m["magnitude"] == pytest.approx(-0.152)
    assert m["drift_time"] == pytest.approx(1.0)
    # the mirror image, and a curve that goes down first and then up past it
    assert drift_metrics(steps, np.array([0.5, 0.35, 0.5, 0.55, 0.652]), 0.95)["drift_time"] == pytest.approx(1.0)
    up = drift_metrics(steps, np.array([0.2, 0.1, 0.5, 0.6, 0.6]), 0.95)
    assert up["drift_time"] == pytest.approx(3 / 60)  # 0.4 >= 0.95 x 0.4 at step 3; step 1's -0.1 is the wrong way
    # a tie between +x and -x: the first extremum sets the sign
    assert drift_metrics(steps, np.array([0.0, -0.3, 0.0, 0.3, 0.1]), 0.95)["drift_time"] == pytest.approx(1 / 60)


def test_numpy_metrics_agree_with_the_drift_view():
    rng = np.random.default_rng(3)
    steps = [0, 1, 3, 7, 15, 40]
    curves = {f"t{i}": rng.uniform(0, 1, size=len(steps)) for i in range(8)}
    curves["flat"] = np.full(len(steps), 0.25)
    curves["flip"] = np.array([0.5, 0.65, 0.5, 0.45, 0.4, 0.348])
    con = duckdb.connect()
    con.execute("CREATE TABLE checkpoints AS SELECT 'r' AS run, unnest($s)::BIGINT AS step, 0.0 AS progress",
                {"s": steps})
    samples = pd.DataFrame([{"run": "r", "step": s, "topic": t, "mode": "forced_choice", "prompt_id": "p",
                             "sample_id": 0, "p_support": v[i], "p_neutral": 1 - v[i], "p_oppose": 0.0}
                            for t, v in curves.items() for i, s in enumerate(steps)])
    con.register("samples_df", samples)
    con.execute("CREATE TABLE stance_samples AS SELECT *, 'j' AS judge, 1.0 AS label_mass, p_support AS raw_p_support, "
                "p_neutral AS raw_p_neutral, p_oppose AS raw_p_oppose, NULL::DOUBLE AS content_free_label_mass "
                "FROM samples_df")
    found = intervals(samples, 100, 0.95, 0.9)
    con.register("stance_ci", found.stance_ci)
    con.register("drift_ci", found.drift_ci)
    from posttrain.store.bootstrap import ESTIMANDS
    from posttrain.store.build import VIEWS

    con.execute(VIEWS.read_text().format(extremum_fraction=0.9, label_mass_floor=0.1, label_mass_min_share=0.9,
                                         estimand_run=ESTIMANDS["run"]))
    view = con.execute("SELECT topic, magnitude, significant, drift_time, drift_time_settled, drift_time_null_reason "
                       "FROM drift_all WHERE stance = 'support' AND topic <> '(all)' ORDER BY topic").df()
    assert view.set_index("topic").significant.to_dict() == {t: t != "flat" for t in curves}  # one prompt: points
    assert view.set_index("topic").drift_time_null_reason.fillna("").to_dict() == {
        t: "the curve never moves" if t == "flat" else "" for t in curves}
    for row in view.itertuples():
        m = drift_metrics(np.array(steps), curves[row.topic], 0.9)
        assert row.magnitude == pytest.approx(m["magnitude"])
        for name in ("drift_time", "drift_time_settled"):
            expected, got = float(m[name]), getattr(row, name)
            assert (math.isnan(expected) and pd.isna(got)) or got == pytest.approx(expected), (row.topic, name)


def reference_intervals(frame: pd.DataFrame, resamples: int, confidence: float, fraction: float, seed: int):
    """The resampling scheme written out one draw at a time: per replicate, n - 1 of each (topic, mode)'s n prompts
    with replacement, one draw for every run and checkpoint; the curve at a step is the mean over the drawn prompts
    present at that step of each prompt's mean over its answers (the point estimate of stance_by_topic). Percentiles
    expanded for n prompts: a tail of alpha/2 is read at the normal quantile of t(1 - alpha/2, n - 1)."""
    from scipy import stats

    rng = np.random.default_rng(seed)

    def q(df):
        tail = stats.norm.sf(stats.t.ppf((1 + confidence) / 2, df)) * 100
        return [tail, 100 - tail]

    stance, drift, by_key, draws = {}, {}, {}, {}
    for key, group in frame.groupby(["topic", "mode"]):
        prompts = list(np.sort(group.prompt_id.unique()))
        draws[key] = (prompts, [rng.integers(0, len(prompts), max(len(prompts) - 1, 1)) for _ in range(resamples)])
    for key, group in frame.groupby(["run", "topic", "mode"]):
        steps = np.sort(group.step.unique())
        prompts, picks = draws[key[1:]]
        means = np.full((len(steps), len(prompts), 3), np.nan)  # each prompt's mean over its answers
        for (step, prompt), g in group.groupby(["step", "prompt_id"]):
            means[list(steps).index(step), prompts.index(prompt)] = g[["p_support", "p_neutral", "p_oppose"]].mean()
        curves = np.empty((resamples, len(steps), 3))
        for b, pick in enumerate(picks):
            for i in range(len(steps)):
                at = [means[i, p] for p in pick if not np.isnan(means[i, p, 0])]
                curves[b, i] = np.mean(at, axis=0) if at else np.nan
        by_key[key] = (steps, np.concatenate([curves, curves[..., :1] - curves[..., 2:]], axis=-1))  # + balance
    # the mean over topics: replicate b of every topic, averaged (a stratified bootstrap)
    for run, mode in {(k[0], k[2]) for k in by_key}:
        parts = [c for k, (_, c) in by_key.items() if (k[0], k[2]) == (run, mode)]
        by_key[(run, "(all)", mode)] = (by_key[next(k for k in by_key if (k[0], k[2]) == (run, mode))][0],
                                        np.mean(parts, axis=0))
    df = {key: len(draws[key][0]) - 1 for key in draws}
    for key, (steps, curves) in by_key.items():
        topic_df = df.get(key[1:]) or sum(d for (_, mode), d in df.items() if mode == key[2])  # '(all)': every topic
        lo, hi = np.nanpercentile(curves, q(topic_df), axis=0)
        for i, step in enumerate(steps):
            for j, s in enumerate(READOUTS):
                stance[key + (step, s)] = (lo[i, j], hi[i, j])
        metrics = drift_metrics(steps, np.moveaxis(curves, -1, 1), fraction)
        for j, s in enumerate(READOUTS):
            drift[key + (s,)] = {name: np.percentile(v[:, j][np.isfinite(v[:, j])], q(topic_df))
                                 for name, v in metrics.items()}
    return stance, drift


def mixed_study(seed=0):
    """Two topics with every kind of cell: one sample, identical samples, 2-8 samples, counts that differ
    within a step, a prompt missing at one step, and a sample id missing at one step."""
    rng = np.random.default_rng(seed)
    rows = []
    for topic, shift in (("a", 0.0), ("b", 0.15)):
        for p in range(12):
            for step in (0, 4, 9, 20):
                if p == 11 and step == 9:
                    continue  # not probed at this checkpoint
                n = [1, 2, 3, 5, 6, 8, 5, 5, 4, 3, 2, 1][p]
                same = p == 6  # five identical samples
                base = rng.dirichlet([2, 2, 2])
                for k in range(n):
                    if p == 3 and k == 4 and step == 4:
                        continue  # this sample id failed at this checkpoint
                    v = base if same else rng.dirichlet([2, 2, 2])
                    v = v + np.array([shift, -shift / 2, -shift / 2]) * step / 20
                    rows.append({"run": "r", "topic": topic, "mode": "generation", "step": step,
                                 "prompt_id": f"q{p:02d}", "sample_id": k,
                                 "p_support": v[0], "p_neutral": v[1], "p_oppose": v[2]})
    return pd.DataFrame(rows)


def test_weight_matrix_matches_the_draw_by_draw_reference():
    frame = mixed_study()
    found = intervals(frame, resamples=2000, confidence=0.9, fraction=0.95, seed=1)
    stance, drift = found.stance_ci, found.drift_ci
    ref_stance, ref_drift = reference_intervals(frame, 2000, 0.9, 0.95, seed=2)
    assert len(stance) == len(ref_stance) == 3 * 4 * 4  # (2 topics + their mean) x steps x read-outs
    for row in stance.itertuples():
        lo, hi = ref_stance[(row.run, row.topic, row.mode, row.step, row.stance)]
        # percentiles of two independent 2000-replicate bootstraps: a tenth of the width is ~4 standard errors
        assert row.lo == pytest.approx(lo, abs=0.1 * (hi - lo)), row
        assert row.hi == pytest.approx(hi, abs=0.1 * (hi - lo)), row
    steps = np.array([0, 4, 9, 20])
    for row in drift.itertuples():
        ref = ref_drift[(row.run, row.topic, row.mode, row.stance)]
        lo, hi = ref["magnitude"]
        assert (row.magnitude_lo, row.magnitude_hi) == pytest.approx((lo, hi), abs=0.1 * (hi - lo)), row
        gap = np.diff(steps).max() / (steps[-1] - steps[0])  # drift times take the values of the steps
        assert row.drift_time_lo == pytest.approx(ref["drift_time"][0], abs=gap), row
        assert row.drift_time_hi == pytest.approx(ref["drift_time"][1], abs=gap), row


def test_steps_without_variance_give_their_value_exactly():
    # every sample of a step has the same value (different per step), whatever the prompts' sample counts
    values = {0: 0.1, 3: 0.37, 8: 0.62}
    frame = rows({step: [[v] * n for n in (1, 2, 5, 8, 3)] for step, v in values.items()})
    found = intervals(frame, resamples=300, confidence=0.95, fraction=0.95)
    stance, drift = found.stance_ci, found.drift_ci
    support = stance[(stance.stance == "support") & (stance.topic == "t")].set_index("step")
    for step, v in values.items():
        # (up to the prompt means' own rounding)
        assert support.loc[step, "lo"] == pytest.approx(v, abs=1e-12) == support.loc[step, "hi"]
    d = drift[drift.stance == "support"].iloc[0]
    assert d.magnitude_lo == pytest.approx(0.62 - 0.1, abs=1e-12) == d.magnitude_hi


def test_one_draw_is_shared_by_every_run_and_does_not_depend_on_other_topics():
    frame = mixed_study()
    one = intervals(frame, resamples=200, confidence=0.95, fraction=0.95, seed=5).stance_ci
    alone = intervals(frame[frame.topic == "b"], resamples=200, confidence=0.95, fraction=0.95, seed=5).stance_ci
    pd.testing.assert_frame_equal(alone[alone.topic == "b"].reset_index(drop=True),
                                  one[one.topic == "b"].reset_index(drop=True))
    other_seed = intervals(frame, resamples=200, confidence=0.95, fraction=0.95, seed=6).stance_ci
    assert not np.allclose(other_seed.hi, one.hi)
    # a second run on the same prompts whose every prompt moves 0.1 further: the contrast of the two drifts is a
    # point, because both runs' replicates draw the same prompts
    shifted = frame.assign(run="s", p_support=frame.p_support + 0.1 * frame.step / 20,
                           p_neutral=frame.p_neutral - 0.1 * frame.step / 20)
    both = pd.concat([frame, shifted], ignore_index=True)
    found = intervals(both, resamples=300, confidence=0.95, fraction=0.95, contrasts=[("s", "r")])
    c = found.contrast_ci.query("stance == 'support' and level == 'seeds_fixed'").iloc[0]
    assert c.estimate == pytest.approx(0.1) and (c.lo, c.hi) == pytest.approx((0.1, 0.1))
    r = found.drift_ci.query("run == 'r' and topic == '(all)' and stance == 'support'").iloc[0]
    assert r.magnitude_hi - r.magnitude_lo > 0.05  # each drift alone is uncertain


def test_every_interval_stays_inside_its_range():
    # prompts at the edges of [0, 1] moving the whole way: percentile intervals of (a) and (b) cannot leave the
    # range, and (c) (a t interval) is clipped to it
    rng = np.random.default_rng(4)
    rows_ = []
    for seed, move in enumerate((0.99, 0.2, -0.9)):
        for p in range(10):
            start = rng.choice([0.0, 1.0])
            for step, v in ((0, start), (5, float(np.clip(start + move, 0, 1)))):
                rows_.append({"run": f"r-seed{seed}", "topic": "t", "mode": "generation", "step": step,
                              "prompt_id": f"p{p}", "sample_id": 0, "p_support": v, "p_neutral": 1 - v,
                              "p_oppose": 0.0})
    replicates = pd.DataFrame({"run": [f"r-seed{s}" for s in range(3)], "replicate_of": "r", "seed": range(3)})
    found = intervals(pd.DataFrame(rows_), 300, 0.95, 0.95, replicates=replicates)
    s = found.seeds_ci
    for stance, bound in (("support", 1), ("balance", 2)):
        row = s[(s.stance == stance) & (s.topic == "t")].iloc[0]
        assert -bound <= row.magnitude_lo_population <= row.magnitude_hi_population <= bound
        assert -bound <= row.magnitude_lo_fixed <= row.magnitude_hi_fixed <= bound
    assert (found.stance_ci.query("stance != 'balance'")[["lo", "hi"]].stack().between(0, 1)).all()
    assert found.drift_ci.drift_time_lo.dropna().between(0, 1).all()


def test_bad_samples_are_named():
    frame = rows({0: [[0.2], [0.4]]})
    with pytest.raises(ValueError, match="p_oppose"):
        intervals(frame.drop(columns="p_oppose"), 10, 0.95, 0.95)
    frame.loc[1, "p_neutral"] = np.nan
    with pytest.raises(ValueError, match="prompt p001"):
        intervals(frame, 10, 0.95, 0.95)


def test_few_prompts_widen_the_percentile_levels():
    # 10 prompts (9 df): the 95 % interval reads the percentiles where Student's t(0.975, 9) = 2.262 falls on the
    # normal, 1.18 % and 98.82 %; many prompts read 2.5 % and 97.5 %
    from posttrain.store.bootstrap import Levels

    lo, hi, tost_lo, tost_hi = Levels(0.95, 9).q
    assert (lo, hi) == pytest.approx((1.185, 98.815), abs=0.001)
    assert (tost_lo, tost_hi) == pytest.approx((3.339, 96.661), abs=0.001)  # t(0.95, 9) = 1.833 on the normal
    assert Levels(0.95).q == pytest.approx([2.5, 97.5, 5.0, 95.0])
