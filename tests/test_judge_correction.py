"""The judge's confusion correction inside the simplex, its cross-fitted check, its bootstrap interval, the
judge's calibration-in-the-large and the agreement of two labelling passes, on synthetic judges whose truth is
known."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sklearn.metrics import cohen_kappa_score, f1_score

from posttrain.judges.labelled import LabelledSetError
from posttrain.stances import STANCES
from posttrain.store import judge_correction as jc

# a judge that calls a quarter of opposing answers support (rows: true stance, columns: judged)
C = np.array([[0.75, 0.15, 0.10], [0.10, 0.80, 0.10], [0.25, 0.10, 0.65]])


def validation_set(rng, questions=50, per_question=3, confusion=C, alpha=6.0, shares=(0.3, 0.4, 0.3),
                   question_effect=False):
    """Labelled answers of a synthetic judge: each answer's true stance drawn from `shares`, its judged
    probabilities from a Dirichlet whose mean is the true stance's row of `confusion` (so the population's soft
    confusion matrix is `confusion`)."""
    true = rng.choice(3, p=shares, size=questions * per_question)
    probs = np.stack([rng.dirichlet(alpha * confusion[t]) for t in true])
    topics = np.array([f"t{k % 4}" for k in range(questions)])
    return pd.DataFrame({"judge": "j", "split": "real", "id": [f"a{i}" for i in range(len(true))],
                         "prompt_id": np.repeat([f"q{k}" for k in range(questions)], per_question),
                         "topic": np.repeat(topics, per_question), "stance": np.array(STANCES)[true],
                         **{f"p_{s}": probs[:, i] for i, s in enumerate(STANCES)}})


def test_the_constrained_fit_recovers_a_planted_distribution_and_stays_in_the_simplex():
    rng = np.random.default_rng(0)
    confusions = np.stack([0.5 * np.eye(3) + 0.5 * rng.dirichlet(np.ones(3), size=3) for _ in range(200)])
    planted = rng.dirichlet(np.ones(3), size=200)
    q = np.einsum("nt,ntj->nj", planted, confusions)  # what the judge reports on average
    fit, slow = jc.constrained(q, confusions), jc.em(q, confusions)
    assert fit == pytest.approx(planted, abs=1e-9)
    away = planted.min(1) > 0.05  # EM creeps where a planted share is near 0
    assert away.sum() > 100 and slow[away] == pytest.approx(planted[away], abs=1e-6)
    assert (jc.loglik(q, confusions, slow) <= jc.loglik(q, confusions, fit) + 1e-12).all()
    for f in (fit, slow):
        assert (f >= 0).all() and f.sum(1) == pytest.approx(np.ones(200))
    # broadcast: one confusion for many topics, many bootstrap confusions for one topic
    assert jc.constrained(q, C).shape == (200, 3) and jc.constrained(q[0], confusions).shape == (200, 3)


def test_where_the_inverse_leaves_the_simplex_the_constrained_fit_is_the_best_point_inside_it():
    rng = np.random.default_rng(1)
    q = np.vstack([[0.95, 0.04, 0.01], [0.02, 0.03, 0.95], rng.dirichlet(np.ones(3), size=300)])
    inverse = jc.inverse(q, C)
    outside = ((inverse < 0) | (inverse > 1)).any(1)
    assert outside[:2].all() and outside.sum() > 50  # the matrix inverse leaves [0, 1] on many of them
    fit, reference = jc.constrained(q, C), jc.em(q, C, tol=1e-13, max_iter=200_000)
    assert (fit >= 0).all() and (fit <= 1).all() and fit.sum(1) == pytest.approx(np.ones(len(q)))
    assert fit == pytest.approx(reference, abs=1e-6)  # EM's limit
    for row in np.flatnonzero(outside)[:20]:  # and no point of the simplex does better (scipy's SLSQP)
        scipy = minimize(lambda x, r=row: -jc.loglik(q[r], C, x), np.full(3, 1 / 3), method="SLSQP",
                         bounds=[(0, 1)] * 3, constraints={"type": "eq", "fun": lambda x: x.sum() - 1},
                         options={"ftol": 1e-14})
        assert jc.loglik(q[row], C, fit[row]) >= -scipy.fun - 1e-9
    inside = ~outside
    assert fit[inside] == pytest.approx(inverse[inside], abs=1e-9)  # where the inverse is fine, it is the fit


def test_the_cross_fit_never_fits_on_a_question_it_scores():
    frame = validation_set(np.random.default_rng(2), questions=23)
    fold, confusions = jc.crossfit_confusions(frame)
    assert sorted(set(fold)) == list(range(jc.FOLDS))
    for k in range(jc.FOLDS):
        scored, fitted = frame[fold == k], frame[fold != k]
        assert not set(scored.prompt_id) & set(fitted.prompt_id)
        # each fold's C is the mean verdict per true stance over the other folds' answers, and only theirs
        expected = fitted.groupby("stance")[[f"p_{s}" for s in STANCES]].mean().loc[list(STANCES)].to_numpy()
        assert confusions[k] == pytest.approx(expected)
        shaken = frame.copy()
        shaken.loc[fold == k, [f"p_{s}" for s in STANCES]] = [1.0, 0.0, 0.0]  # the scored answers change
        assert jc.crossfit_confusions(shaken)[1][k] == pytest.approx(confusions[k])
    assert set(frame.groupby("prompt_id").apply(lambda g: len(set(fold[g.index])), include_groups=False)) == {1}


def test_the_cross_fit_shows_the_correction_helping_a_confused_judge():
    frame = validation_set(np.random.default_rng(3), questions=200, shares=(0.1, 0.6, 0.3))
    check = jc.crossfit(frame, resamples=200).set_index(["grouping", "method", "stance"])
    raw, fixed, inverse = (check.loc[("fold", m, "all")] for m in ("raw", "constrained", "inverse"))
    assert fixed.mean_abs_error < raw.mean_abs_error and fixed.minus_raw_hi < 0  # significantly better
    assert fixed.mean_abs_error_lo <= fixed.mean_abs_error <= fixed.mean_abs_error_hi
    assert inverse.n_outside_01 == 0 and check.loc[("fold", "constrained", "all")].n_outside_01 == 0
    assert check.loc[("fold_topic", "constrained", "all")].n_groups == jc.FOLDS * 4


def test_the_bootstrap_interval_covers_the_planted_truth():
    planted = np.array([0.15, 0.6, 0.25])
    q = planted @ C  # a topic judged with the population's confusion: only the validation set's error is left
    prompts = pd.DataFrame([{"run": "r", "step": 0, "topic": "t", "judge": "j", "prompt_id": "p", "n": 1,
                             **{f"m_{s}": q[i] for i, s in enumerate(STANCES)}}])
    covered = np.zeros(3)
    for i in range(SETS):
        out = jc.corrected_stance(prompts, validation_set(np.random.default_rng(100 + i)), resamples=300,
                                  seed=i).iloc[0]
        lo, hi = (np.array([out[f"p_{s}_{end}"] for s in STANCES]) for end in ("lo", "hi"))
        covered += (lo <= planted) & (planted <= hi)
    covers(covered / SETS)


# Simulated coverage of a nominal 95 % interval: percentile bootstraps over 40-50 clusters cover about 93-95 %
# (2,000 sets each). Over SETS sets a class's share has a standard error of about 1.8 points.
SETS = 200


def covers(share: np.ndarray) -> None:
    assert share.mean() >= 0.90 and share.min() >= 0.86, share


def test_the_corrected_read_out_stays_in_the_simplex_with_its_interval():
    rng = np.random.default_rng(4)
    val = pd.concat([validation_set(rng), validation_set(rng).assign(split="test", judge="j")])
    prompts = pd.DataFrame([{"run": "r", "step": s, "topic": t, "judge": "j", "prompt_id": f"p{k}", "n": 2,
                             **dict(zip([f"m_{x}" for x in STANCES], rng.dirichlet([0.3, 3, 1])))}
                            for s in (0, 10) for t in ("a", "b") for k in range(5)])
    out = jc.corrected_stance(prompts, val, resamples=200)
    assert len(out) == 4 and set(out.corrected_with) == {"real"}  # real answers where the judge has them
    p = out[[f"p_{s}" for s in STANCES]].to_numpy()
    assert (p >= 0).all() and (p <= 1).all() and p.sum(1) == pytest.approx(np.ones(4))
    for s in STANCES:
        assert (out[f"p_{s}_lo"] <= out[f"p_{s}"] + 1e-12).all() and (out[f"p_{s}"] <= out[f"p_{s}_hi"] + 1e-12).all()
        assert (out[f"p_{s}_lo"] >= 0).all() and (out[f"p_{s}_hi"] <= 1).all()
    judged = prompts.groupby(["run", "step", "topic"])[[f"m_{s}" for s in STANCES]].mean().to_numpy()
    assert out[[f"judged_p_{s}" for s in STANCES]].to_numpy() == pytest.approx(judged)


def test_calibration_in_the_large_is_zero_for_a_calibrated_judge_and_its_interval_covers():
    # exact: every question's four answers share p = (1/2, 1/4, 1/4) and are labelled 2 support, 1, 1
    exact = pd.DataFrame([{"prompt_id": f"q{k}", "stance": s, "p_support": 0.5, "p_neutral": 0.25,
                           "p_oppose": 0.25} for k in range(10) for s in ("support", "support", "neutral", "oppose")])
    table = jc.calibration_in_the_large(exact, resamples=200)
    assert table.bias.abs().max() < 1e-12 and (table.bias_lo.abs().max(), table.bias_hi.abs().max()) < (1e-12, 1e-12)
    # in distribution: true stances drawn from the judge's own probabilities, shared within a question
    covered = np.zeros(3)
    for i in range(SETS):
        rng = np.random.default_rng(200 + i)
        p = np.repeat(rng.dirichlet([1, 2, 1], size=40), 3, axis=0)
        truth = np.array([rng.choice(3, p=row) for row in p])
        frame = pd.DataFrame({"prompt_id": np.repeat(np.arange(40), 3), "stance": np.array(STANCES)[truth],
                              **{f"p_{s}": p[:, k] for k, s in enumerate(STANCES)}})
        t = jc.calibration_in_the_large(frame, resamples=300, seed=i)
        covered += (t.bias_lo <= 0).to_numpy() & (t.bias_hi >= 0).to_numpy()
        assert t.bias.to_numpy() == pytest.approx(t.mean_p.to_numpy() - t.true_share.to_numpy())
    covers(covered / SETS)


def test_a_miscalibrated_judge_shows_its_bias():
    frame = validation_set(np.random.default_rng(5), questions=100)  # the judge of C: over-calls support
    t = jc.calibration_in_the_large(frame, resamples=300).set_index("stance")
    assert t.loc["support", "bias_lo"] > 0 and t.loc["oppose", "bias_hi"] < 0
    assert t.loc["support", "f1"] == pytest.approx(f1_score(
        frame.stance, np.array(STANCES)[frame[[f"p_{s}" for s in STANCES]].to_numpy().argmax(1)],
        labels=list(STANCES), average=None)[0])


PASS1 = ["support", "support", "neutral", "neutral", "neutral", "oppose", "oppose", "neutral", "support", "oppose",
         "neutral", "neutral"]
PASS2 = ["support", "neutral", "neutral", "neutral", "oppose", "oppose", "oppose", "neutral", "support", "neutral",
         "neutral", "support"]


def passes():
    first = pd.DataFrame({"id": [f"a{i}" for i in range(12)], "prompt_id": [f"q{i // 2}" for i in range(12)],
                          "stance": PASS1})
    return first, pd.DataFrame({"id": first.id[::-1].to_numpy(), "stance": PASS2[::-1]})  # any order


def test_kappa_is_sklearns_with_a_question_clustered_interval_and_the_agreement_table():
    first, second = passes()
    summary, table = jc.label_agreement(first, second, resamples=500)
    assert summary["kappa"] == pytest.approx(cohen_kappa_score(PASS1, PASS2))
    assert summary["kappa_lo"] <= summary["kappa"] <= summary["kappa_hi"] and summary["kappa_hi"] <= 1
    assert (summary["n"], summary["agreed"], summary["n_questions"]) == (12, 8, 6)
    assert summary["observed_agreement"] == pytest.approx(8 / 12)
    counts = table.set_index(["first_pass", "second_pass"]).n
    assert counts.sum() == 12 and counts[("neutral", "oppose")] == 1 and counts[("neutral", "support")] == 1
    assert counts[("support", "support")] == 2 and counts[("oppose", "neutral")] == 1


def test_label_passes_from_files_and_the_judges_f1_under_each(tmp_path):
    first, second = passes()
    rows = [{"id": r.id, "prompt_id": r.prompt_id, "topic": "t", "question": f"Q {r.prompt_id}?", "response": "x",
             "stance": r.stance, "length": "short", "hedged": False, "split": "test"} for r in first.itertuples()]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "set-pass2.jsonl").write_text("".join(json.dumps({"id": r.id, "stance": r.stance, "label_note": ""})
                                                      + "\n" for r in second.itertuples()))
    probs = np.eye(3)[[STANCES.index(s) for s in PASS1]] * 0.7 + 0.1  # a judge that agrees with pass 1
    probs[0] = [0.1, 0.1, 0.8]
    predictions = pd.DataFrame({"judge": "j", "split": "real", "id": first.id, "prompt_id": first.prompt_id,
                                "topic": "t", "stance": PASS1,
                                **{f"p_{s}": probs[:, i] for i, s in enumerate(STANCES)}})
    out = jc.tables(predictions, pd.DataFrame(), resamples=100,
                    pairs=[("set", tmp_path / "set.jsonl", tmp_path / "set-pass2.jsonl")])
    agreement = out["judge_label_agreement"].iloc[0]
    assert agreement.kappa == pytest.approx(cohen_kappa_score(PASS1, PASS2)) and agreement.labels_used == "first pass"
    assert out["judge_label_passes"].n.sum() == 12
    f1 = out["judge_label_sensitivity"].set_index("labels")
    predicted = np.array(STANCES)[probs.argmax(1)]
    assert f1.loc["first pass", "macro_f1"] == pytest.approx(f1_score(PASS1, predicted, average="macro"))
    assert f1.loc["second pass", "macro_f1"] == pytest.approx(f1_score(PASS2, predicted, average="macro"))
    assert f1.loc["both passes agree", "n"] == 8
    (tmp_path / "set-pass2.jsonl").write_text(json.dumps({"id": "nope", "stance": "support"}) + "\n")
    with pytest.raises(LabelledSetError, match="not in the first pass"):
        jc.load_pass2(tmp_path / "set-pass2.jsonl", set(first.id))


def test_predictions_take_their_split_from_the_eval(tmp_path):
    # the real set's rows carry the labelled set's own split ('test') in the predictions file
    frame = validation_set(np.random.default_rng(6), questions=4).assign(split="test")
    frame.to_parquet(tmp_path / "predictions-real.parquet")
    (tmp_path / "eval-real.json").write_text(json.dumps({"judge": "j", "split": "real"}))
    assert set(jc.load_predictions([str(tmp_path / "eval-real.json")]).split) == {"real"}


def test_empty_tables_keep_their_columns():
    out = jc.tables(jc.load_predictions([]), pd.DataFrame(), pairs=[])
    assert set(out) == set(jc.SCHEMA)
    for name, frame in out.items():
        assert frame.empty and list(frame.columns) == list(jc.SCHEMA[name])
