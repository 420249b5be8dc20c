"""GPU check: every training mode and probe of posttrain, on one GPU, with nothing downloaded, in minutes.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu_check.json] [--cpu] [--families llama,qwen3]
        [--steps 20] [--budget 450] [--part-timeout 240] [--workdir DIR] [--only PARTS] [--break PART]

A tiny Llama and a tiny Qwen3 are built in place (posttrain.tiny: seeded random weights, the project's own
tokenizer), and every part runs in its own process, with the command line the workflow gives it, on the job
spec the study plan writes for it:
  data-mix, data-pairs             posttrain data: the SFT mix and the DPO pairs, sized so that
                                   --steps steps read every example once
  sft-<family>-<mode>              posttrain sft (which launches itself as its job says), --steps steps in bf16
  dpo-<family>-<mode>              the same for posttrain pref (DPO), from that SFT run's last checkpoint
        modes: plain (one process, no launcher), zero2 and zero3 (DeepSpeed through `accelerate launch`, one
        process per GPU, i.e. one here). The tiny Llama runs all three, the tiny Qwen3 plain and zero3: ZeRO-2
        shards only gradients and optimizer state, which nothing architecture-specific touches.
  judge-head                       posttrain judge-head: the lm_head judge (tiny Llama) fitted
  values-forced_choice-<family>    posttrain value-probe, one mode per part, on the final
  values-generation-<family>       checkpoint of the family's last DPO run (ZeRO-3's on a GPU: a gathered save)
  complexity-llama                 posttrain complexity-probe on the Llama's, against its run's start and base
  values-generation-vllm-llama     the generation part with probes.values.generation.engine: vllm (GPU, and only
                                   where vLLM is installed: pip install -e '.[vllm]')
  vllm-seeds-llama                 vLLM's per-request seeds: every (prompt, sample) asked twice, in different
                                   batch positions of one engine, must give the same answer (docs/engines.md)

With --cpu (or when no CUDA device is visible) the parts that need a GPU (DeepSpeed, bf16) are listed as
skipped and the rest run in fp32 on the CPU, so that tests/test_gpu_check.py keeps this script working.

Figures per part (benchmarks/README.md, "GPU check"):
  tokens_per_s    training: the trainer's own count of non-padding tokens (TRL's `num_tokens`, policy inputs) over
                  its `train_runtime`, both read from the run's train_log.jsonl. Probes: non-padding tokens fed
                  through any model forward (prompts, each generated token, the judge's reads, prequential
                  training), counted in the probe's process, over the seconds from its first forward to its last
  gpu_mem_mib     GPU only: the largest `nvidia-smi --query-gpu=memory.used` reading while the part ran, minus the
                  reading just before it started (all its processes: CUDA contexts, allocator pools, NCCL buffers)
  cuda_peak_allocated_mib   judge and probes: torch.cuda.max_memory_allocated() inside their process
  max_rss_mib     the largest peak resident set (VmHWM) of any one process of the part, read from /proc every 0.2 s
A part fails on a non-zero exit, a timeout, or a result that is not finite (a NaN loss, a NaN probability);
every failure is printed with the tail of its log, and the script then exits 1. So does a part that never ran
because a part it needs failed or the --budget ran out, and a training part whose snapshots are not stored in
F32 (status `problem`: the parts after it still run, since the snapshots load).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
# The device machine runs a bare checkout (no `pip install -e`): the project must import from the repo root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FAMILIES = ("llama", "qwen3")
MODES = {"llama": ("plain", "zero2", "zero3"), "qwen3": ("plain", "zero3")}
GPU_MODEL = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
             "intermediate_size": 1024}  # still tiny (about 4 M parameters), but no longer all launch overhead
MIB = 1024 * 1024


def precision_settings(gpu: bool) -> dict:
    """Where the check sets numeric precision, in one place: bf16 everywhere on a GPU, fp32 on the CPU (where the
    check only has to run, and an AVX2-only CPU would emulate bf16 slowly). Keys: the config's `precision`
    settings (training, value-probe modes, judge, complexity) and the launcher's flag."""
    p = "bf16" if gpu else "fp32"
    return {"training": {"precision": p}, "launch": p,
            "values": {"forced_choice": p, "generation": p}, "judge": p, "complexity": p}


