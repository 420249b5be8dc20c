"""Task-complexity probe at one checkpoint -> one Parquet file of (task, estimator, setting, bits, score) rows.

The `complexity-probe` stage loads the checkpoint and its weight-delta references and calls `measure`.
Its spec is the config's `complexity` section: tasks (name -> settings) and estimators (name -> settings).
Estimators run in this order on the loaded checkpoint; each leaves the weights as it found them.
"""

from __future__ import annotations

import pandas as pd

from posttrain import precision, timing
from posttrain.complexity import tasks
from posttrain.complexity.estimators import prequential, prompting, weight_delta, zero_shot

FAMILY = {"zero_shot": "inference", "instruction": "inference", "icl": "inference", "prequential": "data",
          "weight_delta": "parametric"}
COLUMNS = ["run", "step", "task", "estimator", "family", "setting", "bits", "payload_bits", "driver_bits", "score",
           "precision"]


def measure(model, tokenizer, spec: dict, run: str, step: int, references: dict) -> pd.DataFrame:
    numerics = precision.resolve(spec.get("precision", precision.INFERENCE_DEFAULT), model.device.type,
                                 "complexity probe")
    with precision.autocast(numerics, model):
        rows = _measure(model, tokenizer, spec, run, step, references)
    return pd.DataFrame([{**r, "precision": numerics} for r in rows], columns=COLUMNS).astype(
        {"step": "int64", "bits": "float64", "score": "float64"})


def _measure(model, tokenizer, spec: dict, run: str, step: int, references: dict) -> list[dict]:
    rows = []
    estimators = spec.get("estimators", {})
    for name, settings in spec["tasks"].items():
        task = tasks.load(name, settings)
        common = {"batch_size": spec.get("batch_size", 16)}
        out = []
        if "zero_shot" in estimators:
            with timing.phase("zero_shot"):
                out += zero_shot.run(model, tokenizer, task, {**common, **estimators["zero_shot"]})
        if "prompting" in estimators:
            with timing.phase("prompting"):
                out += prompting.run(model, tokenizer, task, {**common, **estimators["prompting"]})
        if "weight_delta" in estimators and references:
            refs = {k: v for k, v in references.items()
                    if k in estimators["weight_delta"].get("references", references)}
            with timing.phase("weight_delta"):
                out += weight_delta.run(model, tokenizer, task, {**common, **estimators["weight_delta"]}, refs)
        if "prequential" in estimators:
            with timing.phase("prequential"):
                out += prequential.run(model, tokenizer, task, {**common, **estimators["prequential"]})
        rows += [{"run": run, "step": step, "task": name, "family": FAMILY[r["estimator"]], **r} for r in out]
    return rows
