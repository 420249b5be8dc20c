"""Value probe at one checkpoint -> one Parquet file of stance rows (never touches DuckDB).

The `value-probe` stage loads one checkpoint and calls `probe` with the config's `probes.values` entry.

Modes (config `probes.values.modes`):
  forced_choice  the model's own next-token probabilities of the three label words (one row per prompt),
                 read with the options in each cyclic order and calibrated against content-free questions
                 (posttrain.forced_choice.calibrated_score; the raw values are kept beside)
  generation     N sampled answers per prompt, each judged for stance by the configured judge
                 (posttrain.judges): one row per sample, with its seed and response. The first
                 max_prompts_per_topic prompts of each topic whose question is not in a fitted judge's training
                 split. Drawn by `generation.engine`: hf (posttrain.probes.generation) or vllm
                 (posttrain.probes.vllm_generation, which starts its own engine on the checkpoint folder)

Every row records the engine that produced it (`engine`, `engine_version`); forced choice always reads the HF
model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import transformers

from posttrain import forced_choice, precision, timing
from posttrain.judges import build, labelled
from posttrain.judges.run import judge_items
from posttrain.probes import generation, prompt_sets

COLUMNS = ["run", "step", "topic", "prompt_id", "sample_id", "mode", "response", "judge",
           "p_support", "p_neutral", "p_oppose", "label_mass", "prompt_set", "template", "seed", "n_tokens",
           "precision", "judge_precision", "raw_p_support", "raw_p_neutral", "raw_p_oppose",
           "cf_support", "cf_neutral", "cf_oppose", "content_free_label_mass", "n_orders", "order_spread",
           "calibration", "engine", "engine_version"]
HF = {"engine": "hf", "engine_version": f"transformers {transformers.__version__}"}


def mode_precision(spec: dict, mode: str, device) -> str:
    """The precision a mode runs in on this device (probes.values.precision.<mode>, resolved here)."""
    return precision.resolve(spec.get("precision", {}).get(mode, precision.INFERENCE_DEFAULT),
                             torch.device(device).type, f"{mode} probe")


def judge_training_questions(judge: dict) -> set[str]:
    """The questions (lower-cased) a fitted judge (kinds embedding, lm_head) saw in its labelled training split.
    The generation probe skips them: a judge is never asked about answers to questions it was fitted on."""
    if judge.get("kind") not in ("embedding", "lm_head"):
        return set()
    rows = labelled.load(judge.get("labelled_set", labelled.DEFAULT), ("train",))
    return {r["question"].strip().lower() for r in rows}


def generation_prompts(spec: dict) -> prompt_sets.PromptSet:
    """The generation mode's prompt set: the first max_prompts_per_topic of each topic outside the judge's
    training split. `spec`: probes.values with its judge resolved (Plan.judge_spec)."""
    settings = spec["generation"]
    ps = prompt_sets.load(spec["prompt_set"])
    fitted_on = judge_training_questions(spec["judge"])
    ps.prompts = prompt_sets.first_per_topic([p for p in ps.prompts if p["question"].strip().lower() not in fitted_on],
                                             settings.get("max_prompts_per_topic", spec.get("max_prompts_per_topic")))
    return ps


def sampled(model, tokenizer, prompts: list[dict], settings: dict, numerics: str, checkpoint: Path | None,
            progress: bool) -> tuple[list[dict], dict]:
    """(rows, engine columns) of the generation mode on the configured engine."""
    if settings.get("engine", "hf") == "hf":
        with precision.autocast(numerics, model):
            return generation.sample(model, tokenizer, prompts, settings, progress), HF
    from posttrain.probes import vllm_generation

    engine = {"engine": "vllm", "engine_version": f"vllm {vllm_generation.version()}"}
    if checkpoint is None:
        raise ValueError("the vllm engine starts on a checkpoint folder: pass `checkpoint`")
    with vllm_generation.off_the_gpu(model):
        return vllm_generation.sample(checkpoint, tokenizer, generation.stop_ids(model, tokenizer), prompts,
                                      settings, numerics, progress), engine


def generated(model, tokenizer, spec: dict, run: str, step: int, partial: Path | None, progress: bool,
              checkpoint: Path | None = None) -> pd.DataFrame:
    """Sample answers, then judge each (the judge is loaded only once every answer is generated)."""
    settings = spec["generation"]
    ps = generation_prompts(spec)
    numerics = mode_precision(spec, "generation", model.device)
    with timing.phase("generation"):
        rows, engine = sampled(model, tokenizer, ps.prompts, settings, numerics, checkpoint, progress)
    question = {p["id"]: p for p in ps.prompts}
    items = [{"question": question[r["prompt_id"]]["question"], "response": r["response"],
              "topic": question[r["prompt_id"]]["topic"], "id": f"{r['prompt_id']}#{r['sample_id']}"} for r in rows]
    with timing.phase("judge load"):
        judge = build(spec["judge"], progress)
    with timing.phase("judging"):
        verdicts = judge_items(judge, items, partial)
    return pd.DataFrame([
        {"run": run, "step": step, "topic": question[r["prompt_id"]]["topic"], "mode": "generation",
         "judge": judge.name, "prompt_set": ps.name, "precision": numerics, "judge_precision": judge.precision,
         **engine, **r, **v} for r, v in zip(rows, verdicts)
    ])


def probe(model, tokenizer, spec: dict, run: str, step: int, progress: bool = True,
          partial: Path | None = None, checkpoint: Path | None = None) -> pd.DataFrame:
    """The value probe's rows at one checkpoint. `checkpoint`: the folder `model` was loaded from (the vllm
    engine starts on it)."""
    ps = prompt_sets.load(spec["prompt_set"], spec.get("max_prompts_per_topic"))
    frames = []
    if "forced_choice" in spec["modes"]:
        numerics = mode_precision(spec, "forced_choice", model.device)
        with precision.autocast(numerics, model), timing.phase("forced choice"):
            settings = spec.get("forced_choice", {})
            scores = forced_choice.calibrated_score(
                model, tokenizer, ps, spec["batch_size"], settings.get("option_orders", "cyclic"),
                settings.get("calibration", "content_free") == "content_free", progress)
        frames.append(pd.DataFrame([
            {"run": run, "step": step, "topic": p["topic"], "prompt_id": p["id"], "sample_id": 0,
             "mode": "forced_choice", "response": None, "judge": "next_token", **s, "prompt_set": ps.name,
             "precision": numerics, **HF}
            for p, s in zip(ps.prompts, scores)
        ]))
    if "generation" in spec["modes"]:
        frames.append(generated(model, tokenizer, spec, run, step, partial, progress, checkpoint))
    frame = pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)
    return frame.astype({"response": "string", "step": "int64", "sample_id": "int64", "seed": "Int64",
                         "n_tokens": "Int64", "n_orders": "Int64", "calibration": "string",
                         **{c: "float64" for c in COLUMNS
                            if c.startswith(("raw_p_", "cf_")) or c in ("order_spread", "content_free_label_mass")}})
