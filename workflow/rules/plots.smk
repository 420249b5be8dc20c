rule stance_plot:
    input:
        "results/study.duckdb",
    output:
        "results/plots/stance-{run}.png",
    log:
        "results/logs/plots/stance-{run}.log",
    shell:
        "python -m posttrain.plots --db {input} --run {wildcards.run} --out {output} > {log} 2>&1"


rule compare_plot:
    input:
        "results/study.duckdb",
    output:
        "results/plots/pref-drift.png",
    log:
        "results/logs/plots/pref-drift.log",
    shell:
        "python -m posttrain.plots --db {input} --compare --out {output} > {log} 2>&1"
