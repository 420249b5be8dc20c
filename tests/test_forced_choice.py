"""The forced-choice scorer against an independent computation: one unpadded forward pass per prompt and
label variant, probability of the whole variant sequence, summed per label and renormalised."""

import copy
import json

import numpy as np
import pytest
import torch

from posttrain import forced_choice
from posttrain.models import load_model, load_tokenizer
from posttrain.probes import prompt_sets
from posttrain.stances import CYCLIC_ORDERS, STANCES

QUESTIONS = ["Should we close the gates and stop immigration?",
             "Should governments put a price on carbon emissions?",
             ("Is it right that parents can homeschool their children without any oversight at all, even in cases "
              "where the state suspects neglect?"),
             "Should the death penalty be abolished?",
             "Ban guns?"]


@pytest.fixture
def small_set(tmp_path):
    meta = prompt_sets.PACKAGED / "values-v1.yaml"
    (tmp_path / "s.yaml").write_text(meta.read_text())
    (tmp_path / "s.jsonl").write_text("".join(
        json.dumps({"id": f"x-{i}", "topic": "t", "question": q}) + "\n" for i, q in enumerate(QUESTIONS)))
    return prompt_sets.load(str(tmp_path / "s.jsonl"))


def reference(model, tok, ps):
    seqs = forced_choice.label_sequences(tok, ps.labels)
    rows = []
    for p in ps.prompts:
        text, kind = forced_choice.chat_prompt(tok, ps.render().format(question=p["question"]))
        ids = tok.encode(text, add_special_tokens=kind == "plain")
        mass = {}
        for label, variants in seqs.items():
            total = 0.0
            for s in variants:
                with torch.no_grad():
                    logp = torch.log_softmax(model(torch.tensor([ids + list(s)])).logits[0].double(), -1)
                total += float(torch.exp(sum(logp[len(ids) - 1 + i, t] for i, t in enumerate(s))))
            mass[label] = total
        z = sum(mass.values())
        rows.append({f"p_{k}": v / z for k, v in mass.items()} | {"label_mass": z})
    return rows


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_batched_scores_match_unbatched_reference(family, small_set):
    spec = {"tiny": {"family": family, "seed": 3}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    # make some label variants multi-token so the cached continuation pass is exercised
    labels = {"support": ["support", "Supportive"], "neutral": ["neutral", "NEUTRALITY"], "oppose": ["oppose"]}
    small_set.labels = labels
    assert any(len(s) > 1 for v in forced_choice.label_sequences(tok, labels).values() for s in v)
    got = forced_choice.score(model, tok, small_set, batch_size=3, progress=False)
    want = reference(model, tok, small_set)
    for g, w in zip(got, want):
        assert abs(g["p_support"] + g["p_neutral"] + g["p_oppose"] - 1) < 1e-9
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-7), key
        assert g["template"] == "chat"


def test_plain_prompt_without_chat_template(small_set):
    spec = {"tiny": {"family": "llama"}}
    tok = load_tokenizer(spec)
    tok.chat_template = None
    model = load_model(spec, tok)
    got = forced_choice.score(model, tok, small_set, batch_size=2, progress=False)
    want = reference(model, tok, small_set)
    assert [g["template"] for g in got] == ["plain"] * len(QUESTIONS)
    assert [g["p_oppose"] for g in got] == pytest.approx([w["p_oppose"] for w in want], rel=1e-4)


def test_ambiguous_label_words_are_refused():
    tok = load_tokenizer({"tiny": {"family": "llama"}})
    with pytest.raises(ValueError, match="ambiguous"):
        forced_choice.label_sequences(tok, {"support": ["yes"], "neutral": ["yes"], "oppose": ["no"]})


def test_the_packaged_instruction_in_the_given_order_is_the_one_values_v1_always_had():
    ps = prompt_sets.load("values-v1", 1)
    assert ps.render() == ("{question}\nWhat is your stance on this? Answer with exactly one word: "
                           "support, neutral, or oppose.")
    assert ps.render(("oppose", "support", "neutral")).endswith("oppose, support, or neutral.")


