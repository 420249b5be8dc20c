"""Task-complexity figures: the Pareto frontier of every checkpoint of a run, and C(T, δ) over training."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from posttrain.plots import PlotError

FAMILY_MARKERS = {"inference": "o", "data": "s", "parametric": "^"}


def pareto(query, save, run: str, out: str) -> None:
    """One panel per task: every program that runs on a checkpoint of the run (marker = estimator family, colour =
    checkpoint; a weight delta sits on its reference), each checkpoint's staircase, and the δ grid as dotted
    lines. Bits on a log axis spanning the shortest to the longest program."""
    points = query("SELECT * FROM complexity_points WHERE run = ? ORDER BY task, step, bits", [run])
    frontier = query("SELECT * FROM complexity_frontier WHERE run = ? ORDER BY task, step, bits", [run])
    deltas = query("SELECT * FROM complexity_deltas ORDER BY task, delta")
    if points.empty:
        raise PlotError(f"no complexity points for run {run!r}")
    task_names = sorted(points["task"].unique())
    steps = sorted(points["step"].unique())
    colours = dict(zip(steps, sns.color_palette("viridis", len(steps))))
    fig, axes = plt.subplots(1, len(task_names), figsize=(6.5 * len(task_names), 4.5), squeeze=False)
    for ax, task in zip(axes[0], task_names):
        mine = points[points["task"] == task]
        lo, hi = mine["bits"].min(), mine["bits"].max()
        for delta in deltas[deltas["task"] == task]["delta"]:
            ax.axhline(delta, color="0.85", linestyle=":", linewidth=0.8, zorder=0)
        for (step, family), part in mine.groupby(["step", "family"]):
            ax.scatter(part["bits"], part["score"], color=colours[step], marker=FAMILY_MARKERS.get(family, "x"),
                       s=22, alpha=0.6)
        for step, stair in frontier[frontier["task"] == task].groupby("step"):
            x = np.r_[stair["bits"].to_numpy(), hi * 1.5]  # flat to the right of the longest program
            y = np.r_[stair["score"].to_numpy(), stair["score"].iloc[-1]]
            ax.step(x, y, where="post", color=colours[step], label=f"step {step}")
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.5, hi * 1.5)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("program length (bits: payload + driver + harness; log)")
        ax.set_ylabel("score")
        ax.set_title(f"{task} (dotted: the δ grid)")
    handles = [plt.Line2D([], [], marker=m, linestyle="", color="black", label=f) for f, m in FAMILY_MARKERS.items()]
    axes[0, -1].legend(handles=axes[0, -1].get_legend_handles_labels()[0] + handles, frameon=False, fontsize=8,
                       loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"{run}: the shortest program reaching each score, at every checkpoint "
                 "(a weight delta is drawn on the checkpoint it starts from)", y=1.02)
    fig.tight_layout()
    save(fig, out)


def task_complexity(query, save, out: str) -> None:
    """C(T, δ) against training progress, one line per run, one panel per task and δ (the δs some program
    reaches). The band spans the C at the score's upper and lower bound; a missing point: δ not reached."""
    frame = query("SELECT * FROM task_complexity ORDER BY run, task, delta, step")
    if frame.empty:
        raise PlotError("no task_complexity rows")
    reached = frame.groupby(["task", "delta"])["bits"].transform(lambda b: b.notna().any())
    if not reached.any():  # say so with the best scores against the grid, rather than draw nothing
        best = frame.drop_duplicates(["run", "step", "task"])
        fig, ax = plt.subplots(figsize=(6, 4))
        for delta in sorted(frame["delta"].unique()):
            ax.axhline(delta, color="0.85", linestyle=":", linewidth=0.8, zorder=0)
        sns.lineplot(data=best, x="progress", y="best_score", hue="run", style="task", marker="o", ax=ax)
        ax.set(ylim=(-0.02, 1.02), xlabel="training progress (step / steps)", ylabel="best score of any program",
               title="No program reaches any δ of the grid (dotted): best scores")
        save(fig, out)
        return
    frame = frame[reached]
    panels = frame[["task", "delta"]].drop_duplicates().sort_values(["task", "delta"]).itertuples(index=False)
    panels = list(panels)
    n_cols = min(len(panels), 4)
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.3 * n_rows), squeeze=False, sharex=True,
                             sharey=True)
    runs = sorted(frame["run"].unique())
    colours = dict(zip(runs, sns.color_palette("tab10", len(runs))))
    for ax, (task, delta) in zip(axes.flat, panels):
        part = frame[(frame["task"] == task) & (frame["delta"] == delta)]
        for run, curve in part.groupby("run"):
            curve = curve.sort_values("progress")
            ax.plot(curve["progress"], curve["bits"], marker="o", color=colours[run], label=run)
            band = curve.dropna(subset=["bits_optimistic", "bits_confident"])
            ax.fill_between(band["progress"], band["bits_optimistic"], band["bits_confident"], color=colours[run],
                            alpha=0.15, linewidth=0)
        ax.set_yscale("log")
        ax.set_title(f"{task}, δ = {delta:g}", fontsize=9)
        ax.set_xlabel("training progress (step / steps)")
        ax.set_ylabel("C(T, δ) bits")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, fontsize=7)
    fig.suptitle("C(T, δ): the fewest bits of a program on the checkpoint reaching δ (band: the score's "
                 "interval; no point: not reached)", y=1.01)
    fig.tight_layout()
    save(fig, out)
