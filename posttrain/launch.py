"""How a training stage starts on its job's GPUs (posttrain.stages runs it when a job asks for any).

With 0 processes a stage runs plainly in its own process. With N it replaces itself with `accelerate launch
--num_machines 1 --num_processes N --main_process_port <free port> [--use_deepspeed --deepspeed_config_file
FILE] -m posttrain <stage> ...`: one process per GPU, DeepSpeed ZeRO when a config is given
(config/deepspeed/zero2.json or zero3.json). On a machine without GPUs the same command runs N CPU processes
(gloo), which is how tests/test_deepspeed.py checks ZeRO-3 saves. The port is picked free at start, so jobs
sharing a node do not collide.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from posttrain import precision


def _resolved(requested: str) -> str:
    import torch  # only here: a plain stage never needs it in this module

    return precision.resolve(requested, "cuda" if torch.cuda.is_available() else "cpu", "training")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def command(args: list[str], processes: int = 0, deepspeed: str | None = None, precision: str = "fp32") -> list[str]:
    """The argv that runs `posttrain <args>` in `processes` data-parallel processes (0 = plainly, one process).
    `precision` (the run's training.precision) is resolved here, on the node that trains: accelerate's mixed
    precision is set from it; a plain process resolves the same setting itself (posttrain.sft.train)."""
    if processes == 0:
        if deepspeed:
            raise ValueError("DeepSpeed needs at least one launched process (resources.train.gpus > 0)")
        return [sys.executable, "-m", "posttrain", *args]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
              "--num_processes", str(processes), "--main_process_port", str(free_port()),
              "--mixed_precision", "bf16" if _resolved(precision) == "bf16" else "no"]
    if deepspeed:
        if not Path(deepspeed).is_file():
            raise FileNotFoundError(f"DeepSpeed config not found: {deepspeed}")
        launch += ["--use_deepspeed", "--deepspeed_config_file", str(deepspeed)]
    elif processes > 1:
        launch += ["--multi_gpu"]
    return [*launch, "-m", "posttrain", *args]
