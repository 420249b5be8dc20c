"""`snakemake --profile profiles/slurm` against a real one-node Slurm cluster (tests/slurm/cluster.sh):
the tiny study end to
end, a failing job, and a training job cancelled mid-way that is resubmitted and resumes from its trainer state.

The cluster is started here when it is not already up (installing Debian's slurm-wlm and munge when missing, as
on a fresh CI machine run as root) and every daemon started here is stopped by its PID afterwards. Where the
machine cannot run Slurm the tests are skipped, and the reason is printed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, TINY_CONFIG, snakemake, write_config

from posttrain.schedule import checkpoint_steps

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
PROFILES = ["--profile", str(REPO / "profiles" / "slurm"), "--profile", str(REPO / "tests" / "slurm" / "profile")]
SMALL = {"cpus": 1, "mem_mb": 2000, "runtime": 10}  # two jobs side by side on a 2-core test node


def sh(*cmd: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def cluster_up() -> bool:
    return shutil.which("scontrol") is not None and "UP" in sh("scontrol", "ping", timeout=20).stdout


def cannot_run_slurm() -> str | None:
    """Why this machine cannot host the test cluster (None: it can, and it is now up)."""
    if cluster_up():
        return None
    if sys.platform != "linux" or os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root on Linux"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "Slurm is not installed and there is no apt-get to install slurm-wlm"
    installed = sh("bash", str(CLUSTER), "install", timeout=600)
    if installed.returncode != 0:
        return f"apt-get install slurm-wlm munge failed: {installed.stdout[-500:]} {installed.stderr[-500:]}"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = cannot_run_slurm()
    if reason:
        print(f"\nSlurm tests skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    started = {}
    if not cluster_up():
        out = sh("bash", str(CLUSTER), "start", timeout=120)
        if out.returncode != 0:
            reason = f"the test cluster did not start: {out.stdout[-800:]} {out.stderr[-800:]}"
            print(f"\nSlurm tests skipped: {reason}", file=sys.stderr)
            pytest.skip(reason)
        started = {Path(f).name: int(pid) for f, pid in re.findall(r"^(/\S+\.pid) (\d+)$", out.stdout, re.MULTILINE)}
    yield
    if started:  # only what this fixture started; a cluster that was already up is left as it was
        jobs = sh("squeue", "-h", "-o", "%i").stdout.split()
        if jobs:
            sh("scancel", *jobs)
        for name in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            pid = started[name]
            os.kill(pid, signal.SIGTERM)
            for _ in range(60):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.25)
            else:
                os.kill(pid, signal.SIGKILL)
        assert not [p for p in started.values() if Path(f"/proc/{p}").exists()]


def slurm_config(**changes) -> dict:
    """The tiny study cut to one SFT run and one DPO run; training jobs ask for both CPUs of the node, others 1."""
    c = copy.deepcopy(TINY_CONFIG)
    c["models"] = {"tiny-llama": {"tiny": {"family": "llama"},
                                  "resources": {"train": {**SMALL, "cpus": 2}, "probe": SMALL}}}
    c["datasets"] = {k: c["datasets"][k] for k in ("mix", "gap-support")}
    c["sft"] = {"sft-llama": c["sft"]["sft-llama"]}
    c["pref"] = {"dpo-support": c["pref"]["dpo-support"]}
    c["reward_models"] = {}
    c["judges"] = {"tiny-lm": {"kind": "lm", "model": "tiny-llama"}}
    c["probes"]["judge"] = "tiny-lm"
    c["complexity"] = {"tasks": {}}
    c["resources"] = {"store": SMALL, "default": SMALL}
    c.update(changes)
    return c


def submitted(output: str) -> dict[str, list[int]]:
    """Slurm job ids by rule, from snakemake's 'submitted with SLURM jobid N (log: .../rule_X/...)' lines."""
    jobs: dict[str, list[int]] = {}
    for jobid, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_([a-z_]+)/", output):
        jobs.setdefault(rule, []).append(int(jobid))
    return jobs


def job_fields(jobid: int) -> dict[str, str]:
    """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge = 3600 s: a cancelled job is still there
    when its resubmission has finished on a loaded machine)."""
    return dict(re.findall(r"(\w+)=(\S+)", sh("scontrol", "show", "job", str(jobid)).stdout))


