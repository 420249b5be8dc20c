"""The harness every complexity program shares: put a test input in front of the checkpoint, with what the
program carries (an instruction, worked examples), generate greedily, cut the answer, score each item.

Formats. `chat`: the checkpoint's own chat template, as in its training and in the value probe; an instruction
opens the user turn, worked examples are earlier user / assistant turns. `plain`: `Question: ... / Answer:`
text, the instruction and examples as plain text before it. `chat` falls back to `plain` for a checkpoint
without a template; the rows record the format used.
"""

from __future__ import annotations

import torch

from posttrain.complexity.tasks import Task
from posttrain.probes.generation import stop_ids

FORMATS = ("chat", "plain")


def resolve_format(tokenizer, wanted: str = "chat") -> str:
    if wanted not in FORMATS:
        raise ValueError(f"complexity format {wanted!r} is not one of {', '.join(FORMATS)}")
    return "chat" if wanted == "chat" and tokenizer.chat_template else "plain"


def carried_text(task: Task, instruction: str = "", examples: tuple[dict, ...] = ()) -> str:
    """What a prompt program carries, as text: its payload is this text's code length under the checkpoint,
    the same in either format (the harness, not the program, lays it out as turns)."""
    return instruction + "".join(task.format(e) + "\n\n" for e in examples)


def training_text(tokenizer, task: Task, example: dict, fmt: str) -> str:
    """One train example as the checkpoint is trained on it (prequential coding codes exactly this)."""
    if fmt == "chat":
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": example["input"]}, {"role": "assistant", "content": example["target"]}],
            tokenize=False, enable_thinking=False)
    return task.format(example)


def prompt(tokenizer, task: Task, example: dict, fmt: str, instruction: str = "",
           examples: tuple[dict, ...] = ()) -> str:
    if fmt == "plain":
        return carried_text(task, instruction, examples) + task.format(example, with_target=False)
    turns = []
    for e in examples:
        turns += [{"role": "user", "content": e["input"]}, {"role": "assistant", "content": e["target"]}]
    turns.append({"role": "user", "content": instruction + example["input"]})
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True, enable_thinking=False)


@torch.inference_mode()
def answers(model, tokenizer, task: Task, fmt: str = "plain", instruction: str = "", examples: tuple = (),
            batch_size: int = 16) -> list[str]:
    """Each test input's greedy answer: its first line when the task wants a short answer, else up to a
    following `Question:` (plain) or the end of the turn (chat)."""
    prompts = [prompt(tokenizer, task, ex, fmt, instruction, examples) for ex in task.test]
    stops = stop_ids(model, tokenizer)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            gen = model.generate(**enc, do_sample=False, max_new_tokens=task.max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=stops)
            for i, row in zip(idx, gen[:, enc["input_ids"].shape[1] :].tolist()):
                row = row[: next((k for k, t in enumerate(row) if t in stops), len(row))]
                text = tokenizer.decode(row, skip_special_tokens=True)
                out[i] = text.strip().split("\n")[0] if task.max_new_tokens <= 32 else text.split("\nQuestion:")[0]
    finally:
        tokenizer.padding_side = side
    return out


def item_scores(model, tokenizer, task: Task, fmt: str = "plain", instruction: str = "", examples: tuple = (),
                batch_size: int = 16) -> list[float]:
    model.eval()
    return [float(s) for s in task.score_items(
        answers(model, tokenizer, task, fmt, instruction, examples, batch_size), task.test)]


def score(model, tokenizer, task: Task, fmt: str = "plain", instruction: str = "", examples: tuple = (),
          batch_size: int = 16) -> float:
    model.eval()
    return task.score(answers(model, tokenizer, task, fmt, instruction, examples, batch_size), task.test)
