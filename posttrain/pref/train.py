"""Wire a resolved preference spec to its TRL 1.12.0 trainer (DPO, SimPO or PPO), with scheduled snapshots.

Every preference run starts from a checkpoint of its parent SFT run (the reference model of DPO is that
same checkpoint, loaded a second time from its path), and shares the SFT stage's checkpointing: snapshots
at the schedule (step 0 = the SFT weights), rolling resumable state, a manifest naming the parent run.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from trl import DPOConfig, DPOTrainer
from trl.experimental.cpo import CPOConfig, CPOTrainer

from posttrain.checkpointing import (
    LossLog,
    ScheduledSnapshots,
    StopOnSignal,
    exit_if_stopped,
    numerics,
    prepare_run_dir,
    write_manifest,
)
from posttrain.data.preference import read_pairs
from posttrain.models import load_model, load_tokenizer
from posttrain.schedule import checkpoint_steps
from posttrain.training import lora_config, seed, training_args


def _trainer(spec: dict, start: Path, tokenizer, train: Dataset, common: dict, callbacks: list):
    peft = lora_config(spec["lora"])
    if spec["algorithm"] == "dpo":
        args = DPOConfig(**common, beta=spec["beta"], loss_type=[spec["loss_type"]],
                         max_length=spec["training"]["max_length"])
        # A path, not a model object: with no ref_model, DPOTrainer loads the reference from the same path.
        return DPOTrainer(model=str(start), args=args, train_dataset=train, processing_class=tokenizer,
                          peft_config=peft, callbacks=callbacks)
    if spec["algorithm"] == "simpo":
        # SimPO is CPO's loss_type="simpo" with the NLL term off: CPOConfig's default cpo_alpha=1.0 would
        # silently train CPO-SimPO instead.
        args = CPOConfig(**common, loss_type="simpo", cpo_alpha=0.0, beta=spec["beta"],
                         simpo_gamma=spec["gamma"], max_length=spec["training"]["max_length"])
        trainer = CPOTrainer(model=load_model({"path": str(start)}), args=args, train_dataset=train,
                             processing_class=tokenizer, peft_config=peft, callbacks=callbacks)
        if trainer.cpo_alpha != 0.0 or trainer.loss_type != "simpo":
            raise RuntimeError(f"SimPO needs loss_type='simpo' and cpo_alpha=0, trainer has "
                               f"{trainer.loss_type!r} / {trainer.cpo_alpha}")
        return trainer
    if spec["algorithm"] == "ppo":
        return _ppo_trainer(spec, start, tokenizer, train, common, callbacks)
    raise ValueError(f"unknown preference algorithm {spec['algorithm']!r}")


def _ppo_trainer(spec: dict, start: Path, tokenizer, train: Dataset, common: dict, callbacks: list):
    """PPO with a KL penalty to the SFT checkpoint; reward and value models start from the trained reward model.
    TRL's PPOTrainer has no resume, so a killed PPO job restarts (no rolling trainer state is kept)."""
    from transformers import AutoModelForSequenceClassification
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    t = spec["training"]
    batch = t["per_device_train_batch_size"] * t["gradient_accumulation_steps"]
    args = PPOConfig(**common, total_episodes=spec["max_steps"] * batch,
                     kl_coef=spec["kl_coef"], response_length=spec["response_length"],
                     num_ppo_epochs=spec["num_ppo_epochs"], temperature=spec["temperature"], stop_token="eos",
                     num_mini_batches=1, num_sample_generations=0, local_rollout_forward_batch_size=batch)
    tokenizer.padding_side = "left"  # prompts are generated from
    queries = Dataset.from_list([
        {"input_ids": tokenizer.apply_chat_template(p, add_generation_prompt=True, return_dict=False)}
        for p in train["prompt"]])
    reward_path = spec["reward_model_path"]
    reward, value = (AutoModelForSequenceClassification.from_pretrained(reward_path, num_labels=1) for _ in "rv")
    return PPOTrainer(args=args, processing_class=tokenizer, model=load_model({"path": str(start)}),
                      ref_model=load_model({"path": str(start)}), reward_model=reward, value_model=value,
                      train_dataset=queries, eval_dataset=queries.select(range(batch)),
                      peft_config=lora_config(spec["lora"]), callbacks=callbacks)


def run_pref(spec: dict, data_path: str | Path, start: str | Path, run_dir: str | Path, callbacks=()) -> None:
    run_dir, start = Path(run_dir), Path(start)
    steps = checkpoint_steps(spec["checkpoints"], spec["max_steps"])
    resume = prepare_run_dir(run_dir, spec)
    pairs = read_pairs(data_path)
    train = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    tokenizer = load_tokenizer({"path": str(start)})
    snapshots = ScheduledSnapshots(run_dir, steps)
    ppo = spec["algorithm"] == "ppo"
    # PPO keeps no trainer state (TRL's PPOTrainer cannot resume), so a stopped PPO job just restarts.
    stopper = None if ppo else StopOnSignal()
    seed(spec)
    trainer = _trainer(spec, start, tokenizer, train,
                       training_args(spec, run_dir / "trainer-state", **({"save_strategy": "no"} if ppo else {})),
                       [snapshots, LossLog(run_dir / "train_log.jsonl"), *([stopper] if stopper else []), *callbacks])
    snapshots.bind(trainer)
    if ppo:
        trainer.train()
    else:
        trainer.train(resume_from_checkpoint=resume)
        exit_if_stopped(stopper, run_dir, trainer.state.global_step)
    if not trainer.is_world_process_zero():
        return
    write_manifest(
        run_dir,
        {"run": spec["run"], "stage": "pref", "algorithm": spec["algorithm"], "model": str(start),
         "dataset": spec["dataset"], "parent_run": spec["from"]["run"], "config": spec, **numerics(trainer)},
        steps,
        spec["max_steps"],
    )
