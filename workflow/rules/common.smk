# Config -> validated, defaults filled (one message naming the bad key), checkpoint lists known at parse time.
import json

from snakemake.exceptions import WorkflowError

from posttrain.config import ConfigError, validate
from posttrain.data.sft_mix import SOURCES as SFT_SOURCES
from posttrain.schedule import checkpoint_steps

try:
    validate(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

RUNS = sorted(config["sft"])
STEPS = {run: checkpoint_steps(spec["checkpoints"], spec["max_steps"]) for run, spec in config["sft"].items()}


wildcard_constraints:
    run="|".join(RUNS),
    dataset="|".join(config["datasets"]),
    step=r"\d+",


def spec_json(obj):
    """A config piece passed to an entry point as inline JSON (params: a change re-runs only its jobs)."""
    return json.dumps(obj, sort_keys=True)


def sft_spec(run):
    spec = config["sft"][run]
    return {**spec, "run": run, "model_spec": config["models"][spec["model"]]}


def stance_files(run):
    return expand("results/probes/values/{run}/step-{step}.parquet", run=run, step=STEPS[run])
