"""The task-complexity probe's positive control: does a training stage that teaches a task collapse C(T, δ)?

    python benchmarks/complexity_control.py \\
        --start results/runs/sft-valuemix/checkpoints/step-24 \\
        --end dpo-support=DIR_OF_dpo-support-seed0_step-8 --end dpo-neutral=DIR_OF_dpo-neutral-seed0_step-8

The checkpoints are the default study's: the SFT end that every DPO run starts from, and the ends of DPO on the
support-aligned set (it teaches the stance task "answer taking a supportive stance") and on the value-neutral
set (it does not). Keep the DPO ends with `retention: {checkpoints: last}` (config/README.md).

Every checkpoint runs the study's own complexity probe (posttrain.complexity.measure) with the config's spec, the
stance task at `--n-test-per-topic` held-out questions of every topic, and the estimators below; each end gets
a weight-delta program on the start (filed on the start's frontier, reaching the end's score). The rows go into
a DuckDB file with the store's own complexity views (posttrain/store/complexity_views.sql), and the summary is
read from its `task_complexity` view: for every δ of the grid, C(T, δ) at the start and at each end, counted as
payload + harness (driver bits apart), and the ratio start / end. A δ counts for the control where the start
reaches it only with a data or weight program (no inference program on the start reaches it).

Writes OUT/complexity_control.duckdb (the rows and views), OUT/complexity_control.json (the summary) and
OUT/complexity_control-RUN.png (each run's Pareto frontiers: start and end). Not a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import duckdb
import pandas as pd
import torch

from posttrain.complexity.measure import measure
from posttrain.config import read_yaml, validate
from posttrain.models import load_checkpoint
from posttrain.plan import Plan
from posttrain.plots.complexity import pareto
from posttrain.store.build import COMPLEXITY_VIEWS, delta_sql

START = "start"


def spec_for(config: str, n_test_per_topic: int, estimators: dict, train_from: list[str]) -> dict:
    """The config's complexity spec with the stance task at n_test_per_topic items of every topic, its train
    examples from `train_from` (all of them: the prequential max_examples is the cap) and these estimators."""
    spec = Plan(validate(read_yaml(config)), root="results").complexity_spec()
    stance = {k: v for k, v in spec["tasks"]["stance"].items() if k not in ("n_test", "n_train")}
    spec["tasks"] = {"stance": {**stance, "n_test_per_topic": n_test_per_topic, "train_from": train_from}}
    spec["estimators"] = estimators
    return spec


def estimator_specs(estimators: dict, lrs: list[float]) -> list[dict]:
    """One estimator set per prequential learning rate (the reference keeps the better of two): the first carries
    every estimator, the others only prequential."""
    first = {**estimators, "prequential": {**estimators["prequential"], "lr": lrs[0]}}
    return [first] + [{"prequential": {**estimators["prequential"], "lr": lr}} for lr in lrs[1:]]


def remeasure_start(spec: dict, specs: list[dict], start: str, earlier: pd.DataFrame, estimators: set[str]):
    """Keep an earlier measurement's rows but the start's own rows of `estimators` (row names), which are measured
    again on the start with this run's settings (e.g. a longer prequential pass), filed for every end run."""
    model, tokenizer = load_checkpoint(start)
    t = time.perf_counter()
    fresh = pd.concat([measure(model, tokenizer, {**spec, "estimators": s}, START, 0, {}) for s in specs],
                      ignore_index=True)
    seconds = time.perf_counter() - t
    print(f"{START} ({', '.join(sorted(estimators))}): {seconds:.0f} s", flush=True)
    own = (earlier["step"] == 0) & (earlier["target_step"] == 0) & earlier["estimator"].isin(estimators)
    kept = earlier[~own]
    frames = [kept] + [fresh.assign(run=run, target_run=run) for run in kept["run"].unique()]
    return pd.concat(frames, ignore_index=True), {START: seconds}


def measure_all(spec: dict, specs: list[dict], start: str, ends: dict[str, str]) -> tuple[pd.DataFrame, dict]:
    """Rows as the study files them: for each end run, step 0 holds the start's programs and the weight delta to
    the end (filed on the start), step 1 the end's own programs (the ends' at the first learning rate only)."""
    model, tokenizer = load_checkpoint(start)
    start_weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    t = time.perf_counter()
    start_rows = pd.concat([measure(model, tokenizer, {**spec, "estimators": s}, START, 0, {}) for s in specs],
                           ignore_index=True)
    seconds = {START: time.perf_counter() - t}
    print(f"{START}: {seconds[START]:.0f} s", flush=True)
    del model
    frames = []
    for run, path in ends.items():
        model, tokenizer = load_checkpoint(path)
        t = time.perf_counter()
        frames += [start_rows.assign(run=run, target_run=run),
                   measure(model, tokenizer, spec, run, 1, {"run_start": (start_weights, (run, 0))})]
        seconds[run] = time.perf_counter() - t
        print(f"{run}: {seconds[run]:.0f} s", flush=True)
        del model
    return pd.concat(frames, ignore_index=True), seconds


