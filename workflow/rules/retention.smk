# Retention (config `retention`, posttrain/retention.py): a snapshot is removed by a small local job whose inputs
# are the outputs of every job that reads it, so it runs after the last of them; a finished run's trainer state
# by one that needs only the run's manifest. Their outputs are the records of what was removed: with them in
# place a rerun has nothing to do, and the run's manifest (what downstream jobs compare mtimes against) is never
# touched. Snapshots are not declared outputs, so temp() is no option: Snakemake deletes a failed job's outputs,
# and a training job resumed from its state does not write the snapshots before that step again.
from posttrain import retention

RETENTION_RECORDS = retention.records(config)
SNAPSHOT_READERS = retention.plan(config)  # (run, step) -> (outputs of its own run's readers, of other runs')


rule release_snapshot:
    input:
        manifest="results/runs/{run}/checkpoints.json",
        readers=lambda w: [f for readers in SNAPSHOT_READERS[w.run, int(w.step)] for f in readers],
    output:
        "results/runs/{run}/retention/step-{step}.json",
    benchmark:
        "results/benchmarks/release_snapshot/{run}/step-{step}.tsv"
    log:
        "results/logs/retention/{run}/step-{step}.log",
    shell:
        "python -m posttrain.retention snapshot --manifest {input.manifest} --step {wildcards.step}"
        " --needed-by {input.readers} --out {output} > {log} 2>&1"


rule release_trainer_state:
    input:
        "results/runs/{run}/checkpoints.json",
    output:
        "results/runs/{run}/retention/trainer-state.json",
    benchmark:
        "results/benchmarks/release_trainer_state/{run}.tsv"
    log:
        "results/logs/retention/{run}/trainer-state.log",
    shell:
        "python -m posttrain.retention trainer-state --manifest {input} --out {output} > {log} 2>&1"
