"""Tiny randomly initialised Llama / Qwen3 models and the tokenizer the project builds for them.

No hub downloads: the tokenizer is a byte-level BPE trained, deterministically, on the project's own text
(probe prompts, SFT sources) with a ChatML chat template, so tiny models run every stage for real.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

PACKAGE = Path(__file__).parent
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3's own template writes an empty thinking block when thinking is switched off; the tiny Qwen3 does the
# same, so the probes' fixed "thinking off" setting is exercised by the tests.
QWEN3_CHATML = CHATML.replace(
    "<|im_start|>assistant\n{% endif %}",
    "<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}",
)
# Words the value probe reads must exist as whole tokens even in a small vocabulary.
SEED_TEXT = "support neutral oppose Support Neutral Oppose SUPPORT NEUTRAL OPPOSE " * 50


def _corpus() -> list[str]:
    files = sorted((PACKAGE / "probes" / "prompt_sets").glob("*.jsonl")) + sorted(
        (PACKAGE / "data" / "sources").glob("*.jsonl")
    )
    return [SEED_TEXT] + [line for f in files for line in f.read_text().splitlines()]


def build_tokenizer(vocab_size: int = 1024, family: str = "llama") -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN3_CHATML if family == "qwen3" else CHATML,
    )


def build_model(spec: dict, tokenizer: PreTrainedTokenizerFast):
    """A randomly initialised model of the spec's family and size, seeded for reproducibility."""
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.get("hidden_size", 64),
        "num_hidden_layers": spec.get("num_hidden_layers", 2),
        "num_attention_heads": spec.get("num_attention_heads", 4),
        "num_key_value_heads": spec.get("num_key_value_heads", 2),
        "intermediate_size": spec.get("intermediate_size", 128),
        "max_position_embeddings": 2048,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,
    }
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[
        spec["family"]
    ]
    config = config_cls(**common, head_dim=common["hidden_size"] // common["num_attention_heads"])
    with torch.random.fork_rng():
        torch.manual_seed(spec.get("seed", 0))
        return model_cls(config)
