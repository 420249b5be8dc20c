"""Code lengths of text under a checkpoint: the ideal figure and a real range coder that achieves it.

Every text or data a complexity program carries costs its code length under the checkpoint being measured:
    bits(text) = sum over its tokens of -log2 p(token | start, earlier tokens)
where `start` is the model's BOS token (or EOS when it has none) and the message ends with EOS, so a
decoder knows where it stops. `encode` / `decode` run constriction's range coder on exactly those
distributions, computed token by token with the KV cache on both sides (bit-identical logits on the same
machine), which shows the figure is achievable: the message round-trips and its length stays within a few
words of the sum.
"""

from __future__ import annotations

import constriction
import numpy as np
import torch


def start_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def message_ids(tokenizer, text: str) -> list[int]:
    """The symbols coded for a text: its tokens, then EOS."""
    return tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]


@torch.inference_mode()
def code_length_bits(model, tokenizer, texts: list[str], batch_size: int = 8) -> list[float]:
    """Ideal code length in bits of each text (tokens + EOS), one batched forward pass per batch."""
    start = start_id(tokenizer)
    seqs = [[start, *message_ids(tokenizer, t)] for t in texts]
    out = []
    model.eval()
    for i in range(0, len(seqs), batch_size):
        batch = seqs[i : i + batch_size]
        width = max(map(len, batch))
        ids = torch.tensor([s + [tokenizer.pad_token_id or 0] * (width - len(s)) for s in batch])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
        logp = torch.log_softmax(model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))
                                 .logits.float(), dim=-1)
        picked = logp[:, :-1].gather(-1, ids[:, 1:, None].to(model.device))[..., 0] * mask[:, 1:].to(model.device)
        out += (-picked.sum(-1) / np.log(2)).tolist()
    return out


class _Stepper:
    """Next-token distributions, one token at a time with the KV cache: identical on both coder sides."""

    def __init__(self, model, tokenizer):
        self.model, self.cache = model, None
        self.next_input = start_id(tokenizer)

    @torch.inference_mode()
    def __call__(self) -> np.ndarray:
        out = self.model(input_ids=torch.tensor([[self.next_input]], device=self.model.device),
                         past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return torch.softmax(out.logits[0, -1].double(), -1).cpu().numpy().astype(np.float32)

    def feed(self, token: int) -> None:
        self.next_input = token


def encode(model, tokenizer, text: str) -> tuple[np.ndarray, float]:
    """(compressed words, ideal bits under the same token-by-token distributions)."""
    model.eval()
    encoder, step, ideal = constriction.stream.queue.RangeEncoder(), _Stepper(model, tokenizer), 0.0
    for token in message_ids(tokenizer, text):
        p = step()
        encoder.encode(token, constriction.stream.model.Categorical(p, perfect=False))
        ideal -= float(np.log2(p[token] / p.sum()))
        step.feed(token)
    return encoder.get_compressed(), ideal


def decode(model, tokenizer, compressed: np.ndarray, max_tokens: int = 100_000) -> str:
    model.eval()
    decoder, step, tokens = constriction.stream.queue.RangeDecoder(compressed), _Stepper(model, tokenizer), []
    for _ in range(max_tokens):
        token = int(decoder.decode(constriction.stream.model.Categorical(step(), perfect=False)))
        if token == tokenizer.eos_token_id:
            return tokenizer.decode(tokens)
        tokens.append(token)
        step.feed(token)
    raise ValueError(f"no end of message within {max_tokens} tokens")
