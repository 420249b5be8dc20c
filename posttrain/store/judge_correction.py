"""The stance judge's confusion correction, kept inside the simplex, checked out of sample, with intervals;
the judge's calibration-in-the-large; the agreement of the two labelling passes of a labelled set.

The generation read-out averages the judge's probabilities over a topic's answers: q_j = mean p_j. With the
judge's soft confusion matrix C[true, judged] (the mean judged probability of each stance over the labelled
answers of each true stance), a topic whose answers' true stance shares are pi is judged, on average,
q = pi C. Two corrections estimate pi from q:

- `inverse`: pi = q C^-1 (table judge_correction holds C and C^-1). It sums to 1 but can leave [0, 1] where
  the judge is unsure or C is estimated from few answers.
- `constrained`: pi in the simplex maximising the soft multinomial likelihood sum_j q_j log (pi C)_j, i.e.
  minimising KL(q || pi C). This is the maximum that the standard EM for the weights of a mixture with known
  components (the rows of C) converges to, the aggregate form of Saerens, Latinne & Decaestecker (2002):
  E-step r[t | j] = pi_t C_tj / (pi C)_j, M-step pi_t = sum_j q_j r[t | j] (`em`). EM creeps where the
  maximum lies on the simplex's edge, so `constrained` computes the same maximum exactly (q C^-1 where that
  lies in the simplex, else the best point of the three edges); the tests check the two agree.

`crossfit` is the honest check of both: the labelled answers' questions are split into FOLDS folds
(sklearn's GroupKFold: deterministic, by question), C is fitted on the other folds and the correction is
applied to the held-out fold's answers (all of them, and per topic), scored by its absolute error against the
held-out answers' true shares, beside the raw judged shares' error.

Every interval is a percentile bootstrap clustered by question: the labelled set's questions (prompt_id) are
drawn with replacement and every answer of a drawn question comes with it. The corrected read-out refits C on
each replicate (the validation set's sampling error) and, independently, redraws each (run, step, topic)'s
probe prompts with their answers as every value-probe interval does (posttrain.store.bootstrap.prompt_draws: the
probe's own sampling error). Calibration-in-the-large (mean p_s against the true share of stance s) is
bootstrapped over questions like C (a cluster-robust standard error would do the same job; the bootstrap keeps
one method for every interval of these tables); Cohen's kappa (sklearn) between two labelling passes too.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score
from sklearn.model_selection import GroupKFold

from posttrain.io import read_jsonl_rows
from posttrain.judges import labelled
from posttrain.stances import STANCES
from posttrain.store.bootstrap import prompt_draws

P = [f"p_{s}" for s in STANCES]
FOLDS = 5
EM_TOL = 1e-10  # stop once no share moves by more than this in an iteration
EM_MAX_ITER = 20_000
MAX_CONDITION = 100  # `inverse` refuses a C this close to singular (the previous correction's rule)
PASS2_SUFFIX = "-pass2"  # <set>-pass2.jsonl beside a packaged labelled set: its second, independent labelling
BLOCK = 250_000  # (group x replicate) rows per batch of the corrected read-out: bounds its memory


# ---------------------------------------------------------------- the correction itself


def onehot(stances) -> np.ndarray:
    stances = np.asarray(stances)
    unknown = set(stances) - set(STANCES)
    if unknown:
        raise ValueError(f"stances must be among {STANCES}, got {sorted(unknown)}")
    return (stances[:, None] == np.array(STANCES)[None, :]).astype(float)


def confusion(stances, probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """C[true, judged]: the mean judged probabilities over the answers of each true stance. With `weights`
    (B, n) (bootstrap counts), one matrix per row: (B, 3, 3). A stance with no (weighted) answers gets a row
    of NaN."""
    y, probs = onehot(stances), np.asarray(probs, float)
    w = np.ones((1, len(y))) if weights is None else np.atleast_2d(weights)
    num = np.einsum("bn,nt,nj->btj", w, y, probs)
    den = np.einsum("bn,nt->bt", w, y)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return c[0] if weights is None else c


def _flat(q: np.ndarray, c: np.ndarray) -> tuple[tuple, np.ndarray, np.ndarray]:
    q, c = np.asarray(q, float), np.asarray(c, float)
    batch = np.broadcast_shapes(q.shape[:-1], c.shape[:-2])
    return (batch, np.broadcast_to(q, (*batch, 3)).reshape(-1, 3),
            np.broadcast_to(c, (*batch, 3, 3)).reshape(-1, 3, 3))


def inverse(q: np.ndarray, c: np.ndarray, max_condition: float = MAX_CONDITION) -> np.ndarray:
    """pi = q C^-1 over any leading (broadcast) dimensions; NaN where C is missing or its condition number
    exceeds `max_condition`. C is inverted once per matrix of its own batch, before broadcasting."""
    q, c = np.asarray(q, float), np.asarray(c, float)
    flat = c.reshape(-1, 3, 3)
    inv = np.full_like(flat, np.nan)
    ok = np.isfinite(flat).all((1, 2))
    ok[ok] = np.linalg.cond(flat[ok]) <= max_condition
    inv[ok] = np.linalg.inv(flat[ok])
    return np.einsum("...j,...jt->...t", q, inv.reshape(c.shape))  # NaN q or C^-1 -> NaN


def loglik(q: np.ndarray, c: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """sum_j q_j log (pi C)_j over any leading dimensions (0 log 0 = 0)."""
    implied = np.einsum("...t,...tj->...j", pi, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(q > 0, q * np.log(implied), 0.0).sum(-1)


def constrained(q: np.ndarray, c: np.ndarray, bisections: int = 52) -> np.ndarray:
    """The maximum-likelihood pi inside the simplex (what `em` converges to), computed exactly over any leading
    (broadcast) dimensions of q (..., 3) and C (..., 3, 3); NaN where q or C is missing.

    The soft log-likelihood is concave in pi. Where q C^-1 lies in the simplex, pi C = q there and it is the
    maximum. Otherwise the maximum lies on the simplex's boundary: on one of its three edges (pi_c = 0), where
    the likelihood of pi = lambda e_a + (1 - lambda) e_b is a concave function of lambda in [0, 1] whose
    derivative is found to zero by bisection (to 2^-52); the best of the three edges is the maximum."""
    start = inverse(q, c, max_condition=1e8)
    batch, q, c = _flat(q, c)
    start = start.reshape(-1, 3)
    ok = np.isfinite(q).all(1) & np.isfinite(c).all((1, 2))
    pi = np.full_like(q, np.nan)
    inside = ok & (start >= -1e-12).all(1)
    clipped = np.clip(start[inside], 0, None)
    pi[inside] = clipped / clipped.sum(1, keepdims=True)
    rest = np.flatnonzero(ok & ~inside)
    if rest.size:
        qq, cc = q[rest], c[rest]
        best, best_ll = np.full((len(rest), 3), np.nan), np.full(len(rest), -np.inf)
        for a, b in ((0, 1), (0, 2), (1, 2)):
            # (pi C)_j = base_j + lambda diff_j; one contiguous array per judged stance j
            diff = [np.ascontiguousarray(cc[:, a, j] - cc[:, b, j]) for j in range(3)]
            base = [np.ascontiguousarray(cc[:, b, j]) for j in range(3)]
            weighted = [qq[:, j] * diff[j] for j in range(3)]
            lo, hi = np.zeros(len(rest)), np.ones(len(rest))
            for _ in range(bisections):
                mid = (lo + hi) / 2
                up = _slope(mid, weighted, base, diff) > 0
                lo = np.where(up, mid, lo)
                hi = np.where(up, hi, mid)
            lam = (lo + hi) / 2
            lam[_slope(np.zeros(len(rest)), weighted, base, diff) <= 0] = 0.0
            lam[_slope(np.ones(len(rest)), weighted, base, diff) >= 0] = 1.0
            edge = np.zeros((len(rest), 3))
            edge[:, a], edge[:, b] = lam, 1 - lam
            ll = loglik(qq, cc, edge)
            better = ll > best_ll
            best[better], best_ll[better] = edge[better], ll[better]
        pi[rest] = best
    return pi.reshape(*batch, 3)


def _slope(lam: np.ndarray, weighted: list, base: list, diff: list) -> np.ndarray:
    """d/d lambda of the log-likelihood on an edge, (pi C)_j = base_j + lambda diff_j: decreasing in lambda."""
    return sum(w / np.maximum(b + lam * d, 1e-300) for w, b, d in zip(weighted, base, diff))


def em(q: np.ndarray, c: np.ndarray, tol: float = EM_TOL, max_iter: int = EM_MAX_ITER,
       return_converged: bool = False):
    """The EM iteration for the same maximum (module docstring), from the uniform distribution: the
    reference `constrained` is checked against. It converges slowly where the maximum lies on the simplex's
    boundary (a vanishing share shrinks geometrically), so the store uses `constrained`. With
    `return_converged`, also whether each row moved by less than `tol` within `max_iter` iterations."""
    batch, q, c = _flat(q, c)
    ok = np.isfinite(q).all(1) & np.isfinite(c).all((1, 2))
    pi = np.full_like(q, np.nan)
    pi[ok] = 1 / 3
    active = np.flatnonzero(ok)
    for _ in range(max_iter):
        if not active.size:
            break
        p, cc, qq = pi[active], c[active], q[active]
        implied = np.einsum("nt,ntj->nj", p, cc)  # (pi C)_j
        ratio = np.divide(qq, implied, out=np.zeros_like(qq), where=implied > 0)
        new = p * np.einsum("ntj,nj->nt", cc, ratio)
        new /= new.sum(1, keepdims=True)
        pi[active] = new
        active = active[np.abs(new - p).max(1) > tol]
    pi = pi.reshape(*batch, 3)
    if return_converged:
        converged = np.ones(len(q), bool)
        converged[active] = False
        return pi, converged.reshape(batch)
    return pi


# ---------------------------------------------------------------- resampling


class _quiet(warnings.catch_warnings):
    """NaN-aware reductions over replicates where some are all NaN warn; the NaN is the answer."""

    def __enter__(self):
        super().__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)


def cluster_weights(clusters, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) bootstrap counts: the clusters (e.g. questions) drawn with replacement, each item
    weighted by how often its cluster was drawn."""
    codes, uniques = pd.factorize(pd.Series(clusters).astype(str))
    k = len(uniques)
    counts = rng.multinomial(k, np.full(k, 1 / k), size=resamples).astype(float)
    return counts[:, codes]


