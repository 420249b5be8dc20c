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

import contextlib
import functools

import torch

CHOICES = ("auto", "bf16", "fp32")
# The probes (value probe, complexity) default to fp32, the judges and training to auto. benchmarks/precision_drift.py,
# the 5-seed default's checkpoints, bf16 against fp32 on what the study reports: the judge reading the same answers
# moved every run's drift by at most 0.14 of its interval's half-width (the criterion: a quarter); bf16 generation
# moved it by up to 1.2 (answers likely diverging), forced choice by up to 2.7, and C(T, δ)'s intervals
# at the default's 11 test items were too open to tell. benchmarks/precision.py: a bf16 training step was 1.4x faster
# with losses within 1.8 %.
INFERENCE_DEFAULT = "fp32"
JUDGE_DEFAULT = "auto"


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


@contextlib.contextmanager
def autocast(precision: str, model: torch.nn.Module):
    """The context `model` runs inference in: bf16 autocast (weights cast once per context and cached), or
    autocast off, so an fp32 part (a judge) nested in a bf16 one (the complexity probe scoring through it)
    stays fp32. In bf16 the output head still runs in fp32, since every read-out is a log-probability; it
    helps little (benchmarks/precision.py, mid-SFT checkpoint: forced-choice mean |dp| 0.038 with a bf16
    head, 0.035 with an fp32 one), because most of bf16's error arises inside the blocks."""
    enabled = precision == "bf16"
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=enabled):
        if enabled:
            with fp32_output_head(model):
                yield
        else:
            yield


@contextlib.contextmanager
def fp32_output_head(model: torch.nn.Module):
    """Run the model's vocabulary projection in fp32 (autocast off) while the context lasts."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        yield
        return
    own = head.__dict__.get("forward")  # an instance-level forward (a wrapper's) is restored as it was
    original = head.forward

    def forward(hidden):
        with torch.autocast(hidden.device.type, enabled=False):
            return original(hidden.float())

    head.forward = forward
    try:
        yield
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own


# The products CPU autocast runs in bf16: HF models call linear and attention; the rest are torch.matmul's kernels.
_BF16_PRODUCTS = ("linear", "scaled_dot_product_attention", "matmul", "mm", "addmm", "bmm", "baddbmm")


@contextlib.contextmanager
def emulated_bf16():
    """bf16's numbers at fp32's speed, for measuring on a CPU without native bf16 what bf16 would change there
    (benchmarks/precision_drift.py); a study never runs in it. Inside, each matrix product or attention that
    autocast sends to bf16 is computed in fp32 on its bf16 operands (their products are exact in fp32, and
    the sum accumulates in fp32, as native bf16 kernels do) and its result is rounded to bf16; everything else
    runs as it would. bf16 kernels differ among themselves (summation order, where a partial result is
    rounded) by about as much as they differ from fp32, so no emulation reproduces one of them bit for bit: what
    it reproduces is the size of bf16's error (tests/test_precision.py compares it with autocast's own)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    products = {getattr(torch.ops.aten, name).default for name in _BF16_PRODUCTS}

    def up(x):
        return x.float() if isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16 else x

    def down(x):
        return x.bfloat16() if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else x

    class Emulated(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in products and any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in args):
                out = func(*map(up, args), **{k: up(v) for k, v in kwargs.items()})
                return tuple(map(down, out)) if isinstance(out, tuple) else down(out)
            return func(*args, **kwargs)

    with Emulated():
        yield
