# The study database: every run's manifest and every probe's rows, with bootstrap intervals and SQL views. The file
# lists go beside the job spec (--input), not inside it: at cluster scale they outgrow one argument.


rule store:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "store")),
    output:
        PATHS.db(),
    params:
        job=job_param(PLAN, "store"),
        benchmarks=PLAN.upstream_benchmarks(),
    threads: threads(PLAN, "store")
    resources:
        **resources(PLAN, "store"),
    benchmark:
        PATHS.benchmark("store")
    log:
        PATHS.log("store"),
    shell:
        "posttrain store --job {params.job:q} --threads {threads} --input manifests {input.manifests}"
        " --input stance {input.stance} --input datasets_stance {input.datasets_stance}"
        " --input dataset_checks {input.dataset_checks}"
        " --input judge_evals {input.judge_evals} --input complexity {input.complexity}"
        " --input benchmarks {params.benchmarks} > {log} 2>&1"
