"""Two tiers of checkpoints, shared by every training stage.

* Snapshots (`<run>/checkpoints/step-<N>/`): model-only HF folders at the config's schedule, step 0
  included; what probes read. Written atomically (temp folder + rename).
* Trainer state (`<run>/trainer-state/checkpoint-<N>/`): rolling, resumable (optimizer, scheduler, RNG),
  every `state_every` steps. Not a workflow output, so a failed job's state survives for the rerun.
A manifest `<run>/checkpoints.json` is written last; it is the workflow's output for the run.
Snapshots and a finished run's trainer state may be removed later, once nothing reads them (posttrain.retention).

A job stopped by SIGTERM (Slurm's time limit or scancel) saves its trainer state at the end of the current
step and exits with status 143, so the resubmitted job resumes from that step rather than the last `state_every`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from posttrain.io import write_json, write_text
from posttrain.retention import existing_snapshot
from posttrain.schedule import checkpoint_steps


def snapshot_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step}"


class ScheduledSnapshots(TrainerCallback):
    """Save a loadable model snapshot at each scheduled optimizer step (step 0 = before any update)."""

    def __init__(self, run_dir: str | Path, steps: list[int]):
        self.run_dir, self.steps, self.trainer = Path(run_dir), set(steps), None

    def bind(self, trainer) -> ScheduledSnapshots:
        # Callbacks are not handed the trainer; saving through it gathers sharded (ZeRO-3) weights.
        self.trainer = trainer
        return self

    def save(self, step: int) -> None:
        final = snapshot_dir(self.run_dir, step)
        tmp = final.with_name(f".{final.name}.tmp")  # same name on every rank
        trainer = self.trainer
        model = getattr(trainer.model, "policy", trainer.model)  # PPO wraps policy and value model
        if hasattr(model, "merge_and_unload"):  # LoRA: snapshot the merged weights so probes load a plain model
            if trainer.is_world_process_zero():
                merged = copy.deepcopy(model).merge_and_unload()
                merged.save_pretrained(tmp)
                trainer.processing_class.save_pretrained(tmp)
        elif getattr(trainer, "is_deepspeed_enabled", False) and any(
                p.dtype != torch.float32 for p in model.parameters()):
            _save_fp32_masters(trainer, model, tmp)
        else:
            trainer.save_model(str(tmp))
        if trainer.is_world_process_zero():
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0 and 0 in self.steps:
            self.save(0)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            self.save(state.global_step)


def _save_fp32_masters(trainer, model, tmp: Path) -> None:
    """DeepSpeed in bf16 keeps the module in bf16 and the fp32 master weights in its optimizer: a plain save would
    write bf16 weights, whose resolution is coarser than a short run's updates. Gather the masters instead (a
    collective under ZeRO-3: every rank calls it); a parameter the optimizer does not hold (frozen) is gathered
    as it is and widened."""
    import deepspeed
    from deepspeed.utils import safe_get_full_fp32_param

    state = {}
    for name, param in model.named_parameters():
        master = safe_get_full_fp32_param(param)
        if master is None:
            with deepspeed.zero.GatheredParameters([param], enabled=hasattr(param, "ds_id")):
                master = param.detach().float()
        state[name] = master.detach().to("cpu", torch.float32).clone()
    if trainer.is_world_process_zero():
        model.save_pretrained(tmp, state_dict=state)
        trainer.processing_class.save_pretrained(tmp)
        config = json.loads((tmp / "config.json").read_text())
        for key in ("dtype", "torch_dtype"):  # the weights written are fp32, whatever the module held
            if key in config:
                config[key] = "float32"
        write_json(tmp / "config.json", config)


class LossLog(TrainerCallback):
    """Append every logged training record to `<run>/train_log.jsonl` (one JSON object per line)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


