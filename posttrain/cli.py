"""The `posttrain` command.

    posttrain query "SQL"                  ask the study database a question (read-only), print a table
    posttrain judge-eval --judge NAME      validate a configured stance judge on the labelled set: prints
                                           macro-F1, per-class recall and the confusion matrix, and writes
                                           results/judges/NAME/eval-<split>.json (the next `snakemake` puts
                                           it into the database's judge_eval table)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import pandas as pd


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="posttrain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    query = sub.add_parser("query", help="run SQL against the study database")
    query.add_argument("sql")
    query.add_argument("--db", default="results/study.duckdb")
    query.add_argument("--csv", action="store_true", help="CSV instead of an aligned table")
    judge = sub.add_parser("judge-eval", help="validate a stance judge on the labelled set")
    judge.add_argument("--judge", help="a key of the config's judges (default: probes.judge)")
    judge.add_argument("--config", default="config/config.yaml")
    judge.add_argument("--split", choices=["train", "dev", "test"], default="test")
    judge.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    if args.command == "judge-eval":
        judge_eval(args)
        return
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
    from posttrain import config as study_config
    from posttrain.io import write_json
    from posttrain.judges import JudgeError, evaluate, labelled, resolve, train_head

    try:
        cfg = study_config.load(args.config)
        name = args.judge or cfg["probes"]["judge"]
        if name not in cfg["judges"]:
            sys.exit(f"error: judge {name!r} is not defined under judges in {args.config} "
                     f"(defined: {', '.join(sorted(cfg['judges']))})")
        spec = resolve(cfg, name, args.results)
        if "head" in spec and not Path(spec["head"]).is_file():
            write_json(spec["head"], train_head.train(spec, model_dir=Path(spec["head"]).with_name("model")))
            print(f"fitted the head of {name} -> {spec['head']}")
        result, frame = evaluate.evaluate(spec, args.split)
    except (study_config.ConfigError, JudgeError, labelled.LabelledSetError) as e:
        sys.exit(f"error: {e}")
    out = Path(args.results) / "judges" / name / f"eval-{args.split}.json"
    evaluate.write(result, frame, out)
    print(evaluate.report(result))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
