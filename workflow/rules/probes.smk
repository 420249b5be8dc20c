# Probes at every checkpoint of every run: the value probe (stance), the task-complexity probe (when the config
# has complexity tasks), and the stance of the training data itself.


rule value_probe:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "value_probe")),
    output:
        PATHS.value_probe("{run}", "{step}"),
    params:
        job=job_param(PLAN, "value_probe"),
    threads: threads(PLAN, "value_probe")
    resources:
        **resources(PLAN, "value_probe"),
    benchmark:
        PATHS.benchmark("value_probe", "{run}/step-{step}")
    log:
        PATHS.log("value_probe", "{run}/step-{step}"),
    shell:
        "posttrain value-probe --job {params.job:q} --threads {threads} > {log} 2>&1"


# A preference run's step 0 holds its parent's checkpoint unchanged (tests/test_pref.py checks the weights),
# and both probe modes are deterministic given the weights (the forced choice exactly; every generated sample
# by its recorded seed), so its rows are the parent's, relabelled: no second probe. (Not for a DeepSpeed bf16
# run, whose step 0 is its parent rounded to bf16: posttrain.plan.Plan.copies_parent.)
ruleorder: value_probe_pref_start > value_probe


rule value_probe_pref_start:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "value_probe_pref_start")),
    output:
        PATHS.value_probe("{run}", 0),
    wildcard_constraints:
        run=one_of(PLAN.exact_start_runs),
    params:
        job=job_param(PLAN, "value_probe_pref_start"),
    benchmark:
        PATHS.benchmark("value_probe_pref_start", "{run}/step-0")
    log:
        PATHS.log("value_probe_pref_start", "{run}/step-0"),
    shell:
        "posttrain value-probe --job {params.job:q} > {log} 2>&1"


rule complexity_probe:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "complexity_probe")),
    output:
        PATHS.complexity_probe("{run}", "{step}"),
    params:
        job=job_param(PLAN, "complexity_probe"),
    threads: threads(PLAN, "complexity_probe")
    resources:
        **resources(PLAN, "complexity_probe"),
    benchmark:
        PATHS.benchmark("complexity_probe", "{run}/step-{step}")
    log:
        PATHS.log("complexity_probe", "{run}/step-{step}"),
    shell:
        "posttrain complexity-probe --job {params.job:q} --threads {threads} > {log} 2>&1"


# Likewise every program of a preference run's step 0 but the weight delta (whose references differ) gives the
# parent's rows: they are copied, and only the weight-delta programs are computed.
ruleorder: complexity_probe_pref_start > complexity_probe


rule complexity_probe_pref_start:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "complexity_probe_pref_start")),
    output:
        PATHS.complexity_probe("{run}", 0),
    wildcard_constraints:
        run=one_of(PLAN.exact_start_runs),
    params:
        job=job_param(PLAN, "complexity_probe_pref_start"),
    threads: threads(PLAN, "complexity_probe_pref_start")
    resources:
        **resources(PLAN, "complexity_probe_pref_start"),
    benchmark:
        PATHS.benchmark("complexity_probe_pref_start", "{run}/step-0")
    log:
        PATHS.log("complexity_probe_pref_start", "{run}/step-0"),
    shell:
        "posttrain complexity-probe --job {params.job:q} --threads {threads} > {log} 2>&1"


rule dataset_stance:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "dataset_stance")),
    output:
        PATHS.dataset_stance("{dataset}"),
        PATHS.dataset_checks("{dataset}"),
    params:
        job=job_param(PLAN, "dataset_stance"),
    threads: threads(PLAN, "dataset_stance")
    resources:
        **resources(PLAN, "dataset_stance"),
    benchmark:
        PATHS.benchmark("dataset_stance", "{dataset}")
    log:
        PATHS.log("dataset_stance", "{dataset}"),
    shell:
        "posttrain dataset-stance --job {params.job:q} --threads {threads} > {log} 2>&1"
