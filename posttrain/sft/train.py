"""Wire a resolved SFT spec to TRL's SFTTrainer (full fine-tuning or LoRA) with scheduled snapshots."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from posttrain import tiny
from posttrain.checkpointing import (
    LossLog,
    ScheduledSnapshots,
    StopOnSignal,
    exit_if_stopped,
    numerics,
    prepare_run_dir,
    write_manifest,
)
from posttrain.data.chat import read_jsonl, to_prompt_completion
from posttrain.models import load_model, load_tokenizer
from posttrain.schedule import checkpoint_steps
from posttrain.training import lora_config, seed, training_args


def run_sft(spec: dict, data_path: str | Path, run_dir: str | Path, callbacks=()) -> None:
    run_dir = Path(run_dir)
    steps = checkpoint_steps(spec["checkpoints"], spec["max_steps"])
    resume = prepare_run_dir(run_dir, spec)

    rows = read_jsonl(data_path)
    train = Dataset.from_list([to_prompt_completion(r["messages"]) for r in rows])
    tokenizer = load_tokenizer(spec["model_spec"])
    if tokenizer.chat_template is None:  # base checkpoints (e.g. Llama-3 base) ship none
        print("tokenizer has no chat template; using ChatML")
        tokenizer.chat_template = tiny.CHATML
    # The arguments come first: under `accelerate launch --use_deepspeed` with ZeRO-3 they switch on sharded
    # loading, so each GPU process loads its shard instead of the whole model.
    args = SFTConfig(**training_args(spec, run_dir / "trainer-state"), max_length=spec["training"]["max_length"])
    seed(spec)
    model = load_model(spec["model_spec"], tokenizer)

    snapshots, stopper = ScheduledSnapshots(run_dir, steps), StopOnSignal()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=lora_config(spec["lora"]),
        callbacks=[snapshots, LossLog(run_dir / "train_log.jsonl"), stopper, *callbacks],
    )
    snapshots.bind(trainer)
    trainer.train(resume_from_checkpoint=resume)
    exit_if_stopped(stopper, run_dir, trainer.state.global_step)
    if not trainer.is_world_process_zero():
        return
    write_manifest(
        run_dir,
        {"run": spec["run"], "stage": "sft", "algorithm": "sft", "model": spec["model"],
         "dataset": spec["dataset"], "parent_run": None, "config": spec, **numerics(trainer)},
        steps,
        spec["max_steps"],
    )
