"""Generation mode on vLLM (`probes.values.generation.engine: vllm`): the rows of posttrain.probes.generation,
drawn by vLLM's sampler. The cluster's engine for the value probe's answers (docs/engines.md).

The same model input (generation.answer_prompt's token ids, passed as ids so both engines read identical
tokens), the same stop tokens, temperature, top-p and token budget, and the same row columns. Each sample's seed
(generation.sample_seed) is the request's seed where the platform honours per-request seeds (CUDA), so a sample
is the same draw at every checkpoint, as with the HF engine (not the same draw as the HF engine's: the two
samplers use their random numbers differently). vLLM's CPU build cannot seed a request ("CPU Generator does not
use offset"): there rows carry seed NULL and the samples are independent draws, still paired by (prompt,
sample) in the bootstrap but without common random numbers across checkpoints.
"""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path

import torch

from posttrain.config import VLLM_INSTALL
from posttrain.probes import generation

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


class EngineMissing(RuntimeError):
    pass


def version() -> str:
    """The installed vLLM's version, or a clear error naming the config key and the install line."""
    try:
        import vllm
    except ImportError as e:
        raise EngineMissing(f"probes.values.generation.engine is vllm, but vllm cannot be imported ({e}); "
                            f"{VLLM_INSTALL}") from None
    return vllm.__version__


def seeds_per_request() -> bool:
    """Whether this platform's vLLM honours SamplingParams(seed=...): not on CPU (its sampler's generators
    cannot be offset)."""
    from vllm.platforms import current_platform

    return not current_platform.is_cpu()


@contextlib.contextmanager
def off_the_gpu(model):
    """The HF copy (loaded for forced choice) leaves the GPU while vLLM holds it, then comes back."""
    device = model.device
    if device.type != "cuda":
        yield
        return
    model.to("cpu")
    torch.cuda.empty_cache()
    try:
        yield
    finally:
        model.to(device)


def sample(checkpoint: Path, tokenizer, stops: list[int], prompts: list[dict], settings: dict, numerics: str,
           progress: bool = True) -> list[dict]:
    """One row per (prompt, sample), in generation.sample's order and columns, from a vLLM engine started on
    `checkpoint` (a save_pretrained folder) and shut down before returning.

    settings: probes.values.generation (samples, temperature, top_p, max_new_tokens, seed, vllm: {...})."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    rendered = {p["id"]: generation.answer_prompt(tokenizer, p["question"]) for p in prompts}
    ids = {pid: tokenizer.encode(text, add_special_tokens=False) for pid, (text, _) in rendered.items()}
    jobs = [(p["id"], k, generation.sample_seed(settings["seed"], p["id"], k))
            for p in prompts for k in range(settings["samples"])]
    options = settings.get("vllm", {})
    longest = max(map(len, ids.values())) + settings["max_new_tokens"]
    seeded = seeds_per_request()
    memory = {"gpu_memory_utilization": options.get("gpu_memory_utilization", 0.85)}
    if not seeded:  # the CPU build: a KV cache for this workload, not a share of the host's memory
        memory = {"kv_cache_memory_bytes": kv_cache_bytes(checkpoint, len(jobs) * longest, numerics)}
    llm = LLM(model=str(checkpoint), tokenizer=str(checkpoint), dtype=DTYPES[numerics], seed=settings["seed"],
              tensor_parallel_size=options.get("tensor_parallel_size", 1), max_model_len=longest,
              enforce_eager=options.get("enforce_eager", False), **memory)
    try:
        params = [SamplingParams(temperature=settings["temperature"], top_p=settings.get("top_p", 1.0),
                                 max_tokens=settings["max_new_tokens"], stop_token_ids=stops,
                                 seed=seed if seeded else None, detokenize=False)
                  for _, _, seed in jobs]
        outputs = llm.generate([TokensPrompt(prompt_token_ids=ids[pid]) for pid, _, _ in jobs], params,
                               use_tqdm=progress)
    finally:
        shutdown(llm)
    rows = []
    for (pid, k, seed), out in zip(jobs, outputs):
        new = list(out.outputs[0].token_ids)
        n = next((i for i, t in enumerate(new) if t in stops), len(new))  # vLLM keeps the stop token: cut it
        rows.append({"prompt_id": pid, "sample_id": k, "seed": seed if seeded else None, "n_tokens": n,
                     "response": tokenizer.decode(new[:n], skip_special_tokens=True).strip(),
                     "template": rendered[pid][1]})
    return rows


def kv_cache_bytes(checkpoint: Path, tokens: int, numerics: str) -> int:
    """The KV cache that holds `tokens` positions of this model at once (keys and values, every layer), at least
    256 MiB. On CPU vLLM otherwise reserves gpu_memory_utilization x the host's memory, 85 % by default, and
    refuses to start beside other jobs."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(checkpoint)
    config = getattr(config, "text_config", config)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    per_token = config.num_hidden_layers * 2 * getattr(config, "num_key_value_heads", heads) * head_dim
    return max(per_token * tokens * (4 if numerics == "fp32" else 2), 256 * 2**20)


def shutdown(llm) -> None:
    """Stop the engine's worker processes and free its memory: the judge and the next mode run after it."""
    engine = getattr(llm, "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    if hasattr(core, "shutdown"):
        core.shutdown()
    del llm, engine, core
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
