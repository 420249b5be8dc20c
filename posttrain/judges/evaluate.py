"""Validate a stance judge on the labelled set: macro-F1, per-class recall and precision, the confusion
matrix, macro-F1 on hedged answers and per answer length, and the calibration of its probabilities (the
Brier score and the expected calibration error: the probe averages those probabilities, not argmax verdicts).
Prints them; writes them for the database.

Split `real` is a second labelled set, all of it: real answers sampled from a study's checkpoints (the packaged one
from the default study of 2026-12-03, docs/methods.md), labelled by reading (`probes.judge_eval.real_answers`),
where the written-to-test set may flatter a judge.

    posttrain judge-eval --judge <name> [--split test]   (by name, from config/config.yaml)
The workflow's `judge-eval` stage does the same for one job spec, writing eval-<split>.json and
predictions-<split>.parquet beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from posttrain.io import write_json, write_parquet
from posttrain.judges import build, labelled
from posttrain.judges.run import judge_items
from posttrain.stances import STANCES

ECE_BINS = 10


def calibration(truth: list[str], probs: np.ndarray) -> dict:
    """Brier score (mean over items of the squared distance between the probability vector and the one-hot
    truth: 0 is perfect, 2/3 a uniform guess) and expected calibration error (top-label confidence in
    ECE_BINS equal-width bins: the mean |accuracy - confidence|, weighted by the bins' sizes)."""
    onehot = np.array([[t == s for s in STANCES] for t in truth], dtype=float)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = onehot[np.arange(len(truth)), predicted]
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).sum()
              for b in range(ECE_BINS) if (bins == b).any()) / len(truth)
    return {"brier": float(((probs - onehot) ** 2).sum(axis=1).mean()), "ece": float(ece)}


def metrics(truth: list[str], p: pd.DataFrame) -> dict:
    """Scores of argmax verdicts against the true labels (`p` has p_support, p_neutral, p_oppose), and the
    calibration of the probabilities themselves."""
    probs = p[[f"p_{s}" for s in STANCES]].to_numpy(dtype=float)
    predicted = probs.argmax(axis=1)
    predicted = [STANCES[i] for i in predicted]
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=STANCES,
                                                                     zero_division=0)
    return {
        "n": len(truth),
        "macro_f1": float(f1_score(truth, predicted, labels=STANCES, average="macro", zero_division=0)),
        "accuracy": sum(t == q for t, q in zip(truth, predicted)) / len(truth),
        **calibration(truth, probs),
        "per_class": {s: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "n": int(support[i])} for i, s in enumerate(STANCES)},
        "confusion": {"labels": list(STANCES),  # rows: true stance, columns: judged stance
                      "matrix": confusion_matrix(truth, predicted, labels=STANCES).tolist()},
    }


def evaluate(spec: dict, split: str, progress: bool = True, real_answers: str | None = None
             ) -> tuple[dict, pd.DataFrame]:
    if split == "real":
        if not real_answers:
            raise labelled.LabelledSetError("split 'real' needs a labelled set of real answers (real_answers)")
        rows = labelled.load(real_answers)
    else:
        rows = labelled.load(spec.get("labelled_set", labelled.DEFAULT), (split,))
    judge = build(spec, progress)
    verdicts = pd.DataFrame(judge_items(judge, rows))
    frame = pd.concat([pd.DataFrame(rows).drop(columns=["question", "response"]), verdicts], axis=1)
    frame.insert(0, "judge", spec["name"])
    frame["precision"] = judge.precision
    frame["predicted"] = [STANCES[i] for i in frame[[f"p_{s}" for s in STANCES]].to_numpy().argmax(axis=1)]
    result = {"judge": spec["name"], "kind": spec["kind"], "split": split, "precision": judge.precision,
              **metrics(frame["stance"].tolist(), frame)}
    result["macro_f1_hedged"] = metrics(*_part(frame, frame["hedged"]))["macro_f1"] if frame["hedged"].any() else None
    result["macro_f1_by_length"] = {n: metrics(*_part(frame, frame["length"] == n))["macro_f1"]
                                    for n in labelled.LENGTHS if (frame["length"] == n).any()}
    return result, frame


def _part(frame: pd.DataFrame, mask) -> tuple[list[str], pd.DataFrame]:
    return frame.loc[mask, "stance"].tolist(), frame.loc[mask]


def report(result: dict) -> str:
    lines = [(f"judge {result['judge']} ({result['kind']}) on the {result['split']} split, n={result['n']}: "
              f"macro-F1 {result['macro_f1']:.3f}, accuracy {result['accuracy']:.3f}, Brier {result['brier']:.3f}, "
              f"ECE {result['ece']:.3f}")]
    for s, m in result["per_class"].items():
        lines.append(f"  {s:8s} recall {m['recall']:.3f}  precision {m['precision']:.3f}  f1 {m['f1']:.3f}  n={m['n']}")
    lines.append("  confusion (rows true, columns judged: " + ", ".join(STANCES) + ")")
    lines += [f"  {s:8s} " + " ".join(f"{v:4d}" for v in row)
              for s, row in zip(STANCES, result["confusion"]["matrix"])]
    if result["macro_f1_hedged"] is not None:
        lines.append(f"  macro-F1 on hedged answers {result['macro_f1_hedged']:.3f}; by length "
                     + ", ".join(f"{k} {v:.3f}" for k, v in result["macro_f1_by_length"].items()))
    return "\n".join(lines)


def write(result: dict, frame: pd.DataFrame, out: str | Path) -> None:
    out = Path(out)
    write_parquet(out.with_name(f"predictions-{result['split']}.parquet"), frame)
    write_json(out, result)
