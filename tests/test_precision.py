"""Precision as a setting: bf16 autocast really runs (it changes the numbers a little, never a lot), an fp32 judge
nested in a bf16 probe stays fp32, every result row says which precision made it, and a bad value is named."""

import contextlib

import numpy as np
import pytest

from posttrain import precision
from posttrain.config import ConfigError, validate
from posttrain.judges import build
from posttrain.models import load_model, load_tokenizer
from posttrain.probes import values

SPEC = {"tiny": {"family": "llama"}}
ITEMS = [{"question": "Should the death penalty be abolished?", "response": r}
         for r in ("Yes, it should go.", "It is a hard question with views on both sides.", "No, keep it.")]


@pytest.fixture(scope="module")
def tiny():
    tokenizer = load_tokenizer(SPEC)
    return load_model(SPEC, tokenizer), tokenizer


def probe(model, tokenizer, forced: str):
    spec = {"prompt_set": "values-v1", "modes": ["forced_choice"], "batch_size": 8, "max_prompts_per_topic": 1,
            "precision": {"forced_choice": forced}}
    return values.probe(model, tokenizer, spec, "r", 0, progress=False)


def test_bf16_forced_choice_is_autocast_close_to_fp32_and_recorded(tiny):
    fp32, bf16 = probe(*tiny, "fp32"), probe(*tiny, "bf16")
    assert set(fp32["precision"]) == {"fp32"} and set(bf16["precision"]) == {"bf16"}
    diff = np.abs(fp32[["p_support", "p_neutral", "p_oppose"]].to_numpy()
                  - bf16[["p_support", "p_neutral", "p_oppose"]].to_numpy())
    assert diff.max() > 0  # bf16 really ran: products rounded to 8 mantissa bits move p a little
    assert diff.mean() < 0.01  # but the fp32 residual stream and softmax keep it close
    auto = probe(*tiny, "auto")
    assert set(auto["precision"]) == {precision.resolve("auto", "cpu", "forced_choice probe")}


def test_an_fp32_judge_inside_a_bf16_region_stays_fp32(tiny):
    judge = build({"name": "tiny-lm", "kind": "lm", "model_spec": SPEC, "batch_size": 2, "precision": "fp32"},
                  progress=False)
    plain = judge(ITEMS)
    with precision.autocast("bf16", tiny[0]):  # e.g. the complexity probe scoring its answers through the judge
        nested = judge(ITEMS)
    assert nested == plain
    judge.precision = "bf16"
    assert judge(ITEMS) != plain


def test_auto_falls_back_with_one_line_where_bf16_is_not_native(capsys):
    native, found = precision.native_bf16("cpu")
    precision.resolve.cache_clear()
    chosen = precision.resolve("auto", "cpu", "the test part")
    assert chosen == ("bf16" if native else "fp32")
    out = capsys.readouterr().out
    assert out.count("precision:") == (0 if native else 1) and (native or found in out)
    precision.resolve("auto", "cpu", "the test part")  # resolved once per part: no second line
    assert "precision:" not in capsys.readouterr().out


def test_a_bad_precision_is_named(tiny_config):
    tiny_config["probes"]["values"]["precision"] = {"forced_choice": "fp8"}
    with pytest.raises(ConfigError, match=r"probes\.values\.precision\.forced_choice"):
        validate(tiny_config)
    with pytest.raises(ValueError, match="'fp8' is not one of"):
        precision.resolve("fp8", "cpu", "x")



def test_emulated_bf16_has_the_size_of_bf16s_error_and_leaves_fp32_alone(tiny):
    import torch

    model, tokenizer = tiny
    ids = tokenizer(["Should the death penalty be abolished? It is hard."] * 2, return_tensors="pt").input_ids

    def logp(bf16: bool, emulate: bool):
        emulation = precision.emulated_bf16() if emulate else contextlib.nullcontext()
        with torch.inference_mode(), emulation, precision.autocast("bf16" if bf16 else "fp32", model):
            return model(ids).logits.float().log_softmax(-1)

    fp32, real, emulated = logp(False, False), logp(True, False), logp(True, True)
    assert torch.equal(logp(False, True), fp32)  # nothing in fp32 is touched (an fp32 judge inside a bf16 probe)
    real_error, emulated_error = (real - fp32).abs().mean(), (emulated - fp32).abs().mean()
    assert emulated_error > 0 and not torch.equal(emulated, real)  # it ran, and it is not the CPU's own kernel
    assert 0.5 < emulated_error / real_error < 2  # but its error is bf16's size
