"""Judging prompts: versioned YAML files (`templates/<name>.yaml`) with the instruction and the label words."""

from __future__ import annotations

from pathlib import Path

from posttrain.config import read_yaml
from posttrain.judges import STANCES, JudgeError

PACKAGED = Path(__file__).parent / "templates"


def load(name_or_path: str) -> dict:
    path = Path(name_or_path) if name_or_path.endswith(".yaml") else PACKAGED / f"{name_or_path}.yaml"
    if not path.is_file():
        raise JudgeError(f"judge template {name_or_path!r}: no file {path}")
    template = read_yaml(path)
    for key in ("name", "instruction", "labels"):
        if key not in template:
            raise JudgeError(f"{path}: missing key {key!r}")
    if sorted(template["labels"]) != sorted(STANCES):
        raise JudgeError(f"{path}: labels must be exactly {STANCES}")
    for field in ("{question}", "{response}"):
        if field not in template["instruction"]:
            raise JudgeError(f"{path}: instruction must contain {field}")
    return template
