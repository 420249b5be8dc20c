# Stance judges: fit the embedding judge's head, and validate every judge on the labelled set.


rule judge_head:
    output:
        "results/judges/{judge}/head.json",
    params:
        spec=lambda w: spec_json(resolve_judge(config, w.judge)),
    threads: asks(lambda w: judge_resources(w.judge), "cpus")
    resources:
        gpu=asks(lambda w: judge_resources(w.judge), "gpus"),
        mem_mb=asks(lambda w: judge_resources(w.judge), "mem_mb"),
        runtime=asks(lambda w: judge_resources(w.judge), "runtime"),
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
    threads: asks(lambda w: judge_resources(w.judge), "cpus")
    resources:
        gpu=asks(lambda w: judge_resources(w.judge), "gpus"),
        mem_mb=asks(lambda w: judge_resources(w.judge), "mem_mb"),
        runtime=asks(lambda w: judge_resources(w.judge), "runtime"),
    log:
        "results/logs/judges/{judge}/eval-{split}.log",
    shell:
        "python -m posttrain.judges.evaluate --judge-spec {params.spec:q} --split {wildcards.split}"
        " --out {output.metrics} > {log} 2>&1"
