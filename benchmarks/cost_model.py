"""Does the cost model (posttrain/cost.py, `posttrain plan --cost`) predict what a study's jobs take?

Measures this CPU's fp32 matmul peak on the study's threads, predicts every job of a config on it with the cost
model's stated utilisations (nothing fitted to the run), and compares each rule's mean job time with what the
study's own jobs took (`job_benchmarks` in its database: Snakemake's benchmark file of every job). Also prints
the bill of the cluster config on an H100. Writes results/cost_model.json with the machine it ran on.

    python benchmarks/cost_model.py --db results/study.duckdb --config config/config.yaml --threads 2

Run it on an idle machine after a full run from an empty results/ (the measured times are that run's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import duckdb
from machine import cpu

from posttrain import config as study_config
from posttrain import cost
from posttrain.plan import Plan

OUT = Path(__file__).parent / "results" / "cost_model.json"
CLUSTER = Path(__file__).parents[1] / "config" / "cluster-study.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="results/study.duckdb")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--results", default="results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    peak = cost.measure_cpu_peak(args.threads)
    hw = cost.cpu(args.threads, peak)
    study = cost.StudyCost(Plan(study_config.load(args.config), root=args.results))
    predicted = defaultdict(list)
    for job in study.jobs:
        predicted[job["rule"]].append(cost.job_seconds(job, hw))
    with duckdb.connect(args.db, read_only=True) as con:
        measured = dict(con.sql("SELECT rule, list(wall_s) FROM job_benchmarks GROUP BY rule").fetchall())
    built = time.strftime("%Y-%m-%d %H:%M", time.gmtime(Path(args.db).stat().st_mtime))
    rows = []
    for rule in sorted(measured, key=lambda r: -sum(measured[r])):
        m = sum(measured[rule]) / len(measured[rule])
        p = sum(predicted[rule]) / len(predicted[rule]) if predicted[rule] else float("nan")
        rows.append({"rule": rule, "jobs": len(measured[rule]), "jobs_billed": len(predicted[rule]),
                     "measured_s_per_job": m, "predicted_s_per_job": p, "ratio": p / m,
                     "within_2x": 0.5 <= p / m <= 2})
    total_m = sum(sum(v) for v in measured.values())
    total_p = sum(sum(predicted[r]) for r in measured)
    with tempfile.TemporaryDirectory() as empty:  # not this study's results/: its datasets share names, not sizes
        cluster = cost.StudyCost(Plan(study_config.load(CLUSTER), root=empty))
    h100 = cost.gpu("h100")
    bill = cost.bill(cluster, h100)
    result = {
        "command": "python benchmarks/cost_model.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items()),
        "date": time.strftime("%Y-%m-%d"), "cpu": cpu(), "threads": args.threads,
        "measured_peak_flops": peak, "hardware": hw.describe(), "db_built_utc": built,
        "rules": rows, "total": {"measured_s": total_m, "predicted_s": total_p, "ratio": total_p / total_m},
        "cluster": {"hardware": h100.describe(), "gpu_hours": sum(r["gpu_hours"] for r in bill),
                    "job_hours": sum(r["seconds"] for r in bill) / 3600,
                    "by_rule": {r["rule"]: r["gpu_hours"] for r in bill if r["gpu_hours"]}},
    }
    OUT.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"{cpu()['model']}, {args.threads} threads: fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print("| rule | jobs | measured s / job | predicted s / job | predicted / measured |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rule']} | {r['jobs']} | {r['measured_s_per_job']:.1f} | {r['predicted_s_per_job']:.1f} | "
              f"{r['ratio']:.2f}{'' if r['within_2x'] else ' (outside 2x)'} |")
    print(f"| all | {sum(r['jobs'] for r in rows)} | {total_m:.0f} (sum) | {total_p:.0f} (sum) | "
          f"{total_p / total_m:.2f} |")
    print(f"cluster config on an H100: {result['cluster']['gpu_hours']:.0f} GPU-hours")


if __name__ == "__main__":
    main()
