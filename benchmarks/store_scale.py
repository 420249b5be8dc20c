"""The study database at cluster scale: `posttrain.store.build()` on a synthetic study of the published size.

    python benchmarks/store_scale.py [--runs 20] [--checkpoints 50] [--prompts 550] [--topics 11] [--samples 5]
        [--seeds 1] [--resamples 1000] [--baseline-runs 1] [--response-chars 0]

Writes one value-probe Parquet file per (run, checkpoint), with the probe's columns, and one manifest per run
into a temp folder (20 x 50 x 550 x 5 = 2.75 M stance rows; --seeds 3 triples the runs), then times the
whole build in a fresh process: wall seconds, the share spent in the bootstrap (`intervals`), and the
process's peak RSS. The same-run baseline is the implementation before this benchmark (copied below as
`old_intervals`, from commit e02ea16): it is timed, like the new one, on the first --baseline-runs runs only
(it takes ~40 s per 550 k rows) and extrapolated linearly to the full study, which the JSON says.
--response-chars fills the `response` column (the generation probe's answer; 0 leaves it empty), to see
what copying answers into the database costs. Writes benchmarks/results/store_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from posttrain.io import write_json
from posttrain.store.bootstrap import KEYS, STANCES, drift_metrics

COLUMNS = ["run", "topic", "mode", "step", "prompt_id", "sample_id", "p_support", "p_neutral", "p_oppose"]


# --- the baseline: posttrain/store/bootstrap.py before this benchmark (commit e02ea16), unchanged -------------
def _cube(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    steps = np.sort(group["step"].unique())
    prompts = {p: i for i, p in enumerate(sorted(group["prompt_id"].unique()))}
    rank = group.groupby(["step", "prompt_id"]).cumcount().to_numpy()
    cube = np.full((len(steps), len(prompts), rank.max() + 1, 3), np.nan)
    cube[np.searchsorted(steps, group["step"].to_numpy()), group["prompt_id"].map(prompts).to_numpy(), rank] = \
        group[[f"p_{s}" for s in STANCES]].to_numpy()
    return steps, cube


def old_intervals(samples: pd.DataFrame, resamples: int, confidence: float, fraction: float, seed: int = 0
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    stance_rows, drift_rows = [], []
    for key, group in samples.sort_values(KEYS + ["step", "prompt_id", "sample_id"]).groupby(KEYS, sort=True):
        steps, cube = _cube(group)
        n_steps, n_prompts, n_samples, _ = cube.shape
        pick_prompt = rng.integers(0, n_prompts, size=(resamples, 1, n_prompts, 1))
        pick_sample = rng.integers(0, n_samples, size=(resamples, n_steps, n_prompts, n_samples))
        step_idx = np.arange(n_steps)[None, :, None, None]
        counts = (~np.isnan(cube[..., 0])).sum(axis=2)  # (step, prompt)
        chosen_counts = counts[step_idx[..., 0], pick_prompt[..., 0]][..., None]
        pick_sample = pick_sample % np.maximum(chosen_counts, 1)
        curves = np.nanmean(cube[step_idx, pick_prompt, pick_sample], axis=(2, 3))  # (B, step, stance)
        lo, hi = np.nanpercentile(curves, q, axis=0)
        for i, step in enumerate(steps):
            for j, s in enumerate(STANCES):
                stance_rows.append({**dict(zip(KEYS, key)), "step": int(step), "stance": s,
                                    "lo": lo[i, j], "hi": hi[i, j]})
        metrics = drift_metrics(steps, np.moveaxis(curves, -1, 1), fraction)  # each (B, stance)
        for j, s in enumerate(STANCES):
            row = {**dict(zip(KEYS, key)), "stance": s, "n_resamples": resamples, "confidence": confidence}
            for name, values in metrics.items():
                finite = values[:, j][np.isfinite(values[:, j])]
                row[f"{name}_lo"], row[f"{name}_hi"] = np.percentile(finite, q) if len(finite) else (np.nan, np.nan)
            drift_rows.append(row)
    return pd.DataFrame(stance_rows), pd.DataFrame(drift_rows)
# ----------------------------------------------------------------------------------------------------------


def synthesise(root: Path, args) -> tuple[list[str], list[str], int]:
    """Parquet files (one per run and checkpoint, the value probe's columns) and manifests; returns
    (manifests, parquet files, rows). Stances drift per (run, topic) along a saturating curve, prompts
    differ in their starting stance, and samples scatter around their prompt."""
    rng = np.random.default_rng(0)
    steps = np.unique(np.round(np.geomspace(1, 2000, args.checkpoints - 1))).astype(int)
    steps = np.r_[0, steps, np.arange(2001, 2001 + args.checkpoints)][:args.checkpoints]  # distinct, 0 first
    per_topic = args.prompts // args.topics
    topics = np.repeat([f"topic{t:02d}" for t in range(args.topics)], per_topic)
    prompts = np.array([f"{t}-p{i:03d}" for t in range(args.topics) for i in range(per_topic)])
    n_prompts, n_steps, n_samples = len(prompts), len(steps), args.samples
    shape = (n_steps, n_prompts, n_samples)
    response = "x" * args.response_chars if args.response_chars else None
    manifests, files = [], []
    runs = [f"run{r:02d}" + (f"-seed{s}" if args.seeds > 1 else "")
            for r in range(args.runs) for s in range(args.seeds)]
    for run in runs:
        drift = rng.normal(0, 0.8, size=(args.topics, 3)).repeat(per_topic, axis=0)  # (prompt, stance)
        start = rng.normal(0, 1, size=(n_prompts, 3))
        progress = 1 - np.exp(-steps / 300)
        logits = (start[None, :, None] + progress[:, None, None, None] * drift[None, :, None]
                  + rng.normal(0, 0.7, size=shape + (3,)))
        p = np.exp(logits - logits.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        (root / "values" / run).mkdir(parents=True)
        for i, step in enumerate(steps):
            n = n_prompts * n_samples
            table = pa.table({
                "run": pa.array([run] * n), "step": pa.array(np.full(n, step, dtype=np.int64)),
                "topic": pa.array(np.repeat(topics, n_samples)), "prompt_id": pa.array(np.repeat(prompts, n_samples)),
                "sample_id": pa.array(np.tile(np.arange(n_samples, dtype=np.int64), n_prompts)),
                "mode": pa.array(["generation"] * n), "response": pa.array([response] * n, type=pa.string()),
                "judge": pa.array(["synthetic-judge"] * n),
                **{f"p_{s}": pa.array(p[i, ..., j].ravel()) for j, s in enumerate(STANCES)},
                "label_mass": pa.array(np.ones(n)), "prompt_set": pa.array(["values-v1"] * n),
                "template": pa.array(["chat"] * n), "seed": pa.array(np.arange(n, dtype=np.int64)),
                "n_tokens": pa.array(np.full(n, 256, dtype=np.int64)), "precision": pa.array(["bf16"] * n),
                "judge_precision": pa.array(["bf16"] * n)})
            path = root / "values" / run / f"{step}.parquet"
            pq.write_table(table, path)
            files.append(str(path))
        manifest = root / "runs" / run / "checkpoints.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({
            "run": run, "stage": "dpo", "algorithm": "dpo", "model": "synthetic", "dataset": "synthetic",
            "parent_run": None, "config": {"synthetic": True},
            "checkpoints": [{"step": int(s), "progress": float(s / steps[-1]), "path": f"{run}/{s}"} for s in steps]}))
        manifests.append(str(manifest))
    return manifests, files, len(runs) * n_steps * n_prompts * n_samples


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu_s() -> float:
    """CPU seconds of this process so far (user + system): less sensitive than wall time to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_build(db: str, manifests: list[str], files: list[str], resamples: int) -> dict:
    """In a fresh process: build() end to end, and the part of it spent in the bootstrap."""
    import posttrain.store.build as store

    spent = {}
    real = store.intervals

    def timed_intervals(*a, **k):
        start, cpu = time.perf_counter(), _cpu_s()
        try:
            return real(*a, **k)
        finally:
            spent["intervals_s"], spent["intervals_cpu_s"] = time.perf_counter() - start, _cpu_s() - cpu

    store.intervals = timed_intervals
    start, cpu = time.perf_counter(), _cpu_s()
    store.build(db, manifests, files, resamples=resamples)
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("stance_samples", "stance_ci", "drift_ci")}
        drift_view_s = time.perf_counter()
        con.execute("SELECT * FROM drift").fetchall()
        drift_view_s = time.perf_counter() - drift_view_s
    return {"wall_s": wall, "cpu_s": cpu, **spent, "peak_rss_mb": _peak_rss_mb(), "rows": counts,
            "drift_view_query_s": drift_view_s, "db_mb": os.path.getsize(db) / 2**20}


