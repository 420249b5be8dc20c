# Training: SFT runs, preference runs (DPO, SimPO, PPO) from an SFT checkpoint, and PPO's reward models.
# A run's output is its manifest only: snapshots and trainer state are written beside it and survive a failed
# job (Snakemake deletes a failed job's declared outputs), so a rerun resumes. A job stopped at its time limit
# saves its state first; the profile's `retries` resubmits it (tests/test_slurm.py). A job with GPUs starts one
# process per GPU itself (posttrain.stages), with DeepSpeed as its model's resources say.


rule sft:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "sft")),
    output:
        PATHS.manifest("{run}"),
    wildcard_constraints:
        run=one_of(PLAN.sft_runs),
    params:
        job=job_param(PLAN, "sft"),
    threads: threads(PLAN, "sft")
    resources:
        **resources(PLAN, "sft"),
    benchmark:
        PATHS.benchmark("sft", "{run}")
    log:
        PATHS.log("sft", "{run}"),
    shell:
        "posttrain sft --job {params.job:q} --threads {threads} > {log} 2>&1"


rule pref:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "pref")),
    output:
        PATHS.manifest("{run}"),
    wildcard_constraints:
        run=one_of(PLAN.pref_runs),
    params:
        job=job_param(PLAN, "pref"),
    threads: threads(PLAN, "pref")
    resources:
        **resources(PLAN, "pref"),
    benchmark:
        PATHS.benchmark("pref", "{run}")
    log:
        PATHS.log("pref", "{run}"),
    shell:
        "posttrain pref --job {params.job:q} --threads {threads} > {log} 2>&1"


rule reward_model:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "reward_model")),
    output:
        metrics=PATHS.reward_metrics("{name}"),
        model=directory(PATHS.reward_model("{name}")),
    params:
        job=job_param(PLAN, "reward_model"),
    threads: threads(PLAN, "reward_model")
    resources:
        **resources(PLAN, "reward_model"),
    benchmark:
        PATHS.benchmark("reward_model", "{name}")
    log:
        PATHS.log("reward_model", "{name}"),
    shell:
        "posttrain reward-model --job {params.job:q} --threads {threads} > {log} 2>&1"
