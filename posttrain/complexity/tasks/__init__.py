"""Tasks of the complexity probe: data + a scorer, looked up by name (`complexity.tasks` in config).

A task has train examples (what in-context and prequential programs may carry), test examples (what every
program is scored on), a fixed instruction (the URIAL-style prompt), a plain `Question:/Answer:` format (the
chat template replaces it where the checkpoint has one: posttrain.complexity.scoring), and a score in [0, 1]:
a weighted mean of per-item scores, so that it has a bootstrap interval over test items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class TaskError(ValueError):
    """A task that cannot be built (unknown name, missing data); the message says which."""


DEFAULT_DELTAS = [round(0.1 * i, 1) for i in range(1, 10)]  # every task's score lies in [0, 1]
STANCE_TRAIN_SOURCES = ("labelled", "value_qa")  # where the stance task's train examples come from


@dataclass
class Task:
    name: str
    instruction: str
    train: list[dict]  # {"input", "target"}
    test: list[dict]
    score_items: Callable[[list[str], list[dict]], list[float]]  # (predictions, test examples) -> one per item
    max_new_tokens: int = 16
    meta: dict = field(default_factory=dict)
    item_weights: Callable[[list[dict]], list[float]] | None = None  # default: every item weighs 1

    def weights(self, examples: list[dict]) -> list[float]:
        return self.item_weights(examples) if self.item_weights else [1.0] * len(examples)

    def score(self, predictions: list[str], examples: list[dict]) -> float:
        items, weights = self.score_items(predictions, examples), self.weights(examples)
        return sum(s * w for s, w in zip(items, weights)) / sum(weights)

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
