"""Retention: which snapshots go, and when, so that a study's disk does not grow with its checkpoints.

Config `retention` (posttrain/schemas/config.schema.yaml; docs/runtime.md: Disk):
  checkpoints: all           every snapshot stays
               last          each run keeps its final snapshot (the trained model); every other one is removed
                             once every job that reads it has finished
               until_probed  every snapshot, the final one too, is removed once every job that reads it has
                             finished (the default: a study's results are its probe rows)
               Under both, a snapshot that jobs of another run read stays: the start of a preference run or
               reward model, a preference run's `base` weight-delta reference. So a changed preference run
               retrains just that run; its parent's snapshots are still there.
  trainer_state: keep | remove_when_finished   a finished run's `trainer-state/` (optimizer, scheduler, RNG)

The jobs that read snapshot (run, step) are its `readers` (posttrain.plan.Plan.readers): its value probe and
complexity probe, the complexity probes that take it as a weight-delta reference, and the preference runs and
reward models that start from it. The workflow (workflow/rules/retention.smk) runs the removal as a job whose
inputs are those
readers' outputs. It therefore runs after all of them, and a rerun with those outputs in place has nothing to
do. The removal is recorded in `<run>/retention/step-<N>.json`. The run's manifest is left alone, because
every downstream job compares its mtime against it. A job that later asks for the snapshot gets an error
naming the record and the way back.

The `release-snapshot` and `release-trainer-state` stages call `release_snapshot` and `release_trainer_state`.

Light on purpose (no torch): these jobs only delete folders and write a record.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from posttrain.io import write_json


class SnapshotRemoved(ValueError):
    """A job asked for a snapshot that retention removed; the message says how to get it back."""


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
