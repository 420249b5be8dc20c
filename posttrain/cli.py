"""`posttrain query "SQL"`: ask the study database a question (read-only), print the answer as a table."""

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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    main()