def sizes(gpu: bool) -> dict:
    """Workloads: meaningful on a GPU, the smallest that still runs every code path on a CPU."""
    if gpu:
        return {"model": GPU_MODEL, "batch": 8, "max_length": 256, "threads": min(os.cpu_count() or 1, 8),
                "values": {"batch_size": 64, "generation": {"samples": 2, "max_new_tokens": 64, "batch_size": 128,
                                                            "max_prompts_per_topic": 5}},
                "complexity": {"tasks": {"arithmetic": {"n_test": 64, "n_train": 64}},
                               "estimators": {"zero_shot": {}, "prompting": {"icl_k": [1, 4]},
                                              "prequential": {"max_examples": 64},
                                              "weight_delta": {"bits": [4, 8]}},
                               "batch_size": 64}}
    return {"model": {}, "batch": 2, "max_length": 128, "threads": min(os.cpu_count() or 1, 2),
            "values": {"batch_size": 16, "max_prompts_per_topic": 1,
                       "generation": {"samples": 1, "max_new_tokens": 8, "batch_size": 16,
                                      "max_prompts_per_topic": 1}},
            "complexity": {"tasks": {"arithmetic": {"n_test": 4, "n_train": 8}},
                           "estimators": {"zero_shot": {}, "prompting": {"icl_k": [1]},
                                          "prequential": {"max_examples": 8, "batch": 4},
                                          "weight_delta": {"bits": [4]}},
                           "batch_size": 4}}


def study_config(families: list[str], gpu: bool, steps: int) -> dict:
    """The check's study, validated like any config (defaults filled); every part's spec is a piece of it."""
    from posttrain.config import validate

    size, prec = sizes(gpu), precision_settings(gpu)
    n = steps * size["batch"]  # one pass over the data: every example read once
    training = {"learning_rate": 5e-4, "per_device_train_batch_size": size["batch"], "max_length": size["max_length"],
                "lr_scheduler_type": "constant", "state_every": 1000, **prec["training"]}
    modes = {f: MODES[f] if gpu else ("plain",) for f in families}
    values = {k: v for k, v in size["values"].items()}
    return validate({
        "study": "gpu-check",
        # the judge reads with a tiny Llama whichever families are trained
        "models": {f"tiny-{f}": {"tiny": {"family": f, "seed": i, **size["model"]}}
                   for i, f in enumerate(sorted({*families, "llama"}, key=FAMILIES.index))},
        "datasets": {"mix": {"kind": "generated_sft", "n_examples": n, "seed": 0},
                     "pairs": {"kind": "synthetic_value_gap", "direction": "support", "value_gap": 1.0, "n_pairs": n}},
        "sft": {f"sft-{f}-{m}": {"model": f"tiny-{f}", "dataset": "mix", "max_steps": steps,
                                 "checkpoints": {"steps": [steps]}, "training": dict(training)}
                for f in families for m in modes[f]},
        "pref": {f"dpo-{f}-{m}": {"algorithm": "dpo", "from": {"run": f"sft-{f}-{m}"}, "dataset": "pairs",
                                  "max_steps": steps, "checkpoints": {"steps": [steps]}, "training": dict(training)}
                 for f in families for m in modes[f]},
        "judges": {"tiny-head": {"kind": "lm_head", "model": "tiny-llama", "precision": prec["judge"]}},
        "probes": {"values": {**values, "precision": prec["values"]}, "judge": "tiny-head"},
        "complexity": {**size["complexity"], "precision": prec["complexity"]},
    })


# --- Parts -------------------------------------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    kind: str  # data | train | judge | probe
    command: list[str]
    needs: list[str] = field(default_factory=list)
    gpu_only: bool = False
    needs_vllm: bool = False  # skipped (not failed) where vLLM is not installed: it is an extra
    run_dir: Path | None = None  # train: the run folder
    out: Path | None = None  # data, judge, probe: the output file
    report: Path | None = None  # judge, probe: what the counting wrapper (--child) measured in the process
    result: dict = field(default_factory=dict)


