"""Preference pairs, normalised to conversational prompt / chosen / rejected, and the synthetic value-gap sets.

Accepted row layouts (JSONL files and hub datasets alike):
  * plain:        {"prompt": "text", "chosen": "text", "rejected": "text"}
  * UltraFeedback: {"prompt": "text", "chosen": [messages], "rejected": [messages]} where each side is the whole
                   conversation ending in the assistant's reply
  * HH-RLHF:      {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."}; the prompt is the shared
                   dialogue before the final "\\n\\nAssistant:"
Normalised: {"prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [...], "meta": {...}}.

Synthetic value-gap sets (`kind: synthetic_value_gap`) take their prompts from the SFT training questions
(disjoint from the probe prompts). With value gap g and n pairs, round(g * n) pairs are *stance pairs*: chosen
takes the target stance (support for `direction: support`, oppose for `direction: oppose`) and rejected the
opposite one. The other pairs are *same-stance pairs*: both answers answer the same question with the same
stance, the full answer and its first two sentences, which of them is chosen decided by a coin flip. Their
stances are balanced across the pairs (support, neutral and oppose in turn, in shuffled order). So they
prefer neither a stance nor, on average, a length or a topic: the chosen-minus-rejected difference in
p(any stance) is g by construction for the target stance and 0 for the others, and 0 <= g <= 1 is a dose.
`direction: none` (with value_gap 0) makes every pair a same-stance pair: the value-neutral control, DPO on
data with no stance signal at all, which should leave the stance where it was.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from posttrain.data.chat import DatasetError, check_messages
from posttrain.data.sft_mix import brief, value_questions
from posttrain.io import read_jsonl_rows
from posttrain.stances import STANCES

OPPOSITE = {"support": "oppose", "oppose": "support"}
HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _hh_messages(text: str, where: str) -> list[dict]:
    parts = HH_TURN.split("\n\n" + text.lstrip("\n"))  # -> ["", role, content, role, content, ...]
    turns = [{"role": "user" if role == "Human" else "assistant", "content": content.strip()}
             for role, content in zip(parts[1::2], parts[2::2])]
    if not turns:
        raise DatasetError(f"{where}: no '\\n\\nHuman: ' / '\\n\\nAssistant: ' turns found")
    return turns


def _side(value, where: str, name: str) -> list[dict]:
    if isinstance(value, str):
        if not value.strip():
            raise DatasetError(f"{where}: field {name!r} is empty")
        return [{"role": "user", "content": value}] if name == "prompt" else [{"role": "assistant", "content": value}]
    if isinstance(value, list) and value:
        return value  # checked as a whole conversation (prompt + side) in normalise()
    raise DatasetError(f"{where}: field {name!r} must be text or a list of messages")


def normalise(row: dict, where: str) -> dict:
    """One preference row in any accepted layout -> the normalised form; a bad row raises naming `where`."""
    for name in ("chosen", "rejected"):
        if row.get(name) in (None, "", []):
            raise DatasetError(f"{where}: missing or empty field {name!r}")
    if "prompt" not in row:  # HH-RLHF: both sides are whole dialogues sharing their prompt turns
        chosen, rejected = _hh_messages(row["chosen"], where), _hh_messages(row["rejected"], where)
        if chosen[:-1] != rejected[:-1] or chosen[-1]["role"] != "assistant":
            raise DatasetError(f"{where}: chosen and rejected dialogues do not share their prompt turns")
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
    else:
        if row["prompt"] in (None, "", []):
            raise DatasetError(f"{where}: missing or empty field 'prompt'")
        prompt = _side(row["prompt"], where, "prompt")
        chosen, rejected = _side(row["chosen"], where, "chosen"), _side(row["rejected"], where, "rejected")
        chosen, rejected = chosen[-1:], rejected[-1:]  # UltraFeedback sides repeat the prompt turn
    if chosen[0]["content"].strip() == rejected[0]["content"].strip():
        raise DatasetError(f"{where}: chosen and rejected are identical")
    check_messages(prompt + chosen, f"{where} (prompt + chosen)")
    check_messages(prompt + rejected, f"{where} (prompt + rejected)")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "meta": row.get("meta", {})}


def read_pairs(path, max_examples: int | None = None) -> list[dict]:
    if not Path(path).is_file():
        raise DatasetError(f"dataset file not found: {path}")
    rows = []
    for where, row in read_jsonl_rows(path, DatasetError):
        rows.append(normalise(row, where))
        if max_examples and len(rows) >= max_examples:
            break
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


def synthetic_value_gap(spec: dict) -> list[dict]:
    """Pairs with a controlled value gap; see the module docstring for the exact construction."""
    rng = random.Random(spec["seed"])
    topics = spec.get("topics") or sorted({q["topic"] for q in value_questions()})
    pool = [q for q in value_questions() if q["topic"] in topics]
    missing = sorted(set(topics) - {q["topic"] for q in pool})
    if missing:
        raise DatasetError(f"synthetic value-gap set: no training questions for topics {missing}")
    target = spec["direction"]
    if target == "none" and spec["value_gap"] != 0:
        raise DatasetError(f"synthetic value-gap set: direction none has no target stance, so value_gap must be 0, "
                           f"got {spec['value_gap']}")
    n_stance = round(spec["value_gap"] * spec["n_pairs"])
    kinds = ["stance"] * n_stance + ["same_stance"] * (spec["n_pairs"] - n_stance)
    rng.shuffle(kinds)
    order = pool[:]
    rng.shuffle(order)
    same = [STANCES[i % 3] for i in range(kinds.count("same_stance"))]  # balanced, then shuffled
    rng.shuffle(same)
    rows = []
    for i, kind in enumerate(kinds):
        q = order[i % len(order)]
        if kind == "stance":
            chosen, rejected = q[target], q[OPPOSITE[target]]
            stances = (target, OPPOSITE[target])
        else:
            stance = same.pop()
            chosen, rejected = q[stance], brief(q[stance])
            if rng.random() < 0.5:
                chosen, rejected = rejected, chosen
            stances = (stance, stance)
        rows.append({
            "prompt": [{"role": "user", "content": q["question"]}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "meta": {"id": q["id"], "topic": q["topic"], "pair": kind,
                     "chosen_stance": stances[0], "rejected_stance": stances[1]},
        })
    return rows
