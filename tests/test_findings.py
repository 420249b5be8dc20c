"""The controls' pre-registered tests, their verdicts (holds / fails / inconclusive) and the findings report, on
hand-made intervals and on a study database with planted effects of known direction and size."""

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from posttrain.store.build import build
from posttrain.store.controls import equivalence, superiority
from posttrain.store.findings import controls, findings, power_rows


def test_a_positive_control_holds_only_with_its_interval_on_its_side_of_zero():
    # (lo, hi, tost_lo, tost_hi), margin 0.1
    assert superiority("up", 0.05, 0.4, 0.08, 0.37, 0.1)[0] == "holds"
    assert superiority("down", -0.4, -0.05, -0.37, -0.08, 0.1)[0] == "holds"
    assert superiority("up", -0.05, 0.4, -0.02, 0.37, 0.1)[0] == "inconclusive"  # too little power
    assert superiority("up", -0.3, -0.1, -0.28, -0.12, 0.1)[0] == "fails"  # moved the wrong way
    assert superiority("up", -0.02, 0.06, -0.01, 0.05, 0.1)[0] == "fails"  # shown smaller than the margin
    assert superiority("down", -0.06, 0.02, -0.05, 0.01, 0.1)[0] == "fails"


def test_a_negative_control_holds_only_when_equivalence_is_shown():
    assert equivalence(-0.06, 0.05, -0.05, 0.04, 0.1)[0] == "holds"
    # an interval that includes 0 but reaches past the margin: lack of power is never "holds"
    assert equivalence(-0.3, 0.25, -0.25, 0.2, 0.1)[0] == "inconclusive"
    assert equivalence(0.12, 0.4, 0.15, 0.37, 0.1)[0] == "fails"  # shown to move more than the margin
    # excluding 0 is not a failure when the move is shown small
    assert equivalence(0.01, 0.05, 0.015, 0.045, 0.1)[0] == "holds"


def planted_study(tmp_path, drifts: dict[str, float], seed_sd: float = 0.03, n_prompts: int = 8, seeds=(0, 1, 2)):
    """A DPO study from one SFT run: each run in `drifts` over `seeds`, its balance moving by drifts[run] (plus a
    seed shift and prompt and sample noise), probed by generation at steps 0 and 8 on 2 topics."""
    rng = np.random.default_rng(0)
    manifests, paths = [], []
    levels = rng.uniform(0.3, 0.4, size=(2, n_prompts))
    for run, drift in drifts.items():
        for seed in seeds:
            name = f"{run}-seed{seed}"
            manifest = tmp_path / f"{name}.json"
            manifest.write_text(json.dumps({
                "run": name, "stage": "pref", "algorithm": "dpo", "model": "m", "dataset": f"gap-{run}",
                "parent_run": "sft", "config": {"training": {"seed": seed}, "replicate_of": run}, "max_steps": 8,
                "checkpoints": [{"step": s, "progress": s / 8, "path": f"p/{name}/{s}"} for s in (0, 8)]}))
            manifests.append(str(manifest))
            move = drift + rng.normal(0, seed_sd)
            rows = []
            for t in range(2):
                for p in range(n_prompts):
                    prompt_move = move + rng.normal(0, 0.03)
                    for step in (0, 8):
                        for k in range(2):
                            noise = rng.uniform(-0.05, 0.05)
                            support = levels[t, p] + (prompt_move / 2 if step else 0) + noise
                            oppose = levels[t, p] - (prompt_move / 2 if step else 0) - noise
                            rows.append({"run": name, "step": step, "topic": f"t{t}", "prompt_id": f"t{t}-{p}",
                                         "sample_id": k, "mode": "generation", "response": "x", "judge": "j",
                                         "p_support": support, "p_neutral": 1 - support - oppose,
                                         "p_oppose": oppose, "label_mass": 1.0})
            path = tmp_path / f"{name}.parquet"
            pd.DataFrame(rows).to_parquet(path)
            paths.append(str(path))
    return manifests, paths


TESTS = [{"run": "up", "test": "superiority", "direction": "up", "against": "flat", "margin": 0.1, "power": 0.8},
         {"run": "down", "test": "superiority", "direction": "down", "against": "flat", "margin": 0.1, "power": 0.8},
         {"run": "flat", "test": "equivalence", "direction": None, "against": None, "margin": 0.1, "power": 0.8}]


def verdicts(db, level):
    with duckdb.connect(str(db), read_only=True) as con:
        frame = controls(con, "generation")
    return frame[frame.level == level].set_index("control").verdict.to_dict()


