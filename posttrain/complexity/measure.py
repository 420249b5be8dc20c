"""Task-complexity probe at one checkpoint -> one Parquet file of program rows (bits, score with its interval).

The `complexity-probe` stage loads the checkpoint and its weight-delta references and calls `measure`.
Its spec is the config's `complexity` section: tasks (name -> settings), estimators (name -> settings),
format (chat | plain), bootstrap. Estimators run in this order on the loaded checkpoint; each leaves the
weights as it found them.

Every row is a program: the checkpoint it runs on (run, step), the checkpoint whose behaviour it reproduces
(target_run, target_step; the same but for weight deltas, which run on their reference), and
    bits = payload_bits (what it carries) + driver_bits (its strategy's code) + harness_bits (shared by all)
score is the weighted mean of the test items' scores; score_lo / score_hi its percentile bootstrap interval
over test items, resampled with the same draws for every program of a task (so intervals are comparable).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from posttrain import precision, timing
from posttrain.complexity import program_length, scoring, tasks
from posttrain.complexity.estimators import prequential, prompting, weight_delta, zero_shot

FAMILY = {"zero_shot": "inference", "instruction": "inference", "icl": "inference", "prequential": "data",
          "weight_delta": "parametric"}
COLUMNS = ["run", "step", "task", "estimator", "family", "setting", "format", "bits", "payload_bits", "driver_bits",
           "harness_bits", "score", "score_lo", "score_hi", "n_items", "item_scores", "target_run", "target_step",
           "driver_sha256", "harness_sha256", "precision"]
DTYPES = {"step": "int64", "target_step": "int64", "bits": "float64", "payload_bits": "float64",
          "driver_bits": "float64", "harness_bits": "float64", "score": "float64", "score_lo": "float64",
          "score_hi": "float64", "n_items": "int64"}


def interval(items: list[float], weights: list[float], draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the weighted mean over resampled items (draws: resamples x items indices)."""
    s, w = np.asarray(items, dtype=float), np.asarray(weights, dtype=float)
    means = (s[draws] * w[draws]).sum(1) / w[draws].sum(1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def measure(model, tokenizer, spec: dict, run: str, step: int, references: dict) -> pd.DataFrame:
    """references: name -> (weights, (ref_run, ref_step)); one that is this checkpoint itself is skipped."""
    numerics = precision.resolve(spec.get("precision", precision.INFERENCE_DEFAULT), model.device.type,
                                 "complexity probe")
    with precision.autocast(numerics, model):
        rows = _measure(model, tokenizer, spec, run, step, references)
    frame = pd.DataFrame([{**r, "precision": numerics} for r in rows], columns=COLUMNS)
    return frame.astype(DTYPES)


def _measure(model, tokenizer, spec: dict, run: str, step: int, references: dict) -> list[dict]:
    rows = []
    estimators = spec.get("estimators", {})
    fmt = scoring.resolve_format(tokenizer, spec.get("format", "chat"))
    boot = {"resamples": 1000, "confidence": 0.95, "seed": 0, **spec.get("bootstrap", {})}
    others = {name: weights for name, (weights, at) in references.items() if tuple(at) != (run, step)}
    landing = {name: tuple(at) for name, (_, at) in references.items()}
    harness = program_length.harness()
    for name, settings in spec["tasks"].items():
        task = tasks.load(name, settings)
        common = {"batch_size": spec.get("batch_size", 16), "format": fmt}
        out = []
        if "zero_shot" in estimators:
            with timing.phase("zero_shot"):
                out += zero_shot.run(model, tokenizer, task, {**common, **estimators["zero_shot"]})
        if "prompting" in estimators:
            with timing.phase("prompting"):
                out += prompting.run(model, tokenizer, task, {**common, **estimators["prompting"]})
        if "weight_delta" in estimators and others:
            refs = {k: v for k, v in others.items() if k in estimators["weight_delta"].get("references", others)}
            with timing.phase("weight_delta"):
                out += weight_delta.run(model, tokenizer, task, {**common, **estimators["weight_delta"]}, refs)
        if "prequential" in estimators:
            with timing.phase("prequential"):
                out += prequential.run(model, tokenizer, task, {**common, **estimators["prequential"]})
        weights = task.weights(task.test)
        draws = np.random.default_rng(boot["seed"]).integers(0, len(task.test), (boot["resamples"], len(task.test)))
        for r in out:
            on_run, on_step = landing[r.pop("reference")] if r["estimator"] == "weight_delta" else (run, step)
            lo, hi = interval(r["item_scores"], weights, draws, boot["confidence"])
            score = float(np.average(r["item_scores"], weights=weights))
            bits = r["payload_bits"] + r["driver_bits"] + harness["harness_bits"]
            rows.append({**r, "run": on_run, "step": on_step, "task": name, "family": FAMILY[r["estimator"]],
                         "format": fmt, **harness, "bits": bits,
                         "score": score, "score_lo": lo, "score_hi": hi, "n_items": len(task.test),
                         "target_run": run, "target_step": step})
    return rows
