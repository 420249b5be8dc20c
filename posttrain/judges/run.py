"""Judge many items without losing verdicts: chunked, with an append-only partial file for resumption."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def _key(judge_name: str, item: dict) -> str:
    text = json.dumps([judge_name, item["question"], item["response"]], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def judge_items(judge, items: list[dict], partial: str | Path | None = None, chunk: int = 64) -> list[dict]:
    """One verdict per item, in order. With `partial`, each finished chunk is appended (and fsynced) to that
    JSONL file before the next starts, and items already there are not judged again: a job stopped by a
    timeout, a malformed reply or a cancelled allocation resumes where it stopped. The caller removes the
    file once its own output is written."""
    done: dict[str, dict] = {}
    if partial and Path(partial).is_file():
        for line in Path(partial).read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything before it is good
            done[row["key"]] = row["verdict"]
    keys = [_key(judge.name, t) for t in items]
    todo = [i for i, k in enumerate(keys) if k not in done]
    for start in range(0, len(todo), chunk):
        idx = todo[start : start + chunk]
        verdicts = judge([items[i] for i in idx])
        for i, v in zip(idx, verdicts):
            done[keys[i]] = v
        if partial:
            Path(partial).parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "a") as f:
                f.write("".join(json.dumps({"key": keys[i], "verdict": done[keys[i]]}) + "\n" for i in idx))
                f.flush()
                os.fsync(f.fileno())
    return [done[k] for k in keys]
