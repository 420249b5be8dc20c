"""DeepSpeed through the sft stage's own launch (accelerate launch), on 2 CPU processes: DeepSpeed's CPU
accelerator with gloo stands in for 2 GPUs. ZeRO-3 snapshots gather full 16-bit-save weights (they load plainly
and equal ZeRO-2's), and SIGTERM to one process stops both at the same step with the state saved, from which
the rerun resumes with the same losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY_CONFIG

from posttrain import stages
from posttrain.models import load_checkpoint, load_model, load_tokenizer
from posttrain.plan import Plan

STEPS = 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny study's sft-llama job, as the plan writes it for 2 processes under ZeRO-3, with its data."""
    root = tmp_path_factory.mktemp("deepspeed")
    config = json.loads(json.dumps(TINY_CONFIG))
    config["models"]["tiny-llama"]["resources"] = {"train": {"gpus": 2, "deepspeed": "zero3"}}
    config["sft"]["sft-llama"].update(max_steps=STEPS, checkpoints={"steps": [10]})
    config["sft"]["sft-llama"]["training"]["state_every"] = 1000  # only the end of training (or a signal) saves
    plan = Plan(config, root=str(root), deepspeed_dir=REPO / "config" / "deepspeed")
    stages.run("data", plan.job("dataset", dataset="mix"))
    (root / "job.json").write_text(json.dumps(plan.job("sft", run="sft-llama")))
    return root


