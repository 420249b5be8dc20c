"""Build the study database from every run's manifest and every probe's Parquet file, atomically.

    python -m posttrain.store --manifests results/runs/*/checkpoints.json \
        --stance results/probes/values/*/*.parquet --out results/study.duckdb [--extremum-fraction 0.95] \
        [--datasets-stance results/probes/datasets/*.parquet] [--judge-evals results/judges/*/eval-test.json] \
        [--resamples 1000 --confidence 0.95 --seed 0] \
        [--benchmarks results/benchmarks/<rule>/<key>.tsv ... --benchmark-root results/benchmarks]

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
from posttrain.store import job_benchmarks
from posttrain.store.bootstrap import COLUMNS as BOOTSTRAP_COLUMNS
from posttrain.store.bootstrap import intervals

VIEWS = Path(__file__).with_name("views.sql")
DATASET_VIEWS = Path(__file__).with_name("dataset_views.sql")
JUDGE_VIEWS = Path(__file__).with_name("judge_views.sql")
COMPLEXITY_VIEWS = Path(__file__).with_name("complexity_views.sql")
JOB_VIEWS = Path(__file__).with_name("job_views.sql")


def delta_sql(deltas: dict[str, float]) -> str:
    """A SQL relation (task, delta) of the configured δ values (an empty one when none are set)."""
    if not deltas:
        return "SELECT NULL::VARCHAR AS task, NULL::DOUBLE AS delta WHERE false"
    rows = ", ".join(f"('{task.replace(chr(39), chr(39) * 2)}', {float(d)!r})" for task, d in sorted(deltas.items()))
    return f"SELECT * FROM (VALUES {rows}) AS t(task, delta)"


def _runs_and_checkpoints(manifests: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, checkpoints = [], []
    for path in manifests:
        m = json.loads(Path(path).read_text())
        runs.append({k: m[k] for k in ("run", "stage", "algorithm", "model", "dataset", "parent_run")}
                    | {k: m.get(k) for k in ("precision", "threads", "device")}  # how its losses were computed
                    | {"config_json": json.dumps(m["config"], sort_keys=True)})
        checkpoints += [{"run": m["run"], **c} for c in m["checkpoints"]]
    return pd.DataFrame(runs), pd.DataFrame(checkpoints, columns=["run", "step", "progress", "path"])


def _judge_evals(paths: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Long table (judge, kind, split, metric, stance, value) from eval JSON files, and their predictions files."""
    rows, predictions = [], []
    for path in paths:
        e = json.loads(Path(path).read_text())
        base = {"judge": e["judge"], "kind": e["kind"], "split": e["split"], "precision": e.get("precision")}
        rows += [{**base, "metric": m, "stance": None, "value": e[m]} for m in ("macro_f1", "accuracy", "n")]
        rows += [{**base, "metric": m, "stance": s, "value": v}
                 for s, per in e["per_class"].items() for m, v in per.items()]
        if e.get("macro_f1_hedged") is not None:
            rows.append({**base, "metric": "macro_f1_hedged", "stance": None, "value": e["macro_f1_hedged"]})
        rows += [{**base, "metric": f"macro_f1_{n}", "stance": None, "value": v}
                 for n, v in e.get("macro_f1_by_length", {}).items()]
        predictions.append(str(Path(path).with_name(f"predictions-{e['split']}.parquet")))
    return pd.DataFrame(rows).astype({"stance": "string", "value": "float64"}), predictions