def percentile_interval(replicates: np.ndarray, confidence: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over `axis`, ignoring NaN replicates (a replicate that drew no answer of a stance)."""
    with _quiet():
        lo, hi = np.nanpercentile(replicates, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100], axis=axis)
    return lo, hi


def _rngs(seed: int, *names: str) -> dict[str, np.random.Generator]:
    """One independent stream per purpose, the same whatever else is computed."""
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.default_rng(s) for n, s in zip(names, children)}


# ---------------------------------------------------------------- cross-fitting by question


def question_folds(questions, folds: int = FOLDS) -> np.ndarray:
    """The fold of every answer: sklearn's GroupKFold over its question (deterministic; every answer of a
    question in one fold; folds of about equal numbers of answers)."""
    questions = pd.Series(questions).astype(str).to_numpy()
    k = min(folds, len(set(questions)))
    fold = np.empty(len(questions), int)
    for f, (_, held_out) in enumerate(GroupKFold(n_splits=k).split(questions, groups=questions)):
        fold[held_out] = f
    return fold


def crossfit_confusions(frame: pd.DataFrame, folds: int = FOLDS, weights: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(fold of each answer, C of each fold fitted on the answers of every *other* fold): (K, 3, 3), or
    (B, K, 3, 3) with bootstrap `weights` (B, n)."""
    fold = question_folds(frame["prompt_id"], folds)
    k = fold.max() + 1
    w = np.ones((1, len(frame))) if weights is None else weights
    fit = (fold[None, :] != np.arange(k)[:, None]).astype(float)  # (K, n): answer n is fitted on in fold k
    c = np.stack([confusion(frame["stance"], frame[P].to_numpy(float), w * fit[f]) for f in range(k)], axis=1)
    return fold, (c[0] if weights is None else c)


