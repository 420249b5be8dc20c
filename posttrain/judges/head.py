"""The trained head shared by the feature judges (embedding, lm_head): standardise, then multinomial logistic
regression. Stored as plain JSON numbers, so applying it needs numpy only."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from posttrain.stances import STANCES

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _fit(x: np.ndarray, y: list[str], c: float) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(x)
    return scaler, LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y)


def fit(x_train: np.ndarray, y_train: list[str], x_dev: np.ndarray, y_dev: list[str],
        c_grid=C_GRID) -> dict:
    """Choose C by dev macro-F1 (ties: the stronger regularisation), then refit on train + dev."""
    dev_f1 = {}
    for c in c_grid:
        scaler, model = _fit(x_train, y_train, c)
        dev_f1[c] = f1_score(y_dev, model.predict(scaler.transform(x_dev)), average="macro", labels=STANCES)
    best = max(dev_f1, key=lambda c: (round(dev_f1[c], 6), -c))
    scaler, model = _fit(np.vstack([x_train, x_dev]), list(y_train) + list(y_dev), best)
    return {"C": best, "dev_macro_f1_by_C": {str(c): f for c, f in dev_f1.items()},
            "n_fit": len(y_train) + len(y_dev), "classes": list(model.classes_),
            "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
            "coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}


def apply(head: dict, x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, 3) in STANCES order."""
    z = (x - np.asarray(head["mean"])) / np.asarray(head["scale"])
    logits = z @ np.asarray(head["coef"]).T + np.asarray(head["intercept"])
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p[:, [head["classes"].index(s) for s in STANCES]]


def verdicts(p: np.ndarray) -> list[dict]:
    return [{**{f"p_{s}": float(row[i]) for i, s in enumerate(STANCES)}, "label_mass": 1.0} for row in p]
