"""Numeric precision of a stage: `auto`, `bf16` or `fp32`, resolved on the machine that runs the job.

`auto` means bf16 where the hardware computes it natively (any CUDA GPU with bf16; on CPU, AMX-BF16 or
AVX512-BF16), else fp32 with one log line saying why. It is resolved where the job runs, never where the
workflow is planned: a Slurm submit host and its compute nodes can differ. An explicit `bf16` is honoured
even on hardware that only emulates it (correct, but slow: on an AVX2-only CPU a bf16 matmul ran about
60x slower than fp32 here), with a line saying so.

bf16 inference is autocast over fp32 weights: matrix products run in bf16 with fp32 accumulation, while the
residual stream, norms and every softmax stay fp32 (benchmarks/precision.py measures what that changes).
Weights stay fp32 in memory and on disk, and training is mixed precision with fp32 master weights, so
checkpoints are always saved in full precision.
"""

from __future__ import annotations

import functools

import torch

CHOICES = ("auto", "bf16", "fp32")


@functools.cache
def native_bf16(device_type: str) -> tuple[bool, str]:
    """(does this device compute bf16 natively, what was found)."""
    if device_type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        return ok, f"CUDA device {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}"
    amx, avx512_bf16 = torch.cpu._is_amx_tile_supported(), torch.cpu._is_avx512_bf16_supported()
    found = ", ".join(n for n, ok in (("AMX", amx), ("AVX512-BF16", avx512_bf16)) if ok)
    if found:
        return True, f"CPU with {found}"
    return False, f"CPU without AMX-BF16 or AVX512-BF16 ({torch.backends.cpu.get_cpu_capability()})"


@functools.cache
def resolve(requested: str, device_type: str, what: str) -> str:
    """The precision `what` (e.g. "value probe") runs in on this device; logs one line when auto falls back."""
    if requested not in CHOICES:
        raise ValueError(f"{what}: precision {requested!r} is not one of {', '.join(CHOICES)}")
    native, found = native_bf16(device_type)
    if requested == "auto":
        if not native:
            print(f"precision: {what} runs in fp32 (auto; no native bf16 on this {found})", flush=True)
        return "bf16" if native else "fp32"
    if requested == "bf16" and not native:
        print(f"precision: {what} runs in bf16 as configured, but this {found} only emulates it (slow)", flush=True)
    return requested


def autocast(precision: str, device: torch.device | str):
    """The context inference runs in: bf16 autocast (weights cast once per context and cached), or autocast off,
    so an fp32 part (a judge) nested in a bf16 one (the complexity probe scoring through it) stays fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
