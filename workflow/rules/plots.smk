# Figures, each drawn from the database alone (posttrain.plots.figures).


rule stance_plot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "stance_plot")),
    output:
        PATHS.plot("stance-{run}"),
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
        PATHS.plot("pref-drift"),
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
        PATHS.plot("drift-heatmap"),
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
        PATHS.plot("stance-shares"),
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
        PATHS.plot("pareto-{run}"),
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
        PATHS.plot("task-complexity"),
    params:
        job=job_param(PLAN, "task_complexity_plot"),
    benchmark:
        PATHS.benchmark("task_complexity_plot")
    log:
        PATHS.log("task_complexity_plot"),
    shell:
        "posttrain plot --job {params.job:q} > {log} 2>&1"
