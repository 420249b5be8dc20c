"""Retention: which jobs read each snapshot (the tiny study's config), what each policy removes, and the
removal itself on real snapshot folders: a record beside the run, the manifest untouched, a clear error for a
later reader. The whole thing through snakemake is in tests/test_workflow.py; a finished run retrained after
it, in test_sft.py."""

import json
import os

import pytest

from posttrain import cli, retention, tiny
from posttrain.checkpointing import checkpoint_path, snapshot_dir, write_manifest
from posttrain.config import validate
from posttrain.plan import Plan
from posttrain.schedule import checkpoint_steps


def steps_of(config, run):
    spec = {**config["sft"], **config["pref"]}[run]
    return checkpoint_steps(spec["checkpoints"], spec["max_steps"])


def complexity_files(config, run):
    return {f"results/complexity/{run}/step-{s}.parquet" for s in steps_of(config, run)}


def test_readers_are_every_job_that_loads_the_snapshot(tiny_config):
    plan = Plan(tiny_config)
    config = plan.config
    last = steps_of(config, "sft-llama")[-1]
    # the end of sft-llama: its own probes, the two preference runs and the reward model that start from it
    assert set(plan.readers("sft-llama", last)) == {
        f"results/probes/values/sft-llama/step-{last}.parquet",
        f"results/complexity/sft-llama/step-{last}.parquet",
        "results/runs/dpo-support/checkpoints.json", "results/runs/ppo-support/checkpoints.json",
        "results/reward/rm-support/metrics.json"}
    # simpo-oppose starts from sft-qwen3's step 1, not its last
    assert "results/runs/simpo-oppose/checkpoints.json" in plan.readers("sft-qwen3", 1)
    assert "results/runs/simpo-oppose/checkpoints.json" not in plan.readers("sft-qwen3", 6)
    # step 0 is a weight-delta reference of complexity probes: its own run's (run_start), its children's (base)
    assert set(plan.readers("sft-llama", 0)) == {
        "results/probes/values/sft-llama/step-0.parquet", *complexity_files(config, "sft-llama"),
        *complexity_files(config, "dpo-support"), *complexity_files(config, "ppo-support")}
    # a preference run's step-0 value probe copies its parent's rows: only the complexity probes load it
    assert set(plan.readers("dpo-support", 0)) == complexity_files(config, "dpo-support")


def test_readers_follow_the_complexity_settings(tiny_config):
    tiny_config["complexity"]["estimators"]["weight_delta"]["references"] = ["run_start"]
    plan = Plan(tiny_config)
    config = plan.config
    assert set(plan.readers("sft-llama", 0)) == {
        "results/probes/values/sft-llama/step-0.parquet", *complexity_files(config, "sft-llama")}
    assert ("sft-llama", 0) in plan.removable()  # no other run reads it now
    assert plan.reference_snapshots("dpo-support") == {"run_start": ("dpo-support", 0)}
    del tiny_config["complexity"]["estimators"]["weight_delta"]  # no weight delta: no reference is loaded
    assert Plan(tiny_config).reference_snapshots("dpo-support") == {}
    tiny_config["complexity"]["tasks"] = {}  # no complexity probe at all
    plan = Plan(tiny_config)
    config = plan.config
    assert plan.readers("sft-llama", 2) == ["results/probes/values/sft-llama/step-2.parquet"]
    assert plan.readers("dpo-support", 0) == []


@pytest.mark.parametrize("policy", ["all", "last", "until_probed"])
def test_each_policy_removes_its_snapshots(tiny_config, policy):
    tiny_config["retention"] = {"checkpoints": policy, "trainer_state": "keep"}
    plan = Plan(tiny_config)
    config = plan.config
    every = {(run, s) for run in [*config["sft"], *config["pref"]] for s in steps_of(config, run)}
    finals = {(run, steps_of(config, run)[-1]) for run in [*config["sft"], *config["pref"]]}
    # what other runs read stays: where preference runs and reward models start, and the parents' step 0
    # (the tiny study's complexity probes take `base` as a weight-delta reference)
    starts = {(s["from"]["run"], s["from"]["step"])
              for s in [*config["pref"].values(), *config["reward_models"].values()]}
    bases = {(s["from"]["run"], 0) for s in config["pref"].values()}
    assert starts == {("sft-llama", 6), ("sft-qwen3", 1)} and bases == {("sft-llama", 0), ("sft-qwen3", 0)}
    kept = {"all": every, "last": finals | starts | bases, "until_probed": starts | bases}[policy]
    want = every - kept
    assert set(plan.removable()) == want
    assert len(plan.retention_records()) == len(want)  # trainer_state: keep -> no trainer-state records
    assert validate({**tiny_config, "retention": {}})["retention"] == {"checkpoints": "until_probed",
                                                                      "trainer_state": "remove_when_finished"}


