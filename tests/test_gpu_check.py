"""benchmarks/gpu_check.py on the CPU, so that the GPU check cannot rot between the rare runs on a GPU: its GPU
plan validates, its measurements (token counting, nvidia-smi polling) measure what they say, a real SFT part runs
and is measured from its train log, and a broken part fails the script, named, with its log tail."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up while the class is built
_spec.loader.exec_module(gpu_check)


def run_check(tmp_path: Path, *args: str, timeout: int = 1800) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--out", str(out), "--workdir", str(tmp_path / "work"),
                           "--budget", "3000", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    summary = json.loads(out.read_text())
    return proc, {**summary, "parts": {p["name"]: p for p in summary["parts"]}}


def test_gpu_plan_validates_and_runs_every_mode_through_the_launcher(tmp_path):
    """The GPU-only half cannot run here, so its config and commands are checked as far as a CPU can."""
    config = gpu_check.study_config(["llama", "qwen3"], gpu=True, steps=20)
    parts = {p.name: p for p in gpu_check.plan(config, ["llama", "qwen3"], True, tmp_path, threads=8)}
    train = {f"{s}-{f}-{m}" for s in ("sft", "dpo") for f, modes in gpu_check.MODES.items() for m in modes}
    assert train == {n for n, p in parts.items() if p.kind == "train"}
    for name in train:
        command = parts[name].command
        assert command[1:4] == ["-m", "posttrain", "sft" if name.startswith("sft") else "pref"]
        job = json.loads(Path(command[command.index("--job") + 1]).read_text())
        assert job["spec"]["max_steps"] == 20 and job["spec"]["training"]["precision"] == "bf16"
        assert job["launch"]["precision"] == "bf16"
        if name.endswith("plain"):
            assert job["launch"]["processes"] == 0 and job["launch"]["deepspeed"] is None
        else:
            assert parts[name].gpu_only and job["launch"]["processes"] == 1
            deepspeed = Path(job["launch"]["deepspeed"])
            assert deepspeed.name == f"{name.rsplit('-', 1)[1]}.json" and deepspeed.is_file()
        if name.startswith("dpo"):
            assert job["spec"]["algorithm"] == "dpo" and job["start"].endswith(f"sft-{name[4:]}/checkpoints.json")
    for family in ("llama", "qwen3"):  # the probes read a ZeRO-3 save: the gathered 16-bit weights
        assert parts[f"values-generation-{family}"].needs == [f"dpo-{family}-zero3", "judge-head"]
    vllm = parts["values-generation-vllm-llama"]  # the cluster's engine, on the same checkpoint as the HF part
    job = json.loads(Path(vllm.command[vllm.command.index("--job") + 1]).read_text())
    assert vllm.gpu_only and vllm.needs_vllm and job["spec"]["generation"]["engine"] == "vllm"
    assert job["step"] == json.loads(Path(parts["values-generation-llama"].command[
        parts["values-generation-llama"].command.index("--job") + 1]).read_text())["step"]
    seeds = parts["vllm-seeds-llama"]
    assert seeds.needs_vllm and seeds.command[2] == "--vllm-seeds" and "dpo-llama-zero3" in seeds.command[3]
    command = parts["complexity-llama"].command
    complexity = json.loads(Path(command[command.index("--job") + 1]).read_text())
    assert set(complexity["references"]) == {"run_start", "base"}
    # one pass over the data: every example is read once in --steps steps
    assert config["datasets"]["mix"]["n_examples"] == 20 * config["sft"]["sft-llama-plain"]["training"][
        "per_device_train_batch_size"]


def test_counting_wrapper_counts_each_real_token_once(tmp_path):
    """Padding is not counted, a cached decoding step counts one token per row, and a model called inside another
    (the decoder inside the causal LM) is counted once; the module's own exit status and arguments pass through."""
    (tmp_path / "count_me.py").write_text(
        "import sys, torch\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,\n"
        "    num_attention_heads=2, num_key_value_heads=1, intermediate_size=32))\n"
        "ids = torch.ones(3, 5, dtype=torch.long)\n"
        "mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])\n"
        "out = model(input_ids=ids, attention_mask=mask, use_cache=True)\n"
        "model(input_ids=ids[:, :1], attention_mask=torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1),\n"
        "      past_key_values=out.past_key_values)\n"
        "model.model(ids)\n"
        "print('args', sys.argv[1:])\n"
        "sys.exit(3)\n")
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--child", str(report), "count_me", "--a", "1"],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "args ['--a', '1']" in proc.stdout
    counted = json.loads(report.read_text())
    mask_tokens = 3 + 5 + 1
    assert counted["forward_tokens"] == mask_tokens + 3 * 1 + 3 * 5
    assert counted["forward_calls"] == 3 and counted["forward_span_s"] > 0
    assert counted["cuda_peak_allocated_mib"] is None  # no GPU here


