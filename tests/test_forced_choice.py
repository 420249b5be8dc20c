"""The forced-choice scorer against an independent computation: one unpadded forward pass per prompt and
label variant, probability of the whole variant sequence, summed per label and renormalised."""

import json

import pytest
import torch

from posttrain import forced_choice
from posttrain.models import load_model, load_tokenizer
from posttrain.probes import prompt_sets

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
        text, kind = forced_choice.chat_prompt(tok, ps.instruction.format(question=p["question"]))
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
