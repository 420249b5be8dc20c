# Preference runs start from a checkpoint of their parent SFT run; like SFT, the output is the manifest only.
rule pref:
    input:
        data=lambda w: f"results/data/{config['pref'][w.run]['dataset']}.jsonl",
        parent=lambda w: f"results/runs/{config['pref'][w.run]['from']['run']}/checkpoints.json",
        reward=reward_model_input,
    output:
        "results/runs/{run}/checkpoints.json",
    wildcard_constraints:
        run=one_of(PREF_RUNS),
    params:
        spec=lambda w: spec_json(pref_spec(w.run)),
        algorithm=lambda w: config["pref"][w.run]["algorithm"],
        run_dir="results/runs/{run}",
        launch=launch_args,
    threads: asks(train_resources, "cpus")
    resources:
        gpu=asks(train_resources, "gpus"),
        mem_mb=asks(train_resources, "mem_mb"),
        runtime=asks(train_resources, "runtime"),
    benchmark:
        "results/benchmarks/pref/{run}.tsv"
    log:
        "results/logs/pref/{run}.log",
    shell:
        "python -m posttrain.launch {params.launch} -- posttrain.pref.{params.algorithm} --spec {params.spec:q}"
        " --data {input.data} --parent-manifest {input.parent} --run-dir {params.run_dir} --threads {threads}"
        " > {log} 2>&1"
