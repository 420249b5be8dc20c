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
    benchmark:
        "results/benchmarks/dataset/{dataset}.tsv"
    log:
        "results/logs/data/{dataset}.log",
    shell:
        "python -m posttrain.data --spec {params.spec:q} --out {output} > {log} 2>&1"


# A GGUF model is dequantised once, here; every job that loads it reads this folder instead (posttrain.models).
rule dequantise:
    output:
        directory("results/models/{model}"),
    params:
        spec=lambda w: spec_json(model_spec(config, w.model)),
    threads: asks(fixed(config["resources"]["default"]), "cpus")
    resources:
        mem_mb=asks(fixed(config["resources"]["default"]), "mem_mb"),
        runtime=asks(fixed(config["resources"]["default"]), "runtime"),
    benchmark:
        "results/benchmarks/dequantise/{model}.tsv"
    log:
        "results/logs/models/{model}.log",
    shell:
        "python -m posttrain.models --spec {params.spec:q} --out {output} > {log} 2>&1"
