"""The study plan without Snakemake: config -> jobs, paths and resources. Every job it writes for the tiny, the
default and the cluster study passes its stage's check against the config schema, and no module but the plan
spells out a results/ path."""

import ast
import copy
from pathlib import Path

import pytest
from conftest import REPO, TINY_CONFIG

from posttrain import stages
from posttrain.config import read_yaml
from posttrain.plan import PLOTS, Layout, Plan


def every_job(plan: Plan):
    """(rule, wildcards) of every job of a study, enumerated from the plan alone."""
    c = plan.config
    yield from (("dataset", {"dataset": d}) for d in c["datasets"])
    yield from (("dequantise", {"model": m}) for m in c["models"] if "gguf" in c["models"][m])
    yield from (("sft", {"run": r}) for r in plan.sft_runs)
    yield from (("pref", {"run": r}) for r in plan.pref_runs)
    yield from (("reward_model", {"name": n}) for n in c["reward_models"])
    yield from (("judge_head", {"judge": j}) for j in c["judges"] if c["judges"][j]["kind"] in ("embedding", "lm_head"))
    yield from (("judge_eval", {"judge": j, "split": plan.judge_eval_split}) for j in plan.evaluated_judges)
    yield from (("dataset_stance", {"dataset": d}) for d in c["datasets"])
    for run in plan.runs:
        for step in plan.steps[run]:
            yield "value_probe", {"run": run, "step": step}
            if plan.complexity:
                yield "complexity_probe", {"run": run, "step": step}
    yield "store", {}
    for rule in PLOTS:
        yield rule, ({"run": plan.runs[0]} if "{run}" in PLOTS[rule][0] else {})
    yield "summary", {}
    yield from (("release_snapshot", {"run": r, "step": s}) for r, s in plan.removable())
    yield from (("release_trainer_state", {"run": r}) for r in plan.runs)


@pytest.mark.parametrize("study", ["tiny", "default", "cluster"])
def test_every_job_passes_its_stage_check(study):
    config = {"tiny": lambda: copy.deepcopy(TINY_CONFIG), "default": lambda: read_yaml(REPO / "config" / "config.yaml"),
              "cluster": lambda: read_yaml(REPO / "config" / "cluster-study.yaml")}[study]()
    plan = Plan(config)
    seen = set()
    for rule, w in every_job(plan):
        job = plan.job(rule, **w)
        if rule == "store":
            job.update(plan.store_inputs())  # the rule passes the file lists beside the job (--input)
        stages.check(job["stage"], job)
        seen.add(job["stage"])
        resources = plan.resources(rule, **w)
        assert set(resources) >= {"cpus", "gpus", "mem_mb", "runtime"}, rule
    # GGUF: default only; no PPO (so no reward model) in the default
    assert seen == set(stages.STAGES) - ({"dequantise"} if study != "default" else {"reward-model"})


def test_jobs_carry_resolved_paths_and_config_entries(tiny_config):
    plan = Plan(tiny_config, root="out")
    sft = plan.job("sft", run="sft-qwen3")
    assert sft["spec"] == plan.config["sft"]["sft-qwen3"]  # the config entry itself, unchanged
    assert (sft["data"], sft["run_dir"]) == ("out/data/mix.jsonl", "out/runs/sft-qwen3")
    assert "resources" not in sft["model_spec"] and sft["model_spec"]["tiny"]["family"] == "qwen3"
    assert sft["launch"] == {"processes": 0, "deepspeed": None, "precision": "auto"}
    ppo = plan.job("pref", run="ppo-support")
    assert ppo["start"] == "out/runs/sft-llama/checkpoints.json"
    assert ppo["reward_model"] == "out/reward/rm-support/model"
    assert "reward_model" not in plan.job("pref", run="dpo-support")
    # a preference run's step 0 is its parent's checkpoint: the probe copies the parent's rows
    assert plan.copies_parent("simpo-oppose", 0) and not plan.copies_parent("simpo-oppose", 3)
    start = plan.job("value_probe", run="simpo-oppose", step=0)
    assert start["same_as"] == "out/probes/values/sft-qwen3/step-1.parquet" and "spec" not in start
    later = plan.job("value_probe", run="simpo-oppose", step=3)
    assert "same_as" not in later and later["spec"]["judge"]["head"] == "out/judges/tiny-head/head.json"
    complexity = plan.job("complexity_probe", run="dpo-support", step=3)
    assert complexity["references"] == {
        "run_start": {"path": "out/runs/dpo-support/checkpoints/step-0", "run": "dpo-support", "step": 0},
        "base": {"path": "out/runs/sft-llama/checkpoints/step-0", "run": "sft-llama", "step": 0}}
    assert plan.inputs("complexity_probe_pref_start", run="dpo-support")["parent"] == \
        "out/complexity/sft-llama/step-6.parquet"


