"""The study's figures as the reports see them: category, caption and name, one entry per plot rule.

Both reports read this: the Snakemake report (`report(..., **snakemake_report(rule))` in
workflow/rules/plots.smk) and the summary page. The captions are the .rst files beside this module, plain prose
so that the page can show them as text.
"""

from __future__ import annotations

import re
from pathlib import Path

from posttrain.plan import PLOTS

CAPTIONS = Path(__file__).with_name("captions")
CATEGORIES = ["value drift", "controls", "judge", "task complexity", "data", "runtime"]

# plot rule -> (category, subcategory, title on the summary page)
FIGURES = {
    "stance_plot": ("value drift", "stance curves", "Stance by topic over training: {run}"),
    "drift_heatmap": ("value drift", "drift heatmap", "Drift magnitude per topic and run"),
    "stance_shares": ("value drift", "stance shares", "Stance shares at the first and last checkpoint"),
    "compare_plot": ("controls", "drift per topic", "The controls: drift per topic, by algorithm and data"),
    "judge_plot": ("judge", "confusion", "The stance judges on their validation splits"),
    "pareto_plot": ("task complexity", "Pareto frontiers", "Program length vs score: {run}"),
    "task_complexity_plot": ("task complexity", "C(T, δ)", "C(T, δ) over training"),
    "value_gap_plot": ("data", "value gap", "The value gap of each preference set"),
    "time_plot": ("runtime", "time per rule", "Where the time went"),
}


def caption_file(rule: str) -> Path:
    return CAPTIONS / f"{PLOTS[rule][1]}.rst"


def caption(rule: str) -> str:
    return caption_file(rule).read_text(encoding="utf-8").strip()


def snakemake_report(rule: str) -> dict:
    """The keyword arguments of Snakemake's `report()` for the output of plot rule `rule`."""
    category, subcategory, _ = FIGURES[rule]
    labels = {"figure": subcategory, **({"run": "{run}"} if "{run}" in PLOTS[rule][0] else {})}
    return {"caption": str(caption_file(rule)), "category": category, "subcategory": subcategory, "labels": labels}


def summary_report() -> dict:
    """`report()` arguments of the summary page itself."""
    return {"caption": str(CAPTIONS / "summary.rst"), "category": "summary", "labels": {"page": "summary.html"}}


def identify(path: str | Path) -> tuple[str, str | None]:
    """(plot rule, run or None) of a figure file, from its name (posttrain.plan.PLOTS); ValueError if none."""
    stem = Path(path).stem
    for rule, (pattern, _) in PLOTS.items():
        regex = "^" + re.escape(pattern).replace(re.escape("{run}"), "(?P<run>.+)") + "$"
        if m := re.match(regex, stem):
            return rule, m.groupdict().get("run")
    names = ", ".join(p for p, _ in PLOTS.values())
    raise ValueError(f"figure {path}: not a figure of a study (names: {names}, .png)")


def order(rule: str, run: str | None) -> tuple:
    """Sort key: by category, then as listed in FIGURES, then by run."""
    return CATEGORIES.index(FIGURES[rule][0]), list(FIGURES).index(rule), run or ""


def drawable(con) -> list[tuple[str, str | None]]:
    """(plot rule, run) of every figure this database holds the rows for: what `posttrain report` draws when it
    is given no figure files (the workflow decides the same from the config: Plan.plot_targets)."""
    tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    runs = [r for (r,) in con.execute("SELECT run FROM runs ORDER BY run").fetchall()]

    def has_rows(name):
        return name in tables and con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] > 0

    pref = con.execute("SELECT count(*) FROM runs WHERE stage = 'pref'").fetchone()[0] > 0
    out = [("stance_plot", r) for r in runs] + [("compare_plot", None)] * pref
    out += [("drift_heatmap", None), ("stance_shares", None)]
    if has_rows("complexity_points"):
        out += [("pareto_plot", r) for r in runs] + [("task_complexity_plot", None)]
    out += [("judge_plot", None)] * has_rows("judge_confusion")
    out += [("value_gap_plot", None)] * has_rows("value_gap_ci")
    out += [("time_plot", None)] * ("job_time_by_rule" in tables)
    return out


def file_name(rule: str, run: str | None) -> str:
    return PLOTS[rule][0].format(run=run) + ".png"
