"""The whole DAG for real through `snakemake` on a tiny config (tiny Llama full FT + tiny Qwen3 LoRA), then the
DB's views against a hand computation on the same Parquet rows."""

import json
import re
import shutil
import subprocess
import sys

import duckdb
import pandas as pd
import pytest
from conftest import snakemake, write_config

from posttrain import precision
from posttrain.config import validate
from posttrain.plan import Layout, Plan
from posttrain.schedule import checkpoint_steps


def hand_drift(samples: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Drift from first principles: per-topic means, then last - first and the first step whose change has the
    extremum's sign and 95 % of its size (reported by the view only where the magnitude is significant)."""
    means = samples.groupby(["run", "step", "topic", "mode"], as_index=False)[
        ["p_support", "p_neutral", "p_oppose"]].mean()
    means["p_balance"] = means.p_support - means.p_oppose
    out = []
    for (run, topic, mode), g in means.groupby(["run", "topic", "mode"]):
        g = g.sort_values("step")
        steps = g.step.tolist()
        for stance in ("support", "neutral", "oppose", "balance"):
            v = g[f"p_{stance}"].tolist()
            change = [x - v[0] for x in v]
            peak = max(abs(c) for c in change)
            sign = next(1 if c > 0 else -1 for c in change if abs(c) == peak) if peak > 0 else 0
            reached = next(s for s, c in zip(steps, change) if sign * c >= fraction * peak) if peak > 0 else None
            out.append({"run": run, "topic": topic, "mode": mode, "stance": stance, "magnitude": v[-1] - v[0],
                        "drift_time": None if reached is None else (reached - steps[0]) / (steps[-1] - steps[0])})
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def study(tmp_path_factory, request):
    from conftest import TINY_CONFIG
    workdir = tmp_path_factory.mktemp("study")
    config = write_config(workdir / "tiny.yaml", TINY_CONFIG)
    result = snakemake(workdir, "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, TINY_CONFIG


def test_every_checkpoint_is_probed_and_stored(study):
    workdir, config = study
    with duckdb.connect(str(workdir / "results" / "study.duckdb"), read_only=True) as con:
        runs = con.sql("SELECT run, stage, model, dataset FROM runs ORDER BY run").df()
        checkpoints = con.sql("SELECT run, step FROM checkpoints ORDER BY run, step").df()
        counts = con.sql("SELECT run, step, mode, count(*) AS n FROM stance_samples GROUP BY ALL").df()
        generated = con.sql("SELECT * FROM stance_samples WHERE mode = 'generation'").df()
    assert runs.run.tolist() == sorted([*config["sft"], *config["pref"]])
    for run, spec in {**config["sft"], **config["pref"]}.items():
        steps = checkpoint_steps(spec["checkpoints"], spec["max_steps"])
        assert checkpoints[checkpoints.run == run].step.tolist() == steps
        assert 0 in steps
        for mode, n in (("forced_choice", 11 * 3), ("generation", 11 * 1 * 2)):  # topics x prompts (x samples)
            mine = counts[(counts.run == run) & (counts["mode"] == mode)]
            assert sorted(mine.step) == steps and set(mine.n) == {n}, (run, mode)
    assert generated.response.notna().all() and generated.seed.notna().all()
    assert (generated.judge == "tiny-head").all() and (generated.n_tokens <= 8).all()
    assert set(generated[generated.run == "sft-qwen3"].template) == {"chat/thinking-off"}
    sums = generated[["p_support", "p_neutral", "p_oppose"]].sum(axis=1)
    assert sums.to_numpy() == pytest.approx(1.0)
    # the same prompt and sample at two checkpoints of a run share a seed
    assert generated.groupby(["run", "prompt_id", "sample_id"]).seed.nunique().eq(1).all()
    for plot in ("stance-sft-llama", "drift-heatmap", "stance-shares"):
        assert (workdir / "results" / "plots" / f"{plot}.png").stat().st_size > 10_000
    assert json.loads((workdir / "results" / "reward" / "rm-support" / "metrics.json").read_text())["heldout_pairs"]


def test_preference_runs_start_from_their_parent_and_data_stance_is_stored(study):
    workdir, config = study
    with duckdb.connect(str(workdir / "results" / "study.duckdb"), read_only=True) as con:
        parents = dict(con.execute("SELECT run, parent_run FROM runs WHERE stage = 'pref'").fetchall())
        sides = con.sql("SELECT dataset, side, count(*) AS n FROM datasets_stance GROUP BY ALL ORDER BY ALL").df()
        gap = con.sql("SELECT dataset FROM value_gap WHERE topic = '(all)' ORDER BY dataset").df()
    assert parents == {run: spec["from"]["run"] for run, spec in config["pref"].items()}
    probes = workdir / "results" / "probes" / "values"
    for run, spec in config["pref"].items():  # step 0 = the parent's checkpoint: the same probe rows
        parent_rows = pd.read_parquet(probes / spec["from"]["run"] / f"step-{spec['from'].get('step', 6)}.parquet")
        start_rows = pd.read_parquet(probes / run / "step-0.parquet")
        assert start_rows.drop(columns=["run", "step"]).equals(parent_rows.drop(columns=["run", "step"]))
    assert gap.dataset.tolist() == ["gap-oppose", "gap-support"]
    assert set(sides.dataset) == set(config["datasets"])
    assert (sides[sides.dataset == "gap-support"].n == 8).all()  # probes.datasets.max_rows pairs, both sides


def test_copied_step_0_probes_run_without_torch(study, tmp_path):
    """A preference run's step-0 probes copy their parent's rows: the value probe always, the complexity probe when
    no weight delta is left to compute (here: its references cut to run_start, the checkpoint itself). Neither job
    imports torch (the import was most of its time), and the rows are the ones the workflow wrote."""
    workdir, config = study
    run = next(iter(config["pref"]))
    plan = Plan(json.loads(json.dumps(config)), root=str(workdir / "results"))
    value = {**plan.job("value_probe_pref_start", run=run), "out": str(tmp_path / "value.parquet")}
    complexity = plan.job("complexity_probe_pref_start", run=run)
    complexity = {**complexity, "out": str(tmp_path / "complexity.parquet"),
                  "references": {k: r for k, r in complexity["references"].items() if r["run"] == run}}
    for stage, job in (("value-probe", value), ("complexity-probe", complexity)):
        code = ("import json, sys; from posttrain import stages; "
                f"stages.run({stage!r}, json.loads({json.dumps(json.dumps(job))}), 2); "
                "assert 'torch' not in sys.modules, 'torch imported'")
        done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, (stage, done.stderr[-2000:])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "value.parquet"),
                                  pd.read_parquet(workdir / "results" / "probes" / "values" / run / "step-0.parquet"))
    wrote = pd.read_parquet(workdir / "results" / "complexity" / run / "step-0.parquet")
    copied = pd.read_parquet(tmp_path / "complexity.parquet")
    assert len(copied) and (copied.estimator != "weight_delta").all()
    cols = ["task", "estimator", "setting", "bits", "score"]
    pd.testing.assert_frame_equal(copied[cols].sort_values(cols).reset_index(drop=True),
                                  wrote[wrote.estimator != "weight_delta"][cols].sort_values(cols)
                                  .reset_index(drop=True))


