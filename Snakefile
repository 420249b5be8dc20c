# posttrain: the whole study as one DAG. Rules only wire files; every step is `python -m posttrain.<stage>`.
#   snakemake --cores 2                       # the embedded default (config/config.yaml)
#   snakemake --cores 2 --configfile my.yaml  # another study (replaces the default config entirely)

if not config:  # a --configfile given on the command line replaces the default instead of merging into it
    configfile: "config/config.yaml"


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
