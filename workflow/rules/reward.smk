rule reward_model:
    input:
        data=lambda w: f"results/data/{config['reward_models'][w.name]['dataset']}.jsonl",
        parent=lambda w: f"results/runs/{config['reward_models'][w.name]['from']['run']}/checkpoints.json",
    output:
        metrics="results/reward/{name}/metrics.json",
        model=directory("results/reward/{name}/model"),
    params:
        spec=lambda w: spec_json(config["reward_models"][w.name]),
        out_dir="results/reward/{name}",
        launch=launch_args,
    threads: asks(train_resources, "cpus")
    resources:
        gpu=asks(train_resources, "gpus"),
        mem_mb=asks(train_resources, "mem_mb"),
        runtime=asks(train_resources, "runtime"),
    benchmark:
        "results/benchmarks/reward_model/{name}.tsv"
    log:
        "results/logs/reward/{name}.log",
    shell:
        "python -m posttrain.launch {params.launch} -- posttrain.pref.reward --spec {params.spec:q}"
        " --data {input.data} --parent-manifest {input.parent} --out-dir {params.out_dir} --threads {threads}"
        " > {log} 2>&1"
