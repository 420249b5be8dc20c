"""Does bf16 change what the study reports? Drift and C(T, δ) from fp32 and from bf16 on the same checkpoints.

    python benchmarks/precision_drift.py --root DIR --threads 2

A probe part may run in bf16 where the machine has it natively if, on the same checkpoints, the drift (of every
stance and the balance, mean over topics) and C(T, δ) it yields differ from fp32's by less than a quarter of the
fp32 interval's half-width (issue 25, item 1). DIR holds a study's `results/` with the checkpoints of the runs
compared (retention removes a preference run's snapshots once they are probed: hard-link them aside first,
`cp -al`), and the study's own probe rows, which are the fp32 side. The bf16 side is probed here:
  generation     the policy samples in bf16 and the judge reads in bf16 (what `auto` runs on a bf16 machine)
  judge          the judge alone reads the study's own fp32 answers in bf16
  forced_choice  forced choice in bf16
  complexity     every program answered, coded and scored in bf16 (the judge scoring the answers too)
Both sides go through the store's own build with the same bootstrap draw (posttrain.store.build), and the
comparison reads drift_ci (estimand (a): one run's drift over prompts and samples, the narrowest interval the study
reports for a run) and task_complexity (C(T, δ); its interval is [bits_optimistic, bits_confident]).
Where the CPU has no native bf16, bf16 runs emulated at fp32 speed (posttrain.precision.emulated_bf16): the numbers
carry bf16's error, the times say nothing, and `hardware` in the output says which case ran.
Results: benchmarks/results/precision_drift.json (and .parquet: every compared number).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu

from posttrain import precision, stages
from posttrain.config import control_tests, read_yaml
from posttrain.io import write_json, write_parquet
from posttrain.judges import build as build_judge
from posttrain.judges.run import judge_items
from posttrain.plan import Plan
from posttrain.probes import values
from posttrain.store.build import build as build_store

REPO = Path(__file__).resolve().parents[1]
STANCES = ("balance", "support", "neutral", "oppose")
QUARTER = 0.25


def bf16_config(config: dict) -> dict:
    """The study's config with every probe part in bf16."""
    c = copy.deepcopy(config)
    c["probes"]["values"]["precision"] = {"forced_choice": "bf16", "generation": "bf16"}
    c["judges"][c["probes"]["judge"]]["precision"] = "bf16"
    c["complexity"]["precision"] = "bf16"
    return c


def probed(plan: Plan, runs: list[str], rule: str, out: Path) -> dict[tuple[str, int], Path]:
    """Run `rule` (value_probe / complexity_probe) in bf16 at every checkpoint of `runs` into `out`; a preference
    run's step 0 takes its parent's bf16 rows, as the workflow does."""
    files = {}
    checkpoints = sorted({(plan.config["pref"][r]["from"]["run"], plan.config["pref"][r]["from"]["step"])
                          for r in runs if r in plan.config["pref"]} | {(r, s) for r in runs for s in plan.steps[r]},
                         key=lambda rs: (rs[0] not in plan.sft_runs, rs))
    for run, step in checkpoints:
        path = out / rule / run / f"step-{step}.parquet"
        job = {**plan.job(rule, run=run, step=step), "out": str(path)}
        if "same_as" in job:
            parent = plan.config["pref"][run]["from"]
            job["same_as"] = str(files[(parent["run"], parent["step"])])
        if not path.exists():  # a rerun resumes: each checkpoint's bf16 rows are written once
            print(stages.run(rule.replace("_", "-"), job), flush=True)  # it logs its own time
        files[(run, step)] = path
    return files


def rejudged(plan: Plan, fp32_files: dict, out: Path) -> dict[tuple[str, int], Path]:
    """The study's own fp32 answers, read again by the judge in bf16 (the judge part alone)."""
    question = {p["id"]: p["question"] for p in values.generation_prompts(plan.value_probe_spec()).prompts}
    judge, files = None, {}
    for (run, step), source in fp32_files.items():
        path = out / "rejudged" / run / f"step-{step}.parquet"
        if not path.exists():
            # loaded once, and only when some checkpoint is still to be read (a rerun reuses the files)
            judge = judge or build_judge({**plan.judge_spec(plan.judge), "precision": "bf16"}, progress=False)
            frame = pd.read_parquet(source)
            gen = frame["mode"] == "generation"
            items = [{"question": question[p], "response": r, "topic": t, "id": f"{p}#{s}"} for r, t, p, s in zip(
                frame.loc[gen, "response"], frame.loc[gen, "topic"], frame.loc[gen, "prompt_id"],
                frame.loc[gen, "sample_id"])]
            verdicts = pd.DataFrame(judge_items(judge, items), index=frame.index[gen])
            for column in verdicts.columns.intersection(frame.columns):
                frame.loc[gen, column] = verdicts[column].astype(frame[column].dtype)
            frame.loc[gen, "judge_precision"] = judge.precision
            write_parquet(path, frame)
        files[(run, step)] = path
    return files


