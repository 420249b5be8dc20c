"""Forced-choice stance scoring: the probability the model gives each label word as its reply. The value
probe reads a checkpoint's own stance this way; an LM judge reads its verdict on an answer the same way.

p(label) = sum over the label's distinct token sequences (every casing, with and without a leading space)
of the model's probability of that whole sequence right after the prompt; the three are then renormalised.
Single-token variants come from the prompt's last position; multi-token ones (e.g. "Opp"+"ose") from one
extra cached forward pass over the variant tokens, so every variant is scored exactly, in batches.
The prompt prefix all questions share (the chat template's system turn) is computed once per checkpoint.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from posttrain.stances import CYCLIC_ORDERS, STANCES, PromptSet


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


def chat_prompt(tokenizer, text: str) -> tuple[str, str]:
    """(model input, template used). The chat template when there is one; thinking off for Qwen3,
    identically at every checkpoint, since the template changes the stance read-out."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False), "chat"
    return f"{text}\nAnswer:", "plain"


def _common_prefix(ids: list[list[int]]) -> int:
    """Length of the token prefix every prompt shares (the chat template's system turn), leaving each
    prompt at least one token of its own."""
    n = min(len(x) for x in ids) - 1
    for i in range(max(n, 0)):
        if any(x[i] != ids[0][i] for x in ids):
            return i
    return max(n, 0)


