"""Shared fixtures: tiny study configs (randomly initialised Llama / Qwen3, the project-built tokenizer)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# No hub at test time: fail fast instead of retrying the network (read by huggingface_hub at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

TRAINING = {"learning_rate": 1.0e-3, "per_device_train_batch_size": 4, "max_length": 512, "state_every": 4,
            "lr_scheduler_type": "constant"}
PREF = {"from": {"run": "sft-llama"}, "max_steps": 3, "checkpoints": {"steps": [1]}}
TINY_CONFIG = {
    "study": "tiny",
    "models": {
        "tiny-llama": {"tiny": {"family": "llama"}},
        "tiny-qwen3": {"tiny": {"family": "qwen3", "seed": 1}},
    },
    "datasets": {
        "mix": {"kind": "generated_sft", "n_examples": 48, "seed": 0},
        "gap-support": {"kind": "synthetic_value_gap", "direction": "support", "value_gap": 1.0, "n_pairs": 12},
        "gap-oppose": {"kind": "synthetic_value_gap", "direction": "oppose", "value_gap": 0.5, "n_pairs": 12},
    },
    "sft": {
        "sft-llama": {"model": "tiny-llama", "dataset": "mix", "max_steps": 6, "checkpoints": {"steps": [2]},
                      "training": dict(TRAINING)},
        "sft-qwen3": {"model": "tiny-qwen3", "dataset": "mix", "max_steps": 6, "checkpoints": {"log_spaced": 2},
                      "training": dict(TRAINING), "lora": {"enabled": True, "r": 4, "alpha": 8}},
    },
    "reward_models": {"rm-support": {"from": {"run": "sft-llama"}, "dataset": "gap-support", "max_steps": 2,
                                     "training": dict(TRAINING)}},
    "pref": {
        "dpo-support": {**PREF, "algorithm": "dpo", "dataset": "gap-support", "training": dict(TRAINING)},
        "simpo-oppose": {**PREF, "algorithm": "simpo", "dataset": "gap-oppose", "training": dict(TRAINING),
                         "from": {"run": "sft-qwen3", "step": 1}},
        "ppo-support": {**PREF, "algorithm": "ppo", "dataset": "gap-support", "reward_model": "rm-support",
                        "response_length": 8, "training": dict(TRAINING)},
    },
    "judges": {"tiny-head": {"kind": "lm_head", "model": "tiny-llama"},
               "tiny-lm": {"kind": "lm", "model": "tiny-llama"},
               "minilm-stance": {"kind": "embedding"}},
    "probes": {
        "values": {"max_prompts_per_topic": 3, "batch_size": 8, "modes": ["forced_choice", "generation"],
                   "generation": {"samples": 2, "max_new_tokens": 8, "batch_size": 16, "max_prompts_per_topic": 1}},
        "judge": "tiny-head",
        "datasets": {"max_rows": 8},
    },
    "drift": {"bootstrap": {"resamples": 200}},
    "complexity": {
        "tasks": {"arithmetic": {"n_test": 4, "n_train": 16}},
        "estimators": {"zero_shot": {}, "prompting": {"icl_k": [1]}, "prequential": {"max_examples": 16},
                       "weight_delta": {"bits": [4]}},
        "batch_size": 4,
    },
}


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY_CONFIG)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in `workdir` as a researcher would. The timeout only catches a hang: the tiny
    study takes minutes on 2 idle cores, but took over 15 on a loaded machine."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"),
         "--directory", str(workdir), *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )


# The README's test command runs two workers, each taking whole modules (-n 2 --dist loadfile). A long module handed
# out last would run alone at the end, so the longest (measured: the tiny study's 860 s, the Slurm study's 460 s)
# are collected first; the rest keep their order.
LONGEST_FIRST = ("test_workflow.py", "test_slurm.py", "test_judges.py", "test_coverage.py", "test_deepspeed.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
