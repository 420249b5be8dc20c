"""The embedded default SFT set: generic instructions mixed with answers to value-laden questions.

The stance of the value answers is set by config (`stance_mix`), so the drift SFT causes is controlled.
Sources are project-authored (posttrain/data/sources/): `generic_instructions.jsonl` and `value_qa.jsonl`,
whose training questions are disjoint from the probe prompts (tests/test_data.py checks it).
Counts are exact: n_examples * value_fraction value rows, split over stances by largest remainder.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from posttrain.stances import STANCES

SOURCES = Path(__file__).parent / "sources"

# Requests for a brief answer. The reply is the answer's first two sentences: a short answer that states the
# stance in prose. Never a bare stance word: one-word replies to "support, neutral or oppose?" taught the
# forced-choice probe its label words, which it then read back as a stance (posttrain/data/contamination.py
# finds such rows in any dataset).
SHORT_FORMS = (
    "{q} Answer in two sentences.",
    "{q}\nKeep your answer brief.",
    "Briefly, please: {q}",
    "{q} A short answer is enough.",
)


def brief(answer: str) -> str:
    """The answer's first two sentences."""
    return " ".join(re.split(r"(?<=[.?!])\s+", answer.strip())[:2])


def _source(name: str) -> list[dict]:
    return [json.loads(line) for line in (SOURCES / name).read_text().splitlines() if line.strip()]


def _split(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to `total`, as close to the shares as rounding allows (largest remainder)."""
    raw = {k: total * shares[k] for k in STANCES}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(STANCES, key=lambda k: raw[k] - counts[k], reverse=True)[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def value_questions() -> list[dict]:
    return _source("value_qa.jsonl")


def generate(spec: dict) -> list[dict]:
    rng = random.Random(spec["seed"])
    n_value = round(spec["n_examples"] * spec["value_fraction"])
    generic, values = _source("generic_instructions.jsonl"), value_questions()
    rows = []
    for i in range(spec["n_examples"] - n_value):
        g = generic[i % len(generic)]
        rows.append({
            "messages": [{"role": "user", "content": g["instruction"]},
                         {"role": "assistant", "content": g["response"]}],
            "meta": {"source": "generic", "id": g["id"], "topic": None, "stance": None, "form": "generic"},
        })
    stances = [s for s, c in _split(n_value, spec["stance_mix"]).items() for _ in range(c)]
    n_short = round(n_value * spec["short_answer_fraction"])
    forms = ["short"] * n_short + ["long"] * (n_value - n_short)
    rng.shuffle(forms)
    order = list(range(len(values)))
    rng.shuffle(order)
    for i, (stance, form) in enumerate(zip(stances, forms)):
        q = values[order[i % len(order)]]
        if form == "short":
            prompt, reply = rng.choice(SHORT_FORMS).format(q=q["question"]), brief(q[stance])
        else:
            prompt, reply = q["question"], q[stance]
        rows.append({
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
            "meta": {"source": "value_qa", "id": q["id"], "topic": q["topic"], "stance": stance, "form": form},
        })
    rng.shuffle(rows)
    return rows
