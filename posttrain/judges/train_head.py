"""Fit the embedding judge's head on the labelled set: train split to fit, dev split to choose the
regularisation C, then refit on train + dev with that C. The test split is never seen here.

    python -m posttrain.judges.train_head --judge-spec '{"name": "minilm-stance", ...}' \
        --out results/judges/minilm-stance/head.json
"""

from __future__ import annotations

import argparse
import hashlib
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from posttrain.config import load_spec
from posttrain.io import write_json
from posttrain.judges import STANCES, JudgeError, labelled
from posttrain.judges.embedding import DEFAULT_ENCODER, features, load_encoder

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _fit(x: np.ndarray, y: list[str], c: float) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y)
    return scaler, model


def train(spec: dict, encoder=None) -> dict:
    name = spec.get("labelled_set", "stance-labelled-v1")
    rows = labelled.load(name)
    recipe = spec.get("features", "pair+cross")
    encoder = encoder or load_encoder(spec.get("encoder", DEFAULT_ENCODER))
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "dev")}
    x = {s: features(encoder, split[s], recipe) for s in split}
    y = {s: [r["stance"] for r in split[s]] for s in split}
    dev_f1 = {}
    for c in spec.get("C_grid", C_GRID):
        scaler, model = _fit(x["train"], y["train"], c)
        dev_f1[c] = f1_score(y["dev"], model.predict(scaler.transform(x["dev"])), average="macro", labels=STANCES)
    best = max(dev_f1, key=lambda c: (round(dev_f1[c], 6), -c))  # ties: the stronger regularisation
    scaler, model = _fit(np.vstack([x["train"], x["dev"]]), y["train"] + y["dev"], best)
    return {
        "features": recipe, "encoder": spec.get("encoder", DEFAULT_ENCODER), "C": best,
        "dev_macro_f1_by_C": {str(c): f for c, f in dev_f1.items()},
        "labelled_set": name,
        "labelled_sha256": hashlib.sha256(labelled.path_of(name).read_bytes()).hexdigest(),
        "n_fit": len(y["train"]) + len(y["dev"]),
        "classes": list(model.classes_), "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
        "coef": model.coef_.tolist(), "intercept": model.intercept_.tolist(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge-spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        head = train(load_spec(args.judge_spec))
    except (JudgeError, labelled.LabelledSetError) as e:
        sys.exit(f"error: {e}")
    write_json(args.out, head)
    scores = ", ".join(f"C={c}: {f:.3f}" for c, f in head["dev_macro_f1_by_C"].items())
    print(f"head fitted on {head['n_fit']} responses ({head['features']}); dev macro-F1 {scores}; "
          f"chose C={head['C']} -> {args.out}")


if __name__ == "__main__":
    main()
