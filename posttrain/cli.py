"""The `posttrain` command (also `python -m posttrain`).

For you:
    posttrain query "SQL" [--db results/study.duckdb]   ask the study database a question (read-only)
    posttrain findings [--db results/study.duckdb]      what the study found, as Markdown tables (the README's)
    posttrain report [--db DB] [--out FILE] [--figures PNG ...]
                                                         the study summary page: one self-contained HTML file
                                                         (default results/summary.html); without --figures it
                                                         draws every figure from the database
    posttrain export --to csv|parquet DIR [--db DB]      every table and view as one file each, for pandas, R,
                                                         W&B or MLflow without DuckDB
    posttrain plan --cost [--config FILE] [--gpu h100|h200|a100 | --cpu THREADS] [--utilisation KIND=U ...]
                                                         what a study costs before it runs: each rule's jobs,
                                                         tokens, FLOPs, hours and GPU-hours (posttrain/cost.py);
                                                         without --cost, the jobs per rule
    posttrain judge-eval --judge NAME [--config FILE]    validate a configured stance judge on the labelled set:
                                                         prints macro-F1, per-class recall and the confusion
                                                         matrix, and writes its eval-<split>.json under results/
For the workflow (each rule runs one; `posttrain.plan` writes the job specs):
    posttrain <stage> --job JOB [--threads N]            JOB: a job spec, inline JSON or a JSON/YAML file
    stages: data, dequantise, sft, pref, reward-model, judge-head, judge-eval, value-probe, complexity-probe,
            dataset-stance, store, plot, report, release-snapshot, release-trainer-state
A bad input ends with one line, `error: ...`, naming it, and exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from posttrain import stages
from posttrain.plan import Layout


def _stage_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    p.add_argument("--job", required=name not in ("judge-eval", "report"),
                   help="the job spec: inline JSON or a JSON/YAML file")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--input", nargs="+", action="append", metavar=("NAME", "FILE"),
                   help="input files beside the job spec, as job[NAME] (the store's long file lists)")
    return p


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="posttrain", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    query = sub.add_parser("query", help="run SQL against the study database")
    query.add_argument("sql")
    query.add_argument("--db", default=Layout().db())
    query.add_argument("--csv", action="store_true", help="CSV instead of an aligned table")
    found = sub.add_parser("findings", help="what the study found: drift, controls, judge (Markdown)")
    found.add_argument("--db", default=Layout().db())
    export = sub.add_parser("export", help="write every table and view as CSV or Parquet files")
    export.add_argument("--to", required=True, choices=["csv", "parquet"], help="the file format")
    export.add_argument("dir", help="the folder to write into (created if missing)")
    export.add_argument("--db", default=Layout().db())
    planned = sub.add_parser("plan", help="the study's jobs per rule; with --cost, what they cost")
    planned.add_argument("--config", default="config/config.yaml")
    planned.add_argument("--results", default=Layout().root,
                         help="the study's results folder (built datasets there give measured sequence lengths)")
    planned.add_argument("--cost", action="store_true", help="tokens, FLOPs, hours and GPU-hours per rule")
    where = planned.add_mutually_exclusive_group()
    where.add_argument("--gpu", default="h100", help="the GPU the bill is for: h100 (default), h200, a100")
    where.add_argument("--cpu", type=int, metavar="THREADS",
                       help="this CPU with THREADS threads (its sustained matmul rate measured)")
    planned.add_argument("--peak-tflops", type=float, help="the device's peak instead of the data sheet's or measured")
    planned.add_argument("--utilisation", nargs="+", default=[], metavar="KIND=U",
                         help="model FLOPs utilisation of train, prefill or decode work (default 0.4, 0.5, 0.25)")
    planned.add_argument("--start-s", type=float, help="seconds to start a job (default: 60 on a GPU, 5 on a CPU)")
    for name in stages.STAGES:
        p = _stage_parser(sub, name, f"run the {name} stage on one job spec")
        if name == "judge-eval":  # also for you, by judge name, outside the workflow
            p.add_argument("--judge", help="a key of the config's judges (default: probes.judge)")
            p.add_argument("--config", default="config/config.yaml")
            p.add_argument("--split", choices=["train", "dev", "test", "real"], default="test",
                           help="real: the config's probes.judge_eval.real_answers set")
            p.add_argument("--results", default=Layout().root, help="the study's results folder")
        if name == "report":  # also for you, on any study database, outside the workflow
            p.add_argument("--db", default=Layout().db())
            p.add_argument("--out", default=Layout().summary(), help="the HTML file to write")
            p.add_argument("--figures", nargs="*", default=None, metavar="PNG",
                           help="the study's figure files (default: draw them from the database)")
    return top


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.command == "query":
        query(args)
    elif args.command == "findings":
        if not Path(args.db).is_file():
            sys.exit(f"error: no database at {args.db} (build it with `snakemake --cores 2`)")
        from posttrain.store.findings import findings

        print(findings(args.db), end="")
    elif args.command == "plan":
        plan_command(args)
    elif args.command == "judge-eval" and not args.job:
        judge_eval(args)
    elif args.command == "report" and not args.job:
        stages.main("report", json.dumps({"stage": "report", "db": args.db, "out": args.out,
                                          "figures": args.figures}))
    elif args.command == "export":
        from posttrain.store.export import ExportError, export

        try:
            print(export(args.db, args.dir, args.to))
        except ExportError as e:
            sys.exit(f"error: {e}")
    else:
        stages.main(args.command, args.job, args.threads, args.input)


def query(args) -> None:
    import duckdb
    import pandas as pd

    if not Path(args.db).is_file():
        sys.exit(f"error: no database at {args.db} (build it with `snakemake --cores 2`)")
    with duckdb.connect(args.db, read_only=True) as con:
        try:
            frame = con.sql(args.sql).df()
        except duckdb.Error as e:
            sys.exit(f"error: {e}")
    if args.csv:
        frame.to_csv(sys.stdout, index=False)
    else:
        with pd.option_context("display.max_rows", 500, "display.width", 200):
            print(frame.to_string(index=False))


def plan_command(args) -> None:
    """`posttrain plan`: the jobs of a config per rule, or with --cost the bill (posttrain.cost)."""
    from collections import Counter

    from posttrain import config as study_config
    from posttrain import cost
    from posttrain.plan import Plan

    try:
        utilisation = {}
        for item in args.utilisation:
            kind, _, value = item.partition("=")
            if kind not in cost.UTILISATION or not value:
                sys.exit(f"error: --utilisation {item!r}: expected KIND=U, KIND one of {', '.join(cost.UTILISATION)}")
            utilisation[kind] = float(value)
            if not 0 < utilisation[kind] <= 1:
                sys.exit(f"error: --utilisation {item!r}: a utilisation lies in (0, 1]")
        study = cost.StudyCost(Plan(study_config.load(args.config), root=args.results))
        if not args.cost:
            for rule, n in Counter(job["rule"] for job in study.jobs).most_common():
                print(f"{rule:32s} {n:6d}")
            return
        peak = args.peak_tflops * 1e12 if args.peak_tflops else None
        if args.cpu:
            hw = cost.cpu(args.cpu, peak, utilisation=utilisation,
                          **({"start_s": args.start_s} if args.start_s is not None else {}))
        else:
            hw = cost.gpu(args.gpu, utilisation, **({"start_s": args.start_s} if args.start_s is not None else {}))
            if peak:
                hw = dataclasses.replace(hw, peak_flops=peak)
        print(cost.render(study, hw, args.config), end="")
    except (cost.CostError, *stages._expected_errors()) as e:
        sys.exit(f"error: {e}")


def judge_eval(args) -> None:
    """Fit the judge's head if it has none yet, then validate it: the workflow's judge_head and judge_eval jobs."""
    from posttrain import config as study_config
    from posttrain.plan import Plan

    try:
        plan = Plan(study_config.load(args.config), root=args.results)
        name = args.judge or plan.judge
        if name not in plan.config["judges"]:
            sys.exit(f"error: judge {name!r} is not defined under judges in {args.config} "
                     f"(defined: {', '.join(sorted(plan.config['judges']))})")
        head = plan.job("judge_head", judge=name)
        if "head" in head["judge"] and not Path(head["out"]).is_file():
            print(stages.run("judge-head", head))
        print(stages.run("judge-eval", plan.job("judge_eval", judge=name, split=args.split)))
    except stages._expected_errors() as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
