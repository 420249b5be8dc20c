"""How many bits of data a checkpoint needs to reach each δ of a task, and so the largest collapse any stage can show.

    python benchmarks/complexity_data_cost.py --checkpoint results/runs/sft-valuemix/checkpoints/step-24 \\
        --task arithmetic --task-settings '{"n_test": 64, "n_train": 2048}' --prequential-max 2048 --lr 1e-3

Runs the study's complexity probe (posttrain.complexity.measure) on one checkpoint, with zero-shot, instruction,
in-context and one prequential pass per learning rate up to `--prequential-max` examples, and reads C(T, δ) off
the programs: the fewest payload + harness bits (driver bits apart, as in complexity_control.py) among the
programs whose score reaches δ. A stage that starts from this checkpoint can at best reach δ zero-shot, which
costs the harness alone, so C(T, δ) / harness bounds the collapse any stage can show at δ: where the bound is
under 10, no training stage makes C(T, δ) 10x smaller on this task at this scale.

Writes OUT/complexity_data_cost-TASK.json (the programs and, per δ, C and the bound) and .parquet (the rows).
Not a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from posttrain.complexity.measure import measure
from posttrain.complexity.tasks import DEFAULT_DELTAS
from posttrain.config import read_yaml, validate
from posttrain.models import load_checkpoint
from posttrain.plan import Plan


def spec_for(config: str, task: str, settings: dict, estimators: dict) -> dict:
    """The config's complexity spec (the stance judge resolved) with only `task`, its settings updated."""
    spec = Plan(validate(read_yaml(config)), root="results").complexity_spec()
    spec["tasks"] = {task: {**spec["tasks"].get(task, {}), **settings}}
    spec["estimators"] = estimators
    return spec


def by_delta(rows: pd.DataFrame, deltas: list[float]) -> list[dict]:
    harness = float(rows["harness_bits"].iloc[0])
    out = []
    for delta in deltas:
        reach = rows[rows["score"] >= delta]
        if reach.empty:
            out.append({"delta": delta, "program": None, "bits": None, "collapse_bound": None})
            continue
        best = reach.loc[(reach["payload_bits"] + reach["harness_bits"]).idxmin()]
        bits = float(best["payload_bits"] + harness)
        out.append({"delta": delta, "program": f"{best['estimator']} {best['setting']}".strip(),
                    "family": best["family"], "payload_bits": float(best["payload_bits"]), "bits": bits,
                    "collapse_bound": bits / harness})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--checkpoint", required=True, help="a save_pretrained folder (e.g. a stage's start)")
    ap.add_argument("--task", required=True, choices=["arithmetic", "stance"])
    ap.add_argument("--task-settings", default="{}", type=json.loads, help="JSON, over the config's settings")
    ap.add_argument("--icl-k", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--prequential-max", type=int, default=2048)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3], help="one prequential pass per learning rate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--rows", help="rebuild the summary from an earlier run's rows (a Parquet file)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    estimators = [{"zero_shot": {}, "prompting": {"icl_k": args.icl_k}}] + [
        {"prequential": {"max_examples": args.prequential_max, "batch": 8, "lr": lr}} for lr in args.lr]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = None
    if args.rows:
        rows = pd.read_parquet(args.rows)
    else:
        model, tokenizer = load_checkpoint(args.checkpoint)
        t = time.perf_counter()
        rows = pd.concat([measure(model, tokenizer, spec_for(args.config, args.task, args.task_settings, e),
                                  "checkpoint", 0, {}) for e in estimators], ignore_index=True)
        seconds = time.perf_counter() - t
        rows = rows.drop(columns=["item_scores"])
        rows.to_parquet(out / f"complexity_data_cost-{args.task}.parquet")
    table = rows[["estimator", "setting", "payload_bits", "score", "score_lo", "score_hi"]]
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "checkpoint": args.checkpoint, "task": args.task,
              "task_settings": args.task_settings, "estimators": estimators, "seconds": seconds,
              "n_test_items": int(rows["n_items"].iloc[0]), "format": rows["format"].iloc[0],
              "harness_bits": float(rows["harness_bits"].iloc[0]), "programs": table.to_dict("records"),
              "by_delta": by_delta(rows, DEFAULT_DELTAS)}
    (out / f"complexity_data_cost-{args.task}.json").write_text(json.dumps(result, indent=1))
    print(table.round(3).to_string())
    print(json.dumps(result["by_delta"], indent=1))


if __name__ == "__main__":
    main()
