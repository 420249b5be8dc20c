"""The generation probe: exact sampling, samples that depend only on their seed (not on the batch), and the
chat template with thinking off recorded for every sample."""

import torch

from posttrain.models import load_model, load_tokenizer
from posttrain.probes import generation, prompt_sets

SETTINGS = {"samples": 2, "temperature": 0.9, "top_p": 1.0, "max_new_tokens": 12, "batch_size": 4, "seed": 7}


def test_gumbel_sampler_draws_from_the_tempered_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    temperature, n = 0.7, 20000
    expected = torch.softmax(logits[0] / temperature, -1)
    counts = torch.zeros(4)
    sampler = generation.PerRowGumbelSampler(list(range(n)), temperature, 1.0, "cpu")
    picks = sampler(None, logits.repeat(n, 1)).argmax(-1)
    counts += torch.bincount(picks, minlength=4)
    assert torch.allclose(counts / n, expected, atol=0.012)


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    n = 5000
    sampler = generation.PerRowGumbelSampler(list(range(n)), 1.0, 0.75, "cpu")
    picks = sampler(None, logits.repeat(n, 1)).argmax(-1)
    assert set(picks.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.75: tokens 2 and 3 are cut
    assert abs((picks == 0).float().mean().item() - 0.5 / 0.8) < 0.03


def test_samples_do_not_depend_on_the_batch_and_record_the_template():
    spec = {"tiny": {"family": "qwen3", "seed": 1}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    prompts = prompt_sets.load("values-v1", 1).prompts[:5]  # different lengths: left padding is exercised
    batched = generation.sample(model, tok, prompts, SETTINGS, progress=False)
    alone = generation.sample(model, tok, prompts, {**SETTINGS, "batch_size": 1}, progress=False)
    assert [r["response"] for r in batched] == [r["response"] for r in alone]
    assert [(r["prompt_id"], r["sample_id"]) for r in batched] == [(p["id"], k) for p in prompts for k in range(2)]
    assert len({r["seed"] for r in batched}) == 10
    assert all(r["template"] == "chat/thinking-off" and 0 <= r["n_tokens"] <= 12 for r in batched)
    assert len({r["response"] for r in batched}) > 5  # a random model at T=0.9 says different things
    reseeded = generation.sample(model, tok, prompts, {**SETTINGS, "seed": 8}, progress=False)
    assert [r["response"] for r in reseeded] != [r["response"] for r in batched]
    assert tok.padding_side == load_tokenizer(spec).padding_side  # restored after generating
