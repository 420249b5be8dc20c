"""Reproducible training numerics: a fixed thread count and deterministic kernels.

Float reductions are not associative, so a loss depends on the order they run in, and that order depends on
the number of CPU threads (and, on a GPU, on the kernels chosen). A resumed run matches an uninterrupted one to
1e-6 only when both use the same threads, the same precision and deterministic kernels; the run's manifest
records the first two (`threads`, `precision`) so a comparison can check it is like with like.
"""

from __future__ import annotations

import os

import torch


def training_numerics(threads: int | None) -> None:
    """Call before any model is built: pin the threads (None: torch's default) and ask for deterministic kernels."""
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for deterministic GEMMs
    # warn_only: an op with no deterministic kernel (some fused DeepSpeed ones) warns instead of stopping the run
    torch.use_deterministic_algorithms(True, warn_only=True)


def release_process_group() -> None:
    """Tear torch.distributed down before the interpreter exits. Left to shutdown, gloo's threads can abort a
    rank that finished cleanly (SIGABRT, 'terminate called without an active exception'; seen once in
    tests/test_deepspeed.py after a complete bf16 ZeRO-3 run), and the launcher then reports the job failed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