def crossfit(frame: pd.DataFrame, resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
             folds: int = FOLDS) -> pd.DataFrame:
    """The cross-fitted check of the correction on one judge's labelled answers (columns prompt_id, topic,
    stance, p_*): per grouping of the held-out answers (`fold`: all of a fold's; `fold_topic`: a fold's answers
    of one topic), method (raw judged shares, inverse, em) and stance (and `all`: the mean over stances), the
    mean over groups of |estimated - true share|, with a question-clustered bootstrap interval (folds stay
    those of the original questions), and its difference from the raw shares' error (minus_raw < 0: the
    correction helps)."""
    rng = _rngs(seed, "crossfit")["crossfit"]
    n = len(frame)
    w = np.vstack([np.ones(n), cluster_weights(frame["prompt_id"], resamples, rng)])  # row 0: the data
    fold, c = crossfit_confusions(frame, folds, w)
    y, probs = onehot(frame["stance"]), frame[P].to_numpy(float)
    rows = []
    for grouping, keys in (("fold", [fold]), ("fold_topic", [fold, frame["topic"].astype(str).to_numpy()])):
        codes, uniques = pd.factorize(pd.Series(list(zip(*keys))))
        member = np.zeros((n, len(uniques)))
        member[np.arange(n), codes] = 1
        group_fold = np.array([u[0] for u in uniques])
        size = w @ member  # (B + 1, G)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.einsum("bn,ng,nj->bgj", w, member, probs) / size[..., None]
            share = np.einsum("bn,ng,nt->bgt", w, member, y) / size[..., None]
        cg = c[:, group_fold]  # (B + 1, G, 3, 3): each group corrected with its own fold's C
        estimates = {"raw": q, "inverse": inverse(q, cg), "constrained": constrained(q, cg)}
        errors = {m: np.abs(e - share) for m, e in estimates.items()}  # (B + 1, G, 3)
        with _quiet():
            mae = {m: np.concatenate([np.nanmean(e, axis=1), np.nanmean(e.mean(2), axis=1)[:, None]], axis=1)
                   for m, e in errors.items()}  # (B + 1, 4): per stance, then all
        for method, e in mae.items():
            lo, hi = percentile_interval(e[1:], confidence)
            diff = e - mae["raw"]
            dlo, dhi = percentile_interval(diff[1:], confidence)
            point = estimates[method][0]
            scored = np.isfinite(point).all(1)
            outside = ((point < -1e-12) | (point > 1 + 1e-12)).any(1)
            for i, stance in enumerate([*STANCES, "all"]):
                rows.append({"grouping": grouping, "method": method, "stance": stance,
                             "mean_abs_error": e[0, i], "mean_abs_error_lo": lo[i], "mean_abs_error_hi": hi[i],
                             "minus_raw": diff[0, i], "minus_raw_lo": dlo[i], "minus_raw_hi": dhi[i],
                             "n_groups": int(scored.sum()), "n_outside_01": int(outside[scored].sum())})
    out = pd.DataFrame(rows)
    out["folds"] = int(fold.max() + 1)
    out["n_answers"], out["n_questions"] = n, frame["prompt_id"].nunique()
    out["resamples"], out["confidence"] = resamples, confidence
    return out


