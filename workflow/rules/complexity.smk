# Task complexity at every checkpoint of every run (when the config has complexity tasks).
from posttrain import retention


def complexity_references(w):
    """--reference arguments: the run's starting weights and, for a preference run, the base model too (the
    same list retention counts as the readers of those snapshots)."""
    refs = retention.reference_snapshots(config, w.run)
    return " ".join(f"--reference {name}={retention.snapshot(*ref)}" for name, ref in refs.items())


def complexity_spec():
    """The complexity section, with the study's judge resolved for the stance task."""
    spec = json.loads(json.dumps(config["complexity"]))
    if "stance" in spec["tasks"]:
        spec["tasks"]["stance"]["judge"] = resolve_judge(config, JUDGE)
    return spec


rule complexity_probe:
    input:
        "results/runs/{run}/checkpoints.json",
        judge_inputs(config, JUDGE) if "stance" in config["complexity"]["tasks"] else [],
    output:
        "results/complexity/{run}/step-{step}.parquet",
    params:
        spec=spec_json(complexity_spec()),
        refs=complexity_references,
    threads: asks(probe_resources, "cpus")
    resources:
        gpu=asks(probe_resources, "gpus"),
        mem_mb=asks(probe_resources, "mem_mb"),
        runtime=asks(probe_resources, "runtime"),
    benchmark:
        "results/benchmarks/complexity_probe/{run}/step-{step}.tsv"
    log:
        "results/logs/complexity/{run}/step-{step}.log",
    shell:
        "python -m posttrain.complexity --manifest {input[0]} --step {wildcards.step} --spec {params.spec:q}"
        " {params.refs} --out {output} --threads {threads} > {log} 2>&1"


# A preference run's step 0 is its parent's checkpoint (tests/test_pref.py checks the weights): every program but
# the weight delta (whose references differ) gives the parent's rows, so they are copied, not paid for twice.
ruleorder: complexity_probe_pref_start > complexity_probe


rule complexity_probe_pref_start:
    input:
        manifest="results/runs/{run}/checkpoints.json",
        judge=judge_inputs(config, JUDGE) if "stance" in config["complexity"]["tasks"] else [],
        parent=lambda w: "results/complexity/{run}/step-{step}.parquet".format(**config["pref"][w.run]["from"]),
    output:
        "results/complexity/{run}/step-0.parquet",
    wildcard_constraints:
        run=one_of(EXACT_START_RUNS),
    params:
        spec=spec_json(complexity_spec()),
        refs=complexity_references,
    threads: asks(probe_resources, "cpus")
    resources:
        gpu=asks(probe_resources, "gpus"),
        mem_mb=asks(probe_resources, "mem_mb"),
        runtime=asks(probe_resources, "runtime"),
    benchmark:
        "results/benchmarks/complexity_probe_pref_start/{run}/step-0.tsv"
    log:
        "results/logs/complexity/{run}/step-0.log",
    shell:
        "python -m posttrain.complexity --manifest {input.manifest} --step 0 --spec {params.spec:q} --same-as {input.parent}"
        " {params.refs} --out {output} --threads {threads} > {log} 2>&1"
