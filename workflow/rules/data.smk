rule dataset:
    output:
        "results/data/{dataset}.jsonl",
    params:
        spec=lambda w: spec_json(config["datasets"][w.dataset]),
    log:
        "results/logs/data/{dataset}.log",
    shell:
        "python -m posttrain.data --spec {params.spec:q} --out {output} > {log} 2>&1"
