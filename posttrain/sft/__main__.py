"""SFT stage: config -> chat data -> model -> TRL SFTTrainer -> scheduled snapshots + manifest.

    python -m posttrain.sft --spec SPEC --data results/data/<dataset>.jsonl --run-dir results/runs/<run>

SPEC is the run's resolved config (inline JSON or a YAML file): the `sft.<run>` entry plus `run` (its name)
and `model_spec` (the `models.<model>` entry). A killed job rerun with the same spec resumes from
`<run-dir>/trainer-state/`; its later losses match an uninterrupted run (tests/test_sft.py).
"""

from __future__ import annotations

import argparse
import sys

from posttrain.config import ConfigError, load_spec
from posttrain.data.chat import DatasetError
from posttrain.determinism import release_process_group, training_numerics
from posttrain.models import ModelNotFoundError
from posttrain.sft.train import run_sft


def main(argv=None, callbacks=()) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--data", required=True, help="chat JSONL (rows with `messages`)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    training_numerics(args.threads)
    try:
        run_sft(load_spec(args.spec), args.data, args.run_dir, callbacks=list(callbacks))
    except (ConfigError, DatasetError, ModelNotFoundError) as e:
        sys.exit(f"error: {e}")
    finally:
        release_process_group()


if __name__ == "__main__":
    main()
