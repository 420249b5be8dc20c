"""fp32 against bf16 on the same checkpoints, in one run: what bf16 saves, and whether it changes a measurement.

    python benchmarks/precision.py --threads 2                       # the full comparison (issue 11's sizes)
    python benchmarks/precision.py --threads 2 --prompts-per-topic 10  # a smaller forced-choice set

Every part uses the project's own code paths and the default study's settings (config/config.yaml):
  training     20 SFT steps of SmolLM2-135M on the value-mix set, fp32 and bf16 mixed precision (same data, seed,
               threads): seconds per step, and both loss curves side by side
  forced       forced choice on the prompt set at each checkpoint (step 0 and the fp32 run's last step): time,
               mean and max |Δp| per stance
  generation   the default generation probe (3 prompts per topic, 2 samples, 48 tokens): tokens/s per precision,
               share of identical answers; then the study's judge reads the *same* fp32 answers in fp32 and in
               bf16: agreement of the verdicts (argmax) and mean |Δp|
  complexity   the default complexity probe (stance task; zero-shot, prompting, prequential), judge held in fp32:
               relative difference of every program's payload bits, and of its score
bf16 is autocast over fp32 weights (posttrain.precision). Results go to benchmarks/results/precision.json.
Where this CPU has no native bf16 (no AMX-BF16 / AVX512-BF16) bf16 is emulated: the accuracy figures hold,
the times only say that auto must pick fp32 there; `hardware` in the output says which case was measured.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from posttrain import forced_choice, precision
from posttrain.complexity.measure import measure
from posttrain.config import read_yaml
from posttrain.data.prepare import prepare
from posttrain.determinism import training_numerics
from posttrain.io import write_json, write_jsonl
from posttrain.judges import build
from posttrain.judges.train_head import train as fit_head
from posttrain.models import load_checkpoint
from posttrain.plan import Plan
from posttrain.probes import generation, prompt_sets
from posttrain.sft.train import run_sft
from posttrain.stances import STANCES

REPO = Path(__file__).resolve().parents[1]
BOTH = ("fp32", "bf16")
PARTS = ("training", "forced_choice", "generation", "complexity")


class StepTimes(TrainerCallback):
    def __init__(self):
        self.seconds, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # runs after the snapshot callback: last step includes it
        self.seconds.append(time.perf_counter() - self._start)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def train(config: dict, data: Path, work: Path, steps: int, p: str) -> dict:
    """`steps` SFT steps of the default study's run in precision p: seconds per step and the loss curve."""
    spec = copy.deepcopy(config["sft"]["sft-valuemix"])
    spec.update(run=f"precision-{p}", max_steps=steps, checkpoints={"steps": []},
                model_spec=Plan(config).model_spec(spec["model"]))
    spec["training"]["precision"] = p
    timer = StepTimes()
    shutil.rmtree(work / f"sft-{p}", ignore_errors=True)  # a fresh run, never a resumed one: every step is timed
    run_sft(spec, data, work / f"sft-{p}", callbacks=[timer])
    log = [json.loads(line) for line in (work / f"sft-{p}" / "train_log.jsonl").read_text().splitlines()]
    return {"seconds_per_step": timer.seconds, "loss": [r["loss"] for r in log if "loss" in r]}


def training(config: dict, data: Path, work: Path, steps: int) -> dict:
    out = {p: train(config, data, work, steps, p) for p in BOTH}
    a, b = np.array(out["fp32"]["loss"]), np.array(out["bf16"]["loss"])
    body = slice(0, steps - 1)  # the last step also writes a snapshot
    return {**out, "median_s_per_step": {p: float(np.median(out[p]["seconds_per_step"][body])) for p in BOTH},
            "speedup": float(np.median(out["fp32"]["seconds_per_step"][body]) /
                             np.median(out["bf16"]["seconds_per_step"][body])),
            "max_rel_loss_diff": float(np.max(np.abs(b - a) / np.abs(a)))}


def forced(model, tokenizer, ps) -> dict:
    rows, seconds = {}, {}
    for p in BOTH:
        with precision.autocast(p, model):
            rows[p], seconds[p] = timed(lambda p=p: forced_choice.score(model, tokenizer, ps, 16, progress=False))
    diff = {s: np.abs(np.array([r[f"p_{s}"] for r in rows["bf16"]]) - np.array([r[f"p_{s}"] for r in rows["fp32"]]))
            for s in STANCES}
    return {"prompts": len(ps.prompts), "seconds": seconds, "speedup": seconds["fp32"] / seconds["bf16"],
            "mean_abs_dp": {s: float(d.mean()) for s, d in diff.items()},
            "max_abs_dp": {s: float(d.max()) for s, d in diff.items()}}