def store(points: pd.DataFrame, db: Path) -> duckdb.DuckDBPyConnection:
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    con.register("p", points.drop(columns=["item_scores"]))
    con.execute("CREATE TABLE complexity_points AS SELECT * FROM p")
    con.execute("CREATE TABLE checkpoints AS SELECT DISTINCT run, step, step::DOUBLE AS progress FROM p")
    con.execute(COMPLEXITY_VIEWS.read_text().format(delta_sql=delta_sql({})))
    return con


def summary(con) -> list[dict]:
    """Per run and δ: C at the start (step 0) and the end (step 1), each as payload + harness, and their ratio;
    `start_needs_data_or_weights`: no inference program on the start reaches δ."""
    frame = con.execute("""
        SELECT t.run, t.step, t.delta, t.program, t.payload_bits, t.bits, t.best_score, p.harness_bits, p.family
        FROM task_complexity t
        LEFT JOIN (SELECT DISTINCT run, step, task, estimator || CASE WHEN setting = '' THEN '' ELSE ' ' || setting
                          END AS program, harness_bits, family FROM complexity_points) p
             USING (run, step, task, program)
        ORDER BY t.run, t.delta, t.step""").df()
    out = []
    for (run, delta), g in frame.groupby(["run", "delta"]):
        s, e = g.set_index("step").loc[0], g.set_index("step").loc[1]
        start_bits = None if pd.isna(s.bits) else float(s.payload_bits + s.harness_bits)
        end_bits = None if pd.isna(e.bits) else float(e.payload_bits + e.harness_bits)
        out.append({"run": run, "delta": float(delta),
                    "start": {"program": None if pd.isna(s.program) else s.program, "bits": start_bits,
                              "best_score": float(s.best_score)},
                    "end": {"program": None if pd.isna(e.program) else e.program, "bits": end_bits,
                            "best_score": float(e.best_score)},
                    "start_needs_data_or_weights": s.family in ("data", "parametric"),
                    "ratio": start_bits / end_bits if start_bits and end_bits else None})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--start", required=True, help="the stage's starting checkpoint (a save_pretrained folder)")
    ap.add_argument("--end", action="append", required=True, metavar="RUN=DIR", help="a stage's end checkpoint")
    ap.add_argument("--n-test-per-topic", type=int, default=10)
    ap.add_argument("--icl-k", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--prequential-max", type=int, default=32)
    ap.add_argument("--prequential-lr", type=float, nargs="+", default=[1e-4],
                    help="one streaming pass per learning rate on the start (the ends: the first only)")
    ap.add_argument("--train-from", nargs="+", default=["labelled"], choices=["labelled", "value_qa"],
                    help="the stance task's train examples (value_qa: what the value-gap DPO sets carry)")
    ap.add_argument("--reuse", metavar="PARQUET", help="keep an earlier run's rows, measuring again on the start "
                    "only the estimators of --remeasure")
    ap.add_argument("--remeasure", nargs="+", default=["prequential"], choices=["zero_shot", "prompting",
                    "prequential"], help="with --reuse: the start's estimators to measure again")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--points", help="reuse the rows of an earlier run (a Parquet file) instead of measuring")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ends = dict(e.split("=", 1) for e in args.end)
    estimators = {"zero_shot": {}, "prompting": {"icl_k": args.icl_k},
                  "prequential": {"max_examples": args.prequential_max, "batch": 8, "lr": args.prequential_lr[0]},
                  "weight_delta": {"bits": [4], "references": ["run_start"]}}
    spec = spec_for(args.config, args.n_test_per_topic, estimators, args.train_from)
    specs = estimator_specs(estimators, args.prequential_lr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.points:
        points, seconds = pd.read_parquet(args.points), {}
    elif args.reuse:
        remeasure = {"prompting": {"instruction", "icl"}}
        names = set().union(*(remeasure.get(e, {e}) for e in args.remeasure))
        points, seconds = remeasure_start(spec, [{k: v for k, v in s.items() if k in args.remeasure} for s in specs],
                                          args.start, pd.read_parquet(args.reuse), names)
        points.to_parquet(out / "complexity_control.parquet")
    else:
        points, seconds = measure_all(spec, specs, args.start, ends)
        points.to_parquet(out / "complexity_control.parquet")
    con = store(points, out / "complexity_control.duckdb")
    rows = summary(con)
    for run in ends:
        pareto(lambda q, p=None: con.execute(q, p or []).df(),
               lambda fig, path: fig.savefig(path, dpi=110, bbox_inches="tight"), run,
               str(out / f"complexity_control-{run}.png"))
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "start": args.start, "ends": ends, "estimators": estimators,
              "prequential_lr": args.prequential_lr, "train_from": args.train_from,
              "reused": {"rows_of": args.reuse, "start_remeasured": args.remeasure} if args.reuse else None,
              "n_test_items": int(points["n_items"].iloc[0]), "seconds_per_checkpoint": seconds,
              "harness_bits": float(points["harness_bits"].iloc[0]), "by_delta": rows}
    (out / "complexity_control.json").write_text(json.dumps(result, indent=1))
    print(con.execute("SELECT run, step, estimator, setting, target_run, round(payload_bits) AS payload, "
                      "round(score, 3) AS score, round(score_lo, 3) AS lo, round(score_hi, 3) AS hi "
                      "FROM complexity_points ORDER BY run, bits").df().to_string())
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
