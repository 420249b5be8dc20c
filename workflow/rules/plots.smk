rule stance_plot:
    input:
        "results/study.duckdb",
    output:
        "results/plots/stance-{run}.png",
    benchmark:
        "results/benchmarks/stance_plot/{run}.tsv"
    log:
        "results/logs/plots/stance-{run}.log",
    shell:
        "python -m posttrain.plots --db {input} --run {wildcards.run} --out {output} > {log} 2>&1"


rule compare_plot:
    input:
        "results/study.duckdb",
    output:
        "results/plots/pref-drift.png",
    benchmark:
        "results/benchmarks/compare_plot.tsv"
    log:
        "results/logs/plots/pref-drift.log",
    shell:
        "python -m posttrain.plots --db {input} --compare --out {output} > {log} 2>&1"


rule drift_heatmap:
    input:
        "results/study.duckdb",
    output:
        "results/plots/drift-heatmap.png",
    benchmark:
        "results/benchmarks/drift_heatmap.tsv"
    log:
        "results/logs/plots/drift-heatmap.log",
    shell:
        "python -m posttrain.plots --db {input} --heatmap --out {output} > {log} 2>&1"


rule stance_shares:
    input:
        "results/study.duckdb",
    output:
        "results/plots/stance-shares.png",
    benchmark:
        "results/benchmarks/stance_shares.tsv"
    log:
        "results/logs/plots/stance-shares.log",
    shell:
        "python -m posttrain.plots --db {input} --shares --out {output} > {log} 2>&1"


rule pareto_plot:
    input:
        "results/study.duckdb",
    output:
        "results/plots/pareto-{run}.png",
    benchmark:
        "results/benchmarks/pareto_plot/{run}.tsv"
    log:
        "results/logs/plots/pareto-{run}.log",
    shell:
        "python -m posttrain.plots --db {input} --pareto {wildcards.run} --out {output} > {log} 2>&1"


rule task_complexity_plot:
    input:
        "results/study.duckdb",
    output:
        "results/plots/task-complexity.png",
    benchmark:
        "results/benchmarks/task_complexity_plot.tsv"
    log:
        "results/logs/plots/task-complexity.log",
    shell:
        "python -m posttrain.plots --db {input} --task-complexity --out {output} > {log} 2>&1"
