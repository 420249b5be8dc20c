"""Task-complexity probe at one checkpoint -> one Parquet file of (task, estimator, setting, bits, score) rows.

    python -m posttrain.complexity --manifest results/runs/<run>/checkpoints.json --step N --spec SPEC \
        [--reference run_start=DIR] [--reference base=DIR] --out results/complexity/<run>/step-N.parquet

SPEC is the config's `complexity` section: tasks (name -> settings) and estimators (name -> settings).
Estimators run in this order on the loaded checkpoint; each leaves the weights as it found them.
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
from posttrain.complexity import tasks
from posttrain.complexity.estimators import prequential, prompting, weight_delta, zero_shot
from posttrain.config import load_spec
from posttrain.io import write_parquet
from posttrain.models import ModelNotFoundError, load_checkpoint
from posttrain.retention import existing_snapshot

FAMILY = {"zero_shot": "inference", "instruction": "inference", "icl": "inference", "prequential": "data",
          "weight_delta": "parametric"}
COLUMNS = ["run", "step", "task", "estimator", "family", "setting", "bits", "payload_bits", "driver_bits", "score",
           "precision"]


def measure(model, tokenizer, spec: dict, run: str, step: int, references: dict) -> pd.DataFrame:
    numerics = precision.resolve(spec.get("precision", precision.INFERENCE_DEFAULT), model.device.type, "complexity probe")
    with precision.autocast(numerics, model):
        rows = _measure(model, tokenizer, spec, run, step, references)
    return pd.DataFrame([{**r, "precision": numerics} for r in rows], columns=COLUMNS).astype(
        {"step": "int64", "bits": "float64", "score": "float64"})


def _measure(model, tokenizer, spec: dict, run: str, step: int, references: dict) -> list[dict]:
    rows = []
    estimators = spec.get("estimators", {})
    for name, settings in spec["tasks"].items():
        task = tasks.load(name, settings)
        common = {"batch_size": spec.get("batch_size", 16)}
        out = []
        if "zero_shot" in estimators:
            with timing.phase("zero_shot"):
                out += zero_shot.run(model, tokenizer, task, {**common, **estimators["zero_shot"]})
        if "prompting" in estimators:
            with timing.phase("prompting"):
                out += prompting.run(model, tokenizer, task, {**common, **estimators["prompting"]})
        if "weight_delta" in estimators and references:
            refs = {k: v for k, v in references.items() if k in estimators["weight_delta"].get("references", references)}
            with timing.phase("weight_delta"):
                out += weight_delta.run(model, tokenizer, task, {**common, **estimators["weight_delta"]}, refs)
        if "prequential" in estimators:
            with timing.phase("prequential"):
                out += prequential.run(model, tokenizer, task, {**common, **estimators["prequential"]})
        rows += [{"run": run, "step": step, "task": name, "family": FAMILY[r["estimator"]], **r} for r in out]
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--step", type=int, required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=DIR",
                        help="weights the delta is taken against (the run's start, the base model)")
    parser.add_argument("--same-as", metavar="PARQUET",
                        help="the checkpoint has the same weights as the one this file measured (a preference run's "
                             "step 0 is its parent's checkpoint): copy its rows, and compute only the weight-delta "
                             "programs, whose references differ")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        spec = load_spec(args.spec)
        run = json.loads(Path(args.manifest).read_text())["run"]
        own = checkpoint_path(args.manifest, args.step)
        with timing.phase("load"):
            model, tokenizer = load_checkpoint(own)
            references, by_path = {}, {}
            for item in args.reference:
                name, _, path = item.partition("=")
                key = Path(path).resolve()
                if key not in by_path:  # each model is loaded once: a reference that is this checkpoint is not reloaded
                    source = model if key == Path(own).resolve() else load_checkpoint(existing_snapshot(path))[0]
                    by_path[key] = {n: p.detach().to("cpu", copy=True)  # host memory: the GPU holds one model
                                    for n, p in source.named_parameters()}
                references[name] = by_path[key]
        start = time.perf_counter()
        copied = None
        if args.same_as:
            copied = pd.read_parquet(args.same_as).query("estimator != 'weight_delta'").assign(run=run, step=args.step)
            spec = {**spec, "estimators": {k: v for k, v in spec.get("estimators", {}).items() if k == "weight_delta"}}
        frame = measure(model, tokenizer, spec, run, args.step, references)
        if copied is not None:
            frame = pd.concat([copied.reindex(columns=COLUMNS), frame], ignore_index=True).astype(frame.dtypes.to_dict())
    except (ValueError, ModelNotFoundError, tasks.TaskError) as e:
        sys.exit(f"error: {e}")
    write_parquet(args.out, frame)
    print(f"{run} step {args.step}: {len(frame)} complexity points in {time.perf_counter() - start:.1f}s -> {args.out}")
    print(timing.summary())


if __name__ == "__main__":
    main()
