# Stance judges: fit a feature judge's head, and validate every judge on the labelled set.


rule judge_head:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "judge_head")),
    output:
        PATHS.judge_head("{judge}"),
    params:
        job=job_param(PLAN, "judge_head"),
    threads: threads(PLAN, "judge_head")
    resources:
        **resources(PLAN, "judge_head"),
    benchmark:
        PATHS.benchmark("judge_head", "{judge}")
    log:
        PATHS.log("judge_head", "{judge}"),
    shell:
        "posttrain judge-head --job {params.job:q} --threads {threads} > {log} 2>&1"


rule judge_eval:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "judge_eval")),
    output:
        metrics=PATHS.judge_eval("{judge}", "{split}"),
        predictions=PATHS.judge_predictions("{judge}", "{split}"),
    params:
        job=job_param(PLAN, "judge_eval"),
    threads: threads(PLAN, "judge_eval")
    resources:
        **resources(PLAN, "judge_eval"),
    benchmark:
        PATHS.benchmark("judge_eval", "{judge}/{split}")
    log:
        PATHS.log("judge_eval", "{judge}/{split}"),
    shell:
        "posttrain judge-eval --job {params.job:q} --threads {threads} > {log} 2>&1"
