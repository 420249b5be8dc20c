"""Figures of what stands beside the drift: the judge's confusion on its validation splits, the value gap the
preference data carries, and where the study's time went. Each takes `query(sql, params)` and `save(fig, out)`
from posttrain.plots.figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

from posttrain.plots import PlotError

STANCE_ORDER = ["support", "neutral", "oppose"]
PALETTE = {"support": "tab:green", "neutral": "tab:gray", "oppose": "tab:red"}


def judge_confusion(query, save, out: str) -> None:
    """One panel per judge and split: rows the true stance, columns the verdict, cells the share of the row."""
    frame = query("SELECT * FROM judge_confusion ORDER BY judge, split")
    if frame.empty:
        raise PlotError("no judge validation (view judge_confusion is empty)")
    panels = list(frame.groupby(["judge", "split"], sort=True))
    n_cols = min(len(panels), 3)
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.2 * n_rows), squeeze=False)
    for ax, ((judge, split), part) in zip(axes.flat, panels):
        table = part.set_index("true_stance").reindex(STANCE_ORDER)
        counts = table[[f"judged_{s}" for s in STANCE_ORDER]]
        shares = counts.div(table["n"], axis=0)
        shares.columns = STANCE_ORDER
        sns.heatmap(shares, ax=ax, vmin=0, vmax=1, cmap="Blues", annot=True, fmt=".2f", cbar=False)
        ax.set_title(f"{judge}, {split} (n = {int(table['n'].sum())})", fontsize=9)
        ax.set_xlabel("judged")
        ax.set_ylabel("true stance")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Stance judges on their validation splits: share of each true stance given each verdict", y=1.02)
    fig.tight_layout()
    save(fig, out)


def value_gap(query, save, out: str) -> None:
    """Per preference set, the judged gap (chosen - rejected) of each stance with its interval over pairs."""
    frame = query("SELECT * FROM value_gap_ci ORDER BY dataset, stance")
    if frame.empty:
        raise PlotError("no preference pairs judged (view value_gap_ci is empty)")
    datasets = sorted(frame["dataset"].unique())
    fig, ax = plt.subplots(figsize=(1.4 * len(datasets) + 3, 3.8))
    width = 0.8 / len(STANCE_ORDER)
    for i, stance in enumerate(STANCE_ORDER):
        part = frame[frame["stance"] == stance].set_index("dataset").reindex(datasets)
        x = [d + (i - 1) * width for d in range(len(datasets))]
        ax.bar(x, part["gap"], width, color=PALETTE[stance], label=stance,
               yerr=[part["gap"] - part["gap_lo"], part["gap_hi"] - part["gap"]], capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("judged gap (chosen - rejected)")
    confidence = frame["confidence"].dropna()
    ax.set_title("Value gap of each preference set (bars: "
                 f"{confidence.iloc[0]:.0%} interval over pairs)" if len(confidence) else "Value gap", fontsize=10)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save(fig, out)


def job_time(query, save, out: str) -> None:
    """Summed wall-clock seconds per rule; a study whose jobs left no benchmark files says so."""
    frame = query("SELECT * FROM job_time_by_rule ORDER BY wall_s")
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(frame), 3) + 1.2))
    if frame.empty:
        ax.text(0.5, 0.5, "No job benchmarks in this database (jobs ran before they were recorded)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        ax.barh(frame["rule"], frame["wall_s"], color="tab:blue")
        for y, (seconds, share) in enumerate(zip(frame["wall_s"], frame["share"])):
            ax.text(seconds, y, f" {seconds:,.0f} s ({share:.0%})", va="center", fontsize=8)
        ax.set_xlim(0, frame["wall_s"].max() * 1.3)
        ax.set_xlabel("job-seconds (sum of the jobs' wall-clock time)")
        ax.set_title(f"Where the time went: {frame['wall_s'].sum():,.0f} job-seconds over {frame['jobs'].sum()} "
                     "jobs", fontsize=10)
    fig.tight_layout()
    save(fig, out)
