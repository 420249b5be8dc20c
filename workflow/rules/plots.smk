rule stance_plot:
    input:
        "results/study.duckdb",
    output:
        "results/plots/stance-{run}.png",
    log:
        "results/logs/plots/stance-{run}.log",
    shell:
        "python -m posttrain.plots --db {input} --run {wildcards.run} --out {output} > {log} 2>&1"
