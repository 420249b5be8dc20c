"""Retention: which snapshots go, and when, so that a study's disk does not grow with its checkpoints.

Config `retention` (workflow/schemas/config.schema.yaml; README: Disk):
  checkpoints: all           every snapshot stays
               last          each run keeps its final snapshot (the trained model); every other one is removed
                             once every job that reads it has finished
               until_probed  every snapshot, the final one too, is removed once every job that reads it has
                             finished (the default: a study's results are its probe rows)
               Under both, a snapshot that jobs of another run read stays: the start of a preference run or
               reward model, a preference run's `base` weight-delta reference. So a changed preference run
               retrains just that run; its parent's snapshots are still there.
  trainer_state: keep | remove_when_finished   a finished run's `trainer-state/` (optimizer, scheduler, RNG)

The jobs that read snapshot (run, step) are its `readers`: its value probe and complexity probe, the
complexity probes that take it as a weight-delta reference, and the preference runs and reward models that
start from it. The workflow (workflow/rules/retention.smk) runs the removal as a job whose inputs are those
readers' outputs. It therefore runs after all of them, and a rerun with those outputs in place has nothing to
do. The removal is recorded in `<run>/retention/step-<N>.json`. The run's manifest is left alone, because
every downstream job compares its mtime against it. A job that later asks for the snapshot gets an error
naming the record and the way back.

    python -m posttrain.retention snapshot --manifest results/runs/<run>/checkpoints.json --step N \
        --needed-by <reader outputs...> --out results/runs/<run>/retention/step-N.json
    python -m posttrain.retention trainer-state --manifest results/runs/<run>/checkpoints.json \
        --out results/runs/<run>/retention/trainer-state.json

Light on purpose (no torch): these jobs only delete folders and write a record.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from posttrain.io import write_json

RESULTS = "results"


class SnapshotRemoved(ValueError):
    """A job asked for a snapshot that retention removed; the message says how to get it back."""


# --- What reads which snapshot (a validated config; paths as the workflow names them) -------------------------

def _runs(config: dict) -> list[str]:
    return [*config["sft"], *config["pref"]]


def _steps(config: dict) -> dict[str, list[int]]:
    from posttrain.schedule import checkpoint_steps  # numpy: only where the workflow plans, not in the jobs

    return {run: checkpoint_steps(spec["checkpoints"], spec["max_steps"])
            for run, spec in {**config["sft"], **config["pref"]}.items()}


def manifest(run: str) -> str:
    return f"{RESULTS}/runs/{run}/checkpoints.json"


def snapshot(run: str, step: int) -> str:
    return f"{RESULTS}/runs/{run}/checkpoints/step-{step}"


def reference_snapshots(config: dict, run: str) -> dict[str, tuple[str, int]]:
    """The snapshots a complexity probe of `run` loads as weight-delta references, name -> (run, step): the
    run's step 0 (run_start) and, for a preference run, its parent SFT run's step 0 (base). None without
    a weight_delta estimator."""
    delta = config["complexity"]["estimators"].get("weight_delta")
    if not config["complexity"]["tasks"] or delta is None:
        return {}
    refs = {"run_start": (run, 0)}
    if run in config["pref"]:
        refs["base"] = (config["pref"][run]["from"]["run"], 0)
    return {name: ref for name, ref in refs.items() if name in delta["references"]}


def plan(config: dict) -> dict[tuple[str, int], tuple[list[str], list[str]]]:
    """(run, step) of every snapshot -> the outputs of the jobs that read it: (those of its own run, those of
    other runs). Once they all exist, nothing needs the snapshot any more."""
    steps = _steps(config)
    own_others = {(run, s): ([], []) for run in _runs(config) for s in steps[run]}
    for run in _runs(config):
        complexity = [f"{RESULTS}/complexity/{run}/step-{s}.parquet" for s in steps[run]] \
            if config["complexity"]["tasks"] else []
        for i, s in enumerate(steps[run]):
            # A preference run's step-0 value probe copies its parent's rows (probes.smk): it loads no weights.
            if not (run in config["pref"] and s == 0):
                own_others[run, s][0].append(f"{RESULTS}/probes/values/{run}/step-{s}.parquet")
            own_others[run, s][0].extend(complexity[i:i + 1])
        for ref_run, ref_step in reference_snapshots(config, run).values():
            own, others = own_others[ref_run, ref_step]
            (own if ref_run == run else others).extend(complexity)
    for child, spec in config["pref"].items():  # runs and reward models that start from it
        own_others[spec["from"]["run"], spec["from"]["step"]][1].append(manifest(child))
    for name, spec in config["reward_models"].items():
        own_others[spec["from"]["run"], spec["from"]["step"]][1].append(f"{RESULTS}/reward/{name}/metrics.json")
    return {key: (list(dict.fromkeys(own)), list(dict.fromkeys(others)))
            for key, (own, others) in own_others.items()}


def readers(config: dict, run: str, step: int) -> list[str]:
    """The outputs of every job that reads snapshot (run, step)."""
    own, others = plan(config)[run, step]
    return own + others


def removable(config: dict) -> list[tuple[str, int]]:
    """(run, step) of every snapshot the policy removes once its readers have finished. Snapshots that jobs
    of other runs read are never among them: a changed preference run would otherwise need its parent
    retrained, and everything downstream of the parent with it."""
    policy = config["retention"]["checkpoints"]
    if policy == "all":
        return []
    finals = {(run, steps[-1]) for run, steps in _steps(config).items()}
    return [key for key, (_, others) in plan(config).items()
            if not others and (policy == "until_probed" or key not in finals)]


def records(config: dict) -> list[str]:
    """The record files the workflow asks for: one per removable snapshot, one per run's trainer state."""
    out = [f"{RESULTS}/runs/{run}/retention/step-{step}.json" for run, step in removable(config)]
    if config["retention"]["trainer_state"] == "remove_when_finished":
        out += [f"{RESULTS}/runs/{run}/retention/trainer-state.json" for run in _runs(config)]
    return out