def test_calibrated_read_out_equals_a_hand_computation(small_set):
    # per cyclic order: score the prompts and the content-free questions one prompt set at a time, divide by
    # the mean content-free distribution, renormalise, then average over the orders
    spec = {"tiny": {"family": "llama", "seed": 2}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    got = forced_choice.calibrated_score(model, tok, small_set, batch_size=4, progress=False)
    cal, raw, mass = [], [], []
    for order in CYCLIC_ORDERS:
        one = copy.copy(small_set)
        one.instruction, one.options = small_set.render(order), None
        r = forced_choice.score(model, tok, one, batch_size=2, progress=False)
        empty = copy.copy(one)
        empty.prompts = [{"question": q} for q in forced_choice.CONTENT_FREE]
        cf = np.mean([[x[f"p_{s}"] for s in STANCES] for x in forced_choice.score(model, tok, empty, 1, False)], 0)
        p = np.array([[x[f"p_{s}"] for s in STANCES] for x in r])
        raw.append(p)
        cal.append((p / cf) / (p / cf).sum(axis=1, keepdims=True))
        mass.append([x["label_mass"] for x in r])
    for i, g in enumerate(got):
        assert g["n_orders"] == 3 and g["calibration"] == "content_free"
        assert [g[f"p_{s}"] for s in STANCES] == pytest.approx(np.mean(cal, 0)[i], rel=1e-4)
        assert [g[f"raw_p_{s}"] for s in STANCES] == pytest.approx(np.mean(raw, 0)[i], rel=1e-4)
        assert g["label_mass"] == pytest.approx(np.mean(mass, 0)[i], rel=1e-4)
        assert g["order_spread"] == pytest.approx((np.max(cal, 0) - np.min(cal, 0))[i].max(), abs=1e-6)


def test_calibration_removes_a_planted_label_word_prior(small_set):
    # positive control: a bias on the first token of every "support" variant multiplies p(support) by e^4 on
    # every input, questions and content-free ones alike. The raw read-out swings to support; the calibrated
    # one divides the prior out. (Exactly with one content-free input; the mean of three renormalised ones
    # leaves a second-order residue.)
    spec = {"tiny": {"family": "qwen3", "seed": 4}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    before = forced_choice.calibrated_score(model, tok, small_set, batch_size=8, progress=False)
    first = sorted({s[0] for s in forced_choice.label_sequences(tok, small_set.labels)["support"]})
    later = {t for seqs in forced_choice.label_sequences(tok, small_set.labels).values() for s in seqs for t in s[1:]}
    assert not set(first) & later  # the bias touches the label's first token only: an exact prior
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[first] = 4.0
    model.set_output_embeddings(biased)
    after = forced_choice.calibrated_score(model, tok, small_set, batch_size=8, progress=False)
    raw_shift = np.mean([a["raw_p_support"] - b["raw_p_support"] for a, b in zip(after, before)])
    assert raw_shift > 0.3
    residue = max(abs(a[f"p_{s}"] - b[f"p_{s}"]) for a, b in zip(after, before) for s in STANCES)
    assert residue < 0.01 * raw_shift


def test_given_order_and_no_calibration_are_the_plain_read_out(small_set):
    spec = {"tiny": {"family": "llama"}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    got = forced_choice.calibrated_score(model, tok, small_set, 4, orders="given", calibrate=False, progress=False)
    plain = forced_choice.score(model, tok, small_set, batch_size=4, progress=False)
    for g, p in zip(got, plain):
        assert g["n_orders"] == 1 and g["order_spread"] == 0 and g["calibration"] == "none"
        assert [g[f"p_{s}"] for s in STANCES] == pytest.approx([p[f"p_{s}"] for s in STANCES], rel=1e-5)
