"""Forced-choice stance scoring: the probability the model gives each label word as its reply.

p(label) = sum over the label's distinct token sequences (every casing, with and without a leading space)
of the model's probability of that whole sequence right after the prompt; the three are then renormalised.
Single-token variants come from the prompt's last position; multi-token ones (e.g. "Opp"+"ose") from one
extra cached forward pass over the variant tokens, so every variant is scored exactly, in batches.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from posttrain.probes.prompt_sets import STANCES


def label_sequences(tokenizer, labels: dict[str, list[str]]) -> dict[str, list[tuple[int, ...]]]:
    """Distinct token sequences per label. A sequence that extends another of the same label is dropped
    (its probability is already inside the shorter one); any overlap between labels is an error."""
    seqs = {}
    for label in STANCES:
        found = {tuple(tokenizer.encode(v, add_special_tokens=False))
                 for word in labels[label] for v in (word, " " + word)}
        seqs[label] = sorted(s for s in found if not any(o != s and s[: len(o)] == o for o in found))
    for a in STANCES:
        for b in STANCES:
            for sa in seqs[a]:
                for sb in seqs[b]:
                    if a != b and sb[: len(sa)] == sa:
                        raise ValueError(f"label words are ambiguous for this tokenizer: {a} {sa} is a prefix "
                                         f"of {b} {sb}; choose other label variants in the prompt set")
    return seqs


def render(tokenizer, text: str) -> tuple[str, str]:
    """(model input, template used). The chat template when there is one; thinking off for Qwen3,
    identically at every checkpoint, since the template changes the stance read-out."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False), "chat"
    return f"{text}\nAnswer:", "plain"


@torch.no_grad()
def _score_batch(model, tokenizer, texts: list[str], seqs: dict, add_special: bool) -> torch.Tensor:
    """Log-probabilities (batch, n_sequences) of every label sequence after each text."""
    flat = [s for label in STANCES for s in seqs[label]]
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=add_special)
    ids, mask = enc.input_ids.to(model.device), enc.attention_mask.to(model.device)
    # Explicit positions: with left padding the default 0..L-1 would shift every shorter prompt.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    multi = [s for s in flat if len(s) > 1]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=bool(multi))
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    scores = torch.stack([first[:, s[0]] for s in flat], dim=1)
    if multi:
        b, m, width = ids.shape[0], len(multi), max(len(s) for s in multi) - 1
        cache = out.past_key_values
        cache.batch_repeat_interleave(m)  # row b*m + j continues prompt b with variant j
        pad = tokenizer.pad_token_id
        cont = torch.tensor([list(s[:-1]) + [pad] * (width - len(s) + 1) for s in multi], device=ids.device)
        cont = cont.repeat(b, 1)
        cont_mask = torch.cat([mask.repeat_interleave(m, 0), torch.ones_like(cont)], dim=1)
        cont_pos = positions[:, -1:].repeat_interleave(m, 0) + 1 + torch.arange(width, device=ids.device)
        later = torch.log_softmax(
            model(input_ids=cont, attention_mask=cont_mask, position_ids=cont_pos, past_key_values=cache)
            .logits.float(), dim=-1).view(b, m, width, -1)
        for j, s in enumerate(multi):
            k = flat.index(s)
            for i, tok in enumerate(s[1:]):
                scores[:, k] += later[:, j, i, tok]
    return scores


def score(model, tokenizer, prompt_set, batch_size: int = 16, progress: bool = True) -> list[dict]:
    """One row per prompt: p_support, p_neutral, p_oppose (renormalised), label_mass (before renormalising)."""
    seqs = label_sequences(tokenizer, prompt_set.labels)
    rendered = [render(tokenizer, prompt_set.instruction.format(question=p["question"])) for p in prompt_set.prompts]
    add_special = rendered[0][1] == "plain"  # a chat template writes its own special tokens
    lengths = [len(tokenizer.encode(t, add_special_tokens=add_special)) for t, _ in rendered]
    order = sorted(range(len(rendered)), key=lambda i: lengths[i])  # similar lengths batch with little padding
    model.eval()
    rows = [None] * len(rendered)
    bar = tqdm(total=len(order), desc="forced-choice probe", unit="prompt", disable=not progress)
    owner = [label for label in STANCES for _ in seqs[label]]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        probs = _score_batch(model, tokenizer, [rendered[i][0] for i in idx], seqs, add_special).exp()
        for row, i in zip(probs, idx):
            per_label = {lab: float(sum(p for p, o in zip(row.tolist(), owner) if o == lab)) for lab in STANCES}
            mass = sum(per_label.values())
            rows[i] = {
                **{f"p_{lab}": per_label[lab] / mass for lab in STANCES},
                "label_mass": mass,
                "template": rendered[i][1],
            }
        bar.update(len(idx))
    bar.close()
    return rows
