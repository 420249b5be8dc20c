# Output is the manifest only: snapshot folders and trainer state are written beside it and survive a
# failed job (Snakemake deletes a failed job's declared outputs), so a rerun resumes.
rule sft:
    input:
        data=lambda w: f"results/data/{config['sft'][w.run]['dataset']}.jsonl",
    output:
        "results/runs/{run}/checkpoints.json",
    params:
        spec=lambda w: spec_json(sft_spec(w.run)),
        run_dir="results/runs/{run}",
    wildcard_constraints:
        run=one_of(SFT_RUNS),
    threads: 2
    log:
        "results/logs/sft/{run}.log",
    shell:
        "python -m posttrain.sft --spec {params.spec:q} --data {input.data} --run-dir {params.run_dir}"
        " --threads {threads} > {log} 2>&1"