# ---------------------------------------------------------------- calibration-in-the-large


def calibration_in_the_large(frame: pd.DataFrame, resamples: int = 1000, confidence: float = 0.95,
                             seed: int = 0) -> pd.DataFrame:
    """Per stance s: the mean judged p_s against the true share of s (bias = mean p_s - share; 0 for a judge
    calibrated in the large), with a question-clustered bootstrap interval of the bias; beside it the class's
    F1 (argmax verdicts, sklearn) and its Brier component mean (p_s - 1[true = s])^2."""
    rng = _rngs(seed, "calibration")["calibration"]
    y, probs = onehot(frame["stance"]), frame[P].to_numpy(float)
    w = np.vstack([np.ones(len(frame)), cluster_weights(frame["prompt_id"], resamples, rng)])
    mean_p, share = (w @ probs) / w.sum(1, keepdims=True), (w @ y) / w.sum(1, keepdims=True)
    bias = mean_p - share
    lo, hi = percentile_interval(bias[1:], confidence)
    predicted = np.array(STANCES)[probs.argmax(1)]
    f1 = f1_score(frame["stance"], predicted, labels=list(STANCES), average=None, zero_division=0)
    return pd.DataFrame({"stance": list(STANCES), "n": len(frame), "n_questions": frame["prompt_id"].nunique(),
                         "mean_p": mean_p[0], "true_share": share[0], "bias": bias[0], "bias_lo": lo, "bias_hi": hi,
                         "f1": f1, "brier_class": ((probs - y) ** 2).mean(0),
                         "resamples": resamples, "confidence": confidence})