class StopOnSignal(TrainerCallback):
    """On SIGTERM or SIGUSR1 (Slurm: time limit, scancel, `--signal`), finish the current step, save the trainer
    state and stop; `stopped_by` then names the signal and the entry point exits without a manifest.

    With several processes (DeepSpeed, DDP) the processes may receive the signal a step apart, so the flag is
    all-reduced at every step end: every process saves at the same step (the save is collective)."""

    def __init__(self, signals=(signal.SIGTERM, signal.SIGUSR1)):
        self.signals, self.stopped_by, self._received, self._previous = signals, None, 0, {}

    def _handle(self, signum, frame):
        self._received = signum

    def on_train_begin(self, args, state, control, **kwargs):
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self._previous.items():  # outside training a signal acts as it did before
            signal.signal(sig, handler)

    def on_step_end(self, args, state, control, **kwargs):
        received = self._received
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([received], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            received = int(flag.item())
        if received:
            self.stopped_by = signal.Signals(received).name
            control.should_save = True
            control.should_training_stop = True


def exit_if_stopped(stopper: StopOnSignal, run_dir: Path, step: int) -> None:
    """After `trainer.train()`: a signal-stopped run leaves no manifest and exits 143 (128 + SIGTERM)."""
    if stopper.stopped_by:
        print(f"stopped by {stopper.stopped_by} after step {step}; trainer state saved under "
              f"{Path(run_dir) / 'trainer-state'}; rerun the job to resume", flush=True)
        raise SystemExit(143)


def is_main_process() -> bool:
    """Rank 0 of a launched job (or the only process): the one that writes shared files."""
    return int(os.environ.get("RANK", "0")) == 0


def prepare_run_dir(run_dir: str | Path, spec: dict) -> str | None:
    """Set up a run folder; return the trainer-state checkpoint to resume from, if any.

    A previous attempt with the same spec is resumed, provided the snapshots it wrote up to that point are
    still there (retention removes them once probed: a finished run rerun with `--forcerun` then retrains from
    scratch). Otherwise its state, snapshots, retention records and log are cleared so nothing stale mixes into
    the new run. Every process computes the same answer; only the main one changes files.
    """
    run_dir = Path(run_dir)
    state_dir, fingerprint = run_dir / "trainer-state", run_dir / "trainer-state" / "spec.json"
    same = fingerprint.is_file() and json.loads(fingerprint.read_text()) == spec
    resume = get_last_checkpoint(str(state_dir)) if same and state_dir.is_dir() else None
    resumed_at = int(resume.rsplit("-", 1)[1]) if resume else 0
    gone = [s for s in checkpoint_steps(spec["checkpoints"], spec["max_steps"])
            if resume and s <= resumed_at and not (snapshot_dir(run_dir, s) / "config.json").is_file()]
    if gone:  # a resumed run writes only the snapshots after its state's step
        print(f"not resuming from {resume}: snapshots {gone} are gone (removed by retention); "
              "training from scratch", flush=True)
        resume, resumed_at = None, 0
    if resume:
        print(f"resuming from {resume}", flush=True)
    if not is_main_process():
        return resume
    shutil.rmtree(run_dir / "retention", ignore_errors=True)  # records of snapshots this run writes again
    if not resume:
        for stale in (state_dir, run_dir / "checkpoints"):
            shutil.rmtree(stale, ignore_errors=True)
        (run_dir / "train_log.jsonl").unlink(missing_ok=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        write_json(fingerprint, spec)
    log = run_dir / "train_log.jsonl"
    if log.is_file():  # drop records past the resume point; the resumed run logs them again
        kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= resumed_at]
        write_text(log, "".join(line + "\n" for line in kept))
    return resume


def checkpoint_path(manifest: str | Path, step: int) -> Path:
    data = json.loads(Path(manifest).read_text())
    for c in data["checkpoints"]:
        if c["step"] == step:
            return existing_snapshot(c["path"])  # a snapshot retention removed: an error saying how to get it back
    raise ValueError(f"{manifest}: no checkpoint at step {step} (has {[c['step'] for c in data['checkpoints']]})")


def numerics(trainer) -> dict:
    """How the run's numbers were computed, for its manifest: resumed runs compare like with like on these."""
    return {"precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
            "threads": torch.get_num_threads(), "device": trainer.args.device.type}


def write_manifest(run_dir: str | Path, run: dict, steps: list[int], max_steps: int) -> None:
    run_dir = Path(run_dir)
    missing = [s for s in steps if not (snapshot_dir(run_dir, s) / "config.json").is_file()]
    if missing:
        raise RuntimeError(f"{run_dir}: training finished but snapshots {missing} are missing")
    write_json(run_dir / "checkpoints.json", {
        **run,
        "max_steps": max_steps,
        "checkpoints": [
            {"step": s, "progress": s / max_steps, "path": str(snapshot_dir(run_dir, s))} for s in steps
        ],
    })
