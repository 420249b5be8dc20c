"""The SFT stage for real on tiny models: snapshots on schedule (step 0 = the starting weights), manifest,
LoRA, and torchtune-style resumption: kill mid-way, rerun, later losses identical to an uninterrupted run.
Jobs come from the study plan, as the workflow's do."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posttrain import stages
from posttrain.models import load_checkpoint, load_model, load_tokenizer
from posttrain.plan import Plan
from posttrain.retention import release_snapshot

DATA_SPEC = {"kind": "generated_sft", "n_examples": 48, "value_fraction": 0.5, "short_answer_fraction": 0.5,
             "stance_mix": {"support": 0.2, "neutral": 0.6, "oppose": 0.2}, "seed": 0}
TRAINING = {"learning_rate": 1e-3, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
            "max_length": 128, "lr_scheduler_type": "linear", "warmup_steps": 2, "weight_decay": 0.0,
            "max_grad_norm": 1.0, "seed": 0, "precision": "fp32", "state_every": 4}


def sft_job(root, family="llama", lora=False, max_steps=10, steps=(3, 7), precision="fp32") -> dict:
    """The job of SFT run `r` of a one-run study under `root` (its data prepared once per root)."""
    config = {"models": {f"tiny-{family}": {"tiny": {"family": family}}}, "datasets": {"mix": DATA_SPEC},
              "sft": {"r": {"model": f"tiny-{family}", "dataset": "mix", "max_steps": max_steps,
                            "checkpoints": {"steps": list(steps)}, "training": {**TRAINING, "precision": precision},
                            "lora": {"enabled": lora, "r": 4, "alpha": 8, "dropout": 0.0,
                                     "target_modules": "all-linear"}}}}
    plan = Plan(config, root=str(root))
    data = plan.job("dataset", dataset="mix")
    if not (root / "data" / "mix.jsonl").is_file():
        stages.run("data", data)
    return plan.job("sft", run="r")


def run_dir(job) -> Path:
    return Path(job["run_dir"])


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_sft_writes_scheduled_snapshots_and_manifest(tmp_path, family):
    job = sft_job(tmp_path, family)
    stages.run("sft", job)
    tmp_path = run_dir(job)
    manifest = json.loads((tmp_path / "checkpoints.json").read_text())
    assert [c["step"] for c in manifest["checkpoints"]] == [0, 3, 7, 10]
    assert [c["progress"] for c in manifest["checkpoints"]] == [0, 0.3, 0.7, 1.0]
    assert manifest["run"] == "r" and manifest["stage"] == "sft"
    tok = load_tokenizer(job["model_spec"])
    start = load_model(job["model_spec"], tok).state_dict()
    step0, _ = load_checkpoint(tmp_path / "checkpoints" / "step-0")
    step10, _ = load_checkpoint(tmp_path / "checkpoints" / "step-10")
    assert all(torch.equal(start[k], v) for k, v in step0.state_dict().items())  # step 0 = starting weights
    assert not torch.equal(step10.lm_head.weight, step0.lm_head.weight)  # training changed the weights
    log = losses(tmp_path)
    assert sorted(log) == list(range(1, 11))
    assert sum(log[s] for s in (8, 9, 10)) < sum(log[s] for s in (1, 2, 3))  # it learns


def test_lora_snapshots_are_merged_plain_models(tmp_path):
    job = sft_job(tmp_path, lora=True, max_steps=4, steps=(2,))
    stages.run("sft", job)
    tmp_path = run_dir(job)
    first, _ = load_checkpoint(tmp_path / "checkpoints" / "step-0")
    last, _ = load_checkpoint(tmp_path / "checkpoints" / "step-4")
    assert not (tmp_path / "checkpoints" / "step-4" / "adapter_config.json").exists()
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(first.state_dict()[q], last.state_dict()[q])  # the adapter is merged in
    assert torch.equal(first.lm_head.weight, last.lm_head.weight)  # only adapted modules move


def test_lora_init_depends_on_the_config_seed_not_on_what_ran_before(tmp_path):
    """LoRA's A matrices start random: they must come from training.seed, so that the same job gives the same
    run whatever the process did before it (an import that draws a random number, another stage)."""
    first = sft_job(tmp_path / "a", lora=True, max_steps=2, steps=(1,))
    stages.run("sft", first)
    torch.rand(1000)  # the global RNG moves on, as any earlier code might move it
    second = sft_job(tmp_path / "b", lora=True, max_steps=2, steps=(1,))
    stages.run("sft", second)
    a, _ = load_checkpoint(run_dir(first) / "checkpoints" / "step-2")
    b, _ = load_checkpoint(run_dir(second) / "checkpoints" / "step-2")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from posttrain import stages

class KillAt(TrainerCallback):  # SIGKILL: no cleanup, like a node failure or a Slurm time limit
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 6:
            os.kill(os.getpid(), signal.SIGKILL)

stages.run("sft", sys.argv[1], threads=2, callbacks=[KillAt()])
"""


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_killed_run_resumes_with_identical_later_losses(tmp_path, precision):
    # like with like: the same threads and precision in all three processes (the manifest records both)
    straight_job = sft_job(tmp_path / "straight", precision=precision)
    job = sft_job(tmp_path / "resumed", precision=precision)
    stages.run("sft", straight_job, threads=2)
    resumed = run_dir(job)
    killed = subprocess.run([sys.executable, "-c", KILLER, json.dumps(job)], capture_output=True, check=False)
    assert killed.returncode == -9
    assert not (resumed / "checkpoints.json").exists()
    assert (resumed / "trainer-state" / "checkpoint-4").is_dir()  # state_every=4: the last state before the kill
    assert max(losses(resumed)) == 5  # steps 5 was logged before the kill, and is redone on resume
    stages.run("sft", job, threads=2)
    straight, again = losses(run_dir(straight_job)), losses(resumed)
    assert sorted(again) == list(range(1, 11))
    for step in range(5, 11):
        assert again[step] == pytest.approx(straight[step], abs=1e-6), step
    a, _ = load_checkpoint(run_dir(straight_job) / "checkpoints" / "step-10")
    b, _ = load_checkpoint(resumed / "checkpoints" / "step-10")
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.dtype == torch.float32  # snapshots stay in full precision whatever the training precision
    manifest = json.loads((resumed / "checkpoints.json").read_text())
    assert (manifest["precision"], manifest["threads"]) == (precision, 2)