def test_tiny_study_runs_as_slurm_jobs(slurm, tmp_path):
    config = slurm_config()
    result = snakemake(tmp_path, *PROFILES, "--configfile", str(write_config(tmp_path / "tiny.yaml", config)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Using profiles" in output and "/slurm and" in output
    jobs = submitted(output)
    assert sorted(jobs) == ["dataset_stance", "judge_eval", "pref", "sft", "store", "value_probe"]
    assert len(jobs["value_probe"]) == 3 + 2  # sft-llama steps 0, 2, 6; dpo-support 1, 3 (its step 0 = sft's 6)
    sft = job_fields(jobs["sft"][0])  # the resources the config gives tiny-llama's training jobs
    assert (sft["JobState"], sft["NumCPUs"], sft["MinMemoryNode"], sft["TimeLimit"]) == \
        ("COMPLETED", "2", "2000M", "00:10:00")
    assert (sft["Partition"], sft["Account"]) == ("debug", "posttrain-tests")  # site settings from a profile
    with duckdb.connect(str(tmp_path / "results" / "study.duckdb"), read_only=True) as con:
        stored = dict(con.execute("SELECT run, list(DISTINCT step ORDER BY step) FROM stance_samples "
                                  "GROUP BY run").fetchall())
        drift = con.execute("SELECT count(*) FROM drift WHERE magnitude IS NOT NULL").fetchone()[0]
    for run, spec in {**config["sft"], **config["pref"]}.items():
        assert stored[run] == checkpoint_steps(spec["checkpoints"], spec["max_steps"])
    assert drift > 0
    assert (tmp_path / "results" / "plots" / "stance-dpo-support.png").stat().st_size > 10_000


def test_a_failing_job_fails_the_workflow_and_names_its_log(slurm, tmp_path):
    config = slurm_config(pref={})
    # a folder that is there when the workflow is parsed (validation checks that) but holds no model
    (tmp_path / "no-such-model").mkdir()
    config["models"]["gone"] = {"path": str(tmp_path / "no-such-model"), "resources": {"train": SMALL}}
    config["sft"]["sft-gone"] = {**config["sft"]["sft-llama"], "model": "gone"}
    result = snakemake(tmp_path, "results/runs/sft-gone/checkpoints.json", *PROFILES,
                       "--configfile", str(write_config(tmp_path / "bad.yaml", config)))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "results/logs/sft/sft-gone.log" in output  # the rule's log, where the error is
    assert re.search(r"\.snakemake/slurm_logs/rule_sft/sft-gone/\d+\.log", output)  # and the Slurm job's log
    assert "no config.json in" in (tmp_path / "results" / "logs" / "sft" / "sft-gone.log").read_text()


def test_cancelled_training_job_is_resubmitted_and_resumes(slurm, tmp_path):
    """scancel sends SIGTERM (then SIGKILL after KillWait), as a time limit does: the trainer saves its state at
    the end of the step, the job fails, the profile's retry resubmits it and training resumes from that step."""
    config = slurm_config(pref={})
    run = config["sft"]["sft-llama"]
    run.update(max_steps=150, checkpoints={"steps": [50, 100]})
    run["training"]["state_every"] = 1000  # no scheduled state save: only the signal leaves one
    path = write_config(tmp_path / "long.yaml", config)
    target = "results/runs/sft-llama/checkpoints.json"
    log = tmp_path / "slurm-run" / "results" / "runs" / "sft-llama" / "train_log.jsonl"
    (tmp_path / "slurm-run").mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"),
                             "--directory",
                             str(tmp_path / "slurm-run"), target, *PROFILES, "--configfile", str(path),
                             "--retries", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    cancelled = None
    deadline = time.monotonic() + 300
    while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 10:  # mid-training
            jobs = sh("squeue", "-h", "-t", "RUNNING", "-o", "%i").stdout.split()
            assert len(jobs) == 1, jobs
            cancelled = int(jobs[0])
            sh("scancel", jobs[0])
        time.sleep(0.2)
    output, _ = proc.communicate(timeout=600)
    assert cancelled is not None, output[-3000:]
    assert proc.returncode == 0, output[-4000:]
    jobs = submitted(output)["sft"]
    assert jobs[0] == cancelled and len(jobs) == 2
    assert job_fields(cancelled)["JobState"] == "CANCELLED"
    resumed = re.search(r"resuming from \S+/checkpoint-(\d+)",
                        (tmp_path / "slurm-run" / "results" / "logs" / "sft" / "sft-llama.log").read_text())
    assert resumed, "the resubmitted job started from scratch"
    stopped_at = int(resumed.group(1))
    assert 10 <= stopped_at < 150

    # torchtune-style: the same run without interruption gives the same losses after the resume point
    (tmp_path / "straight").mkdir()
    # like with like: 2 cores give the job the 2 threads the Slurm job had (cpus: 2); with 1 thread the float
    # reductions run in another order and the losses differ by ~1e-6
    straight = snakemake(tmp_path / "straight", target, "--cores", "2", "--configfile", str(path))
    assert straight.returncode == 0, straight.stderr[-3000:]

    def losses(workdir: Path) -> dict[int, float]:
        rows = [json.loads(line) for line in
                (workdir / "results" / "runs" / "sft-llama" / "train_log.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    again, expected = losses(tmp_path / "slurm-run"), losses(tmp_path / "straight")
    assert sorted(again) == list(range(1, 151))
    for step in range(stopped_at + 1, 151):
        assert again[step] == pytest.approx(expected[step], abs=1e-6), step
    manifest = json.loads((tmp_path / "slurm-run" / target).read_text())
    assert [c["step"] for c in manifest["checkpoints"]] == [0, 50, 100, 150]
