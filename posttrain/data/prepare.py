"""Prepare one dataset of the config as normalised JSONL: chat rows (`messages`) for SFT, or preference rows
(`prompt` / `chosen` / `rejected`, conversational) for preference stages; both with an optional `meta`.

The `data` stage (`posttrain data --job JOB`) runs `prepare` on a `datasets.<name>` entry.
"""

from __future__ import annotations

from posttrain.data import preference, sft_mix
from posttrain.data.chat import DatasetError, check_messages, read_jsonl


def load_hub(spec: dict):
    """A hub dataset's split, filtered by `where` and subsampled to `max_examples` (seeded) when set."""
    from datasets import load_dataset  # on a cluster; needs the hub or a populated HF cache

    data = load_dataset(spec["name"], spec.get("subset"), split=spec["split"])
    return select(data, spec)


def select(data, spec: dict):
    """Rows whose columns equal `where`, then a seeded sample of `max_examples`."""
    where = spec.get("where") or {}
    missing = sorted(set(where) - set(data.column_names))
    if missing:
        raise DatasetError(f"hub dataset {spec['name']}: `where` names no column {missing} "
                           f"(columns: {data.column_names})")
    if where:
        data = data.filter(lambda row: all(row[k] == v for k, v in where.items()))
    if spec.get("max_examples"):
        data = data.shuffle(seed=spec["seed"]).select(range(min(spec["max_examples"], len(data))))
    return data


def alpaca_messages(row: dict) -> list[dict]:
    """Alpaca's instruction (+ optional input) as the user turn, its output as the reply."""
    user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]


def turn_messages(turns) -> list[dict]:
    """A hub conversation's turns with role and content only (WildChat's turns also carry language, timestamp...)."""
    if not isinstance(turns, list):
        return turns  # check_messages names the row
    return [{k: m.get(k) for k in ("role", "content")} if isinstance(m, dict) else m for m in turns]


def chat_rows(data, spec: dict) -> list[dict]:
    """Hub rows in either layout as validated `messages` rows; a bad row is named by dataset and index."""
    if spec["layout"] == "alpaca":
        needed, turns = {"instruction", "output"}, alpaca_messages
    else:
        needed = {spec["messages_field"]}
        def turns(row):
            return turn_messages(row[spec["messages_field"]])
    if needed - set(data.column_names):
        raise DatasetError(f"hub dataset {spec['name']}: no {sorted(needed - set(data.column_names))} column for "
                           f"layout {spec['layout']!r} (columns: {data.column_names})")
    return [{"messages": check_messages(turns(row), f"{spec['name']}[{i}]")} for i, row in enumerate(data)]


def from_hub(spec: dict) -> list[dict]:
    return chat_rows(load_hub(spec), spec)


def preference_from_hub(spec: dict) -> list[dict]:
    data = load_hub(spec)
    return [preference.normalise(dict(row), f"{spec['name']}[{i}]") for i, row in enumerate(data)]


def prepare(spec: dict) -> list[dict]:
    kind = spec["kind"]
    if kind == "generated_sft":
        return sft_mix.generate(spec)
    if kind == "jsonl":
        return read_jsonl(spec["path"], max_examples=spec.get("max_examples"))
    if kind == "hub":
        return from_hub(spec)
    if kind == "synthetic_value_gap":
        return preference.synthetic_value_gap(spec)
    if kind == "preference_jsonl":
        return preference.read_pairs(spec["path"], spec.get("max_examples"))
    return preference_from_hub(spec)
