"""Task-complexity figures: Pareto curves per checkpoint, and C(T, δ) over training."""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

from posttrain.plots import PlotError

FAMILY_MARKERS = {"inference": "o", "data": "s", "parametric": "^"}


def pareto(query, save, run: str, out: str) -> None:
    """One panel per task: every program (marker = estimator family, colour = checkpoint) and each checkpoint's
    staircase; bits on a log axis."""
    points = query("SELECT * FROM complexity_points WHERE run = ? ORDER BY task, step, bits", [run])
    frontier = query("SELECT * FROM complexity_frontier WHERE run = ? ORDER BY task, step, bits", [run])
    if points.empty:
        raise PlotError(f"no complexity points for run {run!r}")
    task_names = sorted(points["task"].unique())
    steps = sorted(points["step"].unique())
    colours = dict(zip(steps, sns.color_palette("viridis", len(steps))))
    fig, axes = plt.subplots(1, len(task_names), figsize=(6 * len(task_names), 4.5), squeeze=False)
    for ax, task in zip(axes[0], task_names):
        for (step, family), part in points[points["task"] == task].groupby(["step", "family"]):
            ax.scatter(part["bits"], part["score"], color=colours[step], marker=FAMILY_MARKERS.get(family, "x"),
                       s=22, alpha=0.6)
        for step, stair in frontier[frontier["task"] == task].groupby("step"):
            ax.step(stair["bits"], stair["score"], where="post", color=colours[step], label=f"step {step}")
        ax.set_xscale("log")
        ax.set_xlabel("program length (bits, log)")
        ax.set_ylabel("score")
        ax.set_title(task)
    handles = [plt.Line2D([], [], marker=m, linestyle="", color="black", label=f) for f, m in FAMILY_MARKERS.items()]
    axes[0, -1].legend(handles=axes[0, -1].get_legend_handles_labels()[0] + handles, frameon=False, fontsize=8,
                       loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"{run}: Pareto frontier of program length vs score at every checkpoint", y=1.02)
    fig.tight_layout()
    save(fig, out)


def task_complexity(query, save, out: str) -> None:
    """C(T, δ) against training step, one line per run, one panel per task (missing: δ not reached)."""
    frame = query("SELECT * FROM task_complexity ORDER BY run, task, step")
    if frame.empty:
        raise PlotError("no task_complexity rows")
    grid = sns.relplot(data=frame, x="step", y="bits", hue="run", col="task", kind="line", marker="o",
                       height=3.6, aspect=1.4, facet_kws={"sharey": False})
    grid.set(yscale="log", xscale="symlog", ylabel="C(T, δ) bits")
    for ax in grid.axes.flat:
        ax.set_xlim(left=0)
    grid.figure.suptitle("Fewest bits reaching δ (δ: the run's first-checkpoint best unless configured; "
                         "no point: δ not reached)", y=1.03)
    save(grid.figure, out)
