"""The three stances every read-out, judge, dataset and view of the study uses, in this order, and the shape a
forced-choice read-out scores: an instruction with `{question}` (or the judge template's fields), the label
words of each stance, and the items."""

from __future__ import annotations

from dataclasses import dataclass

STANCES = ("support", "neutral", "oppose")


@dataclass
class PromptSet:
    name: str
    instruction: str
    labels: dict[str, list[str]]
    prompts: list[dict]  # {id, topic, question} (a probe) or the judge template's fields (a judge)
