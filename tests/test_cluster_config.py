"""The cluster side without a cluster: `snakemake --profile profiles/slurm` from the repo root, the paper-scale config's
whole DAG (dry run, no network), per-model resources and launch commands, site overrides, and the launcher."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_CONFIG, write_config

from posttrain.config import ConfigError, load, validate
from posttrain.launch import command
from posttrain.plan import Plan
from posttrain.schedule import checkpoint_steps

CLUSTER = REPO / "config" / "cluster-study.yaml"


def dry_run(workdir: Path, *args: str) -> str:
    """A dry run typed from the repo root, as a researcher would (outputs under `workdir`)."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "-n", "--directory",
                             str(workdir), *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


def jobs(output: str) -> dict[str, dict]:
    """rule -> {count, blocks}: the dry run's job table and each job's printed block."""
    table = dict(re.findall(r"^(\w+)\s+(\d+)$", output.split("Job stats:")[1].split("Reasons:")[0], re.MULTILINE))
    blocks = re.split(r"\n(?=rule \w+:)", output)
    out = {rule: {"count": int(n), "blocks": []} for rule, n in table.items() if rule not in ("job", "total")}
    for block in blocks:
        m = re.match(r"rule (\w+):", block)
        if m and m.group(1) in out:
            out[m.group(1)]["blocks"].append(block)
    return out


@pytest.fixture(scope="module")
def cluster_dry_run(tmp_path_factory):
    return dry_run(tmp_path_factory.mktemp("cluster"), "--configfile", str(CLUSTER), "-p")


def test_profile_slurm_is_the_projects_and_the_cluster_dag_is_whole(cluster_dry_run):
    assert "Using profile profiles/slurm for setting default command line arguments" in cluster_dry_run
    config = load(CLUSTER)
    steps = {run: checkpoint_steps(s["checkpoints"], s["max_steps"]) for run, s in {**config["sft"],
                                                                                   **config["pref"]}.items()}
    found = jobs(cluster_dry_run)
    assert found["sft"]["count"] == 8 and found["pref"]["count"] == 26 * 5 and found["reward_model"]["count"] == 8
    # every checkpoint is probed. Every preference run trains in bf16 under DeepSpeed, whose fp32 masters start from
    # the bf16-cast parent: step 0 is not the parent bit for bit, so it is probed too rather than copied
    assert {config["pref"][r]["training"]["precision"] for r in config["pref"]} == {"bf16"}
    assert found["value_probe"]["count"] == sum(len(s) for s in steps.values())
    assert "value_probe_pref_start" not in found and "complexity_probe_pref_start" not in found
    assert found["complexity_probe"]["count"] == sum(len(s) for s in steps.values())
    models = {s["model"] for s in config["sft"].values()}
    assert {config["models"][m]["hub"] for m in models} == {
        "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-4B-Base", "Qwen/Qwen3-8B-Base"}
    generation = config["probes"]["values"]["generation"]
    assert (generation["samples"], generation["temperature"], generation["max_new_tokens"]) == (5, 0.7, 256)


def test_gpu_jobs_launch_through_accelerate_with_the_configured_zero_stage(cluster_dry_run):
    config = load(CLUSTER)
    blocks = {re.search(r"wildcards: \w+=([\w.-]+)", b).group(1): b for b in jobs(cluster_dry_run)["sft"]["blocks"]}
    for run, spec in config["sft"].items():
        train = config["models"][spec["model"]]["resources"]["train"]
        block = blocks[run]
        assert f"gpu={train['gpus']}" in block and f"mem_mb={train['mem_mb']}" in block
        assert f"runtime={train['runtime']}" in block  # (threads: a dry run caps them; tests/test_slurm.py checks)
        launch = job_in(block, "sft")["launch"]
        assert (launch["processes"], launch["precision"]) == (train["gpus"], "bf16"), block
        assert launch["deepspeed"].endswith(f"/config/deepspeed/{train['deepspeed']}.json"), block
        assert Path(launch["deepspeed"]).is_file()
    probe = next(b for b in jobs(cluster_dry_run)["value_probe"]["blocks"] if "run=sft-llama3-8b" in b)
    assert "gpu=1" in probe and "mem_mb=192000" in probe


def job_in(block: str, stage: str) -> dict:
    """The job spec a dry-run job block's shell command passes to `posttrain <stage> --job`."""
    line = next(line for line in block.splitlines() if f"posttrain {stage} --job" in line)
    argv = shlex.split(line.strip())
    return json.loads(argv[argv.index("--job") + 1])


def test_site_settings_come_from_a_second_profile(tmp_path):
    """On the tiny config: the profiles' merge does not depend on the study, and its DAG is 80 jobs, not 6,700."""
    site = tmp_path / "mysite"
    site.mkdir()
    (site / "profile.yaml").write_text(yaml.safe_dump({
        "default-resources": {"slurm_account": "my-lab", "slurm_partition": "cpu"},
        "set-resources": {"sft": {"slurm_partition": "gpu-a100", "gpu_model": "a100"}},
        "slurm-qos": "high"}))
    tiny = write_config(tmp_path / "tiny.yaml", TINY_CONFIG)
    output = dry_run(tmp_path / "out", "--profile", str(site), "--configfile", str(tiny))
    assert "Using profiles profiles/slurm and" in output
    sft = jobs(output)["sft"]["blocks"][0]
    assert "slurm_partition=gpu-a100" in sft and "gpu_model=a100" in sft and "slurm_account=my-lab" in sft
    store = jobs(output)["store"]["blocks"][0]
    assert "slurm_partition=cpu" in store and "gpu_model" not in store


