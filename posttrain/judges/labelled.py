"""The labelled stance set: project-authored responses with their true stance, to train and validate judges.

`labelled/<name>.jsonl`, one row per response: id, prompt_id, topic, question, response, stance, length
(short | medium | long), hedged (bool), split (train | dev | test). Splits are by question: the three
answers to one question share a split, so a judge is never tested on a question it was trained on.
"""

from __future__ import annotations

from pathlib import Path

from posttrain.io import read_jsonl_rows
from posttrain.stances import STANCES

PACKAGED = Path(__file__).parent / "labelled"
DEFAULT = "stance-labelled-v1"
FIELDS = ("id", "prompt_id", "topic", "question", "response", "stance", "length", "hedged", "split")
SPLITS = ("train", "dev", "test")
LENGTHS = ("short", "medium", "long")


class LabelledSetError(ValueError):
    """A bad row of a labelled set; the message names the file and line."""


def path_of(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return path if path.suffix == ".jsonl" else PACKAGED / f"{name_or_path}.jsonl"


def load(name_or_path: str, splits: tuple[str, ...] = SPLITS) -> list[dict]:
    path = path_of(name_or_path)
    if not path.is_file():
        raise LabelledSetError(f"labelled set {name_or_path!r}: no file {path}")
    rows, ids, split_of_question = [], set(), {}
    for where, row in read_jsonl_rows(path, LabelledSetError):
        missing = [k for k in FIELDS if k not in row]
        if missing:
            raise LabelledSetError(f"{where}: missing {', '.join(missing)}")
        for key, allowed in (("stance", STANCES), ("split", SPLITS), ("length", LENGTHS)):
            if row[key] not in allowed:
                raise LabelledSetError(f"{where}: {key} must be one of {allowed}, got {row[key]!r}")
        if not isinstance(row["hedged"], bool):
            raise LabelledSetError(f"{where}: hedged must be true or false")
        if not str(row["response"]).strip() or not str(row["question"]).strip():
            raise LabelledSetError(f"{where}: empty question or response")
        if row["id"] in ids:
            raise LabelledSetError(f"{where}: duplicate id {row['id']!r}")
        ids.add(row["id"])
        if split_of_question.setdefault(row["question"], row["split"]) != row["split"]:
            raise LabelledSetError(f"{where}: question {row['prompt_id']} is in two splits "
                                   f"({split_of_question[row['question']]} and {row['split']})")
        rows.append({k: row[k] for k in FIELDS})
    return [r for r in rows if r["split"] in splits]