def test_a_bad_policy_is_named(tiny_config):
    from posttrain.config import ConfigError
    tiny_config["retention"] = {"checkpoints": "some"}
    with pytest.raises(ConfigError, match="retention.checkpoints"):
        validate(tiny_config)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A finished run as training leaves it: real snapshot folders, a manifest, a trainer state."""
    monkeypatch.chdir(tmp_path)  # the workflow's relative paths
    run = tmp_path / "results" / "runs" / "r"
    tokenizer = tiny.build_tokenizer(1024, "llama")
    model = tiny.build_model({"family": "llama"}, tokenizer)
    for step in (0, 3):
        model.save_pretrained(snapshot_dir(run, step))
        tokenizer.save_pretrained(snapshot_dir(run, step))
    (run / "trainer-state" / "checkpoint-3").mkdir(parents=True)
    (run / "trainer-state" / "checkpoint-3" / "optimizer.pt").write_bytes(b"\0" * 1000)
    write_manifest(run, {"run": "r"}, [0, 3], 3)
    return run


def release(manifest, probe, out):
    """The workflow's release-snapshot job, through the command line."""
    job = {"manifest": str(manifest), "step": 0, "needed_by": [probe], "out": str(out)}
    cli.main(["release-snapshot", "--job", json.dumps(job)])


def test_release_removes_the_snapshot_and_a_later_reader_is_told_how_to_get_it_back(run_dir):
    manifest = run_dir / "checkpoints.json"
    stamp = manifest.stat().st_mtime_ns
    probe = "results/probes/values/r/step-0.parquet"
    with pytest.raises(SystemExit, match=f"still needed: {probe} not written yet"):
        release(manifest, probe, run_dir / "retention" / "step-0.json")
    assert (snapshot_dir(run_dir, 0) / "config.json").is_file()
    os.makedirs(os.path.dirname(probe))
    open(probe, "w").close()
    release(manifest, probe, run_dir / "retention" / "step-0.json")
    assert not snapshot_dir(run_dir, 0).exists() and snapshot_dir(run_dir, 3).is_dir()
    assert not list((run_dir / "checkpoints").glob(".*"))  # nothing half-removed left behind
    record = json.loads((run_dir / "retention" / "step-0.json").read_text())
    assert (record["step"], record["needed_by"]) == (0, [probe]) and record["bytes_freed"] > 100_000
    assert manifest.stat().st_mtime_ns == stamp  # downstream jobs compare against it: it must not change
    assert checkpoint_path(manifest, 3) == snapshot_dir(run_dir, 3)
    with pytest.raises(retention.SnapshotRemoved) as removed:
        checkpoint_path(manifest, 0)
    message = str(removed.value)
    assert "removed by retention" in message and f"--forcerun {manifest}" in message
    assert "retention: {checkpoints: all}" in message
    # a rerun of the release (its inputs got newer) has nothing left to remove and says so
    release(manifest, probe, run_dir / "retention" / "step-0.json")
    assert json.loads((run_dir / "retention" / "step-0.json").read_text())["bytes_freed"] == 0


def test_trainer_state_goes_only_once_the_run_has_finished(run_dir):
    manifest = run_dir / "checkpoints.json"
    record = run_dir / "retention" / "trainer-state.json"
    manifest.rename(run_dir / "unfinished.json")  # a run stopped by a signal writes no manifest
    with pytest.raises(SystemExit, match="has not finished, its trainer state stays"):
        cli.main(["release-trainer-state", "--job", json.dumps({"manifest": str(manifest), "out": str(record)})])
    assert (run_dir / "trainer-state" / "checkpoint-3").is_dir()
    (run_dir / "unfinished.json").rename(manifest)
    cli.main(["release-trainer-state", "--job", json.dumps({"manifest": str(manifest), "out": str(record)})])
    assert not (run_dir / "trainer-state").exists()
    assert json.loads(record.read_text())["bytes_freed"] >= 1000
    assert (snapshot_dir(run_dir, 3) / "config.json").is_file()  # snapshots are another matter
