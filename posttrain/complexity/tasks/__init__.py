"""Tasks of the complexity probe: data + a scorer, looked up by name (`complexity.tasks` in config).

A task has train examples (what in-context and prequential programs may carry), test examples (what every
program is scored on), a fixed instruction (the URIAL-style prompt), a plain `Question:/Answer:` format used
at every checkpoint, and a score in [0, 1] (or BLEU / 100).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class TaskError(ValueError):
    """A task that cannot be built (unknown name, missing data); the message says which."""


@dataclass
class Task:
    name: str
    instruction: str
    train: list[dict]  # {"input", "target"}
    test: list[dict]
    score: Callable[[list[str], list[dict]], float]  # (predictions, test examples) -> score
    max_new_tokens: int = 16
    meta: dict = field(default_factory=dict)

    @staticmethod
    def format(example: dict, with_target: bool = True) -> str:
        return f"Question: {example['input']}\nAnswer:" + (f" {example['target']}" if with_target else "")


def load(name: str, settings: dict) -> Task:
    if name == "arithmetic":
        from posttrain.complexity.tasks.arithmetic import build
    elif name == "stance":
        from posttrain.complexity.tasks.stance import build_task as build
    elif name == "gsm8k":
        from posttrain.complexity.tasks.hub import gsm8k as build
    elif name == "flores-en-fr":
        from posttrain.complexity.tasks.hub import flores_en_fr as build
    elif name == "ifeval":
        from posttrain.complexity.tasks.hub import ifeval as build
    else:
        raise TaskError(f"unknown complexity task {name!r} (arithmetic, stance, gsm8k, flores-en-fr, ifeval)")
    return build(settings)
