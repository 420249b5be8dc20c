"""Fit a feature judge's head (kinds embedding and lm_head) on the labelled set: the train split to fit, the
dev split to choose the regularisation C, then a refit on train + dev. The test split is never seen here.

The `judge-head` stage runs `train` on a resolved judge spec and writes the head as JSON.

An lm_head judge whose model is a GGUF file also gets its dequantised copy written to `model/` beside the head.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from posttrain.io import atomic_dir
from posttrain.judges import JudgeError, head, labelled, templates
from posttrain.judges import embedding as embedding_judge
from posttrain.judges import lm_head as lm_head_judge
from posttrain.models import dequantised


def train(spec: dict, encoder=None, model_dir: Path | None = None) -> dict:
    """The head of judge `spec` as a JSON-able dict. `model_dir`: where an lm_head judge keeps its GGUF
    model dequantised (nothing is written when None)."""
    name = spec.get("labelled_set", labelled.DEFAULT)
    rows = labelled.load(name)
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "dev")}
    y = {s: [r["stance"] for r in split[s]] for s in split}
    if spec["kind"] == "embedding":
        recipe = spec.get("features", "pair+cross")
        encoder = encoder or embedding_judge.load_encoder(spec.get("encoder", embedding_judge.DEFAULT_ENCODER))
        x = {s: embedding_judge.features(encoder, split[s], recipe) for s in split}
        about = {"features": recipe, "encoder": spec.get("encoder", embedding_judge.DEFAULT_ENCODER)}
    elif spec["kind"] == "lm_head":
        model, tokenizer = lm_head_judge.load_judge_model(spec)
        template = templates.load(spec.get("template", "stance-judge-v1"))
        band = lm_head_judge.layer_band(model, spec.get("layers"))
        # A GGUF judge model without the workflow's shared dequantised copy keeps its own, beside the head
        if model_dir is not None and "gguf" in dequantised(spec["model_spec"]):
            with atomic_dir(model_dir) as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
        lm_head_judge.truncate(model, band)  # after saving: the snapshot keeps every layer
        x = {s: lm_head_judge.features(model, tokenizer, template, split[s], band, spec.get("batch_size", 16))
             for s in split}
        about = {"features": "lm_hidden_state", "template": template["name"], "layers": list(band),
                 "model": spec["model_spec"]}
    else:
        raise JudgeError(f"judge {spec['name']!r} of kind {spec['kind']!r} has no head to fit")
    fitted = head.fit(x["train"], y["train"], x["dev"], y["dev"], spec.get("C_grid", head.C_GRID))
    return {**about, **fitted, "labelled_set": name,
            "labelled_sha256": hashlib.sha256(labelled.path_of(name).read_bytes()).hexdigest()}