# --- Removing, and the record a later job reads -----------------------------------------------------------

def record_path(snapshot_dir: str | Path) -> Path:
    """`<run>/retention/step-<N>.json` for snapshot `<run>/checkpoints/step-<N>`."""
    snapshot_dir = Path(snapshot_dir)
    return snapshot_dir.parent.parent / "retention" / f"{snapshot_dir.name}.json"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _remove(folder: Path) -> int:
    """Delete a folder, all or nothing as far as readers can tell: it is renamed away first, so a job killed
    mid-delete leaves no half snapshot under the real name (the leftover goes on the next call)."""
    doomed = folder.with_name(f".{folder.name}.removing")
    if doomed.exists():
        shutil.rmtree(doomed)
    if not folder.exists():
        return 0
    size = _size(folder)
    os.replace(folder, doomed)
    shutil.rmtree(doomed)
    return size


def _checkpoint_entry(manifest_path: Path, step: int) -> dict:
    data = json.loads(manifest_path.read_text())
    for c in data["checkpoints"]:
        if c["step"] == step:
            return {"run": data["run"], **c}
    have = [c["step"] for c in data["checkpoints"]]
    raise ValueError(f"{manifest_path}: no checkpoint at step {step} (has {have})")


def release_snapshot(manifest_path: str | Path, step: int, needed_by: list[str], out: str | Path) -> dict:
    """Remove snapshot `step` of the manifest's run, once every file in `needed_by` exists; write the record."""
    manifest_path = Path(manifest_path)
    missing = [f for f in needed_by if not Path(f).exists()]
    if missing:
        raise ValueError(f"snapshot step {step} of {manifest_path} is still needed: "
                         f"{', '.join(missing)} not written yet")
    entry = _checkpoint_entry(manifest_path, step)
    freed = _remove(Path(entry["path"]))
    record = {"run": entry["run"], "step": step, "path": entry["path"], "removed": True, "bytes_freed": freed,
              "needed_by": sorted(needed_by), "manifest": str(manifest_path)}
    write_json(out, record)
    return record


def release_trainer_state(manifest_path: str | Path, out: str | Path) -> dict:
    """Remove a finished run's trainer state. The manifest is written only when training finished, so a run
    that can still resume (stopped by a signal, killed) has none and keeps its state."""
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path} does not exist: the run has not finished, its trainer state stays")
    state = manifest_path.parent / "trainer-state"
    record = {"run": json.loads(manifest_path.read_text())["run"], "path": str(state), "removed": True,
              "bytes_freed": _remove(state)}
    write_json(out, record)
    return record


def existing_snapshot(path: str | Path) -> Path:
    """`path` if it is a snapshot still on disk; SnapshotRemoved, saying how to get it back, if retention
    removed it. (Any other missing folder is left to the loader's own error.)"""
    path = Path(path)
    record = record_path(path)
    if (path / "config.json").is_file() or not record.is_file():
        return path
    r = json.loads(record.read_text())
    raise SnapshotRemoved(
        f"snapshot {path} (run {r['run']}, step {r['step']}) was removed by retention once every job that "
        f"read it had finished (config retention.checkpoints; record: {record}). To get it back, retrain the "
        f"run: add `--forcerun {r['manifest']}` to your snakemake command (this reruns everything downstream "
        f"of the run too); set `retention: {{checkpoints: all}}` in the config first if the snapshots should "
        f"stay this time.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    snap = sub.add_parser("snapshot", help="remove one snapshot once its readers have finished")
    snap.add_argument("--manifest", required=True)
    snap.add_argument("--step", type=int, required=True)
    snap.add_argument("--needed-by", nargs="*", default=[], help="the outputs of every job that reads it")
    snap.add_argument("--out", required=True, help="the record")
    state = sub.add_parser("trainer-state", help="remove a finished run's trainer state")
    state.add_argument("--manifest", required=True)
    state.add_argument("--out", required=True, help="the record")
    args = parser.parse_args(argv)
    try:
        if args.what == "snapshot":
            record = release_snapshot(args.manifest, args.step, args.needed_by, args.out)
        else:
            record = release_trainer_state(args.manifest, args.out)
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    print(f"removed {record['path']} ({record['bytes_freed'] / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
