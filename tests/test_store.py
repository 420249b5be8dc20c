"""The DuckDB build and its drift views against a hand computation on a fixture with known answers."""

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from posttrain.store.build import build

# topic a, p_support per checkpoint (two prompts each): 0.2 -> 0.5 -> 0.81 -> 0.79 over steps 0, 10, 20, 40.
# change from start: 0, 0.3, 0.61, 0.59; extremum 0.61 at step 20; 95 % of it = 0.5795 -> first reached at
# step 20 -> drift time 20/40 = 0.5; magnitude 0.79 - 0.2 = 0.59.
SUPPORT = {0: (0.1, 0.3), 10: (0.4, 0.6), 20: (0.8, 0.82), 40: (0.78, 0.80)}


def fixture(tmp_path):
    rows = []
    for step, values in SUPPORT.items():
        for i, p in enumerate(values):
            rows.append({"run": "r", "step": step, "topic": "a", "prompt_id": f"a-{i}", "sample_id": 0,
                         "mode": "forced_choice", "response": None, "judge": "next_token",
                         "p_support": p, "p_neutral": (1 - p) / 2, "p_oppose": (1 - p) / 2})
            rows.append({**rows[-1], "topic": "flat", "p_support": 0.5, "p_neutral": 0.25, "p_oppose": 0.25})
    paths = []
    for step in SUPPORT:
        path = tmp_path / f"step-{step}.parquet"
        pd.DataFrame([r for r in rows if r["step"] == step]).astype({"response": "string"}).to_parquet(path)
        paths.append(str(path))
    manifest = tmp_path / "checkpoints.json"
    manifest.write_text(json.dumps({
        "run": "r", "stage": "sft", "algorithm": "sft", "model": "m", "dataset": "d", "parent_run": None,
        "config": {"x": 1}, "max_steps": 40,
        "checkpoints": [{"step": s, "progress": s / 40, "path": f"p/step-{s}"} for s in SUPPORT]}))
    return [str(manifest)], paths


def test_drift_view_matches_the_worked_example(tmp_path):
    manifests, stance = fixture(tmp_path)
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance, extremum_fraction=0.95)
    with duckdb.connect(str(db), read_only=True) as con:
        d = con.sql("SELECT * FROM drift WHERE topic = 'a' AND stance = 'support'").df().iloc[0]
        flat = con.sql("SELECT * FROM drift WHERE topic = 'flat'").df()
        by_topic = con.sql("SELECT step, p_support, n_prompts FROM stance_by_topic WHERE topic = 'a' "
                           "ORDER BY step").df()
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert d.magnitude == pytest.approx(0.59)
    assert d.drift_time == pytest.approx(0.5)
    assert d.extremum_step == 20 and d.n_checkpoints == 4
    assert by_topic.p_support.tolist() == pytest.approx([0.2, 0.5, 0.81, 0.79])
    assert by_topic.n_prompts.tolist() == [2, 2, 2, 2]
    assert flat.magnitude.abs().max() < 1e-12 and flat.drift_time.isna().all()  # no movement: no drift time
    assert {"runs", "checkpoints", "stance_samples", "stance_by_topic", "drift"} <= tables


def test_a_lower_fraction_moves_drift_time_earlier(tmp_path):
    manifests, stance = fixture(tmp_path)
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance, extremum_fraction=0.4)  # 0.4 * 0.61 = 0.244 -> reached at step 10
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT drift_time FROM drift WHERE topic='a' AND stance='support'").fetchone()[0] == 0.25


