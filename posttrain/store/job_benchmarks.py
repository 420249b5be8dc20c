"""Snakemake's per-job benchmark files (`benchmark:` in workflow/rules/*.smk) as one table, job_benchmarks.

Each file is `<root>/<rule>/<key>.tsv` (or `<root>/<rule>.tsv` for a rule without wildcards), and the key is
what the job was run for:
    <run>/step-<N>     a probe of one checkpoint              -> run, step
    <run>              a training run (rules in RUN_KEYED)    -> run
    anything else      a dataset, judge, reward model, ...    -> target (e.g. `mix`, `minilm-stance/test`)

A file holds Snakemake's header (s, h:m:s, max_rss, max_vms, max_uss, max_pss, io_in, io_out, mean_load,
cpu_time, and more columns with --benchmark-extended) and one row per measurement (several only under
`repeat()`). Snakemake writes NA where it took no sample (a job that ended before the first one).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

# Rules whose one wildcard is a run (their key is the run name, not a generic target).
RUN_KEYED = frozenset({"sft", "pref", "stance_plot", "pareto_plot", "release_trainer_state"})
STEP_KEY = re.compile(r"^(?P<run>[^/]+)/step-(?P<step>\d+)$")
# Snakemake's column -> ours. max_rss is MiB; mean_load is mean CPU % (100 = one core busy).
COLUMNS = {"s": "wall_s", "max_rss": "max_rss_mb", "cpu_time": "cpu_time_s", "mean_load": "mean_load"}
SCHEMA = {"rule": "string", "run": "string", "step": "Int64", "target": "string", "repeat": "Int64",
          "wall_s": "float64", "max_rss_mb": "float64", "cpu_time_s": "float64", "mean_load": "float64",
          "path": "string"}


class BenchmarkError(ValueError):
    """A benchmark file that is not where the layout says, or not in Snakemake's format."""


def job_of(path: str | Path, root: str | Path) -> dict:
    """rule, run, step and target of the job a benchmark file belongs to, from its place under `root`."""
    try:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        raise BenchmarkError(f"benchmark file {path}: not under the benchmark folder {root}") from None
    if rel.suffix != ".tsv":
        raise BenchmarkError(f"benchmark file {path}: expected a .tsv file")
    parts = rel.with_suffix("").parts
    rule, key = parts[0], "/".join(parts[1:]) or None
    job = {"rule": rule, "run": None, "step": None, "target": None}
    if key is None:
        return job
    if m := STEP_KEY.match(key):
        return job | {"run": m["run"], "step": int(m["step"])}
    return job | ({"run": key} if rule in RUN_KEYED else {"target": key})


def read_one(path: str | Path, root: str | Path) -> pd.DataFrame:
    """The rows of one benchmark file, with the job it belongs to; BenchmarkError naming the file if it is bad."""
    job = job_of(path, root)
    try:
        raw = pd.read_csv(path, sep="\t", na_values=["NA", "-"], keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"benchmark file {path}: not a Snakemake benchmark TSV ({e})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise BenchmarkError(f"benchmark file {path}: no column(s) {', '.join(missing)} "
                             f"(has {', '.join(map(str, raw.columns))})")
    if raw.empty:
        raise BenchmarkError(f"benchmark file {path}: header only, no measurement")
    try:
        values = raw[list(COLUMNS)].astype("float64").rename(columns=COLUMNS)
    except ValueError as e:
        raise BenchmarkError(f"benchmark file {path}: a non-numeric measurement ({e})") from None
    if values.wall_s.isna().any() or (values.wall_s < 0).any():
        raise BenchmarkError(f"benchmark file {path}: wall time (column s) missing or negative")
    return values.assign(**job, repeat=range(len(values)), path=str(path))


def load(paths: list[str | Path], root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The job_benchmarks table from the files that exist, and the paths that do not.

    A job whose outputs predate its rule's `benchmark:` line has no file; the store must still build.
    """
    present = [p for p in paths if Path(p).is_file()]
    missing = [str(p) for p in paths if not Path(p).is_file()]
    frames = [read_one(p, root) for p in present]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(SCHEMA))
    table = table[list(SCHEMA)].astype(SCHEMA).sort_values(["rule", "run", "step", "target", "repeat"])
    return table.reset_index(drop=True), missing
