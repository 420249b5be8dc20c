"""Value probe at one checkpoint -> one Parquet file of stance rows (never touches DuckDB).

    python -m posttrain.probes.values --manifest results/runs/<run>/checkpoints.json --step N \
        --spec '{"prompt_set": "values-v1", "modes": [...], ...}' --out results/probes/values/<run>/step-N.parquet

Modes (config `probes.values.modes`):
  forced_choice  the model's own next-token probabilities of the three label words (one row per prompt)
  generation     N sampled answers per prompt (posttrain.probes.generation), each judged for stance by the
                 configured judge (posttrain.judges): one row per sample, with its seed and response
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from posttrain import precision, timing
from posttrain.checkpointing import checkpoint_path
from posttrain.config import load_spec
from posttrain.io import write_parquet
from posttrain.judges import JudgeError, build
from posttrain.judges.run import judge_items
from posttrain.models import ModelNotFoundError, load_checkpoint
from posttrain.probes import forced_choice, generation, prompt_sets

COLUMNS = ["run", "step", "topic", "prompt_id", "sample_id", "mode", "response", "judge",
           "p_support", "p_neutral", "p_oppose", "label_mass", "prompt_set", "template", "seed", "n_tokens",
           "precision", "judge_precision"]


def mode_precision(spec: dict, mode: str, device) -> str:
    """The precision a mode runs in on this device (probes.values.precision.<mode>, resolved here)."""
    return precision.resolve(spec.get("precision", {}).get(mode, precision.INFERENCE_DEFAULT), torch.device(device).type, f"{mode} probe")


def generated(model, tokenizer, spec: dict, run: str, step: int, partial: Path | None, progress: bool
              ) -> pd.DataFrame:
    """Sample answers, then judge each (the judge is loaded only once every answer is generated)."""
    settings = spec["generation"]
    ps = prompt_sets.load(spec["prompt_set"], settings.get("max_prompts_per_topic", spec.get("max_prompts_per_topic")))
    numerics = mode_precision(spec, "generation", model.device)
    with precision.autocast(numerics, model), timing.phase("generation"):
        rows = generation.sample(model, tokenizer, ps.prompts, settings, progress)
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
         **r, **v} for r, v in zip(rows, verdicts)
    ])


def probe(model, tokenizer, spec: dict, run: str, step: int, progress: bool = True,
          partial: Path | None = None) -> pd.DataFrame:
    ps = prompt_sets.load(spec["prompt_set"], spec.get("max_prompts_per_topic"))
    frames = []
    if "forced_choice" in spec["modes"]:
        numerics = mode_precision(spec, "forced_choice", model.device)
        with precision.autocast(numerics, model), timing.phase("forced choice"):
            scores = forced_choice.score(model, tokenizer, ps, spec["batch_size"], progress)
        frames.append(pd.DataFrame([
            {"run": run, "step": step, "topic": p["topic"], "prompt_id": p["id"], "sample_id": 0,
             "mode": "forced_choice", "response": None, "judge": "next_token", **s, "prompt_set": ps.name,
             "precision": numerics}
            for p, s in zip(ps.prompts, scores)
        ]))
    if "generation" in spec["modes"]:
        frames.append(generated(model, tokenizer, spec, run, step, partial, progress))
    frame = pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)
    return frame.astype({"response": "string", "step": "int64", "sample_id": "int64", "seed": "Int64",
                         "n_tokens": "Int64"})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="a run's checkpoints.json")
    parser.add_argument("--step", type=int, required=True)
    parser.add_argument("--spec", help="the config's probes.values entry (inline JSON or YAML file)")
    parser.add_argument("--same-as", metavar="PARQUET",
                        help="the checkpoint is the same weights as the one this probe file measured (a preference "
                             "run's step 0 is its parent's checkpoint): copy its rows instead of probing again")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.same_as:
        run = json.loads(Path(args.manifest).read_text())["run"]
        write_parquet(args.out, pd.read_parquet(args.same_as).assign(run=run, step=args.step))
        print(f"{run} step {args.step}: rows copied from {args.same_as}")
        return
    if not args.spec:
        parser.error("--spec is required unless --same-as is given")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        spec = load_spec(args.spec)
        run = json.loads(Path(args.manifest).read_text())["run"]
        with timing.phase("load"):
            model, tokenizer = load_checkpoint(checkpoint_path(args.manifest, args.step))
    except (ValueError, ModelNotFoundError, prompt_sets.PromptSetError) as e:
        sys.exit(f"error: {e}")
    start = time.perf_counter()
    # verdicts already paid for survive a failed job (an endpoint timing out): the rerun resumes from them
    partial = Path(args.out).with_suffix(".judged.partial.jsonl")
    try:
        frame = probe(model, tokenizer, spec, run, args.step, partial=partial)
    except JudgeError as e:
        sys.exit(f"error: {e}\n(verdicts so far are kept in {partial}; rerun to resume)")
    write_parquet(args.out, frame)
    partial.unlink(missing_ok=True)
    print(f"{run} step {args.step}: {len(frame)} rows in {time.perf_counter() - start:.1f}s -> {args.out}")
    print(timing.summary())


if __name__ == "__main__":
    main()