def test_the_launcher_runs_plainly_on_cpu_and_through_accelerate_on_gpus():
    job = ["sft", "--job", "j"]
    assert command(job) == [sys.executable, "-m", "posttrain", "sft", "--job", "j"]
    zero3 = str(REPO / "config" / "deepspeed" / "zero3.json")
    argv = command(job, processes=4, deepspeed=zero3, precision="bf16")
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    assert argv[argv.index("--num_processes") + 1] == "4" and argv[argv.index("--mixed_precision") + 1] == "bf16"
    assert argv[argv.index("--deepspeed_config_file") + 1] == zero3
    assert argv[-5:] == ["-m", "posttrain", "sft", "--job", "j"]
    assert "--multi_gpu" in command(job, processes=2)
    with pytest.raises(ValueError, match="DeepSpeed needs"):
        command(job, processes=0, deepspeed=zero3)
    with pytest.raises(FileNotFoundError, match="zero9"):
        command(job, processes=2, deepspeed=str(REPO / "zero9.json"))


def test_zero3_saves_gather_16bit_weights():
    import json
    zero3 = json.loads((REPO / "config" / "deepspeed" / "zero3.json").read_text())["zero_optimization"]
    assert zero3["stage"] == 3 and zero3["stage3_gather_16bit_weights_on_model_save"] is True
    assert json.loads((REPO / "config" / "deepspeed" / "zero2.json").read_text())["zero_optimization"]["stage"] == 2


@pytest.mark.parametrize("change, message", [
    (lambda c: c["models"]["tiny-llama"].update(resources={"probe": {"deepspeed": "zero3"}}),
     "models.tiny-llama.resources.probe.deepspeed"),
    (lambda c: c["models"]["tiny-qwen3"].update(resources={"train": {"gpus": 2, "deepspeed": "zero3"}}),
     "sft.sft-qwen3.lora: .*zero2"),
    (lambda c: c["models"]["tiny-llama"].update(resources={"train": {"gpu": 2}}),
     "models.tiny-llama.resources.train.*gpu"),
    (lambda c: c["models"]["tiny-llama"].update(resources={"train": {"deepspeed": "zero2"}}),
     "models.tiny-llama.resources.train.deepspeed: .*set resources.train.gpus"),
    (lambda c: c["probes"]["values"].update(modes=["generation"], generation={
        "engine": "vllm", "vllm": {"tensor_parallel_size": 2}}),
     r"probes.values.generation.vllm.tensor_parallel_size: 2 GPUs, but models\.tiny-.*\.resources.probe.gpus is 0"),
])
def test_bad_resources_are_named(change, message):
    config = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_resources_stay_out_of_what_entry_points_receive():
    """Asking for more time or memory must not rerun finished jobs or restart a resumable run."""
    config = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    config["models"]["tiny-llama"]["resources"] = {"probe": {"runtime": 999}}
    judge = Plan(config).judge_spec("tiny-head")
    assert "resources" not in judge["model_spec"] and judge["model_spec"]["tiny"]["family"] == "llama"


def test_the_cost_estimate_bills_exactly_the_dags_jobs(cluster_dry_run):
    """`posttrain plan --cost` enumerates jobs itself (it runs before any workflow): rule by rule, they are the
    dry run's."""
    from collections import Counter

    from posttrain.cost import StudyCost

    billed = Counter(job["rule"] for job in StudyCost(Plan(load(CLUSTER))).jobs)
    dag = {rule: found["count"] for rule, found in jobs(cluster_dry_run).items() if rule != "all"}
    assert dict(billed) == dag


def test_the_cluster_generates_on_vllm_and_a_real_run_without_it_stops_before_any_job():
    """The cluster config's value probes draw their answers on vLLM. Where vLLM cannot run the jobs, the plan (and
    Snakemake's onstart, before the first job of a real run) names the key and the install line; a dry run still
    plans (this machine need not run the jobs)."""
    plan = Plan(load(CLUSTER))
    assert plan.engine == "vllm"
    install = r"pip install -e '\.\[vllm\]' && pip install --no-deps vllm==0\.32\.0"
    with pytest.raises(ConfigError, match=r"generation\.engine: the rules' conda environment .*" + install):
        plan.check_engine(conda=True)
    tiny = Plan(yaml.safe_load(yaml.safe_dump(TINY_CONFIG)))
    assert tiny.engine == "hf" and tiny.check_engine(conda=True) is None
    if importlib.util.find_spec("vllm") is not None:
        plan.check_engine()
        return
    with pytest.raises(ConfigError, match=r"generation\.engine: vllm is not installed in this environment.*" + install):
        plan.check_engine()
