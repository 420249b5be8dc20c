# Figures, each drawn from the database alone (posttrain.plots.figures), each registered for `snakemake --report` with
# its caption and category (posttrain.report.figures).
from posttrain.report.figures import snakemake_report, summary_report


rule stance_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "stance_plot")),
    output:
        report(PATHS.plot("stance-{run}"), **snakemake_report("stance_plot")),
    params:
        job=job_param(PLAN, "stance_plot"),
    benchmark:
        PATHS.benchmark("stance_plot", "{run}")
    log:
        PATHS.log("stance_plot", "{run}"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule compare_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "compare_plot")),
    output:
        report(PATHS.plot("pref-drift"), **snakemake_report("compare_plot")),
    params:
        job=job_param(PLAN, "compare_plot"),
    benchmark:
        PATHS.benchmark("compare_plot")
    log:
        PATHS.log("compare_plot"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule drift_heatmap:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "drift_heatmap")),
    output:
        report(PATHS.plot("drift-heatmap"), **snakemake_report("drift_heatmap")),
    params:
        job=job_param(PLAN, "drift_heatmap"),
    benchmark:
        PATHS.benchmark("drift_heatmap")
    log:
        PATHS.log("drift_heatmap"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule stance_shares:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "stance_shares")),
    output:
        report(PATHS.plot("stance-shares"), **snakemake_report("stance_shares")),
    params:
        job=job_param(PLAN, "stance_shares"),
    benchmark:
        PATHS.benchmark("stance_shares")
    log:
        PATHS.log("stance_shares"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule pareto_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "pareto_plot")),
    output:
        report(PATHS.plot("pareto-{run}"), **snakemake_report("pareto_plot")),
    params:
        job=job_param(PLAN, "pareto_plot"),
    benchmark:
        PATHS.benchmark("pareto_plot", "{run}")
    log:
        PATHS.log("pareto_plot", "{run}"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule task_complexity_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "task_complexity_plot")),
    output:
        report(PATHS.plot("task-complexity"), **snakemake_report("task_complexity_plot")),
    params:
        job=job_param(PLAN, "task_complexity_plot"),
    benchmark:
        PATHS.benchmark("task_complexity_plot")
    log:
        PATHS.log("task_complexity_plot"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule judge_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "judge_plot")),
    output:
        report(PATHS.plot("judge-confusion"), **snakemake_report("judge_plot")),
    params:
        job=job_param(PLAN, "judge_plot"),
    benchmark:
        PATHS.benchmark("judge_plot")
    log:
        PATHS.log("judge_plot"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule value_gap_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "value_gap_plot")),
    output:
        report(PATHS.plot("value-gap"), **snakemake_report("value_gap_plot")),
    params:
        job=job_param(PLAN, "value_gap_plot"),
    benchmark:
        PATHS.benchmark("value_gap_plot")
    log:
        PATHS.log("value_gap_plot"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


rule time_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "time_plot")),
    output:
        report(PATHS.plot("job-time"), **snakemake_report("time_plot")),
    params:
        job=job_param(PLAN, "time_plot"),
    benchmark:
        PATHS.benchmark("time_plot")
    log:
        PATHS.log("time_plot"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"


# The study summary page: findings tables, interactive curves, sampled answers and the figures above, in one
# self-contained HTML file built from the database (posttrain.report).
rule summary:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "summary")),
    output:
        report(PATHS.summary(), **summary_report()),
    params:
        job=job_param(PLAN, "summary"),
    benchmark:
        PATHS.benchmark("summary")
    log:
        PATHS.log("summary"),
    shell:
        "posttrain report --job {params.job:q} > {log} 2>&1"
