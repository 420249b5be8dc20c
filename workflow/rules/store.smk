rule store:
    input:
        manifests=expand("results/runs/{run}/checkpoints.json", run=RUNS),
        stance=[f for run in RUNS for f in stance_files(run)],
        datasets=expand("results/probes/datasets/{dataset}.parquet", dataset=sorted(config["datasets"])),
    output:
        "results/study.duckdb",
    params:
        fraction=config["drift"]["extremum_fraction"],
    log:
        "results/logs/store.log",
    shell:
        "python -m posttrain.store --manifests {input.manifests} --stance {input.stance} --out {output}"
        " --datasets-stance {input.datasets} --extremum-fraction {params.fraction} > {log} 2>&1"