def test_drift_time_follows_the_sign_and_needs_a_significant_magnitude(tmp_path):
    manifests, stance = fixture(tmp_path)
    # 'flip': both prompts +0.15 at step 10, then down to -0.152 at step 40 (the review's curve). 'split': one
    # prompt +0.4, the other -0.2: mean +0.1, but the interval over 2 prompts spans [-0.2, 0.4].
    curves = {"flip": {0: (0.5, 0.5), 10: (0.65, 0.65), 20: (0.5, 0.5), 40: (0.348, 0.348)},
              "split": {0: (0.3, 0.3), 10: (0.5, 0.2), 20: (0.6, 0.15), 40: (0.7, 0.1)}}
    for path in stance:
        frame = pd.read_parquet(path)
        step = int(frame.step.iloc[0])
        extra = [{**frame.iloc[0].to_dict(), "topic": topic, "prompt_id": f"{topic}-{i}", "p_support": v,
                  "p_neutral": 1 - v, "p_oppose": 0.0}
                 for topic, curve in curves.items() for i, v in enumerate(curve[step])]
        pd.concat([frame, pd.DataFrame(extra)]).astype({"response": "string"}).to_parquet(path)
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance, extremum_fraction=0.95)
    with duckdb.connect(str(db), read_only=True) as con:
        d = con.sql("SELECT * FROM drift WHERE stance = 'support'").df().set_index("topic")
    # flip: the extremum is -0.152 at step 40; step 10's +0.15 is the other way -> drift time 40/40, not 10/40
    assert d.loc["flip", "magnitude"] == pytest.approx(-0.152)
    assert d.loc["flip", "significant"] and d.loc["flip", "magnitude_hi"] == pytest.approx(-0.152)
    assert d.loc["flip", "drift_time"] == pytest.approx(1.0) and d.loc["flip", "extremum_change"] < 0
    # split: a drift time is computed (reached at step 40) but not reported, and the reason is given
    assert d.loc["split", "magnitude"] == pytest.approx(0.1)
    assert (d.loc["split", "magnitude_lo"], d.loc["split", "magnitude_hi"]) == pytest.approx((-0.2, 0.4))
    assert not d.loc["split", "significant"] and d.loc["split", "reached_step"] == 40
    assert pd.isna(d.loc["split", "drift_time"]) and pd.isna(d.loc["split", "drift_time_settled"])
    assert d.loc["split", "drift_time_null_reason"] == "the magnitude's interval includes 0"
    assert d.loc["a", "significant"] and pd.isna(d.loc["a", "drift_time_null_reason"])
    assert d.loc["flat", "drift_time_null_reason"] == "the curve never moves"


def test_a_run_probed_at_its_first_and_last_step_only_gets_no_drift_time(tmp_path):
    manifests, stance = fixture(tmp_path)
    path = Path(manifests[0])
    manifest = json.loads(path.read_text())
    manifest["checkpoints"] = [c for c in manifest["checkpoints"] if c["step"] in (0, 40)]
    path.write_text(json.dumps(manifest))
    db = tmp_path / "study.duckdb"
    build(db, manifests, [p for p in stance if p.endswith(("step-0.parquet", "step-40.parquet"))])
    with duckdb.connect(str(db), read_only=True) as con:
        d = con.sql("SELECT * FROM drift WHERE topic = 'a' AND stance = 'support'").df().iloc[0]
    # 0.2 -> 0.79 over two prompts whose intervals do not meet: significant, but the time is 1 by construction
    assert d.n_checkpoints == 2 and d.magnitude == pytest.approx(0.59) and d.significant
    assert d.reached_step == 40 and pd.isna(d.drift_time) and pd.isna(d.drift_time_settled)
    assert d.drift_time_null_reason.startswith("two checkpoints")


