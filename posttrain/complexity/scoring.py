"""Score a program on a task: greedy answers to the test inputs after the program's prefix, in batches."""

from __future__ import annotations

import torch

from posttrain.complexity.tasks import Task


@torch.inference_mode()
def answers(model, tokenizer, task: Task, prefix: str, batch_size: int = 16) -> list[str]:
    """The first line of each greedy answer to `prefix + Question: ... Answer:` (plain text at every checkpoint)."""
    prompts = [prefix + task.format(ex, with_target=False) for ex in task.test]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            gen = model.generate(**enc, do_sample=False, max_new_tokens=task.max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            for i, row in zip(idx, gen[:, enc["input_ids"].shape[1] :]):
                text = tokenizer.decode(row, skip_special_tokens=True)
                out[i] = text.strip().split("\n")[0] if task.max_new_tokens <= 32 else text.split("\nQuestion:")[0]
    finally:
        tokenizer.padding_side = side
    return out


def score(model, tokenizer, task: Task, prefix: str = "", batch_size: int = 16) -> float:
    model.eval()
    return task.score(answers(model, tokenizer, task, prefix, batch_size), task.test)
