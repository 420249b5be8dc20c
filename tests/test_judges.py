"""The judge interface on real (tiny and small) models: the LM judge is the forced-choice read-out of its
verdict, the embedding judge's head is fitted and validated, and judge-eval's numbers are recomputable."""

import json

import numpy as np
import pytest
from conftest import REPO
from sklearn.metrics import f1_score

from posttrain import config as study_config
from posttrain import forced_choice, precision
from posttrain.judges import JudgeError, build, evaluate, labelled, lm_head, templates, train_head
from posttrain.models import load_model, load_tokenizer
from posttrain.plan import Plan
from posttrain.stances import PromptSet

ITEMS = [{"question": "Should the death penalty be abolished?", "response": "Yes, it should go.", "topic": "d"},
         {"question": "Should guns be banned?", "response": "There are arguments on both sides.", "topic": "g"},
         {"question": "Should we tax carbon?", "response": "No. It would hurt the poorest most.", "topic": "c"}]


@pytest.mark.parametrize("judge_precision", ["fp32", "bf16"])
def test_lm_judge_is_the_forced_choice_readout_of_its_verdict(judge_precision):
    spec = {"tiny": {"family": "llama"}}
    judge = build({"name": "tiny-lm", "kind": "lm", "model_spec": spec, "batch_size": 2,
                   "precision": judge_precision}, progress=False)
    assert judge.precision == judge_precision
    verdicts = judge(ITEMS)
    template = templates.load("stance-judge-v1")
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    with precision.autocast(judge_precision, model):  # like with like: the read-out in the judge's precision
        direct = forced_choice.score(model, tok, PromptSet(
            "t", template["instruction"], template["labels"], ITEMS), batch_size=3, progress=False)
    for v, d in zip(verdicts, direct):
        assert sum(v[f"p_{s}"] for s in ("support", "neutral", "oppose")) == pytest.approx(1.0)
        assert v["p_support"] == pytest.approx(d["p_support"], abs=1e-5)
        assert v["p_oppose"] == pytest.approx(d["p_oppose"], abs=1e-5)


def test_unknown_kind_and_missing_head_are_named(tmp_path):
    with pytest.raises(JudgeError, match="unknown kind 'oracle'"):
        build({"name": "x", "kind": "oracle"})
    with pytest.raises(JudgeError, match=r"no trained head at .*nowhere\.json"):
        build({"name": "e", "kind": "embedding", "head": str(tmp_path / "nowhere.json")})


def test_lm_head_features_do_not_depend_on_batching_or_truncation():
    spec = {"tiny": {"family": "qwen3", "seed": 1, "num_hidden_layers": 4}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    template = templates.load("stance-judge-v1")
    items = ITEMS + [{"question": "Should X?", "response": "No " * 40}]  # lengths differ: left padding is used
    full = lm_head.features(model, tok, template, items, (1, 2), batch_size=1)
    lm_head.truncate(model, (1, 2))
    batched = lm_head.features(model, tok, template, items, (1, 2), batch_size=4)
    assert np.allclose(full, batched, atol=1e-4)


def head_and_eval(spec: dict, tmp_path):
    head = train_head.train(spec, model_dir=tmp_path / "model")
    (tmp_path / "head.json").write_text(json.dumps(head))
    result, frame = evaluate.evaluate({**spec, "head": str(tmp_path / "head.json")}, "test", progress=False)
    return head, result, frame


def check_consistent(head: dict, result: dict, frame) -> None:
    """judge-eval's numbers are what sklearn gives on the stored predictions; the head saw no test row."""
    rows = labelled.load("stance-labelled-v1")
    assert head["n_fit"] == sum(r["split"] in ("train", "dev") for r in rows)
    scores = {float(c): f for c, f in head["dev_macro_f1_by_C"].items()}
    assert head["C"] == min(c for c, f in scores.items() if round(f, 6) == round(max(scores.values()), 6))
    assert result["macro_f1"] == pytest.approx(f1_score(frame["stance"], frame["predicted"], average="macro"))
    matrix = result["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == result["n"] == sum(r["split"] == "test" for r in rows)
    assert [sum(row) for row in matrix] == [result["per_class"][s]["n"] for s in ("support", "neutral", "oppose")]


def test_default_judge_of_the_embedded_study_reaches_the_target(tmp_path):
    """The judge config/config.yaml uses (SmolLM2 hidden states + head) on questions it was never fitted on."""
    plan = Plan(study_config.load(REPO / "config" / "config.yaml"), root=str(tmp_path))
    spec = plan.judge_spec(plan.judge)
    head, result, frame = head_and_eval(spec, tmp_path)
    check_consistent(head, result, frame)
    assert result["macro_f1"] >= 0.80, evaluate.report(result)
    assert (tmp_path / "model" / "config.json").is_file()  # the GGUF judge is kept dequantised beside its head
    verdicts = build({**spec, "head": str(tmp_path / "head.json")}, progress=False)(ITEMS)
    assert [max(v, key=lambda k: v[k] if k.startswith("p_") else -1) for v in verdicts] == \
        ["p_support", "p_neutral", "p_oppose"]


def test_embedding_judge_is_fitted_and_validated(tmp_path):
    spec = {"name": "minilm-stance", "kind": "embedding", "features": "pair+cross"}
    head, result, frame = head_and_eval(spec, tmp_path)
    check_consistent(head, result, frame)
    assert result["macro_f1"] > 0.45  # well above chance (1/3), well below the default judge: README
    for v in build({**spec, "head": str(tmp_path / "head.json")}, progress=False)(ITEMS):
        assert sum(v[f"p_{s}"] for s in ("support", "neutral", "oppose")) == pytest.approx(1.0)


def test_judge_eval_command_prints_and_writes_the_scores(tmp_path, capsys, tiny_config):
    from conftest import write_config

    from posttrain.cli import main as cli

    config = write_config(tmp_path / "tiny.yaml", tiny_config)
    cli(["judge-eval", "--config", str(config), "--judge", "tiny-head", "--results", str(tmp_path / "results")])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "results" / "judges" / "tiny-head" / "eval-test.json").read_text())
    assert f"macro-F1 {saved['macro_f1']:.3f}" in out and "confusion (rows true" in out
    assert (tmp_path / "results" / "judges" / "tiny-head" / "head.json").is_file()  # fitted on the way
    with pytest.raises(SystemExit, match="judge 'gpt-9' is not defined under judges"):
        cli(["judge-eval", "--config", str(config), "--judge", "gpt-9"])


def test_brier_and_expected_calibration_error_by_hand():
    # support judged 0.8 (right, confidence 0.8); neutral judged support at 0.5 (wrong, confidence 0.5)
    probs = np.array([[0.8, 0.1, 0.1], [0.5, 0.3, 0.2]])
    got = evaluate.calibration(["support", "neutral"], probs)
    assert got["brier"] == pytest.approx(((0.04 + 0.01 + 0.01) + (0.25 + 0.49 + 0.04)) / 2)
    assert got["ece"] == pytest.approx((abs(1 - 0.8) + abs(0 - 0.5)) / 2)  # two bins of one item each
    perfect = evaluate.calibration(["oppose"], np.array([[0.0, 0.0, 1.0]]))
    assert perfect == {"brier": 0.0, "ece": 0.0}


def test_the_real_answer_split_needs_its_labelled_set():
    with pytest.raises(labelled.LabelledSetError, match="real_answers"):
        evaluate.evaluate({"name": "x", "kind": "embedding"}, "real")
