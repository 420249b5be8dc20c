rule value_probe:
    input:
        value_probe_inputs,
    output:
        "results/probes/values/{run}/step-{step}.parquet",
    params:
        spec=spec_json(value_probe_spec()),
    threads: asks(probe_resources, "cpus")
    resources:
        gpu=asks(probe_resources, "gpus"),
        mem_mb=asks(probe_resources, "mem_mb"),
        runtime=asks(probe_resources, "runtime"),
    benchmark:
        "results/benchmarks/value_probe/{run}/step-{step}.tsv"
    log:
        "results/logs/probes/values/{run}/step-{step}.log",
    shell:
        "python -m posttrain.probes.values --manifest {input[0]} --step {wildcards.step} --spec {params.spec:q}"
        " --out {output} --threads {threads} > {log} 2>&1"


# A preference run's step 0 holds its parent's checkpoint unchanged (tests/test_pref.py checks the weights),
# and both probe modes are deterministic given the weights (the forced choice exactly; every generated sample
# by its recorded seed), so its rows are the parent's, relabelled: no second probe.
ruleorder: value_probe_pref_start > value_probe


rule value_probe_pref_start:
    input:
        manifest="results/runs/{run}/checkpoints.json",
        parent=lambda w: "results/probes/values/{run}/step-{step}.parquet".format(**config["pref"][w.run]["from"]),
    output:
        "results/probes/values/{run}/step-0.parquet",
    wildcard_constraints:
        run=one_of(EXACT_START_RUNS),
    benchmark:
        "results/benchmarks/value_probe_pref_start/{run}/step-0.tsv"
    log:
        "results/logs/probes/values/{run}/step-0.log",
    shell:
        "python -m posttrain.probes.values --manifest {input.manifest} --step 0 --same-as {input.parent}"
        " --out {output} > {log} 2>&1"


rule dataset_stance:
    input:
        "results/data/{dataset}.jsonl",
        judge_inputs(config, JUDGE),
    output:
        "results/probes/datasets/{dataset}.parquet",
    params:
        spec=spec_json(resolve_judge(config, JUDGE)),
        max_rows=lambda w: f"--max-rows {config['probes']['datasets']['max_rows']}"
        if "max_rows" in config["probes"]["datasets"] else "",
    threads: asks(fixed(judge_resources(JUDGE)), "cpus")
    resources:
        gpu=asks(fixed(judge_resources(JUDGE)), "gpus"),
        mem_mb=asks(fixed(judge_resources(JUDGE)), "mem_mb"),
        runtime=asks(fixed(judge_resources(JUDGE)), "runtime"),
    benchmark:
        "results/benchmarks/dataset_stance/{dataset}.tsv"
    log:
        "results/logs/probes/datasets/{dataset}.log",
    shell:
        "python -m posttrain.probes.dataset_stance --data {input[0]} --dataset {wildcards.dataset}"
        " --judge-spec {params.spec:q} {params.max_rows} --out {output} --threads {threads} > {log} 2>&1"