@torch.inference_mode()
def _score_batch(model, ids: list[list[int]], prefix, pad: int, flat: list[tuple[int, ...]]) -> torch.Tensor:
    """Log-probabilities (batch, n_sequences) of every label sequence after each prompt.

    `prefix` is (length, cache) of the shared prompt prefix, computed once per checkpoint; each batch feeds
    only its prompts' own tokens, left-padded, after a copy of that cache."""
    device = model.device
    plen, pcache = prefix
    b, width = len(ids), max(len(x) for x in ids) - plen
    suffix = torch.tensor([[pad] * (width - len(x) + plen) + x[plen:] for x in ids], device=device)
    own_len = torch.tensor([len(x) - plen for x in ids], device=device)
    own = torch.arange(width, device=device)[None, :] >= (width - own_len)[:, None]  # not left padding
    mask = torch.cat([torch.ones(b, plen, dtype=torch.long, device=device), own.long()], dim=1)
    # Explicit positions: with left padding the default 0..L-1 would shift every shorter prompt.
    positions = (plen + own.long().cumsum(-1) - 1).clamp(min=plen)
    cache = None
    if plen:
        cache = copy.deepcopy(pcache)
        cache.batch_repeat_interleave(b)
    multi = [s for s in flat if len(s) > 1]
    out = model(input_ids=suffix, attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=bool(multi), logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    scores = torch.stack([first[:, s[0]] for s in flat], dim=1)
    if multi:  # one cached pass over every multi-token variant: row b*m + j continues prompt b with variant j
        m, span = len(multi), max(len(s) for s in multi) - 1
        cache = out.past_key_values
        cache.batch_repeat_interleave(m)
        cont = torch.tensor([list(s[:-1]) + [pad] * (span - len(s) + 1) for s in multi], device=device).repeat(b, 1)
        cont_mask = torch.cat([mask.repeat_interleave(m, 0), torch.ones_like(cont)], dim=1)
        cont_pos = positions[:, -1:].repeat_interleave(m, 0) + 1 + torch.arange(span, device=device)
        later = torch.log_softmax(
            model(input_ids=cont, attention_mask=cont_mask, position_ids=cont_pos, past_key_values=cache)
            .logits.float(), dim=-1).view(b, m, span, -1)
        for j, s in enumerate(multi):
            k = flat.index(s)
            for i, tok in enumerate(s[1:]):
                scores[:, k] += later[:, j, i, tok]
    return scores


def score(model, tokenizer, prompt_set, batch_size: int = 16, progress: bool = True) -> list[dict]:
    """One row per prompt: p_support, p_neutral, p_oppose (renormalised), label_mass (before renormalising)."""
    seqs = label_sequences(tokenizer, prompt_set.labels)
    flat = [s for label in STANCES for s in seqs[label]]
    owner = [label for label in STANCES for _ in seqs[label]]
    rendered = [chat_prompt(tokenizer, prompt_set.render().format(**p)) for p in prompt_set.prompts]
    add_special = rendered[0][1] == "plain"  # a chat template writes its own special tokens
    ids = [tokenizer.encode(text, add_special_tokens=add_special) for text, _ in rendered]
    model.eval()
    plen = _common_prefix(ids)
    prefix = (plen, None)
    if plen:
        with torch.inference_mode():
            prefix = (plen, model(input_ids=torch.tensor([ids[0][:plen]], device=model.device),
                                  use_cache=True).past_key_values)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths batch with little padding
    rows = [None] * len(ids)
    bar = tqdm(total=len(order), desc="forced-choice probe", unit="prompt", disable=not progress)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        probs = _score_batch(model, [ids[i] for i in idx], prefix, tokenizer.pad_token_id, flat).exp()
        for row, i in zip(probs.tolist(), idx):
            per_label = {lab: sum(p for p, o in zip(row, owner) if o == lab) for lab in STANCES}
            mass = sum(per_label.values())
            rows[i] = {
                **{f"p_{lab}": per_label[lab] / mass for lab in STANCES},
                "label_mass": mass,
                "template": rendered[i][1],
            }
        bar.update(len(idx))
    bar.close()
    return rows


# Content-free questions (Zhao et al. 2021, "Calibrate before use"): what the model answers when there is no
# question tells its prior over the label words in this format, which calibration divides out.
CONTENT_FREE = ("N/A", "", "[MASK]")


def calibrated_score(model, tokenizer, prompt_set: PromptSet, batch_size: int = 16, orders: str = "cyclic",
                     calibrate: bool = True, progress: bool = True) -> list[dict]:
    """The value probe's forced-choice read-out: one row per prompt.

    Every prompt is scored with its options listed in each cyclic order ("support, neutral, or oppose",
    "neutral, oppose, or support", ...; one order, as written, with `orders="given"` or when the instruction
    lists no options), and so are the CONTENT_FREE questions. Per order, the prompt's label distribution is
    divided by the mean content-free one and renormalised (contextual calibration); then averaged over orders.
    Row: p_* (calibrated, or raw when calibrate is off), raw_p_* (uncalibrated, averaged over orders),
    cf_* (the content-free distribution, averaged over orders), label_mass (mean over orders),
    content_free_label_mass (the content-free inputs' label mass, mean over inputs and orders: how much of the
    model's next-token probability the label words get when there is no question), n_orders,
    order_spread (the largest change of any p_* between orders: how much the option order moves it)."""
    chosen = CYCLIC_ORDERS if orders == "cyclic" and prompt_set.options else (STANCES,)
    n = len(prompt_set.prompts)
    texts = []
    for order in chosen:
        instruction = prompt_set.render(order)
        texts += [instruction.format(**p) for p in prompt_set.prompts]
        texts += [instruction.format(question=q) for q in CONTENT_FREE]
    every = PromptSet(prompt_set.name, "{text}", prompt_set.labels, [{"text": t} for t in texts])
    rows = score(model, tokenizer, every, batch_size, progress)
    p = np.array([[r[f"p_{s}"] for s in STANCES] for r in rows]).reshape(len(chosen), n + len(CONTENT_FREE), 3)
    every_mass = np.array([r["label_mass"] for r in rows]).reshape(len(chosen), -1)
    mass, cf_mass = every_mass[:, :n], float(every_mass[:, n:].mean())
    raw, cf = p[:, :n], p[:, n:].mean(axis=1, keepdims=True)  # (order, prompt, stance), (order, 1, stance)
    read = raw / cf / (raw / cf).sum(axis=-1, keepdims=True) if calibrate else raw
    spread = (read.max(axis=0) - read.min(axis=0)).max(axis=-1)
    out = []
    for i in range(n):
        out.append({**{f"p_{s}": float(read[:, i, j].mean()) for j, s in enumerate(STANCES)},
                    **{f"raw_p_{s}": float(raw[:, i, j].mean()) for j, s in enumerate(STANCES)},
                    **{f"cf_{s}": float(cf[:, 0, j].mean()) for j, s in enumerate(STANCES)},
                    "label_mass": float(mass[:, i].mean()), "content_free_label_mass": cf_mass,
                    "n_orders": len(chosen),
                    "order_spread": float(spread[i]), "calibration": "content_free" if calibrate else "none",
                    "template": rows[i]["template"]})
    return out
