"""What every training stage shares (SFT, preference runs, reward models): TrainingArguments from a run's
`training` settings, its LoRA config, and its precision on the machine that trains."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig

from posttrain import precision


def lora_config(lora: dict) -> LoraConfig | None:
    if not lora.get("enabled"):
        return None
    return LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"], task_type="CAUSAL_LM",
    )


def training_precision(requested: str) -> str:
    """The run's training precision on this machine (bf16 mixed precision or fp32)."""
    return precision.resolve(requested, "cuda" if torch.cuda.is_available() else "cpu", "training")


def seed(spec: dict) -> None:
    """Seed every RNG from the run's `training.seed` before its model is built: LoRA's random init (peft) and
    any freshly initialised head then depend on the config alone, not on what ran earlier in the process."""
    from transformers import set_seed

    set_seed(spec["training"]["seed"])


def training_args(spec: dict, state_dir: Path, **overrides) -> dict:
    """TrainingArguments shared by every stage: schedule, logging and the rolling resumable state."""
    t = spec["training"]
    return {
        "output_dir": str(state_dir),
        "max_steps": spec["max_steps"],
        "per_device_train_batch_size": t["per_device_train_batch_size"],
        "gradient_accumulation_steps": t["gradient_accumulation_steps"],
        "learning_rate": t["learning_rate"],
        "lr_scheduler_type": t["lr_scheduler_type"],
        "warmup_steps": t["warmup_steps"],
        "weight_decay": t["weight_decay"],
        "max_grad_norm": t["max_grad_norm"],
        "seed": t["seed"],
        "data_seed": t["seed"],
        "bf16": training_precision(t["precision"]) == "bf16",
        "use_cpu": not torch.cuda.is_available(),
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": t["state_every"],
        "save_total_limit": 1,
        "report_to": "none",
        "dataloader_num_workers": 0,
        **overrides,
    }
