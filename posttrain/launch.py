"""Start a stage's entry point the way its job's resources call for; the workflow's training rules go through it.

    python -m posttrain.launch [--processes N] [--deepspeed FILE] [--precision auto|bf16|fp32] -- posttrain.sft ...

The workflow passes the job's GPU count as --processes. With 0 it replaces itself with `python -m <module> ...`
(the same process, so a Slurm SIGTERM reaches the trainer directly). With N it replaces itself with
`accelerate launch --num_machines 1 --num_processes N --main_process_port <free port> [--use_deepspeed
--deepspeed_config_file FILE] -m <module> ...`: one process per GPU, DeepSpeed ZeRO when a config is given
(configs/deepspeed/zero2.json or zero3.json). On a machine without GPUs the same command runs N CPU processes
(gloo), which is how tests/test_deepspeed.py checks ZeRO-3 saves. The port is picked free at start, so jobs
sharing a node do not collide.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from posttrain import precision


def _resolved(requested: str) -> str:
    import torch  # only here: a plain launch execs straight into the stage

    return precision.resolve(requested, "cuda" if torch.cuda.is_available() else "cpu", "training")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def command(module: str, args: list[str], processes: int = 0, deepspeed: str | None = None,
            precision: str = "fp32") -> list[str]:
    """The argv that runs `module` with `args` in `processes` data-parallel processes (0 = plainly, one process).
    `precision` (the run's training.precision) is resolved here, on the node that trains: accelerate's mixed
    precision is set from it; a plain process resolves the same setting itself (posttrain.sft.train)."""
    if processes == 0:
        if deepspeed:
            raise ValueError("DeepSpeed needs at least one launched process (resources.train.gpus > 0)")
        return [sys.executable, "-m", module, *args]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
              "--num_processes", str(processes), "--main_process_port", str(free_port()),
              "--mixed_precision", "bf16" if _resolved(precision) == "bf16" else "no"]
    if deepspeed:
        if not Path(deepspeed).is_file():
            raise FileNotFoundError(f"DeepSpeed config not found: {deepspeed}")
        launch += ["--use_deepspeed", "--deepspeed_config_file", str(deepspeed)]
    elif processes > 1:
        launch += ["--multi_gpu"]
    return [*launch, "-m", module, *args]


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        sys.exit("usage: python -m posttrain.launch [--processes N] [--deepspeed FILE] [--precision P] -- MODULE ARGS...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m posttrain.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=0, help="one per GPU; 0 = plain python")
    parser.add_argument("--deepspeed", default=None, help="a DeepSpeed JSON config")
    parser.add_argument("--precision", choices=precision.CHOICES, default="fp32",
                        help="the run's training.precision (auto: bf16 where this node computes it natively)")
    parser.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help="= --precision bf16")
    opts = parser.parse_args(argv[:split])
    module, *args = argv[split + 1:]
    try:
        cmd = command(module, args, opts.processes, opts.deepspeed, opts.precision)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print("launch:", " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
