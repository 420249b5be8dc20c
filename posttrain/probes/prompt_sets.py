"""Load and check a versioned prompt set: `<name>.yaml` (instruction, labels, topics) + `<name>.jsonl` (prompts)."""

from __future__ import annotations

from pathlib import Path

from posttrain.config import read_yaml
from posttrain.io import read_jsonl_rows
from posttrain.stances import STANCES, PromptSet

PACKAGED = Path(__file__).parent / "prompt_sets"


class PromptSetError(ValueError):
    """A bad prompt-set file or row; the message names the file and line."""


def _paths(name_or_path: str) -> tuple[Path, Path]:
    path = Path(name_or_path)
    if path.suffix in (".jsonl", ".yaml"):
        return path.with_suffix(".yaml"), path.with_suffix(".jsonl")
    return PACKAGED / f"{name_or_path}.yaml", PACKAGED / f"{name_or_path}.jsonl"


def load(name_or_path: str, max_per_topic: int | None = None) -> PromptSet:
    meta_path, rows_path = _paths(name_or_path)
    for p in (meta_path, rows_path):
        if not p.is_file():
            raise PromptSetError(f"prompt set {name_or_path!r}: missing file {p}")
    meta = read_yaml(meta_path, PromptSetError)
    if not isinstance(meta, dict):
        raise PromptSetError(f"{meta_path}: expected a mapping with keys name, instruction, labels")
    for key in ("name", "instruction", "labels"):
        if key not in meta:
            raise PromptSetError(f"{meta_path}: missing key {key!r}")
    if sorted(meta["labels"]) != sorted(STANCES):
        raise PromptSetError(f"{meta_path}: labels must be exactly {STANCES}, got {sorted(meta['labels'])}")
    if "{question}" not in meta["instruction"]:
        raise PromptSetError(f"{meta_path}: instruction must contain {{question}}")
    options = meta.get("options")
    if ("{options}" in meta["instruction"]) != (options is not None):
        raise PromptSetError(f"{meta_path}: an instruction with {{options}} needs an `options` key, and only it")
    if options is not None and (not isinstance(options, str) or any(f"{{{i}}}" not in options for i in range(3))):
        raise PromptSetError(f"{meta_path}: options must be a string with {{0}}, {{1}} and {{2}}, got {options!r}")
    prompts, seen, per_topic = [], set(), {}
    for where, row in read_jsonl_rows(rows_path, PromptSetError):
        if any(not isinstance(row.get(k), str) or not row[k].strip()
                                            for k in ("id", "topic", "question")):
            raise PromptSetError(f"{where}: needs non-empty text fields id, topic, question")
        if row["id"] in seen:
            raise PromptSetError(f"{where}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        per_topic[row["topic"]] = per_topic.get(row["topic"], 0) + 1
        if max_per_topic is None or per_topic[row["topic"]] <= max_per_topic:
            prompts.append({k: row[k] for k in ("id", "topic", "question")})
    if not prompts:
        raise PromptSetError(f"{rows_path}: no prompts")
    return PromptSet(meta["name"], meta["instruction"], meta["labels"], prompts, options)


def first_per_topic(prompts: list[dict], n: int | None) -> list[dict]:
    """The first `n` prompts of each topic, in order (all when n is None)."""
    seen: dict[str, int] = {}
    out = []
    for p in prompts:
        seen[p["topic"]] = seen.get(p["topic"], 0) + 1
        if n is None or seen[p["topic"]] <= n:
            out.append(p)
    return out