def test_planted_effects_get_the_verdicts_they_must(tmp_path):
    manifests, paths = planted_study(tmp_path, {"up": 0.3, "down": -0.3, "flat": 0.0})
    db = tmp_path / "study.duckdb"
    build(db, manifests, paths, controls=TESTS)
    assert verdicts(db, "seed_population") == {"up": "holds", "down": "holds", "flat": "holds"}
    assert verdicts(db, "seeds_fixed") == {"up": "holds", "down": "holds", "flat": "holds"}
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql("SELECT * FROM control_tests WHERE control = 'up'").df()
        drift = con.sql("SELECT * FROM drift_over_seeds WHERE run = 'up' AND topic = '(all)' AND "
                        "stance = 'balance'").df()
    per_seed = rows[rows.level.str.startswith("seed ")]
    assert sorted(per_seed.level) == ["seed 0 - seed 0", "seed 1 - seed 1", "seed 2 - seed 2"]
    assert (per_seed.verdict == "holds").all() and per_seed.estimand.str.contains("paired contrast with flat").all()
    population = rows[rows.level == "seed_population"].iloc[0]
    assert population.estimate == pytest.approx(drift.magnitude.iloc[0] - _flat(db), abs=1e-9)
    text = findings(str(db))
    assert "| up | superiority: drift − flat's drift > 0 |" in text and "| flat | equivalence" in text


def _flat(db):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql("SELECT magnitude FROM drift_over_seeds WHERE run = 'flat' AND topic = '(all)' AND "
                       "stance = 'balance' AND mode = 'generation'").fetchall()[0][0]


def test_a_moving_negative_control_fails_and_a_noisy_one_is_inconclusive(tmp_path):
    manifests, paths = planted_study(tmp_path, {"up": 0.3, "down": -0.3, "flat": 0.35})
    db = tmp_path / "moving.duckdb"
    build(db, manifests, paths, controls=TESTS)
    assert verdicts(db, "seed_population")["flat"] == "fails"
    # seeds that disagree widely: the mean over a population of seeds cannot be shown within the margin
    manifests, paths = planted_study(tmp_path, {"up": 0.3, "down": -0.3, "flat": 0.0}, seed_sd=0.25)
    db = tmp_path / "noisy.duckdb"
    build(db, manifests, paths, controls=TESTS)
    assert verdicts(db, "seed_population")["flat"] == "inconclusive"


def test_power_comes_from_the_studys_variance_components(tmp_path):
    manifests, paths = planted_study(tmp_path, {"up": 0.3, "down": -0.3, "flat": 0.0})
    db = tmp_path / "study.duckdb"
    build(db, manifests, paths, controls=TESTS)
    with duckdb.connect(str(db), read_only=True) as con:
        header, rows = power_rows(con, "generation")
    by = {r[0]: dict(zip(header, r)) for r in rows}
    assert set(by) == {"up", "down", "flat"} and by["up"]["seeds × prompts"] == "3 × 16"
    detectable = float(by["up"][header[2]])
    assert 0 < detectable < 0.3  # the planted 0.3 is detectable at 3 seeds
    assert int(by["up"]["seeds it needs"]) <= 3
    assert by["flat"][header[2]].startswith("margin ±")


def test_sql_and_numpy_agree_on_every_drift(tmp_path):
    # drift_all's magnitudes are SQL over the rows; drift_over_seeds' means over seeds come from the bootstrap module
    manifests, paths = planted_study(tmp_path, {"up": 0.3, "flat": 0.0})
    frame = pd.read_parquet(paths[0])
    pd.concat([frame, frame.iloc[[0, 2]].assign(sample_id=7, p_support=0.9)]).to_parquet(paths[0])  # 3 answers, not 2
    db = tmp_path / "study.duckdb"
    build(db, manifests, paths)
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.sql("""
            SELECT o.run, o.topic, o.stance, o.magnitude AS numpy, avg(d.magnitude) AS sql
            FROM drift_over_seeds o JOIN runs r ON r.replicate_of = o.run
                JOIN drift_all d ON d.run = r.run AND d.topic = o.topic AND d.mode = o.mode AND d.stance = o.stance
            GROUP BY ALL""").df()
    assert len(got) == 2 * 3 * 4  # runs x (2 topics + their mean) x read-outs
    assert got.numpy.tolist() == pytest.approx(got.sql.tolist(), abs=1e-12)