def plan(config: dict, families: list[str], gpu: bool, work: Path, threads: int) -> list[Part]:
    """Every part of the check in dependency order, each the command the workflow's rule runs on the job spec the
    study plan (posttrain.plan) writes for it; a training part's launch is set to its mode."""
    from posttrain.plan import Plan

    study = Plan(config, root=str(work), deepspeed_dir=REPO / "config" / "deepspeed")
    py, specs = sys.executable, work / "specs"
    specs.mkdir(parents=True, exist_ok=True)

    def job_file(name: str, job: dict) -> str:
        path = specs / f"{name}.json"
        path.write_text(json.dumps(job, sort_keys=True))
        return str(path)

    def stage(stage_name: str, name: str, job: dict) -> list[str]:
        return [stage_name, "--job", job_file(name, job), "--threads", str(threads)]

    def counted(name: str) -> list[str]:  # a probe run inside this script's counting wrapper
        return [py, str(Path(__file__).resolve()), "--child", str(work / "reports" / f"{name}.json"), "posttrain"]

    parts = [Part(f"data-{d}", "data", [py, "-m", "posttrain", "data", "--job",
                                       job_file(f"data-{d}", study.job("dataset", dataset=d))],
                  out=Path(study.paths.data(d))) for d in ("mix", "pairs")]
    precision = precision_settings(gpu)["launch"]
    for family in families:
        for mode in MODES[family]:
            launch = {"processes": 0 if mode == "plain" else 1, "precision": precision,
                      "deepspeed": None if mode == "plain" else str(REPO / "config" / "deepspeed" / f"{mode}.json")}
            sft, dpo = f"sft-{family}-{mode}", f"dpo-{family}-{mode}"
            if sft not in config["sft"]:  # a GPU mode of a CPU run: listed, skipped
                parts += [Part(sft, "train", [], gpu_only=True), Part(dpo, "train", [], gpu_only=True)]
                continue
            parts.append(Part(sft, "train", [py, "-m", "posttrain", *stage("sft", sft, {**study.job("sft", run=sft),
                                                                                       "launch": launch})],
                              needs=["data-mix"], gpu_only=mode != "plain", run_dir=Path(study.paths.run_dir(sft))))
            parts.append(Part(dpo, "train", [py, "-m", "posttrain", *stage("pref", dpo, {**study.job("pref", run=dpo),
                                                                                        "launch": launch})],
                              needs=["data-pairs", sft], gpu_only=mode != "plain",
                              run_dir=Path(study.paths.run_dir(dpo))))

    head = study.job("judge_head", judge="tiny-head")
    parts.append(Part("judge-head", "judge", counted("judge-head") + stage("judge-head", "judge-head", head),
                      out=Path(head["out"]), report=work / "reports" / "judge-head.json"))

    for family in families:
        mode = MODES[family][-1] if gpu else "plain"
        dpo = f"dpo-{family}-{mode}"
        step = study.steps[dpo][-1]
        for probe_mode in ("forced_choice", "generation"):
            name = f"values-{probe_mode}-{family}"
            job = study.job("value_probe", run=dpo, step=step)
            job["spec"] = {**job["spec"], "modes": [probe_mode]}
            if probe_mode == "forced_choice":
                job["spec"].pop("judge", None)
            job["out"] = str(work / "probes" / f"{name}.parquet")
            parts.append(Part(name, "probe", counted(name) + stage("value-probe", name, job),
                              needs=[dpo] + (["judge-head"] if probe_mode == "generation" else []),
                              out=Path(job["out"]), report=work / "reports" / f"{name}.json"))
        if family == "llama":
            name, job = "values-generation-vllm-llama", study.job("value_probe", run=dpo, step=step)
            generation = {**job["spec"]["generation"], "engine": "vllm",
                          "vllm": {"gpu_memory_utilization": 0.5, "enforce_eager": True}}
            job["spec"] = {**job["spec"], "modes": ["generation"], "generation": generation}
            job["out"] = str(work / "probes" / f"{name}.parquet")
            parts.append(Part(name, "probe", counted(name) + stage("value-probe", name, job), needs=[dpo, "judge-head"],
                              gpu_only=True, needs_vllm=True, out=Path(job["out"]),
                              report=work / "reports" / f"{name}.json"))
            checkpoint = str(Path(study.paths.run_dir(dpo)) / "checkpoints" / f"step-{step}")
            name = "vllm-seeds-llama"
            parts.append(Part(name, "check", [py, str(Path(__file__).resolve()), "--vllm-seeds", checkpoint,
                                              str(work / "reports" / f"{name}.json")],
                              needs=[dpo], gpu_only=True, needs_vllm=True, report=work / "reports" / f"{name}.json"))
            name = "complexity-llama"
            job = {**study.job("complexity_probe", run=dpo, step=step),
                   "out": str(work / "probes" / "complexity-llama.parquet")}
            parts.append(Part(name, "probe", counted(name) + stage("complexity-probe", name, job),
                              needs=[dpo], out=Path(job["out"]), report=work / "reports" / f"{name}.json"))
    return parts