def build(db_path: str | Path, manifests: list[str], stance: list[str], extremum_fraction: float = 0.95,
          datasets_stance: list[str] = (), judge_evals: list[str] = (), resamples: int = 1000,
          confidence: float = 0.95, seed: int = 0, complexity: list[str] = (),
          deltas: dict[str, float] | None = None, benchmarks: list[str] = (),
          benchmark_root: str | Path = "results/benchmarks") -> list[str]:
    """Returns the benchmark files that were asked for but do not exist (jobs from before they were recorded)."""
    runs, checkpoints = _runs_and_checkpoints(manifests)
    jobs, missing_benchmarks = job_benchmarks.load(list(benchmarks), benchmark_root)
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
        # only the columns the bootstrap reads: the answers' text would cost GBs of memory at cluster scale.
        # Through Arrow: at 2.75 M rows 3x faster than .df() with half its transient memory (benchmarks/README.md)
        samples = con.sql(f"SELECT {', '.join(BOOTSTRAP_COLUMNS)} FROM stance_samples").to_arrow_table().to_pandas()
        stance_ci, drift_ci = intervals(samples, resamples, confidence, extremum_fraction, seed)
        con.register("stance_ci_df", stance_ci)
        con.register("drift_ci_df", drift_ci)
        con.execute("CREATE TABLE stance_ci AS SELECT * FROM stance_ci_df")
        con.execute("CREATE TABLE drift_ci AS SELECT * FROM drift_ci_df")
        if judge_evals:
            evals, predictions = _judge_evals(judge_evals)
            con.register("judge_eval_df", evals)
            con.execute("CREATE TABLE judge_eval AS SELECT * FROM judge_eval_df")
            con.execute("CREATE TABLE judge_predictions AS SELECT * FROM read_parquet($files, union_by_name = true)",
                        {"files": predictions})
            con.execute(JUDGE_VIEWS.read_text())
        if complexity:
            con.execute("CREATE TABLE complexity_points AS SELECT * FROM read_parquet($files, union_by_name = true) "
                        "ORDER BY run, step, task, bits", {"files": [str(f) for f in complexity]})
            con.execute(COMPLEXITY_VIEWS.read_text().format(delta_sql=delta_sql(deltas or {})))
        if datasets_stance:
            con.execute("CREATE TABLE datasets_stance AS SELECT * FROM read_parquet($files, union_by_name = true) "
                        "ORDER BY dataset, row, side", {"files": [str(f) for f in datasets_stance]})
            con.execute(DATASET_VIEWS.read_text())
        con.execute(VIEWS.read_text().format(extremum_fraction=float(extremum_fraction)))
        con.register("job_benchmarks_df", jobs)
        con.execute("CREATE TABLE job_benchmarks AS SELECT * FROM job_benchmarks_df")
        con.execute(JOB_VIEWS.read_text())
        con.close()
    return missing_benchmarks


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", nargs="+", required=True)
    parser.add_argument("--stance", nargs="+", required=True, help="value-probe Parquet files")
    parser.add_argument("--out", required=True)
    parser.add_argument("--datasets-stance", nargs="*", default=[], help="dataset-stance Parquet files")
    parser.add_argument("--judge-evals", nargs="*", default=[], help="judge validation JSON files (eval-<split>.json)")
    parser.add_argument("--extremum-fraction", type=float, default=0.95)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--complexity", nargs="*", default=[], help="complexity-probe Parquet files")
    parser.add_argument("--deltas", default="{}", help='per-task δ for task_complexity, JSON: {"arithmetic": 0.5}')
    parser.add_argument("--benchmarks", nargs="*", default=[],
                        help="Snakemake benchmark files of the jobs the store depends on (absent ones are skipped)")
    parser.add_argument("--benchmark-root", default="results/benchmarks",
                        help="folder whose layout <rule>/<key>.tsv names each file's job")
    args = parser.parse_args(argv)
    missing = build(args.out, args.manifests, args.stance, args.extremum_fraction, args.datasets_stance,
                    args.judge_evals, args.resamples, args.confidence, args.seed, args.complexity,
                    json.loads(args.deltas), args.benchmarks, args.benchmark_root)
    if missing:
        print(f"{len(missing)} of {len(args.benchmarks)} job benchmark files absent (jobs run before they were "
              f"recorded), first: {missing[0]}")
    with duckdb.connect(args.out, read_only=True) as con:
        n = con.execute("SELECT count(*) FROM stance_samples").fetchone()[0]
    print(f"built {args.out}: {len(args.manifests)} runs, {n} stance rows")


if __name__ == "__main__":
    main()