def test_judges_are_validated_and_intervals_and_agreement_are_stored(study):
    workdir, config = study
    with duckdb.connect(str(workdir / "results" / "study.duckdb"), read_only=True) as con:
        f1 = dict(con.execute("SELECT judge, value FROM judge_eval WHERE metric = 'macro_f1'").fetchall())
        confusion = con.sql("SELECT * FROM judge_confusion").df()
        curve = con.sql("SELECT * FROM stance_curve").df()
        drift = con.sql("SELECT * FROM drift").df()
        agreement = con.sql("SELECT * FROM probe_agreement").df()
    assert set(f1) == {"minilm-stance", "tiny-lm", "tiny-head"}
    assert f1["minilm-stance"] > f1["tiny-lm"]  # a trained head on real embeddings beats a random LM's verdict
    assert confusion.n.sum() == 3 * 99  # every judge, every test response
    assert (curve.lo.notna().all() and (curve.lo <= curve.value + 1e-12).all()
            and (curve.value <= curve.hi + 1e-12).all())
    # a random tiny model hardly says the label words: its forced choice sits below the label-mass floor, and
    # its drift there is withheld (no magnitude, interval, star or drift time), with the reason
    withheld = drift[drift.withheld_reason.notna()]
    assert (withheld["mode"] == "forced_choice").all()
    assert withheld.magnitude.isna().all() and withheld.magnitude_lo.isna().all() and withheld.q_value.isna().all()
    assert withheld.drift_time_null_reason.str.startswith("withheld").all()
    moved = drift[(drift.max_abs_change > 0) & drift.withheld_reason.isna()]
    assert moved.magnitude_lo.notna().all() and (moved.magnitude_lo <= moved.magnitude_hi).all()
    timed = moved[moved.drift_time_null_reason.isna()]
    assert timed.significant.all()
    assert timed.drift_time.between(0, 1).all() and timed.drift_time_settled.between(0, 1).all()
    untimed = moved[moved.drift_time_null_reason.notna()]
    assert untimed.drift_time.isna().all()
    assert (untimed.drift_time_null_reason == "the magnitude's interval includes 0").all()
    assert not untimed.significant.fillna(False).astype(bool).any()
    n_checkpoints = sum(len(checkpoint_steps(s["checkpoints"], s["max_steps"]))
                        for s in [*config["sft"].values(), *config["pref"].values()])
    assert len(agreement) == n_checkpoints * 4  # every probed checkpoint x read-out
    assert (agreement.n_topics == 11).all()