def test_deepspeed_training_starts_from_a_bf16_rounded_parent_so_step_0_is_probed(tiny_config):
    tiny_config["models"]["tiny-llama"]["resources"] = {"train": {"gpus": 2, "deepspeed": "zero2"}}
    tiny_config["pref"]["dpo-support"]["training"]["precision"] = "bf16"
    tiny_config["pref"]["ppo-support"]["training"]["precision"] = "fp32"
    plan = Plan(tiny_config, deepspeed_dir="config/deepspeed")
    assert "dpo-support" not in plan.exact_start_runs and "ppo-support" in plan.exact_start_runs
    assert "spec" in plan.job("value_probe", run="dpo-support", step=0)
    launch = plan.job("sft", run="sft-llama")["launch"]
    assert launch["processes"] == 2 and launch["deepspeed"] == "config/deepspeed/zero2.json"
    assert plan.resources("value_probe", run="dpo-support", step=0)["gpus"] == 0  # probes: the probe resources


def test_targets_follow_the_config(tiny_config):
    plan = Plan(copy.deepcopy(tiny_config))
    targets = plan.targets()
    assert targets[0] == "results/study.duckdb" and "results/plots/pref-drift.png" in targets
    assert "results/plots/task-complexity.png" in targets and "results/plots/pareto-sft-llama.png" in targets
    tiny_config["complexity"]["tasks"], tiny_config["pref"], tiny_config["reward_models"] = {}, {}, {}
    plain = Plan(tiny_config).targets()
    assert not any("pareto" in t or "task-complexity" in t or "pref-drift" in t for t in plain)


def test_a_bad_job_is_named_before_anything_runs(tiny_config, tmp_path):
    job = Plan(tiny_config, root=str(tmp_path)).job("sft", run="sft-llama")
    bad = copy.deepcopy(job)
    bad["spec"]["training"]["learning_rate"] = "fast"
    with pytest.raises(stages.JobError, match="spec.training.learning_rate"):
        stages.run("sft", bad)
    with pytest.raises(stages.JobError, match="missing data"):
        stages.run("sft", {k: v for k, v in job.items() if k != "data"})
    with pytest.raises(stages.JobError, match="unknown stage 'sfft'"):
        stages.check("sfft", job)
    assert not list(tmp_path.iterdir())  # nothing was started, nothing written


def test_only_the_plan_spells_out_the_results_layout():
    """String literals naming a results/ path, outside docstrings, anywhere in the package but the plan."""
    found = []
    for path in sorted((REPO / "posttrain").rglob("*.py")):
        if path.name == "plan.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node)}
        found += [f"{path.relative_to(REPO)}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and (node.value == "results" or node.value.startswith("results/") or "/results/" in node.value)]
    assert not found, found
    assert Layout("r").benchmark("value_probe", "run/step-3") == "r/benchmarks/value_probe/run/step-3.tsv"
    assert Path(Layout().manifest("x")).parts == ("results", "runs", "x", "checkpoints.json")