# ---------------------------------------------------------------- two labelling passes


def pass2_path(name_or_path: str) -> Path:
    path = labelled.path_of(name_or_path)
    return path.with_name(f"{path.stem}{PASS2_SUFFIX}.jsonl")


def load_pass2(path: str | Path, ids: set[str] | None = None) -> pd.DataFrame:
    """The second labelling pass: one row per answer, keys id, stance (label_note optional)."""
    rows = []
    for where, row in read_jsonl_rows(path, labelled.LabelledSetError):
        if "id" not in row or row.get("stance") not in STANCES:
            raise labelled.LabelledSetError(f"{where}: needs id and a stance among {STANCES}")
        if ids is not None and row["id"] not in ids:
            raise labelled.LabelledSetError(f"{where}: id {row['id']!r} is not in the first pass")
        rows.append({"id": row["id"], "stance": row["stance"]})
    frame = pd.DataFrame(rows, columns=["id", "stance"])
    if frame["id"].duplicated().any():
        raise labelled.LabelledSetError(f"{path}: duplicate ids {sorted(frame.loc[frame.id.duplicated(), 'id'])}")
    return frame


def label_agreement(first: pd.DataFrame, second: pd.DataFrame, resamples: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Cohen's kappa (sklearn) between two labelling passes of the same answers (`first`: id, prompt_id, stance;
    `second`: id, stance), with a bootstrap interval clustered by question, and the 3 x 3 agreement table
    (rows the first pass, columns the second)."""
    both = first[["id", "prompt_id", "stance"]].merge(second[["id", "stance"]], on="id", suffixes=("_1", "_2"))
    a, b = both["stance_1"].to_numpy(), both["stance_2"].to_numpy()
    rng = _rngs(seed, "kappa")["kappa"]
    replicates = np.array([cohen_kappa_score(a, b, labels=list(STANCES), sample_weight=w)
                           for w in cluster_weights(both["prompt_id"], resamples, rng)])
    lo, hi = percentile_interval(replicates, confidence)
    table = confusion_matrix(a, b, labels=list(STANCES))
    summary = {"n": len(both), "n_first": len(first), "n_second": len(second),
               "n_questions": both["prompt_id"].nunique(), "agreed": int(np.trace(table)),
               "observed_agreement": float(np.trace(table) / max(len(both), 1)),
               "kappa": float(cohen_kappa_score(a, b, labels=list(STANCES))), "kappa_lo": float(lo),
               "kappa_hi": float(hi), "resamples": resamples, "confidence": confidence}
    long = pd.DataFrame([{"first_pass": s, "second_pass": t, "n": int(table[i, j])}
                         for i, s in enumerate(STANCES) for j, t in enumerate(STANCES)])
    return summary, long


def labels_sensitivity(predictions: pd.DataFrame, first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Macro-F1 (sklearn, argmax verdicts) of a judge's predictions (id, p_*) against the first pass's labels
    (the ones the study uses), the second pass's, and on the answers both passes agree on."""
    frame = predictions.merge(first[["id", "stance"]].rename(columns={"stance": "first"}), on="id").merge(
        second[["id", "stance"]].rename(columns={"stance": "second"}), on="id")
    predicted = np.array(STANCES)[frame[P].to_numpy(float).argmax(1)]
    agree = (frame["first"] == frame["second"]).to_numpy()
    rows = []
    for labels, truth, mask in (("first pass", frame["first"], np.ones(len(frame), bool)),
                                ("second pass", frame["second"], np.ones(len(frame), bool)),
                                ("both passes agree", frame["first"], agree)):
        t, p = truth.to_numpy()[mask], predicted[mask]
        rows.append({"labels": labels, "n": int(mask.sum()),
                     "macro_f1": float(f1_score(t, p, labels=list(STANCES), average="macro", zero_division=0)),
                     "accuracy": float((t == p).mean()) if mask.any() else np.nan})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the corrected read-out


