# Datasets, normalised to JSONL once; GGUF models, dequantised once (every job that loads one reads this copy).


rule dataset:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "dataset")),
    output:
        PATHS.data("{dataset}"),
    params:
        job=job_param(PLAN, "dataset"),
    benchmark:
        PATHS.benchmark("dataset", "{dataset}")
    log:
        PATHS.log("dataset", "{dataset}"),
    shell:
        "posttrain data --job {params.job:q} > {log} 2>&1"


rule dequantise:
    conda:
        ENV
    output:
        directory(PATHS.dequantised("{model}")),
    params:
        job=job_param(PLAN, "dequantise"),
    threads: threads(PLAN, "dequantise")
    resources:
        **resources(PLAN, "dequantise"),
    benchmark:
        PATHS.benchmark("dequantise", "{model}")
    log:
        PATHS.log("dequantise", "{model}"),
    shell:
        "posttrain dequantise --job {params.job:q} --threads {threads} > {log} 2>&1"
