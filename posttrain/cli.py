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