def corrected_with(predictions: pd.DataFrame) -> dict[str, str]:
    """The validation split whose confusion corrects each judge: `real` where it was validated on real answers,
    else the first of its splits by name."""
    splits = predictions.groupby("judge")["split"].agg(lambda s: "real" if (s == "real").any() else min(s))
    return splits.to_dict()


def corrected_stance(prompts: pd.DataFrame, predictions: pd.DataFrame, resamples: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The generation read-out per (run, step, topic, judge) corrected by `em` for the judge's confusion on its
    `corrected_with` split, with percentile intervals over replicates that redraw both the labelled set's
    questions (C refitted) and the probe's prompts of that (run, step, topic).

    `prompts`: one row per (run, step, topic, judge, prompt_id) with n (its answers) and m_support, m_neutral,
    m_oppose (the means of the judged probabilities over its answers). The point estimate corrects the mean over
    prompts of those means (stance_by_topic's raw means: each prompt weighs the same)."""
    columns = list(SCHEMA["stance_by_topic_corrected"])
    if prompts.empty or predictions.empty:
        return pd.DataFrame(columns=columns)
    rngs = _rngs(seed, "validation", "probe")
    means = [f"m_{s}" for s in STANCES]
    out = []
    for judge, split in sorted(corrected_with(predictions).items()):
        groups = prompts[prompts["judge"] == judge].groupby(["run", "step", "topic"], sort=True)
        if not groups.ngroups:
            continue
        val = predictions[(predictions["judge"] == judge) & (predictions["split"] == split)]
        c = confusion(val["stance"], val[P].to_numpy(float),
                      np.vstack([np.ones(len(val)), cluster_weights(val["prompt_id"], resamples,
                                                                      rngs["validation"])]))  # (B + 1, 3, 3)
        keys, q = [], []
        for key, g in groups:
            # the probe's prompts are drawn as every other value-probe interval draws them (n - 1 of n)
            draws = np.vstack([np.ones(len(g)), prompt_draws(len(g), resamples, rngs["probe"])])  # (B + 1, prompts)
            q.append((draws @ g[means].to_numpy(float)) / draws.sum(1, keepdims=True))
            keys.append((*key, len(g), int(g["n"].sum())))
        q = np.stack(q)  # (G, B + 1, 3)
        step = max(1, BLOCK // (resamples + 1))
        pi = np.concatenate([constrained(q[i:i + step], c[None]) for i in range(0, len(q), step)])
        lo, hi = percentile_interval(pi[:, 1:], confidence, axis=1)  # (G, 3)
        for i, (run, stp, topic, n_prompts, n_samples) in enumerate(keys):
            row = {"run": run, "step": stp, "topic": topic, "judge": judge, "corrected_with": split,
                   "n_prompts": n_prompts, "n_samples": n_samples,
                   "resamples": resamples, "confidence": confidence}
            for k, p in enumerate(P):
                row |= {f"judged_{p}": q[i, 0, k], p: pi[i, 0, k], f"{p}_lo": lo[i, k], f"{p}_hi": hi[i, k]}
            out.append(row)
    return pd.DataFrame(out, columns=columns)


# ---------------------------------------------------------------- the tables of the store


def inverse_weights(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per judge and validation split, C[true, judged] (`confusion`) and its inverse (weight[judged, true]:
    pi = q C^-1), skipped where a stance has no labelled answers or C's condition number exceeds MAX_CONDITION."""
    rows = []
    for (judge, split), g in predictions.groupby(["judge", "split"], sort=True):
        if set(g["stance"]) != set(STANCES):
            continue
        c = confusion(g["stance"], g[P].to_numpy(float))
        if np.linalg.cond(c) > MAX_CONDITION:
            continue
        inv = np.linalg.inv(c)
        rows += [{"judge": judge, "split": split, "judged": j, "true_stance": t, "weight": float(inv[a, b]),
                  "confusion": float(c[b, a])} for a, j in enumerate(STANCES) for b, t in enumerate(STANCES)]
    return pd.DataFrame(rows, columns=list(SCHEMA["judge_correction"])).astype(SCHEMA["judge_correction"])


def load_predictions(judge_evals: list[str]) -> pd.DataFrame:
    """Every judge's predictions on its labelled answers (predictions-<split>.parquet beside each eval JSON),
    with `split` taken from the eval: the real set's rows carry their own labelled-set split (`test`) in the
    file, which would otherwise merge them with the written test split."""
    frames = []
    for path in judge_evals:
        e = json.loads(Path(path).read_text())
        frame = pd.read_parquet(Path(path).with_name(f"predictions-{e['split']}.parquet"))
        frames.append(frame.assign(judge=e["judge"], split=e["split"]))
    columns = ["judge", "split", "id", "prompt_id", "topic", "stance", *P]
    if not frames:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(frames, ignore_index=True)
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ValueError(f"judge predictions lack {', '.join(missing)} (re-run judge-eval)")
    return frame[columns]


def packaged_pass_pairs() -> list[tuple[str, Path, Path]]:
    """(set name, first pass, second pass) of every packaged labelled set that has a second pass."""
    pairs = []
    for second in sorted(labelled.PACKAGED.glob(f"*{PASS2_SUFFIX}.jsonl")):
        name = second.name[: -len(f"{PASS2_SUFFIX}.jsonl")]
        if labelled.path_of(name).is_file():
            pairs.append((name, labelled.path_of(name), second))
    return pairs


def tables(predictions: pd.DataFrame, prompts: pd.DataFrame, resamples: int = 1000, confidence: float = 0.95,
           seed: int = 0, pairs: list[tuple[str, Path, Path]] | None = None) -> dict[str, pd.DataFrame]:
    """Every judge-correction table of the store, by name (docs/store.md)."""
    keys = ["judge", "split"]
    checks, calibration = [], []
    for (judge, split), g in predictions.groupby(keys, sort=True):
        if len(set(g["stance"])) == len(STANCES) and g["prompt_id"].nunique() >= 2:
            checks.append(crossfit(g, resamples, confidence, seed).assign(judge=judge, split=split))
        calibration.append(calibration_in_the_large(g, resamples, confidence, seed).assign(judge=judge, split=split))
    agreement, passes, sensitivity = [], [], []
    for name, first_path, second_path in (packaged_pass_pairs() if pairs is None else pairs):
        first = pd.DataFrame(labelled.load(str(first_path)))
        second = load_pass2(second_path, set(first["id"]))
        summary, table = label_agreement(first, second, resamples, confidence, seed)
        agreement.append({"labelled_set": name, **summary, "labels_used": "first pass"})
        passes.append(table.assign(labelled_set=name))
        for (judge, split), g in predictions.groupby(keys, sort=True):
            if len(g) and g["id"].isin(set(first["id"])).all():
                sensitivity.append(labels_sensitivity(g, first, second).assign(judge=judge, split=split,
                                                                                labelled_set=name))

    def frame(parts, name):
        columns = list(SCHEMA[name])
        return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)

    out = {"judge_correction": inverse_weights(predictions),
           "judge_correction_check": frame(checks, "judge_correction_check"),
           "judge_calibration": frame(calibration, "judge_calibration"),
           "judge_label_agreement": pd.DataFrame(agreement, columns=list(SCHEMA["judge_label_agreement"])),
           "judge_label_passes": frame(passes, "judge_label_passes"),
           "judge_label_sensitivity": frame(sensitivity, "judge_label_sensitivity"),
           "stance_by_topic_corrected": corrected_stance(prompts, predictions, resamples, confidence, seed)}
    return {name: f[list(SCHEMA[name])].astype(SCHEMA[name]) for name, f in out.items()}


_S, _F, _I = "string", "float64", "int64"
SCHEMA = {  # every table's columns and types (docs/store.md), so that an empty table has them too
    "judge_correction": {"judge": _S, "split": _S, "judged": _S, "true_stance": _S, "weight": _F, "confusion": _F},
    "judge_correction_check": {
        "judge": _S, "split": _S, "grouping": _S, "method": _S, "stance": _S, "mean_abs_error": _F,
        "mean_abs_error_lo": _F, "mean_abs_error_hi": _F, "minus_raw": _F, "minus_raw_lo": _F, "minus_raw_hi": _F,
        "n_groups": _I, "n_outside_01": _I, "folds": _I, "n_answers": _I, "n_questions": _I, "resamples": _I,
        "confidence": _F},
    "judge_calibration": {
        "judge": _S, "split": _S, "stance": _S, "n": _I, "n_questions": _I, "mean_p": _F, "true_share": _F,
        "bias": _F, "bias_lo": _F, "bias_hi": _F, "f1": _F, "brier_class": _F, "resamples": _I, "confidence": _F},
    "judge_label_agreement": {
        "labelled_set": _S, "n": _I, "n_first": _I, "n_second": _I, "n_questions": _I, "agreed": _I,
        "observed_agreement": _F, "kappa": _F, "kappa_lo": _F, "kappa_hi": _F, "labels_used": _S, "resamples": _I,
        "confidence": _F},
    "judge_label_passes": {"labelled_set": _S, "first_pass": _S, "second_pass": _S, "n": _I},
    "judge_label_sensitivity": {"judge": _S, "split": _S, "labelled_set": _S, "labels": _S, "n": _I,
                                "macro_f1": _F, "accuracy": _F},
    "stance_by_topic_corrected": {
        "run": _S, "step": _I, "topic": _S, "judge": _S, "corrected_with": _S, "n_prompts": _I, "n_samples": _I,
        **{f"judged_{p}": _F for p in P}, **{c: _F for p in P for c in (p, f"{p}_lo", f"{p}_hi")},
        "resamples": _I, "confidence": _F},
}


PROMPTS_SQL = ("SELECT run, step, topic, judge, prompt_id, count(*) AS n, avg(p_support) AS m_support, "
               "avg(p_neutral) AS m_neutral, avg(p_oppose) AS m_oppose FROM stance_samples "
               "WHERE mode = 'generation' AND judge IS NOT NULL GROUP BY ALL ORDER BY ALL")


def create(con, judge_evals: list[str], resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> None:
    """Create the judge-correction tables in the study database `con` (stance_samples must exist)."""
    predictions = load_predictions(list(judge_evals))
    prompts = con.sql(PROMPTS_SQL).df() if len(predictions) else pd.DataFrame()
    for name, frame in tables(predictions, prompts, resamples, confidence, seed,
                              pairs=None if len(judge_evals) else []).items():
        con.register(f"{name}_df", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.unregister(f"{name}_df")
