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


rule dataset_stance:
    input:
        "results/data/{dataset}.jsonl",
    output:
        "results/probes/datasets/{dataset}.parquet",
    params:
        spec=lambda w: spec_json(judge_spec()),
    threads: 2
    log:
        "results/logs/probes/datasets/{dataset}.log",
    shell:
        "python -m posttrain.probes.dataset_stance --data {input} --dataset {wildcards.dataset}"
        " --judge-spec {params.spec:q} --out {output} --threads {threads} > {log} 2>&1"
