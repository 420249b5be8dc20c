# Output is the manifest only: snapshot folders and trainer state are written beside it and survive a
# failed job (Snakemake deletes a failed job's declared outputs), so a rerun resumes. A job stopped at its
# time limit saves its state first; the profile's `retries` resubmits it (tests/test_slurm.py).
rule sft:
    input:
        data=lambda w: f"results/data/{config['sft'][w.run]['dataset']}.jsonl",
        model=lambda w: model_inputs(config, config["sft"][w.run]["model"]),
    output:
        "results/runs/{run}/checkpoints.json",
    params:
        spec=lambda w: spec_json(sft_spec(w.run)),
        run_dir="results/runs/{run}",
        launch=launch_args,
    wildcard_constraints:
        run=one_of(SFT_RUNS),
    threads: asks(train_resources, "cpus")
    resources:
        gpu=asks(train_resources, "gpus"),
        mem_mb=asks(train_resources, "mem_mb"),
        runtime=asks(train_resources, "runtime"),
    benchmark:
        "results/benchmarks/sft/{run}.tsv"
    log:
        "results/logs/sft/{run}.log",
    shell:
        "python -m posttrain.launch {params.launch} -- posttrain.sft --spec {params.spec:q} --data {input.data}"
        " --run-dir {params.run_dir} --threads {threads} > {log} 2>&1"
