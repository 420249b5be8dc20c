"""benchmarks/ceiling.py counts FLOPs two ways, and its ratios mean something only if they agree: the analytic
count of what the kernels execute must equal torch's FlopCounterMode (with the CPU attention kernel added) on
real forwards of a tiny Llama, and on the two probes' own calls, padding, prefix cache and decode steps included."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from conftest import REPO

from posttrain import forced_choice
from posttrain.models import load_model, load_tokenizer
from posttrain.probes import generation, prompt_sets

_spec = importlib.util.spec_from_file_location("ceiling", REPO / "benchmarks" / "ceiling.py")
ceiling = importlib.util.module_from_spec(_spec)
sys.modules["ceiling"] = ceiling  # dataclasses look their module up while the class is built
_spec.loader.exec_module(ceiling)

SPEC = {"tiny": {"family": "llama", "num_hidden_layers": 3}}


@pytest.fixture(scope="module")
def tiny():
    tok = load_tokenizer(SPEC)
    model = load_model(SPEC, tok).eval()
    return model, tok, ceiling.Arch.of(model.config)


@torch.inference_mode()
def test_analytic_forward_count_matches_flop_counter_with_padding_cache_and_kept_logits(tiny):
    model, _, arch = tiny
    ids = torch.randint(5, 500, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, :4] = 0  # left padding: the kernels still run on it
    counted, log, _ = ceiling.count(lambda: model(input_ids=ids, attention_mask=mask))
    assert counted == ceiling.forward_flops(arch, 3, 7, 7, 3 * 7)
    assert log.attention == arch.attention(3, 7, 7) > 0  # the CPU attention kernel is counted, GQA included

    cache = model(input_ids=ids, attention_mask=mask, use_cache=True).past_key_values
    step = torch.randint(5, 500, (3, 2))
    mask2 = torch.cat([mask, torch.ones(3, 2, dtype=torch.long)], dim=1)
    counted, log, _ = ceiling.count(lambda: model(input_ids=step, attention_mask=mask2, past_key_values=cache,
                                               logits_to_keep=1))
    assert counted == ceiling.forward_flops(arch, 3, 2, 9, 3)
    assert sum(2 * m * k * n * c for (m, k, n), c in log.mm.items()) + log.attention == counted


def test_probe_bookkeeping_matches_what_the_probes_execute(tiny):
    model, tok, arch = tiny
    ps = prompt_sets.load("values-v1", 1)
    setup = ceiling.forced_setup(model, tok, ps, 4)
    counted, _, _ = ceiling.count(lambda: forced_choice.score(model, tok, ps, 4, progress=False))
    flops = ceiling.forced_flops(arch, setup)
    assert flops["executed"] == counted
    assert 0 < flops["useful"] < flops["executed"]  # prompts of different lengths: some padding

    settings = {"samples": 2, "temperature": 0.7, "top_p": 1.0, "max_new_tokens": 4, "batch_size": 4, "seed": 0}
    prompts = ps.prompts[:3]
    counted, _, rows = ceiling.count(lambda: generation.sample(model, tok, prompts, settings, progress=False))
    flops = ceiling.generation_flops(arch, ceiling.generation_batches(tok, prompts, settings, rows))
    assert flops["executed"] == counted
    assert 0 < flops["useful"] < flops["executed"]
