# Task complexity at every checkpoint of every run (when the config has complexity tasks).


def complexity_references(w):
    """--reference arguments: the run's starting weights and, for a preference run, the base model too."""
    refs = {"run_start": f"results/runs/{w.run}/checkpoints/step-0"}
    if w.run in config["pref"]:
        refs["base"] = f"results/runs/{config['pref'][w.run]['from']['run']}/checkpoints/step-0"
    wanted = config["complexity"]["estimators"].get("weight_delta", {}).get("references", ["run_start", "base"])
    return " ".join(f"--reference {name}={path}" for name, path in refs.items() if name in wanted)


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