def fake_nvidia_smi(folder: Path, readings: list[int]) -> str:
    """An nvidia-smi that answers the memory query with the next of `readings` (then the last one again)."""
    script = folder / "nvidia-smi"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import pathlib, sys\n"
        f"readings = {readings}\n"
        f"calls = pathlib.Path({str(folder / 'calls')!r})\n"
        "n = len(calls.read_text()) if calls.exists() else 0\n"
        "calls.write_text('x' * (n + 1))\n"
        "assert '--query-gpu=memory.used' in sys.argv\n"
        "print(readings[min(n, len(readings) - 1)])\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_gpu_memory_is_the_peak_reading_above_the_one_before(tmp_path):
    memory = gpu_check.GpuMemory(interval=0.01, command=fake_nvidia_smi(tmp_path, [1000, 1500, 2600, 1200]))
    with memory:
        deadline = time.monotonic() + 30
        while len((tmp_path / "calls").read_text()) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert memory.error is None and memory.baseline == 1000 and memory.added == 1600
    missing = gpu_check.GpuMemory(command=str(tmp_path / "no-such-nvidia-smi"))
    with missing:
        pass
    assert missing.added is None and "no-such-nvidia-smi" in missing.error


def test_a_part_is_timed_out_with_its_workers_and_its_memory_is_its_largest_process(tmp_path):
    """The memory of a part is that of its largest process, not of this script (which every child is forked
    from), and a part past its time limit is stopped together with the processes it started."""
    grow = "import time; b = bytearray(300 << 20); time.sleep(0.6)"
    command = [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grow!r}])"]
    code, wall, rss = gpu_check.run_process(command, tmp_path / "grow.log", timeout=60, env=dict(os.environ))
    assert code == 0 and 300 <= rss < 350, rss
    sleeper = [sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '600'])"]
    code, wall, _ = gpu_check.run_process(sleeper, tmp_path / "sleep.log", timeout=1, env=dict(os.environ))
    assert code is None and wall < 30
    assert not subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True, check=False).stdout  # worker too