def launch(root: Path, zero: str, run_dir: Path, precision: str = "fp32", **changes) -> subprocess.Popen:
    """`posttrain sft --job JOB` as the workflow runs it: the stage relaunches itself in 2 processes."""
    job = json.loads((root / "job.json").read_text())
    assert job["launch"]["processes"] == 2 and job["launch"]["deepspeed"].endswith("zero3.json")
    job["launch"].update(deepspeed=str(REPO / "config" / "deepspeed" / f"{zero}.json"), precision=precision)
    job["spec"].update(changes)
    job["spec"]["training"]["precision"] = precision
    job["run_dir"] = str(run_dir)
    cmd = [sys.executable, "-m", "posttrain", "sft", "--job", json.dumps(job), "--threads", "1"]
    log = open(run_dir.with_suffix(".log"), "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def train(root: Path, zero: str, name: str) -> Path:
    run_dir = root / name
    assert launch(root, zero, run_dir).wait(timeout=600) == 0, run_dir.with_suffix(".log").read_text()[-3000:]
    return run_dir


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def zero3(setup):
    return train(setup, "zero3", "zero3")


def test_zero3_snapshots_are_whole_models_equal_to_zero2(setup, zero3):
    zero2 = train(setup, "zero2", "zero2")
    for run_dir in (zero2, zero3):  # DeepSpeed's own checkpoint format in the trainer state: it really ran
        assert (run_dir / "trainer-state" / f"checkpoint-{STEPS}" / f"global_step{STEPS}").is_dir()
    # ZeRO-2 all-reduces whole gradients, ZeRO-3 reduce-scatters partitions: the sums run in another order, so
    # the two agree to float rounding at first and part slowly (seen on a Xeon: 7e-9 at step 10, losses 2e-5
    # relative and weights 0.3 % of their training movement at step 40). A real difference is far larger.
    loss2, loss3 = losses(zero2), losses(zero3)
    assert ({s: v for s, v in loss3.items() if s <= 10}
            == pytest.approx({s: v for s, v in loss2.items() if s <= 10}, abs=1e-6))
    assert loss3 == pytest.approx(loss2, rel=1e-4)
    start, _ = load_checkpoint(zero2 / "checkpoints" / "step-0")
    for step in (0, 10, STEPS):
        a, _ = load_checkpoint(zero2 / "checkpoints" / f"step-{step}")
        b, _ = load_checkpoint(zero3 / "checkpoints" / f"step-{step}")
        assert a.num_parameters() == b.num_parameters() > 100_000  # gathered, not a rank's empty shard
        for (name, x), y, x0 in zip(a.state_dict().items(), b.state_dict().values(), start.state_dict().values()):
            if step <= 10:
                assert torch.allclose(x, y, atol=1e-5), (step, name)
            else:
                assert (y - x).norm() <= 0.01 * (x - x0).norm(), (step, name)
    last, _ = load_checkpoint(zero3 / "checkpoints" / f"step-{STEPS}")
    assert not torch.equal(start.model.embed_tokens.weight, last.model.embed_tokens.weight)


def test_bf16_under_zero3_snapshots_the_fp32_master_weights(setup):
    """DeepSpeed in bf16 holds the module in bf16: a snapshot must still be the fp32 masters (checkpoints stay in
    full precision; a short run's updates are finer than bf16's resolution)."""
    run_dir = setup / "zero3-bf16"
    proc = launch(setup, "zero3", run_dir, "bf16", max_steps=3, checkpoints={"steps": [1]})
    assert proc.wait(timeout=600) == 0, run_dir.with_suffix(".log").read_text()[-3000:]
    assert json.loads((run_dir / "checkpoints.json").read_text())["precision"] == "bf16"
    model_spec = json.loads((setup / "job.json").read_text())["model_spec"]
    start = load_model(model_spec, load_tokenizer(model_spec))
    first, _ = load_checkpoint(run_dir / "checkpoints" / "step-0")
    last, _ = load_checkpoint(run_dir / "checkpoints" / "step-3")
    assert first.dtype == last.dtype == torch.float32
    assert (json.loads((run_dir / "checkpoints" / "step-3" / "config.json").read_text()).get("dtype", "float32")
            == "float32")
    # DeepSpeed starts its fp32 masters from the bf16-cast module: step 0 is the start rounded to bf16 (so the
    # workflow probes a DeepSpeed-bf16 preference run's step 0 instead of copying its parent's rows) ...
    for name, x in start.state_dict().items():
        assert torch.equal(first.state_dict()[name], x.bfloat16().float()), name
    # ... and from there the snapshots are the fp32 masters, with updates finer than bf16 can hold
    weight = last.model.embed_tokens.weight
    assert not torch.equal(weight, first.model.embed_tokens.weight)
    assert not torch.equal(weight, weight.bfloat16().float())


def worker_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the training processes accelerate started under `launcher`."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv)
            cmdline = (proc / "cmdline").read_text()
        except (OSError, ValueError):
            continue
        if "posttrain\0sft" in cmdline and "RANK" in env and str(launcher) != proc.name:
            found[int(env["RANK"])] = int(proc.name)
    return found


def test_sigterm_to_one_rank_saves_state_on_both_and_resumes(setup, zero3):
    run_dir = setup / "interrupted"
    proc = launch(setup, "zero3", run_dir)
    log = run_dir / "train_log.jsonl"
    deadline = time.monotonic() + 300
    while not (log.is_file() and len(log.read_text().splitlines()) >= 5):
        assert proc.poll() is None and time.monotonic() < deadline, run_dir.with_suffix(".log").read_text()[-3000:]
        time.sleep(0.1)
    os.kill(worker_pids(proc.pid)[1], signal.SIGTERM)  # rank 1 only: rank 0 learns it through the all-reduce
    assert proc.wait(timeout=300) != 0
    states = list((run_dir / "trainer-state").glob("checkpoint-*"))
    assert len(states) == 1 and not (run_dir / "checkpoints.json").exists()
    stopped_at = int(states[0].name.split("-")[1])
    assert 5 <= stopped_at < STEPS
    assert "stopped by SIGTERM" in run_dir.with_suffix(".log").read_text()

    assert launch(setup, "zero3", run_dir).wait(timeout=600) == 0, run_dir.with_suffix(".log").read_text()[-3000:]
    assert f"resuming from {run_dir}/trainer-state/checkpoint-{stopped_at}" in run_dir.with_suffix(".log").read_text()
    again, straight = losses(run_dir), losses(zero3)
    assert sorted(again) == list(range(1, STEPS + 1))
    for step in range(stopped_at + 1, STEPS + 1):
        assert again[step] == pytest.approx(straight[step], abs=1e-6), step
