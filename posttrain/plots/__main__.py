"""Figures from the study database.

    python -m posttrain.plots --db results/study.duckdb --run sft-valuemix --out results/plots/stance-sft-valuemix.png
        stance probability vs training step for one run: one panel per topic, one line per stance
    python -m posttrain.plots --db results/study.duckdb --compare --out results/plots/pref-drift.png
        preference algorithms x condition (dataset): drift magnitude of each stance per topic
"""

from __future__ import annotations

import argparse
import sys

import duckdb
import matplotlib

matplotlib.use("Agg")  # headless: jobs run on compute nodes
import seaborn as sns

from posttrain.io import atomic_path

PALETTE = {"support": "tab:green", "neutral": "tab:gray", "oppose": "tab:red"}


def stance_curves(db: str, run: str, out: str) -> None:
    with duckdb.connect(db, read_only=True) as con:
        frame = con.execute("SELECT * FROM stance_curve WHERE run = ? ORDER BY topic, step", [run]).df()
    if frame.empty:
        sys.exit(f"error: no stance rows for run {run!r} in {db}")
    grid = sns.relplot(
        data=frame, x="step", y="value", hue="stance", hue_order=list(PALETTE), col="topic", col_wrap=4, kind="line", marker="o",
        style="mode" if frame["mode"].nunique() > 1 else None, palette=PALETTE, height=2.4, aspect=1.3,
    )
    # symlog: step 0 and the log-spaced early checkpoints both stay visible
    grid.set(ylim=(0, 1), xscale="symlog", xlim=(0, frame["step"].max() * 1.1), ylabel="p(stance)")
    grid.set_titles("{col_name}")
    grid.figure.suptitle(f"{run}: stance by topic over training", y=1.02)
    with atomic_path(out, suffix=".png") as tmp:
        grid.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def compare_algorithms(db: str, out: str) -> None:
    with duckdb.connect(db, read_only=True) as con:
        frame = con.execute(
            "SELECT r.algorithm, r.dataset AS condition, d.topic, d.stance, d.magnitude "
            "FROM drift d JOIN runs r USING (run) WHERE r.stage = 'pref' ORDER BY ALL").df()
    if frame.empty:
        sys.exit(f"error: no preference runs in {db}")
    grid = sns.catplot(
        data=frame, kind="bar", x="magnitude", y="topic", hue="condition", col="algorithm", row="stance",
        row_order=list(PALETTE), height=3.2, aspect=0.9, orient="h",
    )
    grid.set_titles("{col_name}: {row_name}")
    grid.set(xlabel="drift magnitude")
    for ax in grid.axes.flat:
        ax.axvline(0, color="black", linewidth=0.8)
    grid.figure.suptitle("Preference optimisation: drift per topic, by algorithm and data condition", y=1.01)
    with atomic_path(out, suffix=".png") as tmp:
        grid.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="stance curves of this run")
    which.add_argument("--compare", action="store_true", help="compare the preference runs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.compare:
        compare_algorithms(args.db, args.out)
    else:
        stance_curves(args.db, args.run, args.out)


if __name__ == "__main__":
    main()
