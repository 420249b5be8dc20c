"""Figures from the study database; `draw(kind, db, out, run)` is what the `plot` stage calls.

    stance           stance probability vs training step for one run: one panel per topic, one line per stance
    compare          preference algorithms x condition (dataset): drift magnitude of each stance per topic
    heatmap          topic x run heatmap of drift magnitude, one panel per stance (and probe mode)
    shares           stacked stance shares at the first and last checkpoint of every run (mean over topics)
    pareto           task complexity: program length (log bits) vs score at every checkpoint of a run,
                     with the frontiers
    task_complexity  C(T, delta) vs training step for every run
    judge            the stance judges' confusion on their validation splits
    value_gap        the judged value gap of every preference set, with its interval over pairs
    time             where the study's time went: job-seconds per rule
"""

from __future__ import annotations

import duckdb
import matplotlib

matplotlib.use("Agg")  # headless: jobs run on compute nodes
import matplotlib.pyplot as plt
import seaborn as sns

from posttrain.io import atomic_path
from posttrain.plots import PlotError, complexity, overview

PALETTE = {"support": "tab:green", "neutral": "tab:gray", "oppose": "tab:red"}


MODE_STYLE = {"forced_choice": "-", "generation": "--"}


def _query(db: str, sql: str, params=()):
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql, list(params)).df()


def _save(figure, out: str, dpi: int = 110) -> None:
    with atomic_path(out, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def _curves_with_bands(data, color=None, **_):
    """One panel: a line per stance and probe mode, its bootstrap interval as a band."""
    ax = plt.gca()
    for (mode, stance), curve in data.groupby(["mode", "stance"]):
        ax.plot(curve["step"], curve["value"], MODE_STYLE.get(mode, ":"), marker="o", markersize=3,
                color=PALETTE[stance], label=f"{stance} ({mode})")
        ax.fill_between(curve["step"], curve["lo"], curve["hi"], color=PALETTE[stance], alpha=0.2, linewidth=0)


def stance_curves(db: str, run: str, out: str) -> None:
    frame = _query(db, "SELECT * FROM stance_curve WHERE run = ? AND stance <> 'balance' "
                       "ORDER BY topic, mode, stance, step", [run])
    if frame.empty:
        raise PlotError(f"no stance rows for run {run!r} in {db}")
    grid = sns.FacetGrid(frame, col="topic", col_wrap=4, height=2.4, aspect=1.3)
    grid.map_dataframe(_curves_with_bands)
    # symlog: step 0 and the log-spaced early checkpoints both stay visible
    grid.set(ylim=(0, 1), xscale="symlog", xlim=(0, frame["step"].max() * 1.1), ylabel="p(stance)", xlabel="step")
    grid.set_titles("{col_name}")
    handles, labels = grid.axes.flat[0].get_legend_handles_labels()
    grid.figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False)
    confidence = _query(db, "SELECT any_value(confidence) FROM drift_ci WHERE run = ?", [run]).iloc[0, 0]
    grid.figure.suptitle(f"{run}: stance by topic over training (bands: {confidence:.0%} bootstrap intervals; "
                         "dashed: generation + judge)", y=1.02)
    _save(grid.figure, out)


def drift_heatmap(db: str, out: str) -> None:
    frame = _query(db, "SELECT run, topic, mode, stance, magnitude FROM drift ORDER BY ALL")
    if frame.empty:
        raise PlotError(f"no drift rows in {db}")
    modes = sorted(frame["mode"].unique())
    runs = list(dict.fromkeys(frame["run"]))
    fig, axes = plt.subplots(len(modes), 3, figsize=(4.2 * 3, 0.35 * len(runs) * len(modes) + 2.5), squeeze=False)
    # withheld cells (forced choice below the label-mass floor) have no magnitude and stay blank
    limit = max(float(frame["magnitude"].abs().max()) if frame["magnitude"].notna().any() else 0.0, 1e-6)
    for i, mode in enumerate(modes):
        for j, stance in enumerate(PALETTE):
            table = (frame[(frame["mode"] == mode) & (frame["stance"] == stance)]
                     .pivot(index="run", columns="topic", values="magnitude").reindex(runs))
            sns.heatmap(table, ax=axes[i, j], cmap="RdBu_r", vmin=-limit, vmax=limit, center=0,
                        cbar=j == 2, annot=False, xticklabels=True, yticklabels=j == 0)
            axes[i, j].set_title(f"{stance} ({mode})", fontsize=9)
            axes[i, j].set_xlabel("")
            axes[i, j].set_ylabel("run" if j == 0 else "")
    fig.suptitle("Drift magnitude (last - first checkpoint) per topic and run (blank: withheld, label mass)", y=1.0)
    fig.tight_layout()
    _save(fig, out, dpi=100)


