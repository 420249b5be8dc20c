"""Reward model for PPO: TRL RewardTrainer on preference pairs, from an SFT checkpoint, with held-out accuracy.

The `reward-model` stage runs `train_reward_model` from the parent run's checkpoint at `from.step`.

Writes `<out-dir>/model/` (a sequence-classification model with one output) and `<out-dir>/metrics.json`:
the share of held-out pairs whose chosen answer the model scores above the rejected one.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import torch
from datasets import Dataset

from posttrain.checkpointing import is_main_process
from posttrain.data.chat import DatasetError
from posttrain.data.preference import read_pairs
from posttrain.io import write_json
from posttrain.models import load_tokenizer
from posttrain.training import seed, training_args


@torch.inference_mode()
def pair_accuracy(model, tokenizer, pairs: list[dict]) -> float:
    """Share of pairs with reward(prompt + chosen) > reward(prompt + rejected)."""
    model.eval()
    wins = 0
    for p in pairs:
        scores = []
        for side in ("chosen", "rejected"):
            ids = tokenizer.apply_chat_template(p["prompt"] + p[side], return_dict=False)
            scores.append(model(torch.tensor([ids], device=model.device)).logits[0, 0].item())
        wins += scores[0] > scores[1]
    return wins / len(pairs)


def train_reward_model(spec: dict, data_path, start: Path, out_dir: Path) -> dict:
    from trl import RewardConfig, RewardTrainer

    pairs = read_pairs(data_path)
    random.Random(spec["training"]["seed"]).shuffle(pairs)
    n_heldout = max(1, round(len(pairs) * spec["heldout_fraction"]))
    heldout, train = pairs[:n_heldout], pairs[n_heldout:]
    tokenizer = load_tokenizer({"path": str(start)})
    # One temp folder name for every process of a launched job: the save is collective under ZeRO-3 and only
    # the main process writes; it then renames the finished folder into place.
    tmp, final = out_dir / ".model.tmp", out_dir / "model"
    if is_main_process():  # a failed attempt's leftovers
        shutil.rmtree(tmp, ignore_errors=True)
    args = RewardConfig(**training_args(spec, tmp / "state", save_strategy="no"),
                        max_length=spec["training"]["max_length"])
    seed(spec)  # the reward head is freshly initialised
    trainer = RewardTrainer(
        model=str(start), args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in train]),
    )
    if len(trainer.train_dataset) == 0:  # RewardTrainer drops pairs longer than max_length
        raise DatasetError(f"{data_path}: every training pair is longer than "
                           f"max_length={spec['training']['max_length']} tokens")
    trainer.model.config.pad_token_id = tokenizer.pad_token_id
    trainer.train()
    metrics = {"heldout_pairs": len(heldout), "train_pairs": len(train),
               "heldout_accuracy": pair_accuracy(trainer.model, tokenizer, heldout),  # every process: ZeRO-3
               "train_loss": trainer.state.log_history[-1].get("train_loss")}
    trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(tmp / "state", ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_json(out_dir / "metrics.json", metrics)
    return metrics
