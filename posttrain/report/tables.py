"""The summary page's tables, each read from the study database when the page is built. Drift, the controls and
the judge come from posttrain.store.findings (the README's tables); C(T, δ), the value gap and the time per rule
are read here from their views.

A section whose table or view the database lacks (a study without complexity probes, a database built by an
older posttrain) says so in its note instead of failing the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from posttrain.store import findings
from posttrain.store.findings import _interval


@dataclass
class Table:
    title: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""  # shown under the table, or alone where there are no rows
    flag: str | None = None  # a column whose cells are marked holds / fails / other (the controls' verdict)


@dataclass
class Section:
    anchor: str
    heading: str
    tables: list[Table]


def _missing(title: str, error: duckdb.Error) -> Table:
    first = str(error).strip().splitlines()[0]
    return Table(title, note=f"Not in this database ({first}); a database built by the current posttrain has it.")


def _bits(value) -> str:
    return "–" if pd.isna(value) else f"{value:,.0f}"


def drift(con) -> Section:
    modes = [m for (m,) in con.execute("SELECT DISTINCT mode FROM stance_samples ORDER BY mode").fetchall()]
    primary = findings.primary_mode(con)
    tables = []
    for mode in sorted(modes, key=lambda m: m != primary):
        header, rows = findings.drift_rows(con, mode)
        which = "Primary read-out" if mode == primary else "Secondary read-out"
        tables.append(Table(f"{which}. {findings.drift_title(con, mode)}", header, rows))
    return Section("drift", "Drift per run and read-out", tables)


def controls(con) -> Section:
    mode = findings.primary_mode(con)
    header, rows = findings.controls_rows(con, mode)
    seeds = header.index("each seed (a)")
    rows = [[c.replace("; ", "\n") if i == seeds else c for i, c in enumerate(r)] for r in rows]  # a seed a line
    note = "" if rows else "No control in this study (section controls of the config; docs/methods.md)."
    found = findings.power_rows(con, mode)
    power = Table(findings.POWER_TITLE, note=findings.NO_POWER) if found is None else Table(findings.POWER_TITLE,
                                                                                           *found)
    return Section("controls", "The controls",
                   [Table(findings.CONTROLS_TITLE, header, rows, note=note, flag="verdict"), power])


def judge(con) -> Section:
    found = findings.judge_rows(con)
    table = Table(findings.JUDGE_TITLE, note=findings.NO_JUDGE) if found is None else \
        Table(findings.JUDGE_TITLE, *found)
    return Section("judge", "The judge's validation", [table])


def _c(row) -> tuple[str, str]:
    """C(T, δ) at one checkpoint and its interval, as text ("–": not reached)."""
    if pd.isna(row.bits):
        return "–", ""
    bounds = "" if pd.isna(row.bits_optimistic) and pd.isna(row.bits_confident) else \
        f"[{_bits(row.bits_optimistic)}, {_bits(row.bits_confident)}]"
    return _bits(row.bits), bounds


def task_complexity(con) -> Section:
    """Per run and task, C(T, δ) at the first and the last checkpoint for every δ that some checkpoint of the
    study reaches, with its interval; a study where no program reaches any δ shows the best scores instead."""
    title = ("C(T, δ) per run: the fewest bits of a program on the checkpoint that reaches score δ, first → last "
             "checkpoint; under it the interval [bits_optimistic, bits_confident] (the score's upper and lower bound "
             "reach δ); – : not reached")
    try:
        frame = con.execute("SELECT run, step, task, delta, bits, bits_optimistic, bits_confident, best_score "
                            "FROM task_complexity ORDER BY run, task, delta, step").df()
    except duckdb.CatalogException:
        return Section("complexity", "Task complexity", [Table(title, note="No complexity probe in this study.")])
    except duckdb.Error as e:
        return Section("complexity", "Task complexity", [_missing(title, e)])
    reached = sorted(frame[frame.bits.notna()].delta.unique())
    rows = []
    for (run, task), g in frame.groupby(["run", "task"], sort=True):
        first, last = g[g.step == g.step.min()], g[g.step == g.step.max()]
        cells = [run, task, f"{first.best_score.iloc[0]:.3f} → {last.best_score.iloc[0]:.3f}"]
        for delta in reached:
            (a, a_ci), (b, b_ci) = (_c(end[end.delta == delta].iloc[0]) for end in (first, last))
            if a == b == "–":
                cells.append("–")
            else:
                cells.append(f"{a} → {b}" + (f"\n{a_ci or '–'} → {b_ci or '–'}" if a_ci or b_ci else ""))
        rows.append(cells)
    header = ["run", "task", "best score", *[f"δ = {d:g} (bits)" for d in reached]]
    note = "" if reached else "No program reaches any δ of the grid: the best scores are all there is."
    return Section("complexity", "Task complexity", [Table(title, header, rows, note=note)])


def value_gap(con) -> Section:
    title = ("The value gap each preference set carries, as the judge reads it: chosen − rejected, mean over "
             "pairs [interval over pairs]")
    try:
        frame = con.execute("SELECT g.*, d.direction FROM value_gap_ci g LEFT JOIN datasets d USING (dataset) "
                            "ORDER BY dataset, stance").df()
    except duckdb.Error as e:
        return Section("data", "The datasets' value gap", [_missing(title, e)])
    if frame.empty:
        return Section("data", "The datasets' value gap", [Table(title, note="No preference pairs in this study.")])
    confidence = frame.confidence.dropna()
    if len(confidence):
        title = title.replace("[interval", f"[{confidence.iloc[0]:.0%} t interval")
    rows = []
    for dataset, g in frame.groupby("dataset", sort=True):
        by = g.set_index("stance")
        direction = by.direction.iloc[0]
        rows.append([dataset, "–" if pd.isna(direction) else direction, str(int(by.n_pairs.iloc[0])),
                     *[_interval(by.loc[s, "gap"], by.loc[s, "gap_lo"], by.loc[s, "gap_hi"])
                       for s in ("support", "neutral", "oppose")]])
    header = ["dataset", "planted direction", "pairs", "gap p_support", "gap p_neutral", "gap p_oppose"]
    return Section("data", "The datasets' value gap", [Table(title, header, rows)])


def job_time(con) -> Section:
    title = ("Where the time went: job-seconds per rule (jobs that ran side by side both count), from the "
             "view job_time_by_rule")
    try:
        frame = con.execute("SELECT * FROM job_time_by_rule ORDER BY wall_s DESC").df()
    except duckdb.Error as e:
        return Section("time", "Where the time went", [_missing(title, e)])
    if frame.empty:
        return Section("time", "Where the time went",
                       [Table(title, note="No job benchmarks in this database (jobs ran before they were recorded).")])
    rows = [[r.rule, str(r.jobs), f"{r.wall_s:,.0f}", f"{r.share:.1%}", f"{r.mean_wall_s:,.1f}",
             f"{r.max_wall_s:,.1f}", f"{r.cpu_time_s:,.0f}", f"{r.max_rss_mb:,.0f}"] for r in frame.itertuples()]
    rows.append(["all", str(frame.jobs.sum()), f"{frame.wall_s.sum():,.0f}", "100%", "", "", "", ""])
    header = ["rule", "jobs", "wall s", "share", "mean wall s", "max wall s", "CPU s", "max RSS MiB"]
    return Section("time", "Where the time went", [Table(title, header, rows)])


def sections(con) -> list[Section]:
    return [drift(con), controls(con), judge(con), task_complexity(con), value_gap(con), job_time(con)]
