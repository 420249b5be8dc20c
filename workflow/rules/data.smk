def dataset_sources(w):
    """The generator's project-authored sources, so editing them regenerates the data."""
    if config["datasets"][w.dataset]["kind"] == "generated_sft":
        return [str(p) for p in sorted(SFT_SOURCES.glob("*.jsonl"))]
    if config["datasets"][w.dataset]["kind"] == "jsonl":
        return [config["datasets"][w.dataset]["path"]]
    return []


rule dataset:
    input:
        dataset_sources,
    output:
        "results/data/{dataset}.jsonl",
    params:
        spec=lambda w: spec_json(config["datasets"][w.dataset]),
    log:
        "results/logs/data/{dataset}.log",
    shell:
        "python -m posttrain.data --spec {params.spec:q} --out {output} > {log} 2>&1"