def test_forced_choice_below_the_floor_is_withheld_with_its_reason(tmp_path):
    manifests, stance = fixture(tmp_path)
    mass = {0: 0.3, 10: 0.04, 20: 0.2, 40: 0.25}  # topic a's label mass: step 10 is below the 0.1 floor
    for path in stance:
        frame = pd.read_parquet(path)
        frame["label_mass"] = [mass[int(s)] if t == "a" else 0.5 for s, t in zip(frame.step, frame.topic)]
        frame["content_free_label_mass"] = 0.07
        frame.to_parquet(path)
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance, label_mass_floor=0.1)
    with duckdb.connect(str(db), read_only=True) as con:
        flags = con.sql("SELECT step, mean_label_mass, share_above_floor, below_floor, content_free_label_mass "
                        "FROM label_mass WHERE topic = 'a' ORDER BY step").df()
        low = con.sql("SELECT step, low_label_mass FROM stance_by_topic WHERE topic = 'a' ORDER BY step").df()
        d = con.sql("SELECT * FROM drift WHERE stance = 'support'").df().set_index("topic")
        overall = con.sql("SELECT * FROM drift_overall WHERE stance = 'support'").df().iloc[0]
    assert flags.mean_label_mass.tolist() == pytest.approx(list(mass.values()))
    assert flags.share_above_floor.tolist() == [1, 0, 1, 1]
    assert flags.below_floor.tolist() == [False, True, False, False] == low.low_label_mass.tolist()
    assert flags.content_free_label_mass.tolist() == pytest.approx([0.07] * 4)
    # below the floor: no magnitude, no interval, no star, no drift time; the reason says why
    a = d.loc["a"]
    assert pd.isna(a.magnitude) and pd.isna(a.magnitude_lo) and pd.isna(a.significant) and pd.isna(a.q_value)
    assert pd.isna(a.drift_time) and "label-mass floor at 1 checkpoint" in a.withheld_reason
    assert a.first_value == pytest.approx(0.2)  # the curve itself stays readable
    assert d.loc["flat", "magnitude"] == pytest.approx(0) and pd.isna(d.loc["flat", "withheld_reason"])
    assert pd.isna(overall.magnitude) and overall.withheld_reason is not None  # a withheld topic withholds the mean


def test_the_floor_applies_per_prompt(tmp_path):
    # topic a's two prompts at step 10: 0.01 and 0.35, mean 0.18 above the 0.1 floor, but one prompt is below it
    manifests, stance = fixture(tmp_path)
    for path in stance:
        frame = pd.read_parquet(path)
        frame["label_mass"] = [0.01 if (t == "a" and s == 10 and p == "a-0") else 0.35
                               for s, t, p in zip(frame.step, frame.topic, frame.prompt_id)]
        frame.to_parquet(path)
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance, label_mass_floor=0.1, label_mass_min_share=0.9)
    with duckdb.connect(str(db), read_only=True) as con:
        flags = con.sql("SELECT * FROM label_mass WHERE topic = 'a' AND step = 10").df().iloc[0]
        a = con.sql("SELECT * FROM drift WHERE topic = 'a' AND stance = 'support'").df().iloc[0]
    assert flags.mean_label_mass == pytest.approx(0.18) and flags.share_above_floor == 0.5 and flags.below_floor
    assert pd.isna(a.magnitude) and a.withheld_reason.startswith("forced choice")
    build(db, manifests, stance, label_mass_floor=0.1, label_mass_min_share=0.5)  # half the prompts suffice
    with duckdb.connect(str(db), read_only=True) as con:
        a = con.sql("SELECT * FROM drift WHERE topic = 'a' AND stance = 'support'").df().iloc[0]
    assert a.magnitude == pytest.approx(0.59) and pd.isna(a.withheld_reason)


def test_balance_and_the_mean_over_topics(tmp_path):
    manifests, stance = fixture(tmp_path)
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance)
    with duckdb.connect(str(db), read_only=True) as con:
        d = con.sql("SELECT topic, stance, magnitude FROM drift").df().set_index(["topic", "stance"]).magnitude
        overall = con.sql("SELECT * FROM drift_overall").df().set_index("stance")
        curve = con.sql("SELECT step, value, n_topics FROM stance_overall WHERE stance = 'support' ORDER BY step").df()
    # topic a: p_oppose = (1 - p_support) / 2, so balance = 1.5 p_support - 0.5 moves 1.5 x 0.59
    assert d[("a", "balance")] == pytest.approx(1.5 * 0.59)
    assert d[("flat", "balance")] == pytest.approx(0.0)
    # the mean over topics a and flat (0.5 throughout): curve (0.2 + 0.5) / 2 ... ; magnitude 0.59 / 2
    assert curve.value.tolist() == pytest.approx([(v + 0.5) / 2 for v in (0.2, 0.5, 0.81, 0.79)])
    assert (curve.n_topics == 2).all()
    assert overall.loc["support", "magnitude"] == pytest.approx(0.295)
    assert overall.loc["balance", "magnitude"] == pytest.approx(1.5 * 0.59 / 2)
    # its interval: topic a's two prompts move by 0.68 and 0.5 and flat's by 0 -> the mean moves by 0.25-0.34
    assert overall.loc["support", "magnitude_lo"] == pytest.approx(0.25)
    assert overall.loc["support", "magnitude_hi"] == pytest.approx(0.34)
    assert overall.loc["support", "significant"]