def matching(parts: list[Part], name: str) -> list[Part]:
    """The part called `name`, or every part whose name starts with `name-` (`sft`: every SFT run)."""
    return [p for p in parts if p.name == name or p.name.startswith(name + "-")]


def select(parts: list[Part], names: list[str]) -> list[Part]:
    """--only: the named parts and, transitively, the parts they need, in plan order."""
    by_name, wanted = {p.name: p for p in parts}, set()
    todo = [p.name for name in names for p in matching(parts, name)]
    unknown = [name for name in names if not matching(parts, name)]
    if unknown:
        sys.exit(f"error: --only {', '.join(unknown)}: no such part (parts: {', '.join(by_name)})")
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += by_name[name].needs
    return [p for p in parts if p.name in wanted]


def break_part(parts: list[Part], name: str) -> None:
    """--break: give the named part (or every part whose name starts with `name-`) an option its entry point does
    not know, so it fails the way a bad setting fails: argparse names it and the process exits non-zero."""
    hit = matching(parts, name)
    if not hit:
        sys.exit(f"error: --break {name!r} names no part (parts: {', '.join(p.name for p in parts)})")
    for p in hit:
        p.command.append("--gpu-check-broken-option")


# --- Measuring a part ----------------------------------------------------------------------------------------------


class GpuMemory:
    """Device memory in use on all GPUs (`nvidia-smi --query-gpu=memory.used`, MiB, every process), read every
    `interval` seconds in a thread while a part runs; `added` = the peak minus the reading before it started.
    nvidia-smi sees other processes too: on a shared GPU the figure includes them."""

    def __init__(self, interval: float = 0.1, command: str = "nvidia-smi"):
        self.interval, self.command = interval, command
        self.baseline = self.peak = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> float:
        out = subprocess.run([self.command, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return sum(float(line) for line in out.split())

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, self.read())
            except (OSError, subprocess.SubprocessError, ValueError) as e:
                self.error = f"{self.command}: {e}"
                return

    def __enter__(self) -> Self:
        try:
            self.baseline = self.peak = self.read()
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            self.error = f"{self.command}: {e}"
            return self
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
            try:  # the last moment too: a part shorter than one interval still gets a reading
                self.peak = max(self.peak, self.read())
            except (OSError, subprocess.SubprocessError, ValueError):
                pass

    @property
    def added(self) -> float | None:
        return None if self.error or self.peak is None else self.peak - self.baseline


def session_peak_rss_mib(session: int) -> float:
    """The largest peak resident set (VmHWM) among the live processes of a session, in MiB. Read from /proc
    rather than from wait4's ru_maxrss, which counts the memory of this (forking) process into every child."""
    peak = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[3]) != session:  # fields after the name: session is 4th
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
        hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), None)
        peak = max(peak, int(hwm) / 1024 if hwm else 0.0)
    return peak