def store(plan: Plan, runs: list[str], value_files: dict, complexity_files: dict, db: Path) -> None:
    bootstrap = plan.config["drift"]["bootstrap"]
    own = [(r, s) for r in runs for s in plan.steps[r]]
    build_store(db, [plan.paths.manifest(r) for r in runs], [str(value_files[k]) for k in own],
                plan.config["drift"]["extremum_fraction"], resamples=bootstrap["resamples"],
                confidence=bootstrap["confidence"], seed=bootstrap["seed"],
                complexity=[str(complexity_files[k]) for k in own] if complexity_files else [],
                deltas=plan.config["complexity"]["delta"], datasets=plan.config["datasets"],
                controls=[c for c in control_tests(plan.config) if c["run"] in runs and c.get("against") in runs])


def drift(db: Path) -> pd.DataFrame:
    """Each run's drift with its interval. Where the study withholds a forced-choice drift (too little label
    mass) the comparison still reads it, from the same rows: bf16 must not move what would be reported either."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run, topic, mode, stance, last_value - first_value AS magnitude, "
                           "drift_ci.magnitude_lo AS lo, drift_ci.magnitude_hi AS hi, "
                           "withheld_reason IS NOT NULL AS withheld "
                           "FROM drift_all JOIN drift_ci USING (run, topic, mode, stance, n_resamples)").df()


def complexity(db: Path) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run, step, task, delta, bits, bits_optimistic, bits_confident "
                           "FROM task_complexity").df()


def compare_drift(fp32: pd.DataFrame, bf16: pd.DataFrame, modes: list[str]) -> pd.DataFrame:
    keys = ["run", "topic", "mode", "stance"]
    both = fp32.merge(bf16[keys + ["magnitude", "withheld"]], on=keys, suffixes=("_fp32", "_bf16"))
    both = both[both["mode"].isin(modes) & both["stance"].isin(STANCES)].copy()
    both["half_width"] = (both["hi"] - both["lo"]) / 2
    both["abs_diff"] = (both["magnitude_bf16"] - both["magnitude_fp32"]).abs()
    both["ratio"] = both["abs_diff"] / both["half_width"]
    both["within"] = both["abs_diff"] < QUARTER * both["half_width"]
    return both.drop(columns="withheld_bf16").rename(columns={"withheld_fp32": "withheld"})


def programs(db: Path) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run, step, task, estimator, setting, target_run, target_step, bits, score, "
                           "score_lo, score_hi FROM complexity_points").df()


def compare_programs(fp32: pd.DataFrame, bf16: pd.DataFrame) -> pd.DataFrame:
    """What C(T, δ) is made of, program by program: its score against a quarter of the score interval's
    half-width (over test items), and its length (relative)."""
    keys = ["run", "step", "task", "estimator", "setting", "target_run", "target_step"]
    both = fp32.merge(bf16[keys + ["bits", "score"]], on=keys, suffixes=("_fp32", "_bf16"))
    both["half_width"] = (both["score_hi"] - both["score_lo"]) / 2
    both["abs_diff"] = (both["score_bf16"] - both["score_fp32"]).abs()
    both["ratio"] = both["abs_diff"] / both["half_width"]
    both["within"] = (both["abs_diff"] == 0) | (both["abs_diff"] < QUARTER * both["half_width"])
    both["rel_diff_bits"] = (both["bits_bf16"] - both["bits_fp32"]).abs() / both["bits_fp32"]
    return both


def compare_complexity(fp32: pd.DataFrame, bf16: pd.DataFrame) -> pd.DataFrame:
    """C(T, δ) per checkpoint and δ. Its interval is [bits_optimistic, bits_confident]; where no program reaches δ
    with confidence the interval has no upper end, and a quarter of its width bounds nothing (status
    `unbounded`: reported, not counted as agreement). Where neither precision reaches δ, C is the same."""
    keys = ["run", "step", "task", "delta"]
    both = fp32.merge(bf16[keys + ["bits"]], on=keys, suffixes=("_fp32", "_bf16"))
    both["half_width"] = (both["bits_confident"] - both["bits_optimistic"]) / 2
    both["abs_diff"] = (both["bits_bf16"] - both["bits_fp32"]).abs()
    both["ratio"] = both["abs_diff"] / both["half_width"]
    bounded = both["bits_confident"].notna()
    both["status"] = np.select(
        [both["bits_fp32"].isna() & both["bits_bf16"].isna(), both["abs_diff"] == 0, ~bounded,
         both["abs_diff"] < QUARTER * both["half_width"]],
        ["same", "same", "unbounded", "within"], "outside")
    both["within"] = both["status"].isin(["same", "within"])
    return both


def verdict(rows: pd.DataFrame, overall: pd.Series) -> dict:
    """The acceptance reads the drift mean over topics (what the findings report), every run and stance; the
    per-topic share is context (11 topics x 4 read-outs x runs: a few past a quarter are expected)."""
    judged = rows[overall]
    return {"verdict": "accepted" if judged["within"].all() else "not accepted", "compared": len(judged),
            "within": int(judged["within"].sum()),
            "max_ratio_to_half_width": float(judged["ratio"].max()) if len(judged) else None,
            "median_ratio_to_half_width": float(judged["ratio"].median()) if len(judged) else None,
            "per_topic_share_within": float(rows.loc[~overall, "within"].mean()) if (~overall).any() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="the folder holding results/ (its paths are relative)")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--runs", nargs="+", help="default: the first seed of every run the controls' tests name")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "precision_drift.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = read_yaml(args.config.resolve())
    os.chdir(args.root)  # manifests name checkpoints relative to the study's root
    plan, plan16 = Plan(config), Plan(bf16_config(config))
    runs = args.runs or sorted({c[k] for c in control_tests(plan.config) for k in ("run", "against") if c.get(k)})
    work = Path("precision_drift")
    native, found = precision.native_bf16("cpu")
    emulate = contextlib.nullcontext() if native else precision.emulated_bf16()
    fp32_values = {(r, s): Path(plan.paths.value_probe(r, s)) for r in runs for s in plan.steps[r]}
    fp32_complexity = ({(r, s): Path(plan.paths.complexity_probe(r, s)) for r in runs for s in plan.steps[r]}
                       if plan.complexity else {})
    missing = [str(p) for p in [*fp32_values.values(), *fp32_complexity.values()] if not p.exists()]
    if missing:
        raise SystemExit(f"the study's fp32 rows are missing (run the study first): {', '.join(missing[:4])}")
    start = time.perf_counter()
    with emulate:
        bf16_values = probed(plan16, runs, "value_probe", work)
        bf16_complexity = probed(plan16, runs, "complexity_probe", work) if plan.complexity else {}
        judge_values = rejudged(plan, fp32_values, work)
    seconds = time.perf_counter() - start
    dbs = {name: work / f"{name}.duckdb" for name in ("fp32", "bf16", "bf16_judge")}
    store(plan, runs, fp32_values, fp32_complexity, dbs["fp32"])
    store(plan, runs, bf16_values, bf16_complexity, dbs["bf16"])
    store(plan, runs, judge_values, {}, dbs["bf16_judge"])
    ref = drift(dbs["fp32"])
    modes = sorted(set(ref["mode"]))
    rows = {"generation": compare_drift(ref, drift(dbs["bf16"]), ["generation"]) if "generation" in modes else None,
            "judge": compare_drift(ref, drift(dbs["bf16_judge"]), ["generation"]) if "generation" in modes else None,
            "forced_choice": (compare_drift(ref, drift(dbs["bf16"]), ["forced_choice"])
                              if "forced_choice" in modes else None)}
    parts = {part: verdict(r, r["topic"] == "(all)") for part, r in rows.items() if r is not None}
    if plan.complexity:
        c = compare_complexity(complexity(dbs["fp32"]), complexity(dbs["bf16"]))
        counts = {status: int((c["status"] == status).sum()) for status in ("same", "within", "unbounded", "outside")}
        # a C whose interval has no upper end cannot be held to a quarter of its width: not shown, either way
        parts["complexity"] = {"verdict": "not accepted" if counts["outside"] else
                               "inconclusive" if counts["unbounded"] else "accepted", "compared": len(c), **counts}
        rows["complexity"] = c
        prog = compare_programs(programs(dbs["fp32"]), programs(dbs["bf16"]))
        parts["complexity"]["programs"] = {
            "compared": len(prog), "score_within": int(prog["within"].sum()),
            "max_score_ratio_to_half_width": float(prog["ratio"].replace(np.inf, np.nan).max()),
            "max_rel_diff_bits": float(prog["rel_diff_bits"].max())}
        rows["complexity_programs"] = prog
    table = pd.concat([r.assign(part=p) for p, r in rows.items() if r is not None], ignore_index=True)
    result = {
        "command": " ".join(["python", *sys.argv]), "machine": cpu(), "torch": torch.__version__,
        "threads": args.threads,
        "hardware": "native bf16 (" + found + ")" if native else
                    f"emulated bf16 (posttrain.precision.emulated_bf16; {found}): its times say nothing",
        "runs": runs, "checkpoints": {r: plan.steps[r] for r in runs}, "criterion":
            f"|bf16 - fp32| < {QUARTER} x the fp32 interval's half-width (drift: drift_ci, estimand (a), topic "
            "'(all)'; C(T, δ): [bits_optimistic, bits_confident])",
        "seconds_probing_in_this_invocation": seconds,  # 0 where an earlier one's rows were reused "parts": parts,
        "drift": {p: r[r["topic"] == "(all)"][["run", "stance", "magnitude_fp32", "magnitude_bf16", "lo", "hi",
                                               "ratio", "withheld"]].round(4).to_dict("records")
                  for p, r in rows.items() if r is not None and not p.startswith("complexity")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    write_parquet(args.out.with_suffix(".parquet"), table.astype({"delta": "float64"}, errors="ignore"))
    print(json.dumps(parts, indent=1))


if __name__ == "__main__":
    main()
