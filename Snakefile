# posttrain: the whole study as one DAG. Rules only wire files; every step is `python -m posttrain.<stage>`.
#   snakemake --cores 2                       # the embedded default (config/config.yaml)
#   snakemake --cores 2 --configfile my.yaml  # another study (replaces the default config entirely)
#   snakemake --profile slurm --configfile config/cluster-study.yaml   # on a Slurm cluster (slurm/profile.yaml)

if not config:  # a --configfile given on the command line replaces the default instead of merging into it
    configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/sft.smk"
include: "workflow/rules/reward.smk"
include: "workflow/rules/pref.smk"
include: "workflow/rules/judges.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/complexity.smk"
include: "workflow/rules/store.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/retention.smk"


# Run by the main snakemake process even under a cluster executor: light jobs, and dataset preparation needs the
# network that compute nodes often lack (hub downloads). Everything else is a cluster job with its resources.
localrules:
    all,
    dataset,
    value_probe_pref_start,
    stance_plot,
    compare_plot,
    drift_heatmap,
    stance_shares,
    pareto_plot,
    task_complexity_plot,
    release_snapshot,
    release_trainer_state,


rule all:
    default_target: True
    input:
        "results/study.duckdb",
        expand("results/plots/stance-{run}.png", run=RUNS),
        ["results/plots/pref-drift.png"] if PREF_RUNS else [],
        "results/plots/drift-heatmap.png",
        "results/plots/stance-shares.png",
        expand("results/plots/pareto-{run}.png", run=RUNS) if COMPLEXITY else [],
        ["results/plots/task-complexity.png"] if COMPLEXITY else [],
        RETENTION_RECORDS,