def run_process(command: list[str], log: Path, timeout: float, env: dict,
                poll: float = 0.2) -> tuple[int | None, float, float]:
    """(exit code or None on timeout, wall seconds, the largest peak RSS in MiB of any of its processes, polled
    every `poll` s). The part runs in a session of its own: its launcher's workers are found by session id, and
    a timeout stops them all."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start, rss = time.perf_counter(), 0.0
    with log.open("w") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
        while True:
            rss = max(rss, session_peak_rss_mib(proc.pid))
            try:
                code = proc.wait(timeout=poll)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
                break
    return code, time.perf_counter() - start, rss


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def snapshot_dtypes(folder: Path) -> set[str]:
    """The tensor dtypes stored in a snapshot's safetensors files (read from their JSON headers, no weights)."""
    found = set()
    for file in folder.glob("*.safetensors"):
        with file.open("rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        found |= {t["dtype"] for name, t in header.items() if name != "__metadata__"}
    return found


def measure_train(part: Part) -> dict:
    rows = [json.loads(line) for line in (part.run_dir / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    tokens = max((r["num_tokens"] for r in rows if "num_tokens" in r), default=None)
    runtime = next((r["train_runtime"] for r in rows if "train_runtime" in r), None)
    if not losses or not all(map(finite, losses)):
        raise ValueError(f"losses are missing or not finite: {losses}")
    if not finite(tokens) or not finite(runtime):
        raise ValueError(f"train_log.jsonl has no num_tokens / train_runtime (got {tokens} / {runtime})")
    # snapshots stay in full precision whatever the training precision (issue 11): bf16 training under DeepSpeed
    # keeps the module itself in bf16, so this is where a 16-bit save would show
    dtypes = {snap.name: sorted(snapshot_dtypes(snap)) for snap in sorted((part.run_dir / "checkpoints").iterdir())}
    figures = {"steps": max(r["step"] for r in rows), "loss_first": losses[0], "loss_last": losses[-1],
               "tokens": int(tokens), "seconds": runtime, "tokens_per_s": tokens / runtime, "snapshot_dtypes": dtypes}
    if any(d != ["F32"] for d in dtypes.values()):
        # a problem, not a failure: the snapshots load (as fp32), so the parts after this one still run
        figures["problem"] = f"snapshots not stored in full precision (F32): {dtypes}"
    return figures


def measure_counted(part: Part) -> dict:
    """What the counting wrapper saw in a judge or probe process, and a sanity check of what it wrote."""
    import pandas as pd

    report = json.loads(part.report.read_text())
    out = {"tokens": report["forward_tokens"], "seconds": report["forward_span_s"],
           "cuda_peak_allocated_mib": report["cuda_peak_allocated_mib"]}
    out["tokens_per_s"] = out["tokens"] / out["seconds"] if out["seconds"] else None
    if part.kind == "judge":
        fitted = json.loads(part.out.read_text())
        out["dev_macro_f1"] = max(fitted["dev_macro_f1_by_C"].values())
    if part.kind == "probe":
        frame = pd.read_parquet(part.out)
        out["rows"] = len(frame)
        numbers = frame[["bits", "score"]] if "bits" in frame else frame[["p_support", "p_neutral", "p_oppose"]]
        if frame.empty or not numbers.map(finite).all().all():
            raise ValueError(f"{part.out}: {len(frame)} rows, not all finite:\n{numbers.describe()}")
        if "n_tokens" in frame and frame["mode"].eq("generation").all():
            out["generated_tokens"] = int(frame["n_tokens"].sum())
        if "engine" in frame and frame["engine"].eq("vllm").all():  # the wrapper saw only the judge's forwards
            out["engine"], out["tokens_per_s"] = "vllm", None
    return out


def vllm_seeds(checkpoint: str, report: str) -> None:
    """--vllm-seeds: one vLLM engine on `checkpoint`; 8 prompts x 2 samples, asked forwards and then backwards in
    one call (so each (prompt, sample) sits in two batch positions). Writes whether the duplicates agree."""
    from transformers import AutoTokenizer, GenerationConfig

    from posttrain.io import write_json
    from posttrain.probes import prompt_sets, vllm_generation

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    eos = GenerationConfig.from_pretrained(checkpoint).eos_token_id
    prompts = prompt_sets.load("values-v1", 1).prompts[:8]
    settings = {"samples": 2, "temperature": 0.9, "top_p": 1.0, "max_new_tokens": 24, "seed": 3,
                "vllm": {"gpu_memory_utilization": 0.5, "enforce_eager": True}}
    rows = vllm_generation.sample(Path(checkpoint), tokenizer, eos if isinstance(eos, list) else [eos],
                                  prompts + prompts[::-1], settings, "bf16", progress=False)
    first, second = rows[:16], rows[16:]
    again = {(r["prompt_id"], r["sample_id"]): r["response"] for r in second}
    write_json(report, {"seeds_per_request": vllm_generation.seeds_per_request(),
                        "pairs": len(first), "same": sum(r["response"] == again[r["prompt_id"], r["sample_id"]]
                                                         for r in first),
                        "samples_differ": sum(a["response"] != b["response"] for a, b in zip(first[::2], first[1::2]))})


def measure(part: Part) -> dict:
    if part.kind == "check":
        found = json.loads(part.report.read_text())
        if found["same"] != found["pairs"]:
            found["problem"] = f"only {found['same']} of {found['pairs']} seeded samples repeat: seeds are not paired"
        return found
    if part.kind == "train":
        return measure_train(part)
    if part.kind == "data":
        return {"rows": sum(1 for _ in part.out.open())}
    return measure_counted(part)


def run_part(part: Part, work: Path, env: dict, gpu: bool, timeout: float) -> dict:
    log = work / "logs" / f"{part.name}.log"
    memory = GpuMemory() if gpu else None
    with memory or contextlib.nullcontext():
        code, wall, rss = run_process(part.command, log, timeout, env)
    result = {"wall_s": wall, "max_rss_mib": rss, "log": str(log)}
    if memory:
        result["gpu_mem_mib"] = memory.added
        if memory.error:
            result["gpu_mem_error"] = memory.error
    if code is None:
        return {**result, "status": "failed", "reason": f"timed out after {timeout:.0f}s", "log_tail": tail(log)}
    if code != 0:
        return {**result, "status": "failed", "reason": f"exit status {code}", "log_tail": tail(log)}
    try:
        figures = measure(part)
        return {**result, **figures, "status": "problem" if "problem" in figures else "ok"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        return {**result, "status": "failed", "reason": f"bad result: {e}", "log_tail": tail(log)}


# --- The counting wrapper around a probe process (--child) ----------------------------------------------------


def child(report: str, module: str, args: list[str]) -> None:
    """Run `python -m module args` in this process, counting the tokens every outermost model forward reads
    (non-padding positions of its new input, so a cached decoding step counts one token per row) and the span
    from the first forward to the last; write them and the CUDA allocator's peak to `report` at exit.
    Only transformers models' __call__ is wrapped: their layers keep torch's hook-free fast path."""
    import atexit
    import runpy

    import torch
    from transformers import PreTrainedModel

    totals: dict = {}
    span = {"first": None, "last": None, "calls": 0, "depth": 0}
    original = PreTrainedModel.__call__

    def count(args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args and torch.is_tensor(args[0]) else None)
        if ids is None:
            return
        mask = kwargs.get("attention_mask")
        # a device tensor sum, added up on the device: no synchronisation per forward
        n = mask[:, -ids.shape[-1]:].sum() if torch.is_tensor(mask) and mask.dim() == 2 else ids.numel()
        key = str(ids.device)
        totals[key] = totals.get(key, 0) + n

    def counted_call(self, *args, **kwargs):
        if span["depth"]:  # a model called inside another (a judge's decoder): counted once, outermost
            return original(self, *args, **kwargs)
        span["depth"] += 1
        span["first"] = span["first"] or time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            span["depth"] -= 1
            count(args, kwargs)
            span["calls"] += 1
            span["last"] = time.perf_counter()

    def write() -> None:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if cuda:
            torch.cuda.synchronize()
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps({
            "forward_tokens": int(sum(int(v) for v in totals.values())), "forward_calls": span["calls"],
            "forward_span_s": (span["last"] - span["first"]) if span["first"] else 0.0,
            "cuda_peak_allocated_mib": torch.cuda.max_memory_allocated() / MIB if cuda else None}))

    PreTrainedModel.__call__ = counted_call
    atexit.register(write)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


# --- Main -------------------------------------------------------------------------------------------------------


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "datasets", "tokenizers",
                 "huggingface-hub", "pandas", "pyarrow", "fsspec", "regex"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def device_info(gpu: bool) -> dict:
    info = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    if gpu:
        try:
            info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                          "--format=csv,noheader"], capture_output=True, text=True, timeout=10,
                                         check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            info["gpu"] = f"nvidia-smi failed: {e}"
    return info


def table(parts: list[Part]) -> str:
    def fmt(x, spec):
        return format(x, spec) if finite(x) else "-"

    header = (f"{'part':32} {'status':8} {'wall s':>7} {'tokens':>9} {'tokens/s':>10} {'GPU MiB':>8} "
              f"{'alloc MiB':>9} {'RSS MiB':>8}")
    lines = [header]
    for p in parts:
        r = p.result
        lines.append(f"{p.name:32} {r['status']:8} {fmt(r.get('wall_s'), '7.1f')} {fmt(r.get('tokens'), '9d')} "
                     f"{fmt(r.get('tokens_per_s'), '10.0f')} {fmt(r.get('gpu_mem_mib'), '8.0f')} "
                     f"{fmt(r.get('cuda_peak_allocated_mib'), '9.0f')} {fmt(r.get('max_rss_mib'), '8.0f')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3:])
        return 0
    if argv[:1] == ["--vllm-seeds"]:
        vllm_seeds(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu_check.json"))
    parser.add_argument("--workdir", default=None, help="runs, probe outputs and logs (default: a fresh temp folder)")
    parser.add_argument("--cpu", action="store_true",
                        help="run on the CPU even if a GPU is visible (GPU parts skipped)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated: llama, qwen3")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps of every SFT and DPO run")
    parser.add_argument("--budget", type=float, default=450.0,
                        help="seconds: no part starts after this, and a running part is stopped 30 s past it")
    parser.add_argument("--part-timeout", type=float, default=240.0,
                        help="seconds one part may run (a hung NCCL start must not eat the whole budget)")
    parser.add_argument("--only", default=None, metavar="PARTS",
                        help="comma-separated parts (or prefixes: sft, values) to run, with the parts they need")
    parser.add_argument("--break", dest="broken", metavar="PART", default=None,
                        help="make PART (or every PART-*) fail with an unknown option, to check failure reporting")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    if not families or set(families) - set(FAMILIES):
        parser.error(f"--families: choose from {', '.join(FAMILIES)} (got {args.families!r})")
    if args.steps < 1:
        parser.error("--steps must be at least 1")

    import tempfile

    import torch

    gpu = not args.cpu and torch.cuda.is_available()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu_check-")).resolve()
    config = study_config(families, gpu, args.steps)
    parts = plan(config, families, gpu, work, sizes(gpu)["threads"])
    if args.only:
        parts = select(parts, [n for n in args.only.split(",") if n])
    if args.broken:
        break_part(parts, args.broken)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # --cpu on a GPU machine: the parts must not find it either
    print(f"gpu_check: {'GPU' if gpu else 'CPU'}, {len(parts)} parts, work folder {work}", flush=True)

    start, done = time.perf_counter(), {}
    for part in parts:
        elapsed = time.perf_counter() - start
        missing = [n for n in part.needs if done.get(n) not in ("ok", "problem")]
        if part.gpu_only and not gpu:
            part.result = {"status": "skipped", "reason": "needs a GPU (DeepSpeed, bf16, vLLM's CUDA build)"}
        elif part.needs_vllm and importlib.util.find_spec("vllm") is None:
            part.result = {"status": "skipped", "reason": "vllm is not installed (pip install -e '.[vllm]')"}
        elif missing:
            part.result = {"status": "not_run", "reason": f"needs {', '.join(missing)}, which did not succeed"}
        elif elapsed > args.budget:
            part.result = {"status": "not_run", "reason": f"the budget of {args.budget:.0f}s was spent"}
        else:
            part.result = run_part(part, work, env, gpu, timeout=min(args.part_timeout, args.budget + 30 - elapsed))
        part.result["command"] = " ".join(part.command)
        done[part.name] = part.result["status"]
        figures = part.result.get("tokens_per_s")
        print(f"  {part.name:32} {part.result['status']:8} {part.result.get('wall_s', 0):6.1f}s"
              + (f"  {figures:,.0f} tokens/s" if finite(figures) else "")
              + (f"  ({part.result['reason']})" if "reason" in part.result else ""), flush=True)

    failed = [p for p in parts if p.result["status"] in ("failed", "not_run", "problem")]
    from posttrain.io import write_json

    summary = {
        "command": "python benchmarks/gpu_check.py " + " ".join(argv),
        "device": "cuda" if gpu else "cpu", "precision": precision_settings(gpu), "steps": args.steps,
        "families": families, "sizes": sizes(gpu), "versions": versions(), **device_info(gpu),
        "total_s": time.perf_counter() - start, "workdir": str(work), "ok": not failed,
        "parts": [{"name": p.name, **p.result} for p in parts],  # a list: the order they ran in
    }
    write_json(args.out, summary)
    print("\n" + table(parts))
    for p in failed:
        label = {"failed": "FAILED", "not_run": "NOT RUN", "problem": "PROBLEM"}[p.result["status"]]
        print(f"\n{label} {p.name}: {p.result.get('reason') or p.result['problem']}\n  command: {p.result['command']}")
        if p.result.get("log_tail"):
            print("  log tail:\n" + "\n".join("    " + line for line in p.result["log_tail"].splitlines()))
    print(f"\n{'all parts ok' if not failed else f'{len(failed)} parts failed, had a problem or did not run'} in "
          f"{summary['total_s']:.0f}s -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
