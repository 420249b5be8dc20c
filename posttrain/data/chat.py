"""Chat-format (`messages`) rows: reading, validating and splitting into prompt / completion.

Every bad row gets one error naming the file and line, before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from posttrain.io import read_jsonl_rows

ROLES = {"system", "user", "assistant"}


class DatasetError(ValueError):
    """A bad dataset row or file; the message names the file and line."""


def check_messages(messages, where: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or m.get("role") not in ROLES:
            raise DatasetError(f"{where}: message {i} must be {{role: system|user|assistant, content: text}}, "
                               f"got {m!r}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise DatasetError(f"{where}: message {i} ({m['role']}) has empty or missing content")
    if messages[-1]["role"] != "assistant":
        raise DatasetError(f"{where}: the last message must be the assistant's reply (it is {messages[-1]['role']!r})")
    if not any(m["role"] == "user" for m in messages):
        raise DatasetError(f"{where}: no user message")
    return messages


def read_jsonl(path: str | Path, field: str = "messages", max_examples: int | None = None) -> list[dict]:
    """Rows of a chat JSONL file, validated; extra keys (e.g. `meta`) are kept."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    rows = []
    for where, row in read_jsonl_rows(path, DatasetError):
        if field not in row:
            raise DatasetError(f"{where}: expected an object with a {field!r} field")
        rows.append(dict(row, messages=check_messages(row.pop(field), where)))
        if max_examples and len(rows) >= max_examples:
            break
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


def to_prompt_completion(messages: list[dict]) -> dict:
    """Split at the final assistant turn, so the SFT loss falls on the reply only (as in the paper)."""
    return {"prompt": messages[:-1], "completion": messages[-1:]}