def test_failed_build_keeps_the_previous_database(tmp_path):
    manifests, stance = fixture(tmp_path)
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance)
    before = db.read_bytes()
    with pytest.raises(duckdb.Error):
        build(db, manifests, stance + [str(tmp_path / "missing.parquet")])
    assert db.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".study")] == []  # no temp files left


def test_drift_over_seeds_combines_the_replicates_by_hand(tmp_path):
    # three seeds of run r (one prompt each, so no prompt variance: the shared part C is 0) move p_support by
    # 0.1, 0.2, 0.3: mean 0.2, sd 0.1 -> estimand (c): 0.2 -/+ t(0.975, 2 df) x 0.1 / sqrt(3) = 0.2 -/+ 4.3027 x
    # 0.05774; estimand (b), conditional on the three seeds, has no sampling variance left: [0.2, 0.2].
    # Run s has one seed: (b) is its own bootstrap interval and (c) is NULL with the reason.
    manifests, paths = [], []
    for run, seed, replicate_of, move in [("r-seed0", 0, "r", 0.1), ("r-seed1", 1, "r", 0.2),
                                          ("r-seed2", 2, "r", 0.3), ("s", 0, None, 0.25)]:
        config = {"training": {"seed": seed}, **({"replicate_of": replicate_of} if replicate_of else {})}
        manifest = tmp_path / f"{run}.json"
        manifest.write_text(json.dumps({
            "run": run, "stage": "pref", "algorithm": "dpo", "model": "m", "dataset": "d", "parent_run": "sft",
            "config": config, "max_steps": 10,
            "checkpoints": [{"step": s, "progress": s / 10, "path": f"p/{run}/{s}"} for s in (0, 10)]}))
        manifests.append(str(manifest))
        for step, value in ((0, 0.3), (10, 0.3 + move)):
            path = tmp_path / f"{run}-{step}.parquet"
            pd.DataFrame([{"run": run, "step": step, "topic": "a", "prompt_id": "a-0", "sample_id": 0,
                           "mode": "generation", "response": "x", "judge": "j", "p_support": value,
                           "p_neutral": 1 - value, "p_oppose": 0.0, "label_mass": 1.0}]).to_parquet(path)
            paths.append(str(path))
    db = tmp_path / "study.duckdb"
    build(db, manifests, paths)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql("SELECT * FROM drift_over_seeds WHERE stance = 'support' AND topic = 'a'").df().set_index("run")
        replicate_of = dict(con.execute("SELECT run, replicate_of FROM runs").fetchall())
    assert replicate_of == {"r-seed0": "r", "r-seed1": "r", "r-seed2": "r", "s": "s"}
    r = rows.loc["r"]
    half = 4.302652729911275 * 0.1 / 3 ** 0.5
    assert (r.n_seeds, list(r.seeds)) == (3, [0, 1, 2])
    assert r.magnitude == pytest.approx(0.2) and r.sd_between_seeds == pytest.approx(0.1)
    assert (r.magnitude_lo, r.magnitude_hi) == pytest.approx((0.2 - half, 0.2 + half))
    assert (r.magnitude_lo_population, r.magnitude_hi_population) == pytest.approx((0.2 - half, 0.2 + half))
    assert (r.magnitude_lo_fixed, r.magnitude_hi_fixed) == pytest.approx((0.2, 0.2))
    assert not r.significant and r.estimand == "mean over a population of seeds (c)"  # 3 seeds this far apart
    assert r.magnitude_df_population == 2
    s = rows.loc["s"]
    assert s.n_seeds == 1 and (s.magnitude_lo, s.magnitude_hi) == pytest.approx((0.25, 0.25))
    assert s.estimand == "mean over these seeds, conditional on them (b)"
    assert pd.isna(s.magnitude_lo_population) and s.population_null_reason.startswith("fewer than 3 seeds")