def test_finished_run_rerun_after_retention_trains_again_from_scratch(tmp_path, capsys):
    """`--forcerun` of a finished run whose snapshots retention removed (its trainer state kept): resuming from
    the final state would write no snapshot at all, so the run trains again from step 0, to the same losses."""
    job = sft_job(tmp_path, max_steps=4, steps=(2,))
    tmp_path = run_dir(job)
    stages.run("sft", job, threads=2)
    first = losses(tmp_path)
    assert (tmp_path / "trainer-state" / "checkpoint-4").is_dir()  # state_every=4: the finished run's state
    for step in (0, 2, 4):
        release_snapshot(tmp_path / "checkpoints.json", step, [], tmp_path / "retention" / f"step-{step}.json")
    (tmp_path / "checkpoints.json").unlink()  # snakemake removes a job's output before it runs the job
    capsys.readouterr()
    stages.run("sft", job, threads=2)
    out = capsys.readouterr().out
    assert "not resuming from" in out and "training from scratch" in out
    again = losses(tmp_path)
    assert sorted(again) == sorted(first) == [1, 2, 3, 4]
    assert [again[s] for s in again] == pytest.approx([first[s] for s in again], abs=1e-6)
    assert all((tmp_path / "checkpoints" / f"step-{s}" / "config.json").is_file() for s in (0, 2, 4))
    assert not (tmp_path / "retention").exists()  # the records of the removed snapshots went with them


def test_sigterm_is_caught_only_while_training(tmp_path):
    """During training SIGTERM means "save and stop" (tests/test_slurm.py, test_deepspeed.py); afterwards the
    process's own handler is back, so a later SIGTERM ends it as before."""
    before = signal.getsignal(signal.SIGTERM)
    job = sft_job(tmp_path, max_steps=2, steps=(1,))
    stages.run("sft", job)
    assert (run_dir(job) / "checkpoints.json").is_file()
    assert signal.getsignal(signal.SIGTERM) is before
