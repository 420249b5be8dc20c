rule value_probe:
    input:
        "results/runs/{run}/checkpoints.json",
    output:
        "results/probes/values/{run}/step-{step}.parquet",
    params:
        spec=spec_json(config["probes"]["values"]),
    threads: 2
    log:
        "results/logs/probes/values/{run}/step-{step}.log",
    shell:
        "python -m posttrain.probes.values --manifest {input} --step {wildcards.step} --spec {params.spec:q}"
        " --out {output} --threads {threads} > {log} 2>&1"
