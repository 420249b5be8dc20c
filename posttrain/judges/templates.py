"""Judging prompts: versioned YAML files (`templates/<name>.yaml`) with the instruction and the label words."""

from __future__ import annotations

from pathlib import Path

from posttrain.config import read_yaml
from posttrain.judges import JudgeError
from posttrain.stances import STANCES

PACKAGED = Path(__file__).parent / "templates"


def path_of(name_or_path: str) -> Path:
    """A path ending in .yaml, or the name of a packaged template."""
    return Path(name_or_path) if name_or_path.endswith(".yaml") else PACKAGED / f"{name_or_path}.yaml"


def load(name_or_path: str) -> dict:
    path = path_of(name_or_path)
    if not path.is_file():
        raise JudgeError(f"judge template {name_or_path!r}: no file {path}")
    template = read_yaml(path, JudgeError)
    if not isinstance(template, dict):
        raise JudgeError(f"{path}: expected a mapping with keys name, instruction, labels")
    for key in ("name", "instruction", "labels"):
        if key not in template:
            raise JudgeError(f"{path}: missing key {key!r}")
    if sorted(template["labels"]) != sorted(STANCES):
        raise JudgeError(f"{path}: labels must be exactly {STANCES}")
    for field in ("{question}", "{response}"):
        if field not in template["instruction"]:
            raise JudgeError(f"{path}: instruction must contain {field}")
    return template
