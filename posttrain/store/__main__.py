"""Build the study database from every run's manifest and every probe's Parquet file, atomically.

    python -m posttrain.store --manifests results/runs/*/checkpoints.json \
        --stance results/probes/values/*/*.parquet --out results/study.duckdb [--extremum-fraction 0.95]

The database is built under a temp name and renamed into place: readers never see a half-built file,
and a failed build leaves the previous database untouched.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb
import pandas as pd

from posttrain.io import atomic_path

VIEWS = Path(__file__).with_name("views.sql")
DATASET_VIEWS = Path(__file__).with_name("dataset_views.sql")


def _runs_and_checkpoints(manifests: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, checkpoints = [], []
    for path in manifests:
        m = json.loads(Path(path).read_text())
        runs.append({k: m[k] for k in ("run", "stage", "algorithm", "model", "dataset", "parent_run")}
                    | {"config_json": json.dumps(m["config"], sort_keys=True)})
        checkpoints += [{"run": m["run"], **c} for c in m["checkpoints"]]
    return pd.DataFrame(runs), pd.DataFrame(checkpoints, columns=["run", "step", "progress", "path"])


def build(db_path: str | Path, manifests: list[str], stance: list[str], extremum_fraction: float = 0.95,
          datasets_stance: list[str] = ()) -> None:
    runs, checkpoints = _runs_and_checkpoints(manifests)
    with atomic_path(db_path, suffix=".duckdb") as tmp:
        tmp.unlink()  # duckdb wants to create the file itself
        con = duckdb.connect(str(tmp))
        con.register("runs_df", runs)
        con.register("checkpoints_df", checkpoints)
        con.execute("CREATE TABLE runs AS SELECT * FROM runs_df")
        con.execute("CREATE TABLE checkpoints AS SELECT run, step::BIGINT AS step, progress::DOUBLE AS progress, "
                    "path FROM checkpoints_df ORDER BY run, step")
        con.execute("CREATE TABLE stance_samples AS SELECT * FROM read_parquet($files, union_by_name = true) "
                    "ORDER BY run, step, mode, prompt_id, sample_id", {"files": [str(f) for f in stance]})
        if datasets_stance:
            con.execute("CREATE TABLE datasets_stance AS SELECT * FROM read_parquet($files, union_by_name = true) "
                        "ORDER BY dataset, row, side", {"files": [str(f) for f in datasets_stance]})
            con.execute(DATASET_VIEWS.read_text())
        con.execute(VIEWS.read_text().format(extremum_fraction=float(extremum_fraction)))
        con.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", nargs="+", required=True)
    parser.add_argument("--stance", nargs="+", required=True, help="value-probe Parquet files")
    parser.add_argument("--out", required=True)
    parser.add_argument("--datasets-stance", nargs="*", default=[], help="dataset-stance Parquet files")
    parser.add_argument("--extremum-fraction", type=float, default=0.95)
    args = parser.parse_args(argv)
    build(args.out, args.manifests, args.stance, args.extremum_fraction, args.datasets_stance)
    with duckdb.connect(args.out, read_only=True) as con:
        n = con.execute("SELECT count(*) FROM stance_samples").fetchone()[0]
    print(f"built {args.out}: {len(args.manifests)} runs, {n} stance rows")


if __name__ == "__main__":
    main()