def test_views_equal_a_hand_computation_on_the_parquet_rows(study):
    workdir, _ = study
    files = sorted((workdir / "results" / "probes" / "values").glob("*/*.parquet"))
    samples = pd.concat([pd.read_parquet(f) for f in files])
    want = hand_drift(samples, 0.95).set_index(["run", "topic", "mode", "stance"]).sort_index()
    with duckdb.connect(str(workdir / "results" / "study.duckdb"), read_only=True) as con:
        got = con.sql("SELECT run, topic, mode, stance, magnitude, drift_time, significant, magnitude_lo, "
                      "magnitude_hi, drift_time_null_reason, withheld_reason FROM drift").df()
        by_topic = con.sql("SELECT run, step, topic, mode, p_neutral FROM stance_by_topic").df()
    got = got.set_index(["run", "topic", "mode", "stance"]).sort_index()
    assert len(got) == len(want) == 5 * 11 * 4 * 2  # runs x topics x read-outs (3 stances, balance) x probe modes
    shown = got.withheld_reason.isna()  # forced choice below the label-mass floor is withheld (tested above)
    assert got.magnitude[shown].tolist() == pytest.approx(want.magnitude[shown].tolist(), abs=1e-12)
    assert (got.significant[shown] == ((got.magnitude_lo > 0) | (got.magnitude_hi < 0))[shown]).all()
    # a drift time is reported only for a significant magnitude (and, for forced choice, enough label mass)
    want.loc[got.drift_time_null_reason.notna(), "drift_time"] = None
    assert (got.drift_time_null_reason.isna() <= got.significant.fillna(False).astype(bool)).all()
    assert got.drift_time.fillna(-1).tolist() == pytest.approx(want.drift_time.fillna(-1).tolist(), abs=1e-12)
    mean = samples.groupby(["run", "step", "topic", "mode"]).p_neutral.mean()
    for row in by_topic.itertuples():
        assert row.p_neutral == pytest.approx(mean[(row.run, row.step, row.topic, row.mode)], abs=1e-12)