def time_slice(which: str, files: list[str], resamples: int) -> dict:
    """In a fresh process: one implementation's intervals on the given files (same load for both)."""
    import duckdb

    from posttrain.store.bootstrap import intervals

    samples = duckdb.sql(f"SELECT {', '.join(COLUMNS)} FROM read_parquet({files!r}) "
                         "ORDER BY run, step, mode, prompt_id, sample_id").df()
    fn = {"old": old_intervals, "new": intervals}[which]
    start, cpu = time.perf_counter(), _cpu_s()
    found = fn(samples, resamples, 0.95, 0.95, 0)
    # the current scheme returns every interval table (posttrain.store.bootstrap.Intervals); the old one a pair
    stance_ci, drift_ci = (found.stance_ci, found.drift_ci) if which == "new" else found
    return {"seconds": time.perf_counter() - start, "cpu_s": _cpu_s() - cpu, "rows": len(samples),
            "peak_rss_mb": _peak_rss_mb(),
            "stance_ci": stance_ci.to_dict("list"), "drift_ci": drift_ci.to_dict("list")}


class LoadMonitor(threading.Thread):
    """Samples the 1-minute load average while the measurements run: other jobs on the machine show here."""

    def __init__(self, every_s: float = 5.0):
        super().__init__(daemon=True)
        self.every_s, self.samples, self.done = every_s, [], threading.Event()

    def run(self):
        while not self.done.wait(self.every_s):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict:
        self.done.set()
        self.join()
        s = self.samples or [os.getloadavg()[0]]
        return {"loadavg_1min_min": min(s), "loadavg_1min_mean": sum(s) / len(s), "loadavg_1min_max": max(s)}


