# Stance judges: fit the embedding judge's head, and validate every judge on the labelled set.


rule judge_head:
    input:
        lambda w: model_inputs(config, config["judges"][w.judge]["model"]) if "model" in config["judges"][w.judge] else [],
    output:
        "results/judges/{judge}/head.json",
    params:
        spec=lambda w: spec_json(resolve_judge(config, w.judge)),
    threads: asks(named_judge_resources, "cpus")
    resources:
        gpu=asks(named_judge_resources, "gpus"),
        mem_mb=asks(named_judge_resources, "mem_mb"),
        runtime=asks(named_judge_resources, "runtime"),
    benchmark:
        "results/benchmarks/judge_head/{judge}.tsv"
    log:
        "results/logs/judges/{judge}/head.log",
    shell:
        "python -m posttrain.judges.train_head --judge-spec {params.spec:q} --out {output} > {log} 2>&1"


rule judge_eval:
    input:
        lambda w: judge_inputs(config, w.judge),
    output:
        metrics="results/judges/{judge}/eval-{split}.json",
        predictions="results/judges/{judge}/predictions-{split}.parquet",
    params:
        spec=lambda w: spec_json(resolve_judge(config, w.judge)),
    threads: asks(named_judge_resources, "cpus")
    resources:
        gpu=asks(named_judge_resources, "gpus"),
        mem_mb=asks(named_judge_resources, "mem_mb"),
        runtime=asks(named_judge_resources, "runtime"),
    benchmark:
        "results/benchmarks/judge_eval/{judge}/{split}.tsv"
    log:
        "results/logs/judges/{judge}/eval-{split}.log",
    shell:
        "python -m posttrain.judges.evaluate --judge-spec {params.spec:q} --split {wildcards.split}"
        " --out {output.metrics} > {log} 2>&1"
