"""Shared command line of the preference stages (`python -m posttrain.pref.dpo`, `python -m posttrain.pref.simpo`).

    python -m posttrain.pref.dpo --spec SPEC --data results/data/<pairs>.jsonl \
        --parent-manifest results/runs/<sft run>/checkpoints.json --run-dir results/runs/<run>

SPEC is the run's resolved config (the `pref.<run>` entry plus `run`, its name). The run starts from the
parent's checkpoint at `from.step`; a killed job rerun with the same spec resumes from its trainer state.
"""

from __future__ import annotations

import argparse
import sys

from posttrain.checkpointing import checkpoint_path
from posttrain.config import ConfigError, load_spec
from posttrain.data.chat import DatasetError
from posttrain.determinism import release_process_group, training_numerics
from posttrain.models import ModelNotFoundError


def parse_args(prog: str, doc: str, out: str, argv=None) -> argparse.Namespace:
    """The arguments every stage that starts from an SFT checkpoint takes, plus its output folder `out`."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="the run's config entry (inline JSON or a YAML file)")
    parser.add_argument("--data", required=True, help="normalised preference JSONL (prompt/chosen/rejected)")
    parser.add_argument("--parent-manifest", required=True, help="the SFT run's checkpoints.json")
    parser.add_argument(out, required=True)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    training_numerics(args.threads)
    return args


def main(algorithm: str, argv=None, callbacks=()) -> None:
    args = parse_args(f"python -m posttrain.pref.{algorithm}", __doc__, "--run-dir", argv)
    from posttrain.pref.train import run_pref  # after arg parsing: TRL's import is slow

    try:
        spec = load_spec(args.spec)
        if spec["algorithm"] != algorithm:
            raise ConfigError(f"spec is for algorithm {spec['algorithm']!r}, this entry point runs {algorithm!r}")
        start = checkpoint_path(args.parent_manifest, spec["from"]["step"])
        run_pref(spec, args.data, start, args.run_dir, callbacks=list(callbacks))
    except (ConfigError, DatasetError, ModelNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    finally:
        release_process_group()