def time_fetch(db: str, how: str) -> dict:
    """In a fresh process: hand the bootstrap's columns from the database to pandas, the way build() does
    ("arrow") or through DuckDB's .df() (before); seconds and how far the process's peak RSS rose."""
    import duckdb

    from posttrain.store.bootstrap import COLUMNS as BOOTSTRAP_COLUMNS

    with duckdb.connect(db, read_only=True) as con:
        query = f"SELECT {', '.join(BOOTSTRAP_COLUMNS)} FROM stance_samples"
        before, start = _peak_rss_mb(), time.perf_counter()
        frame = con.sql(query).to_arrow_table().to_pandas() if how == "arrow" else con.execute(query).df()
        return {"seconds": time.perf_counter() - start, "peak_rss_rise_mb": _peak_rss_mb() - before,
                "rows": len(frame)}


def in_child(fn, *args):
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def compare(old: dict, new: dict) -> dict:
    """How far the two implementations' intervals lie apart on the same data, in units of interval width
    (they use different random draws, so Monte-Carlo error alone gives a few percent). Since issue 24 the
    current scheme resamples prompts only (n - 1 of n) and no longer samples within them: its intervals differ
    from the old one's by design, not only by Monte-Carlo error."""
    keys = KEYS + ["step", "stance"]
    a = pd.DataFrame(old["stance_ci"]).merge(pd.DataFrame(new["stance_ci"]), on=keys, suffixes=("_old", "_new"))
    width = (a.hi_old - a.lo_old).to_numpy()
    diff = np.abs(np.r_[a.lo_new - a.lo_old, a.hi_new - a.hi_old]) / np.r_[width, width]
    return {"stance_ci_rows": len(a), "median_abs_endpoint_diff_over_width": float(np.median(diff)),
            "max_abs_endpoint_diff_over_width": float(diff.max()),
            "mean_width_ratio_new_over_old": float(((a.hi_new - a.lo_new) / width).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--checkpoints", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=550)
    parser.add_argument("--topics", type=int, default=11)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per run (3: the x3 study)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--baseline-runs", type=int, default=1, help="runs the old implementation is timed on")
    parser.add_argument("--response-chars", type=int, default=0, help="length of each synthetic answer")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "store_scale.json"))
    args = parser.parse_args()
    if args.prompts % args.topics:
        parser.error(f"--prompts {args.prompts} is not a multiple of --topics {args.topics}")

    root = Path(tempfile.mkdtemp(prefix="store-scale-"))
    try:
        start = time.perf_counter()
        manifests, files, n_rows = synthesise(root, args)
        synth_s = time.perf_counter() - start
        monitor = LoadMonitor()
        monitor.start()
        build = in_child(timed_build, str(root / "study.duckdb"), manifests, files, args.resamples)
        fetch = {how: in_child(time_fetch, str(root / "study.duckdb"), how) for how in ("df", "arrow")}
        first_runs = {Path(m).parent.name for m in manifests[:args.baseline_runs]}
        slice_files = [f for f in files if Path(f).parent.name in first_runs]
        old = in_child(time_slice, "old", slice_files, args.resamples)
        new = in_child(time_slice, "new", slice_files, args.resamples)
        load = monitor.summary()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    scale = n_rows / old["rows"]
    result = {
        "command": "python benchmarks/store_scale.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "study": {"runs": args.runs * args.seeds, "checkpoints": args.checkpoints, "prompts": args.prompts,
                  "topics": args.topics, "samples": args.samples, "stance_rows": n_rows,
                  "parquet_files": len(files), "response_chars": args.response_chars, "resamples": args.resamples},
        "synthesis_s": synth_s,
        "build": build,
        "fetch_for_bootstrap": fetch,
        "baseline_slice": {
            "runs": args.baseline_runs, "rows": old["rows"],
            "old_intervals_s": old["seconds"], "old_cpu_s": old["cpu_s"], "old_peak_rss_mb": old["peak_rss_mb"],
            "new_intervals_s": new["seconds"], "new_cpu_s": new["cpu_s"], "new_peak_rss_mb": new["peak_rss_mb"],
            "speedup": old["seconds"] / new["seconds"],
            "agreement": compare(old, new)},
        "old_intervals_extrapolated_s": old["seconds"] * scale,
        "old_intervals_extrapolated_cpu_s": old["cpu_s"] * scale,
        "extrapolation": f"old_intervals_s x {scale:g} (stance rows of the study / of the slice): linear in groups",
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                    **load,
                    "cpu": next((line.split(":", 1)[1].strip()
                                 for line in Path("/proc/cpuinfo").read_text().splitlines()
                                 if line.startswith("model name")), "unknown")},
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
