"""Build the study database from every run's manifest and every probe's Parquet file, atomically.

The `store` stage calls `build` with the files of every job of the study (posttrain.plan lists them).

The database is built under a temp name and renamed into place: readers never see a half-built file,
and a failed build leaves the previous database untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from posttrain.complexity.tasks import DEFAULT_DELTAS
from posttrain.io import atomic_path
from posttrain.store import controls as control_tests
from posttrain.store import job_benchmarks, significance
from posttrain.store import judge_correction as judge_correction_tables
from posttrain.store.bootstrap import COLUMNS as BOOTSTRAP_COLUMNS
from posttrain.store.bootstrap import ESTIMANDS, intervals

VIEWS = Path(__file__).with_name("views.sql")
SEEDS_VIEWS = Path(__file__).with_name("seeds_views.sql")
SIGNIFICANCE_VIEWS = Path(__file__).with_name("significance_views.sql")
# Value-probe columns the views read that older probe files lack (NULL there).
OPTIONAL_SAMPLE_COLUMNS = {"label_mass": "DOUBLE", "raw_p_support": "DOUBLE", "raw_p_neutral": "DOUBLE",
                           "raw_p_oppose": "DOUBLE", "n_orders": "BIGINT", "calibration": "VARCHAR",
                           "content_free_label_mass": "DOUBLE", "engine": "VARCHAR", "engine_version": "VARCHAR"}
# dataset_checks columns that files from before the label-position and embedding checks lack (NULL there)
OPTIONAL_CHECK_COLUMNS = {"label_position": "VARCHAR", "probe_cosine": "DOUBLE", "cosine_prompt_id": "VARCHAR",
                          "near_copy_by": "VARCHAR"}
CHECK_VIEWS = Path(__file__).with_name("check_views.sql")
DATASET_VIEWS = Path(__file__).with_name("dataset_views.sql")
JUDGE_VIEWS = Path(__file__).with_name("judge_views.sql")
COMPLEXITY_VIEWS = Path(__file__).with_name("complexity_views.sql")
JOB_VIEWS = Path(__file__).with_name("job_views.sql")


def delta_sql(deltas: dict[str, float | list[float]]) -> str:
    """The relation (task, delta) of every task's δ grid: the configured values (`complexity.delta`), else
    the default grid (posttrain.complexity.tasks.DEFAULT_DELTAS) for every task in complexity_points."""
    grid = {task: sorted({float(d) for d in (v if isinstance(v, list) else [v])}) for task, v in deltas.items()}
    configured = ", ".join(f"('{task.replace(chr(39), chr(39) * 2)}', {d!r})"
                           for task, values in sorted(grid.items()) for d in values)
    default = ", ".join(f"({d!r})" for d in DEFAULT_DELTAS)
    configured_sql = (f"SELECT * FROM (VALUES {configured}) AS t(task, delta)" if configured
                      else "SELECT NULL::VARCHAR AS task, NULL::DOUBLE AS delta WHERE false")
    return (f"WITH configured AS ({configured_sql}) SELECT task, delta::DOUBLE AS delta FROM configured UNION ALL "
            f"SELECT t.task, g.delta::DOUBLE FROM (SELECT DISTINCT task FROM complexity_points) t, "
            f"(VALUES {default}) AS g(delta) WHERE t.task NOT IN (SELECT task FROM configured)")


def t_quantiles(confidence: float, max_df: int = 100) -> pd.DataFrame:
    """Two-sided Student t quantiles at `confidence` for 1..max_df degrees of freedom (drift_over_seeds)."""
    from scipy.stats import t

    df = np.arange(1, max_df + 1)
    return pd.DataFrame({"df": df, "t": t.ppf((1 + confidence) / 2, df), "confidence": confidence})


def _runs_and_checkpoints(manifests: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, checkpoints = [], []
    for path in manifests:
        m = json.loads(Path(path).read_text())
        runs.append({k: m[k] for k in ("run", "stage", "algorithm", "model", "dataset", "parent_run")}
                    | {k: m.get(k) for k in ("precision", "threads", "device")}  # how its losses were computed
                    | {"replicate_of": m["config"].get("replicate_of", m["run"]),  # the run a seed replicates
                       "seed": (m["config"].get("training") or {}).get("seed")}
                    | {"config_json": json.dumps(m["config"], sort_keys=True)})
        checkpoints += [{"run": m["run"], **c} for c in m["checkpoints"]]
    return pd.DataFrame(runs), pd.DataFrame(checkpoints, columns=["run", "step", "progress", "path"])


def _judge_evals(paths: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Long table (judge, kind, split, metric, stance, value) from eval JSON files, and their predictions files."""
    rows, predictions = [], []
    for path in paths:
        e = json.loads(Path(path).read_text())
        base = {"judge": e["judge"], "kind": e["kind"], "split": e["split"], "precision": e.get("precision")}
        rows += [{**base, "metric": m, "stance": None, "value": e[m]}
                 for m in ("macro_f1", "accuracy", "n", "brier", "ece") if m in e]
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
          deltas: dict[str, float | list[float]] | None = None, benchmarks: list[str] = (),
          benchmark_root: str | Path | None = None, dataset_checks: list[str] = (),
          label_mass_floor: float = 0.1, datasets: dict[str, dict] | None = None, controls: list[dict] = (),
          label_mass_min_share: float = 0.9) -> list[str]:
    """Returns the benchmark files that were asked for but do not exist (jobs from before they were recorded).
    `datasets` (the config's datasets section) becomes the `datasets` table: which runs are controls.
    `controls` (posttrain.config.control_tests) are the controls' tests, evaluated into table control_tests."""
    runs, checkpoints = _runs_and_checkpoints(manifests)
    if benchmarks and benchmark_root is None:
        raise ValueError("benchmark files need the folder whose <rule>/<key>.tsv layout names their jobs")
    jobs, missing_benchmarks = job_benchmarks.load(list(benchmarks), benchmark_root or ".")
    with atomic_path(db_path, suffix=".duckdb") as tmp:
        tmp.unlink()  # duckdb wants to create the file itself
        con = duckdb.connect(str(tmp))
        con.register("runs_df", runs)
        con.register("checkpoints_df", checkpoints)
        con.execute("CREATE TABLE runs AS SELECT * FROM runs_df")
        con.register("datasets_df", pd.DataFrame(
            [{"dataset": name, "kind": spec.get("kind"), "direction": spec.get("direction"),
              "value_gap": spec.get("value_gap"), "spec_json": json.dumps(spec, sort_keys=True)}
             for name, spec in sorted((datasets or {}).items())],
            columns=["dataset", "kind", "direction", "value_gap", "spec_json"]).astype(
                {"dataset": "string", "kind": "string", "direction": "string", "value_gap": "float64",
                 "spec_json": "string"}))
        con.execute("CREATE TABLE datasets AS SELECT * FROM datasets_df")
        con.execute("CREATE TABLE checkpoints AS SELECT run, step::BIGINT AS step, progress::DOUBLE AS progress, "
                    "path FROM checkpoints_df ORDER BY run, step")
        con.execute("CREATE TABLE stance_samples AS SELECT * FROM read_parquet($files, union_by_name = true) "
                    "ORDER BY run, step, mode, prompt_id, sample_id", {"files": [str(f) for f in stance]})
        for column, kind in OPTIONAL_SAMPLE_COLUMNS.items():  # files written before these columns existed
            con.execute(f"ALTER TABLE stance_samples ADD COLUMN IF NOT EXISTS {column} {kind}")
        # only the columns the bootstrap reads: the answers' text would cost GBs of memory at cluster scale.
        # Through Arrow: at 2.75 M rows 3x faster than .df() with half its transient memory (benchmarks/README.md)
        samples = con.sql(f"SELECT {', '.join(BOOTSTRAP_COLUMNS)} FROM stance_samples").to_arrow_table().to_pandas()
        found = intervals(samples, resamples, confidence, extremum_fraction, seed,
                          runs[["run", "replicate_of", "seed"]],
                          [(c["run"], c["against"]) for c in controls if c.get("against")])
        for name in ("stance_ci", "drift_ci", "seeds_ci", "contrast_ci"):
            con.register(f"{name}_df", getattr(found, name))
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.register("t_quantiles_df", t_quantiles(confidence))
        con.execute("CREATE TABLE t_quantiles AS SELECT * FROM t_quantiles_df")
        con.register("controls_df", pd.DataFrame(list(controls), columns=["run", "test", "direction", "against",
                                                                          "margin", "power"]).astype(
            {"run": "string", "test": "string", "direction": "string", "against": "string", "margin": "float64",
             "power": "float64"}))
        con.execute("CREATE TABLE controls AS SELECT * FROM controls_df")
        if judge_evals:
            evals, predictions = _judge_evals(judge_evals)
            con.register("judge_eval_df", evals)
            con.execute("CREATE TABLE judge_eval AS SELECT * FROM judge_eval_df")
            # the split is the eval file's (a real-answer set's own rows may carry another split name)
            con.execute("CREATE TABLE judge_predictions AS SELECT * EXCLUDE (filename) REPLACE "
                        "(regexp_extract(filename, 'predictions-([^/]+)\\.parquet$', 1) AS split) "
                        "FROM read_parquet($files, union_by_name = true, filename = true)", {"files": predictions})
            con.execute(JUDGE_VIEWS.read_text())
        # judge_correction, the constrained correction's cross-fitted check, calibration-in-the-large, the labelling
        # passes' agreement and stance_by_topic_corrected (with intervals): posttrain.store.judge_correction
        judge_correction_tables.create(con, list(judge_evals), resamples, confidence, seed)
        if complexity:
            con.execute("CREATE TABLE complexity_points AS SELECT * FROM read_parquet($files, union_by_name = true) "
                        "ORDER BY run, step, task, bits", {"files": [str(f) for f in complexity]})
            con.execute(COMPLEXITY_VIEWS.read_text().format(delta_sql=delta_sql(deltas or {})))
        if datasets_stance:
            con.execute("CREATE TABLE datasets_stance AS SELECT * FROM read_parquet($files, union_by_name = true) "
                        "ORDER BY dataset, row, side", {"files": [str(f) for f in datasets_stance]})
            con.execute(DATASET_VIEWS.read_text())
        if dataset_checks:
            con.execute("CREATE TABLE dataset_checks AS SELECT * FROM read_parquet($files, union_by_name = true) "
                        "ORDER BY dataset, row, side", {"files": [str(f) for f in dataset_checks]})
            for column, kind in OPTIONAL_CHECK_COLUMNS.items():  # files written before the embedding check
                con.execute(f"ALTER TABLE dataset_checks ADD COLUMN IF NOT EXISTS {column} {kind}")
            con.execute(CHECK_VIEWS.read_text())
        con.execute(VIEWS.read_text().format(extremum_fraction=float(extremum_fraction),
                                             label_mass_floor=float(label_mass_floor),
                                             label_mass_min_share=float(label_mass_min_share),
                                             estimand_run=ESTIMANDS["run"]))
        con.execute(SEEDS_VIEWS.read_text().format(estimand_fixed=ESTIMANDS["seeds_fixed"],
                                                   estimand_population=ESTIMANDS["seed_population"]))
        significance.create_tables(con, 1 - confidence)
        con.execute(SIGNIFICANCE_VIEWS.read_text())
        con.register("control_tests_df", control_tests.evaluate(con, list(controls)))
        con.execute("CREATE TABLE control_tests AS SELECT * FROM control_tests_df")
        con.register("job_benchmarks_df", jobs)
        con.execute("CREATE TABLE job_benchmarks AS SELECT * FROM job_benchmarks_df")
        con.execute(JOB_VIEWS.read_text())
        con.close()
    return missing_benchmarks
