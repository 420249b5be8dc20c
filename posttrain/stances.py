"""The three stances every read-out, judge, dataset and view of the study uses, in this order, and the shape a
forced-choice read-out scores: an instruction with `{question}` (or the judge template's fields), the label
words of each stance, and the items."""

from __future__ import annotations

from dataclasses import dataclass

STANCES = ("support", "neutral", "oppose")
# The three cyclic orders of the options: each stance is named first, second and last once.
CYCLIC_ORDERS = tuple(STANCES[i:] + STANCES[:i] for i in range(len(STANCES)))


@dataclass
class PromptSet:
    name: str
    instruction: str
    labels: dict[str, list[str]]
    prompts: list[dict]  # {id, topic, question} (a probe) or the judge template's fields (a judge)
    options: str | None = None  # how `{options}` in the instruction lists the labels, e.g. "{0}, {1}, or {2}"

    def render(self, order: tuple[str, ...] = STANCES) -> str:
        """The instruction with its option list in `order` (each stance's first label word); the instruction as
        written when it lists no options."""
        if self.options is None:
            return self.instruction
        return self.instruction.replace("{options}", self.options.format(*(self.labels[s][0] for s in order)))