def test_judge_confusion_correction_recovers_a_planted_distribution(tmp_path):
    # the judge's mean verdict on labelled answers of each true stance (rows) -> C; a topic whose true stance
    # distribution is pi is judged, on average, q = pi C; the corrected table must give pi back, and stay inside
    # the simplex for a topic (h) judged more one-sidedly than any pi could explain (q C^-1 leaves [0, 1])
    from posttrain.store.judge_correction import inverse, packaged_pass_pairs

    C = {"support": (0.8, 0.1, 0.1), "neutral": (0.1, 0.8, 0.1), "oppose": (0.3, 0.1, 0.6)}
    pi = (0.2, 0.5, 0.3)
    q = [sum(pi[t] * C[s][j] for t, s in enumerate(C)) for j in range(3)]
    one_sided = (0.96, 0.03, 0.01)
    assert (inverse(pd.Series(one_sided).to_numpy(), pd.DataFrame(C).T.to_numpy()) < 0).any()
    manifests, stance = fixture(tmp_path)
    step0 = pd.read_parquet(stance[0])
    rows = [{**step0.iloc[0].to_dict(), "topic": topic, "mode": "generation", "judge": "head",
             "p_support": v[0], "p_neutral": v[1], "p_oppose": v[2]} for topic, v in (("g", q), ("h", one_sided))]
    pd.concat([step0, pd.DataFrame(rows)]).astype({"response": "string"}).to_parquet(stance[0])
    judges = tmp_path / "judges"
    judges.mkdir()
    (judges / "eval-real.json").write_text(json.dumps({
        "judge": "head", "kind": "lm_head", "split": "real", "macro_f1": 0.7, "accuracy": 0.7, "n": 6,
        "per_class": {s: {"recall": 0.7} for s in C}}))
    # two answers per true stance, their mean is C's row; the real set's rows carry its own split ('test')
    predictions = pd.DataFrame([{"judge": "head", "id": f"{s}{k}", "prompt_id": f"q-{s}{k}", "topic": "t",
                                 "split": "test", "stance": s,
                                 **{f"p_{j}": C[s][i] + (0.05 if k else -0.05) * (i - 1) for i, j in enumerate(C)}}
                                for s in C for k in (0, 1)])
    predictions["predicted"] = predictions[["p_support", "p_neutral", "p_oppose"]].idxmax(axis=1).str[2:]
    predictions.to_parquet(judges / "predictions-real.parquet")
    db = tmp_path / "study.duckdb"
    build(db, manifests, stance, judge_evals=[str(judges / "eval-real.json")])
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.sql("SELECT * FROM stance_by_topic_corrected ORDER BY topic").df().set_index("topic")
        tables = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
            "judge_correction", "judge_correction_check", "judge_calibration", "judge_label_agreement",
            "judge_label_passes", "judge_label_sensitivity")}
    g = got.loc["g"]
    assert g.corrected_with == "real"
    assert (g.p_support, g.p_neutral, g.p_oppose) == pytest.approx(pi)
    assert (g.judged_p_support, g.judged_p_neutral, g.judged_p_oppose) == pytest.approx(q)
    h = got.loc["h"][["p_support", "p_neutral", "p_oppose"]].to_numpy(float)
    assert (h >= 0).all() and h.sum() == pytest.approx(1) and h[0] > 0.9
    for s in ("support", "neutral", "oppose"):
        assert (got[f"p_{s}_lo"] <= got[f"p_{s}"] + 1e-12).all() and (got[f"p_{s}"] <= got[f"p_{s}_hi"] + 1e-12).all()
        assert got[f"p_{s}_lo"].min() >= 0 and got[f"p_{s}_hi"].max() <= 1
    assert tables["judge_correction"] == 9 and tables["judge_calibration"] == 3
    assert tables["judge_correction_check"] == 2 * 3 * 4  # groupings x methods x (stances + all)
    assert tables["judge_label_agreement"] == len(packaged_pass_pairs())  # the packaged sets' two passes
