"""Generation mode of the value probe: N sampled answers per question, batched, reproducible per sample.

Sampling is Gumbel-max with one torch.Generator per row: argmax(logits / T + Gumbel noise) is an exact draw
from softmax(logits / T) (after top-p), so `generate` runs greedily over left-padded batches with the KV
cache while every sample depends only on its own recorded seed, never on which batch it landed in.
The question is asked bare through the chat template (thinking off for Qwen3), the same at every checkpoint.
"""

from __future__ import annotations

import hashlib

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList


def sample_seed(base_seed: int, prompt_id: str, sample_id: int) -> int:
    """A 63-bit seed fixed by (base seed, prompt, sample): the same sample at every checkpoint and batch size."""
    digest = hashlib.sha256(f"{base_seed}:{prompt_id}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class PerRowGumbelSampler(LogitsProcessor):
    """Turns greedy decoding into sampling at `temperature` with top-p, with an RNG per batch row."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device):
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:  # keep the smallest set of tokens whose probability reaches top_p
            ordered, order = scores.sort(dim=-1, descending=True)
            mass_before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)
            drop = (mass_before >= self.top_p).scatter(-1, order, mass_before >= self.top_p)
            scores = scores.masked_fill(drop, float("-inf"))
        uniform = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device)
                               for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(min=1e-20)))
        return scores + gumbel


def answer_prompt(tokenizer, question: str) -> tuple[str, str]:
    """(model input, template tag). The tag is stored with every sample: a change of template is visible."""
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True, enable_thinking=False)
        return text, "chat/thinking-off" if "enable_thinking" in tokenizer.chat_template else "chat"
    return f"Question: {question}\nAnswer:", "plain"


def stop_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id or tokenizer.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids])
    end_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")  # ChatML end of turn (SmolLM2, Qwen3)
    if isinstance(end_turn, int) and end_turn != tokenizer.unk_token_id:
        ids.add(end_turn)
    return sorted(i for i in ids if i is not None)


@torch.inference_mode()
def sample(model, tokenizer, prompts: list[dict], settings: dict, progress: bool = True) -> list[dict]:
    """One row per (prompt, sample): prompt_id, sample_id, seed, response, n_tokens, template.

    settings: samples, temperature, top_p, max_new_tokens, batch_size, seed."""
    rendered = {p["id"]: answer_prompt(tokenizer, p["question"]) for p in prompts}
    jobs = [(p["id"], k, sample_seed(settings["seed"], p["id"], k))
            for p in prompts for k in range(settings["samples"])]
    lengths = {pid: len(tokenizer.encode(text, add_special_tokens=False)) for pid, (text, _) in rendered.items()}
    jobs.sort(key=lambda j: lengths[j[0]])  # similar lengths share a batch: little padding
    pad_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    stops = stop_ids(model, tokenizer)
    config = GenerationConfig(do_sample=False, max_new_tokens=settings["max_new_tokens"], eos_token_id=stops,
                              pad_token_id=tokenizer.pad_token_id)
    model.eval()
    rows = []
    bar = tqdm(total=len(jobs), desc="generation probe", unit="sample", disable=not progress)
    try:
        for start in range(0, len(jobs), settings["batch_size"]):
            batch = jobs[start : start + settings["batch_size"]]
            enc = tokenizer([rendered[pid][0] for pid, _, _ in batch], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            sampler = PerRowGumbelSampler([s for _, _, s in batch], settings["temperature"],
                                          settings.get("top_p", 1.0), model.device)
            out = model.generate(**enc, generation_config=config, logits_processor=LogitsProcessorList([sampler]))
            for (pid, k, seed), new in zip(batch, out[:, enc["input_ids"].shape[1] :].tolist()):
                n = next((i for i, t in enumerate(new) if t in stops), len(new))
                rows.append({"prompt_id": pid, "sample_id": k, "seed": seed, "n_tokens": n,
                             "response": tokenizer.decode(new[:n], skip_special_tokens=True).strip(),
                             "template": rendered[pid][1]})
            bar.update(len(batch))
    finally:
        tokenizer.padding_side = pad_side
        bar.close()
    order = {(p["id"], k): i for i, p in enumerate(prompts) for k in range(settings["samples"])}
    return sorted(rows, key=lambda r: order[(r["prompt_id"], r["sample_id"])])