def generated(model, tokenizer, config: dict, judge) -> dict:
    settings = config["probes"]["values"]["generation"]
    ps = prompt_sets.load(config["probes"]["values"]["prompt_set"], settings["max_prompts_per_topic"])
    rows, seconds = {}, {}
    for p in BOTH:
        with precision.autocast(p, model):
            rows[p], seconds[p] = timed(lambda p=p: generation.sample(model, tokenizer, ps.prompts, settings, False))
    question = {q["id"]: q["question"] for q in ps.prompts}
    items = [{"question": question[r["prompt_id"]], "response": r["response"]} for r in rows["fp32"]]
    verdicts = {}
    for p in BOTH:
        judge.precision = p
        verdicts[p] = np.array([[v[f"p_{s}"] for s in STANCES] for v in judge(items)])
    tokens = {p: sum(r["n_tokens"] for r in rows[p]) for p in BOTH}
    return {"samples": len(items), "tokens": tokens, "seconds": seconds,
            "tokens_per_s": {p: tokens[p] / seconds[p] for p in BOTH},
            "speedup": (tokens["bf16"] / seconds["bf16"]) / (tokens["fp32"] / seconds["fp32"]),
            "identical_answers": float(np.mean([a["response"] == b["response"]
                                                for a, b in zip(rows["fp32"], rows["bf16"])])),
            "judge_agreement": float(np.mean(verdicts["fp32"].argmax(1) == verdicts["bf16"].argmax(1))),
            "judge_mean_abs_dp": dict(zip(STANCES, np.abs(verdicts["bf16"] - verdicts["fp32"]).mean(0).tolist()))}


def complexity(model, tokenizer, config: dict, judge_spec: dict) -> dict:
    spec = copy.deepcopy(config["complexity"])
    spec["estimators"].pop("weight_delta", None)  # needs a reference checkpoint; its scoring is zero-shot's
    spec["tasks"]["stance"]["judge"] = {**judge_spec, "precision": "fp32"}  # the yardstick stays fixed
    frames, seconds = {}, {}
    for p in BOTH:
        frames[p], seconds[p] = timed(lambda p=p: measure(model, tokenizer, {**spec, "precision": p}, "b", 0, {}))
    a, b = frames["fp32"], frames["bf16"]
    return {"seconds": seconds, "speedup": seconds["fp32"] / seconds["bf16"],
            "programs": [{"estimator": x.estimator, "setting": x.setting,
                          "payload_bits": {"fp32": x.payload_bits, "bf16": y.payload_bits},
                          "rel_diff_payload_bits": abs(y.payload_bits - x.payload_bits) / x.payload_bits
                          if x.payload_bits else 0.0,
                          "score": {"fp32": x.score, "bf16": y.score}, "abs_diff_score": abs(y.score - x.score)}
                         for x, y in zip(a.itertuples(), b.itertuples())]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts-per-topic", type=int, default=None, help="forced choice: default all 50")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="what to compare (default all); the probes run on the fp32 training run's checkpoints")
    parser.add_argument("--work", default=None, help="keep the data, runs and judge here (default: a temp dir)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "precision.json"))
    args = parser.parse_args(argv)
    training_numerics(args.threads)  # as the training stages do: fixed threads, deterministic kernels
    config = Plan(read_yaml(REPO / "config" / "config.yaml")).config
    work = Path(args.work or tempfile.mkdtemp(prefix="precision-"))
    work.mkdir(parents=True, exist_ok=True)
    native, found = precision.native_bf16("cuda" if torch.cuda.is_available() else "cpu")
    result = {"command": "python benchmarks/precision.py " + " ".join(argv or []), "threads": args.threads,
              "hardware": {"native_bf16": native, "found": found, "torch": torch.__version__}}

    data = work / "valuemix.jsonl"
    write_jsonl(data, prepare(config["datasets"]["valuemix"]))
    if "training" in args.parts:
        result["training"] = training(config, data, work, args.train_steps)
        print(json.dumps({"training": {k: v for k, v in result["training"].items() if k not in BOTH}}), flush=True)
    elif not (work / "sft-fp32" / "checkpoints.json").is_file():  # the probes still need the fp32 run's checkpoints
        train(config, data, work, args.train_steps, "fp32")

    judge_spec = Plan(config, root=str(work)).judge_spec(config["probes"]["judge"])
    head = Path(judge_spec["head"])
    if not head.is_file():
        write_json(head, fit_head(judge_spec, model_dir=head.with_name("model")))
    judge = build(judge_spec, progress=False)

    ps = prompt_sets.load(config["probes"]["values"]["prompt_set"], args.prompts_per_topic)
    result["checkpoints"] = {}
    for name in ("step-0", f"step-{args.train_steps}"):
        model, tokenizer = load_checkpoint(work / "sft-fp32" / "checkpoints" / name)
        part = result["checkpoints"][name] = {}
        if "forced_choice" in args.parts:
            part["forced_choice"] = forced(model, tokenizer, ps)
            print(name, json.dumps(part["forced_choice"]), flush=True)
        if "generation" in args.parts:
            part["generation"] = generated(model, tokenizer, config, judge)
            print(name, json.dumps(part["generation"]), flush=True)
        if "complexity" in args.parts:
            part["complexity"] = complexity(model, tokenizer, config, judge_spec)
            print(name, json.dumps({k: v for k, v in part["complexity"].items() if k != "programs"}), flush=True)
    write_json(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
