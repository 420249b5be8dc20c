# Retention (config `retention`; posttrain.plan.Plan.removable): a snapshot is removed by a small local job whose
# inputs are the outputs of every job that reads it, so it runs after the last of them; a finished run's trainer
# state by one that needs only the run's manifest. Their outputs are the records of what was removed: with them
# in place a rerun has nothing to do, and the run's manifest (what downstream jobs compare mtimes against) is
# never touched. Snapshots are not declared outputs, so temp() is no option: Snakemake deletes a failed job's
# outputs, and a training job resumed from its state does not write the snapshots before that step again.


rule release_snapshot:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "release_snapshot")),
    output:
        PATHS.snapshot_record("{run}", "{step}"),
    params:
        job=job_param(PLAN, "release_snapshot"),
    benchmark:
        PATHS.benchmark("release_snapshot", "{run}/step-{step}")
    log:
        PATHS.log("release_snapshot", "{run}/step-{step}"),
    shell:
        "posttrain release-snapshot --job {params.job:q} > {log} 2>&1"


rule release_trainer_state:
    conda:
        ENV
    input:
        unpack(inputs(PLAN, "release_trainer_state")),
    output:
        PATHS.trainer_state_record("{run}"),
    params:
        job=job_param(PLAN, "release_trainer_state"),
    benchmark:
        PATHS.benchmark("release_trainer_state", "{run}")
    log:
        PATHS.log("release_trainer_state", "{run}"),
    shell:
        "posttrain release-trainer-state --job {params.job:q} > {log} 2>&1"