def test_every_job_before_the_store_has_one_benchmark_row(study):
    workdir, _ = study
    # Which jobs ran, by rule, from Snakemake's own log of the study's run (the first log; later ones are dry runs).
    log = min((workdir / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    ran = pd.Series(re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", log, flags=re.MULTILINE)).value_counts()
    ran = ran.drop("all")
    after_store = {"store", "stance_plot", "compare_plot", "drift_heatmap", "stance_shares", "pareto_plot",
                   "task_complexity_plot", "judge_plot", "value_gap_plot", "time_plot", "summary",
                   "release_snapshot", "release_trainer_state"}  # (retention: not upstream)
    files = sorted((workdir / "results" / "benchmarks").rglob("*.tsv"))
    on_disk = pd.Series([f.relative_to(workdir / "results" / "benchmarks").parts[0].removesuffix(".tsv")
                         for f in files]).value_counts()
    assert on_disk.sort_index().to_dict() == ran.sort_index().to_dict()  # every job wrote exactly one file
    with duckdb.connect(str(workdir / "results" / "study.duckdb"), read_only=True) as con:
        jobs = con.sql("SELECT * FROM job_benchmarks").df()
        by_rule = con.sql("SELECT * FROM job_time_by_rule").df().set_index("rule")
        runs = set(con.sql("SELECT run FROM runs").df().run)
        checkpoints = set(con.sql("SELECT run, step FROM checkpoints").df().itertuples(index=False, name=None))
    assert jobs.rule.value_counts().sort_index().to_dict() == ran.drop(list(after_store & set(ran.index))).to_dict()
    assert set(jobs.rule) == {"dataset", "sft", "pref", "reward_model", "judge_head", "judge_eval", "value_probe",
                              "value_probe_pref_start", "dataset_stance", "complexity_probe",
                              "complexity_probe_pref_start"}
    assert (jobs.wall_s > 0).all() and jobs.path.is_unique
    assert set(jobs.run.dropna()) == runs
    stepped = jobs[jobs.step.notna()]
    assert set(zip(stepped.run, stepped.step.astype(int))) == checkpoints
    assert by_rule.jobs.sum() == len(jobs) and by_rule.wall_s.sum() == pytest.approx(jobs.wall_s.sum())
    from conftest import REPO
    query = "SELECT * FROM job_time_by_rule"
    assert f"`{query}`" in (REPO / "README.md").read_text()  # the query the README points to
    with duckdb.connect(str(workdir / "results" / "study.duckdb"), read_only=True) as con:
        table = con.sql(query).df()
    assert table.rule.tolist() == by_rule.index.tolist() and table.share.sum() == pytest.approx(1, abs=0.005)


def test_rerun_is_a_no_op_and_config_change_reruns_only_its_run(study):
    workdir, config = study
    config_path = workdir / "tiny.yaml"
    assert "Nothing to be done" in snakemake(workdir, "-n", "--configfile", str(config_path)).stdout
    changed = json.loads(json.dumps(config))
    changed["sft"]["sft-qwen3"]["training"]["learning_rate"] = 5e-4
    write_config(workdir / "changed.yaml", changed)
    plan = snakemake(workdir, "-n", "--configfile", str(workdir / "changed.yaml")).stdout
    assert "output: results/runs/sft-qwen3/checkpoints.json" in plan
    assert "output: results/runs/sft-llama/checkpoints.json" not in plan
    assert "output: results/probes/values/sft-llama/" not in plan
    changed = json.loads(json.dumps(config))
    changed["datasets"]["gap-oppose"]["value_gap"] = 0.25  # a synthetic set: only the run trained on it reruns
    write_config(workdir / "changed.yaml", changed)
    plan = snakemake(workdir, "-n", "--configfile", str(workdir / "changed.yaml")).stdout
    assert "output: results/data/gap-oppose.jsonl" in plan
    assert "output: results/runs/simpo-oppose/checkpoints.json" in plan
    for untouched in ("sft-llama", "sft-qwen3", "dpo-support", "ppo-support"):
        assert f"output: results/runs/{untouched}/checkpoints.json" not in plan


def test_retention_keeps_only_what_is_still_read_and_reruns_nothing(study, tmp_path):
    """The default retention (until_probed, trainer state removed when finished) on the tiny study."""
    workdir, config = study
    config = validate(json.loads(json.dumps(config)))
    runs = workdir / "results" / "runs"
    # what other runs read stays: where preference runs and reward models start, and the parents' step 0 (the
    # tiny study's complexity probes take `base` as a weight-delta reference); every other snapshot is gone
    starts = {(s["from"]["run"], s["from"]["step"])
              for s in [*config["pref"].values(), *config["reward_models"].values()]}
    bases = {(s["from"]["run"], 0) for s in config["pref"].values()}
    left = {(p.parent.parent.name, int(p.name.removeprefix("step-"))) for p in runs.glob("*/checkpoints/*")}
    assert left == starts | bases
    assert not list(runs.glob("*/trainer-state"))  # every run finished
    for run, spec in {**config["sft"], **config["pref"]}.items():
        gone = {f"step-{s}.json" for s in checkpoint_steps(spec["checkpoints"], spec["max_steps"])
                if (run, s) not in left}
        assert {p.name for p in (runs / run / "retention").iterdir()} == gone | {"trainer-state.json"}, run
    assert (workdir / "results" / "reward" / "rm-support" / "model" / "config.json").is_file()  # PPO's, kept
    for policy in ("all", "last"):  # a change of policy reruns no job (the default's no-op: the test above)
        write_config(workdir / "changed.yaml", {**study[1], "retention": {"checkpoints": policy}})
        assert "Nothing to be done" in snakemake(workdir, "-n", "--configfile", str(workdir / "changed.yaml")).stdout

    # a probe output deleted by hand (in a copy of the study): its snapshot is gone, and the job says how to
    # get it back
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)  # copy2: the mtimes that snakemake compares come along
    probe = "results/probes/values/sft-llama/step-2.parquet"
    (copy / probe).unlink()
    failed = snakemake(copy, probe, "--cores", "1", "--configfile", str(copy / "tiny.yaml"))
    assert failed.returncode != 0
    log = (copy / Layout().log("value_probe", "sft-llama/step-2")).read_text()
    assert "was removed by retention" in log and "--forcerun results/runs/sft-llama/checkpoints.json" in log


def test_readme_queries_work_and_query_command_prints(study, monkeypatch, capsys):
    from conftest import REPO

    from posttrain.cli import main as cli

    workdir, _ = study
    db = str(workdir / "results" / "study.duckdb")
    readme = (REPO / "README.md").read_text()
    sql = readme.split("## Querying the results", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    queries = [q.strip() for q in sql.split(";") if q.strip()]
    assert len(queries) == 2
    monkeypatch.chdir(REPO)  # as a reader runs them, from the repository root
    with duckdb.connect(db, read_only=True) as con:
        for q in queries:
            assert len(con.sql(q.replace("sft-valuemix", "sft-llama")).df()) > 0, q
    cli(["query", "SELECT count(*) AS n FROM drift", "--db", db])
    assert capsys.readouterr().out.split() == ["n", str(5 * 11 * 4 * 2)]  # runs x topics x read-outs x modes


def test_every_checkpoint_gets_complexity_points_and_views(study):
    workdir, config = study
    with duckdb.connect(str(workdir / "results" / "study.duckdb"), read_only=True) as con:
        points = con.sql("SELECT * FROM complexity_points").df()
        frontier = con.sql("SELECT * FROM complexity_frontier").df()
        complexity = con.sql("SELECT * FROM task_complexity").df()
    steps = {run: checkpoint_steps(spec["checkpoints"], spec["max_steps"])
             for run, spec in {**config["sft"], **config["pref"]}.items()}
    children = {run: [p for p, spec in config["pref"].items() if spec["from"]["run"] == run] for run in config["sft"]}
    for run, at in steps.items():
        mine = points[points.run == run]
        assert sorted(mine.step.unique()) == at
        # zero-shot, instruction, icl k=1, prequential N=8 and 16 run on every checkpoint; a 4-bit weight delta
        # runs on its reference (the run's step 0; for a preference run's checkpoints also its SFT run's step 0)
        # and rebuilds a later checkpoint: it lands on step 0 of the reference's run
        deltas_on_start = len(at) - 1 + sum(len(steps[c]) for c in children.get(run, []))
        assert mine.groupby("step").size().to_dict() == {s: 5 + (deltas_on_start if s == 0 else 0) for s in at}, run
    delta = points[points.estimator == "weight_delta"]
    assert (delta.step == 0).all() and ((delta.run != delta.target_run) | (delta.target_step > 0)).all()
    own = points[points.estimator != "weight_delta"]
    assert ((own.run == own.target_run) & (own.step == own.target_step)).all()
    assert set(points.family) == {"inference", "data", "parametric"}
    assert set(points.precision) == {precision.INFERENCE_DEFAULT}  # the default: fp32, whatever the CPU
    assert set(points.format) == {"chat"}  # the tiny models have chat templates: the probe uses them
    assert (points.bits == points.payload_bits + points.driver_bits + points.harness_bits).all()
    assert ((points.score_lo <= points.score) & (points.score <= points.score_hi)).all()
    # a preference run's step 0 is its parent's checkpoint: its programs' rows are the parent's, copied, and
    # only the weight deltas (other references) are computed again
    cols = ["task", "estimator", "setting", "bits", "score"]
    for run, spec in config["pref"].items():
        parent = config["sft"][spec["from"]["run"]]
        at = spec["from"].get("step", parent["max_steps"])
        mine = own[(own.run == run) & (own.step == 0)]
        theirs = own[(own.run == spec["from"]["run"]) & (own.step == at)]
        pd.testing.assert_frame_equal(mine[cols].sort_values(cols).reset_index(drop=True),
                                      theirs[cols].sort_values(cols).reset_index(drop=True))
    # C(T, δ) for every δ of the default grid, the same for every run, at every checkpoint
    assert len(complexity) == 9 * len(points.groupby(["run", "step", "task"]))
    grid = tuple(round(0.1 * i, 1) for i in range(1, 10))
    assert complexity.groupby(["run", "step", "task"]).delta.apply(lambda d: tuple(sorted(d.round(1))) == grid).all()
    assert set(frontier.groupby(["run", "step"]).size().index) == set(points.groupby(["run", "step"]).size().index)
    for plot in ("pareto-sft-llama", "task-complexity"):
        assert (workdir / "results" / "plots" / f"{plot}.png").stat().st_size > 10_000


def test_findings_are_read_from_the_database(study):
    from posttrain.store.findings import _interval, findings

    workdir, config = study
    db = str(workdir / "results" / "study.duckdb")
    text = findings(db)
    with duckdb.connect(db, read_only=True) as con:
        rows = con.sql("SELECT run, magnitude, magnitude_lo, magnitude_hi FROM drift_over_seeds "
                       "WHERE topic = '(all)' AND mode = 'generation' AND stance = 'balance'").df()
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert sorted(rows.run) == sorted([*config["sft"], *config["pref"]])
    for r in rows.itertuples():  # every run's balance drift, as the DB has it
        assert f"| {r.run} | 1 | (b) | {_interval(r.magnitude, r.magnitude_lo, r.magnitude_hi)}" in text
    # the controls, tested as the config's datasets imply (no negative control beside them: against 0)
    assert "| dpo-support | superiority: drift > 0 |" in text and "| simpo-oppose | superiority: drift < 0 |" in text
    assert {"dataset_checks", "dataset_contamination", "label_mass", "drift_overall", "datasets"} <= tables