def stance_shares(db: str, out: str) -> None:
    frame = _query(db, """
        WITH ends AS (SELECT run, mode, min(step) AS first, max(step) AS last FROM stance_by_topic GROUP BY ALL)
        SELECT s.run, s.mode, CASE WHEN s.step = e.first THEN 'first' ELSE 'last' END AS checkpoint,
               any_value(s.step) AS step, avg(p_support) AS support, avg(p_neutral) AS neutral,
               avg(p_oppose) AS oppose
        FROM stance_by_topic s JOIN ends e USING (run, mode) WHERE s.step IN (e.first, e.last)
        GROUP BY ALL ORDER BY s.mode, s.run, checkpoint""")
    if frame.empty:
        raise PlotError(f"no stance rows in {db}")
    modes = sorted(frame["mode"].unique())
    fig, axes = plt.subplots(1, len(modes), figsize=(0.9 * frame["run"].nunique() + 3, 4.5 * 1), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        part = frame[frame["mode"] == mode].reset_index(drop=True)
        labels = [f"{r} @{s}" for r, s in zip(part["run"], part["step"])]
        bottom = 0
        for stance, color in PALETTE.items():
            ax.bar(labels, part[stance], bottom=bottom, color=color, label=stance)
            bottom = bottom + part[stance]
        ax.set_ylim(0, 1)
        ax.set_title(f"{mode}: first and last checkpoint of each run", fontsize=10)
        ax.tick_params(axis="x", rotation=75, labelsize=8)
        ax.set_ylabel("mean stance share over topics")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    _save(fig, out, dpi=100)


def compare_algorithms(db: str, out: str) -> None:
    # the primary read-out (generation + judge) where the study has it; forced choice otherwise
    from posttrain.store.findings import primary_mode

    with duckdb.connect(db, read_only=True) as con:
        mode = primary_mode(con)
        frame = con.execute(
            "SELECT r.algorithm, r.dataset AS condition, d.topic, d.stance, d.magnitude "
            "FROM drift d JOIN runs r USING (run) WHERE r.stage = 'pref' AND d.mode = ? "
            "AND d.stance <> 'balance' ORDER BY ALL", [mode]
        ).df()
    if frame.empty:
        raise PlotError(f"no preference runs in {db}")
    grid = sns.catplot(
        data=frame, kind="bar", x="magnitude", y="topic", hue="condition", col="algorithm", row="stance",
        row_order=list(PALETTE), height=3.2, aspect=0.9, orient="h",
    )
    grid.set_titles("{col_name}: {row_name}")
    grid.set(xlabel="drift magnitude")
    for ax in grid.axes.flat:
        ax.axvline(0, color="black", linewidth=0.8)
    grid.figure.suptitle(f"Preference optimisation: drift per topic ({mode.replace('_', ' ')}), by algorithm and "
                         "data condition", y=1.01)
    _save(grid.figure, out, dpi=100)



def draw(kind: str, db: str, out: str, run: str | None = None) -> None:
    """Draw figure `kind` (see the module docstring) from database `db` into `out`; `run` for stance and pareto."""
    query = lambda sql, params=(): _query(db, sql, params)
    figures = {
        "stance": lambda: stance_curves(db, run, out),
        "compare": lambda: compare_algorithms(db, out),
        "heatmap": lambda: drift_heatmap(db, out),
        "shares": lambda: stance_shares(db, out),
        "pareto": lambda: complexity.pareto(query, _save, run, out),
        "task_complexity": lambda: complexity.task_complexity(query, _save, out),
        "judge": lambda: overview.judge_confusion(query, _save, out),
        "value_gap": lambda: overview.value_gap(query, _save, out),
        "time": lambda: overview.job_time(query, _save, out),
    }
    if kind not in figures:
        raise ValueError(f"unknown figure kind {kind!r} (kinds: {', '.join(figures)})")
    if kind in ("stance", "pareto") and not run:
        raise ValueError(f"figure {kind} needs a run")
    figures[kind]()
