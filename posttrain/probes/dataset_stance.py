"""Stance of the training data itself: every value-laden SFT answer, and both sides of every preference pair,
judged by the study's stance judge (the one that judges the generation probe) -> one Parquet file.

The `dataset-stance` stage runs `judge` on one prepared dataset.

So the *realised* value gap of a preference set (chosen minus rejected) is a SQL query away (`value_gap`).
SFT rows are judged when their `meta` names a topic (the value-laden ones); rows without `meta` (JSONL or hub
data) are all judged, up to `max_rows`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from posttrain.judges import build
from posttrain.judges.run import judge_items

COLUMNS = ["dataset", "row", "side", "topic", "item_id", "labelled_stance", "judge",
           "p_support", "p_neutral", "p_oppose", "label_mass", "judge_precision"]


def items(rows: list[dict], max_rows: int | None) -> list[dict]:
    """(question, response) items to judge, with where they came from."""
    out = []
    for i, r in enumerate(rows[:max_rows] if max_rows else rows):
        meta = r.get("meta") or {}
        if "messages" in r:
            if meta and not meta.get("topic"):
                continue  # generic instruction data: no value question to take a stance on
            question = next(m["content"] for m in reversed(r["messages"]) if m["role"] == "user")
            sides = [("response", r["messages"][-1]["content"], meta.get("stance"))]
        else:
            question = next(m["content"] for m in reversed(r["prompt"]) if m["role"] == "user")
            sides = [(s, r[s][-1]["content"], meta.get(f"{s}_stance")) for s in ("chosen", "rejected")]
        for side, response, stance in sides:
            out.append({"id": f"{i}:{side}", "row": i, "side": side, "topic": meta.get("topic"),
                        "item_id": meta.get("id"), "labelled_stance": stance,
                        "question": question, "response": response})
    return out


def judge(rows: list[dict], dataset: str, spec: dict, max_rows: int | None = None, progress: bool = True,
          partial: Path | None = None) -> pd.DataFrame:
    todo = items(rows, max_rows)
    judge = build(spec, progress)
    verdicts = judge_items(judge, todo, partial)
    frame = pd.DataFrame([
        {"dataset": dataset, **{k: t[k] for k in ("row", "side", "topic", "item_id", "labelled_stance")},
         "judge": judge.name, "judge_precision": judge.precision,
         **{k: s[k] for k in ("p_support", "p_neutral", "p_oppose", "label_mass")}}
        for t, s in zip(todo, verdicts)
    ], columns=COLUMNS)
    return frame.astype({"topic": "string", "item_id": "string", "labelled_stance": "string"})
