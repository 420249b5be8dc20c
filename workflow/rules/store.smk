rule store:
    input:
        manifests=expand("results/runs/{run}/checkpoints.json", run=RUNS),
        stance=[f for run in RUNS for f in stance_files(run)],
        datasets=expand("results/probes/datasets/{dataset}.parquet", dataset=sorted(config["datasets"])),
        judges=judge_evals(),
        complexity=[f for run in RUNS for f in complexity_files(run)],
    output:
        "results/study.duckdb",
    params:
        fraction=config["drift"]["extremum_fraction"],
        bootstrap=config["drift"]["bootstrap"],
        deltas=spec_json(config["complexity"]["delta"]),
        benchmarks=upstream_benchmarks(),
    threads: asks(fixed(config["resources"]["store"]), "cpus")
    resources:
        gpu=asks(fixed(config["resources"]["store"]), "gpus"),
        mem_mb=asks(fixed(config["resources"]["store"]), "mem_mb"),
        runtime=asks(fixed(config["resources"]["store"]), "runtime"),
    benchmark:
        "results/benchmarks/store.tsv"
    log:
        "results/logs/store.log",
    shell:
        "python -m posttrain.store --manifests {input.manifests} --stance {input.stance} --out {output}"
        " --datasets-stance {input.datasets} --judge-evals {input.judges} --extremum-fraction {params.fraction}"
        " --resamples {params.bootstrap[resamples]} --confidence {params.bootstrap[confidence]}"
        " --seed {params.bootstrap[seed]} --complexity {input.complexity} --deltas {params.deltas:q}"
        " --benchmarks {params.benchmarks} --benchmark-root results/benchmarks > {log} 2>&1"