def test_training_figures_come_from_the_train_log_and_16_bit_snapshots_are_a_problem(tmp_path):
    """A ZeRO run in bf16 keeps the module in bf16 and saves it so (seen with DeepSpeed's CPU accelerator): the
    check must say so, while the parts after it still run."""
    import torch
    from safetensors.torch import save_file

    run = tmp_path / "run"
    log = [{"step": 1, "loss": 2.0, "num_tokens": 100.0}, {"step": 2, "loss": 1.5, "num_tokens": 230.0},
           {"step": 2, "train_runtime": 0.5, "train_loss": 1.75}]
    (run / "checkpoints" / "step-0").mkdir(parents=True)
    (run / "checkpoints" / "step-2").mkdir()
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    save_file({"w": torch.zeros(2)}, run / "checkpoints" / "step-0" / "model.safetensors")
    save_file({"w": torch.zeros(2, dtype=torch.bfloat16)}, run / "checkpoints" / "step-2" / "model.safetensors")
    part = gpu_check.Part("sft-x-zero2", "train", [], run_dir=run)
    figures = gpu_check.measure_train(part)
    assert figures["tokens"] == 230 and figures["tokens_per_s"] == 460 and figures["loss_last"] == 1.5
    assert figures["snapshot_dtypes"] == {"step-0": ["F32"], "step-2": ["BF16"]} and "step-2" in figures["problem"]
    save_file({"w": torch.zeros(2)}, run / "checkpoints" / "step-2" / "model.safetensors")
    assert "problem" not in gpu_check.measure_train(part)
    (run / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": float("nan"), "num_tokens": 1}) + "\n")
    with pytest.raises(ValueError, match="not finite"):
        gpu_check.measure_train(part)


def test_real_sft_part_is_measured_and_a_broken_part_fails_the_check_by_name(tmp_path):
    proc, summary = run_check(tmp_path, "--families", "llama", "--steps", "2", "--only", "dpo-llama-plain",
                              "--break", "data-pairs")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = summary["parts"]
    assert list(parts) == ["data-mix", "data-pairs", "sft-llama-plain", "dpo-llama-plain"]
    assert not summary["ok"] and summary["device"] == "cpu" and summary["precision"]["training"]["precision"] == "fp32"

    broken = parts["data-pairs"]
    assert broken["status"] == "failed" and broken["reason"] == "exit status 2"
    assert "--gpu-check-broken-option" in broken["log_tail"]  # argparse names the bad option
    assert "FAILED data-pairs: exit status 2" in proc.stdout and "--gpu-check-broken-option" in proc.stdout
    assert parts["dpo-llama-plain"]["status"] == "not_run" and "data-pairs" in parts["dpo-llama-plain"]["reason"]
    assert "dpo-llama-plain: needs data-pairs" in proc.stdout

    sft = parts["sft-llama-plain"]
    assert parts["data-mix"]["status"] == sft["status"] == "ok"
    log = [json.loads(line) for line in (tmp_path / "work" / "runs" / "sft-llama-plain" / "train_log.jsonl")
           .read_text().splitlines()]
    runtime = next(r["train_runtime"] for r in log if "train_runtime" in r)
    assert sft["steps"] == 2 and sft["tokens"] == max(r["num_tokens"] for r in log if "num_tokens" in r) > 0
    assert sft["tokens_per_s"] == pytest.approx(sft["tokens"] / runtime)
    # every example read once: the trainer's count is the data's tokens (chat template, cut at max_length)
    from posttrain.models import load_tokenizer

    tokenizer = load_tokenizer({"tiny": {"family": "llama"}})
    rows = [json.loads(line) for line in (tmp_path / "work" / "data" / "mix.jsonl").read_text().splitlines()]
    data_tokens = sum(min(len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False)),
                          summary["sizes"]["max_length"]) for r in rows)
    assert sft["tokens"] == pytest.approx(data_tokens, rel=0.1)
    assert all(math.isfinite(sft[k]) and sft[k] > 0 for k in ("wall_s", "max_rss_mib", "seconds", "loss_last"))
    assert "gpu_mem_mib" not in sft  # no GPU: not measured rather than made up


@pytest.mark.slow
def test_every_part_runs_on_the_cpu_with_the_gpu_parts_skipped(tmp_path):
    proc, summary = run_check(tmp_path, "--steps", "2")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    parts = summary["parts"]
    skipped = {n for n, p in parts.items() if p["status"] == "skipped"}
    assert skipped == {f"{s}-{f}-{m}" for s in ("sft", "dpo") for f, modes in gpu_check.MODES.items()
                       for m in modes if m != "plain"}
    ran = {n: p for n, p in parts.items() if n not in skipped}
    assert all(p["status"] == "ok" for p in ran.values()), {n: p.get("reason") for n, p in ran.items()}
    assert {n for n in ran if n.startswith("values-")} == {
        f"values-{m}-{f}" for m in ("forced_choice", "generation") for f in ("llama", "qwen3")}
    for name, p in ran.items():
        figures = ["wall_s", "max_rss_mib"] + ([] if name.startswith("data") else ["tokens", "tokens_per_s"])
        assert all(math.isfinite(p[k]) and p[k] > 0 for k in figures), (name, p)
    assert ran["values-generation-llama"]["generated_tokens"] > 0
    assert summary["ok"] and "all parts ok" in proc.stdout
