"""Prequential subset training: LoRA trained in one streaming pass over the task's train examples in fixed
batches; each batch is coded by the model before the update on it (whole sequences in the probe's format,
EOS included), so the first N examples cost the cumulative bits up to N. The adapter is scored at
N = batch x 2^j: every N comes out of one run. The LoRA is removed afterwards, leaving the checkpoint as it was."""

import torch
from peft import LoraConfig, get_peft_model

from posttrain.complexity import coding, scoring
from posttrain.complexity.program_length import driver

LN2 = 0.6931471805599453


def batch_bits_and_loss(model, tokenizer, texts):
    seqs = [[coding.start_id(tokenizer), *coding.message_ids(tokenizer, t)] for t in texts]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s in seqs], device=model.device)
    mask = torch.tensor([[1.0] * len(s) + [0.0] * (width - len(s)) for s in seqs], device=model.device)
    logits = model(input_ids=ids, attention_mask=mask.long()).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none") * mask[:, 1:]
    return nll.sum().item() / LN2, nll.sum() / mask[:, 1:].sum()


def snapshots(batch, n_max):
    n, out = batch, []
    while n <= n_max:
        out.append(n)
        n *= 2
    return out


def run(model, tokenizer, task, settings, on_batch=None):
    b, lr, fmt = settings.get("batch", 8), settings.get("lr", 1e-4), settings["format"]
    at = snapshots(b, min(settings.get("max_examples", 64), len(task.train)))
    torch.manual_seed(settings.get("seed", 0))
    lora = get_peft_model(model, LoraConfig(r=settings.get("r", 8), lora_alpha=settings.get("alpha", 8),
                                            lora_dropout=0.0, target_modules="all-linear"))
    optimizer = torch.optim.Adam([p for p in lora.parameters() if p.requires_grad], lr=lr)
    total, rows = 0.0, []
    try:
        for start in range(0, at[-1] if at else 0, b):
            lora.train()
            texts = [scoring.training_text(tokenizer, task, e, fmt) for e in task.train[start : start + b]]
            bits, loss = batch_bits_and_loss(lora, tokenizer, texts)
            total += bits  # coded before the update on this batch
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if on_batch:
                on_batch(start + b, total)
            if start + b in at:
                rows.append({"estimator": "prequential", "setting": f"N={start + b},lr={lr:g}", "payload_bits": total,
                             **driver(__file__),
                             "item_scores": scoring.item_scores(lora, tokenizer, task, fmt,
                                                                batch_size=settings.get("batch_size", 16))})
    finally:
        lora.unload()  # the checkpoint's own weights, without the adapter
    return rows
