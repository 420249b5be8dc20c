# Config -> validated, defaults filled (one message naming the bad key), checkpoint lists known at parse time.
import json
import re

from snakemake.exceptions import WorkflowError

from posttrain.config import ConfigError, validate
from posttrain.data.sft_mix import SOURCES as SFT_SOURCES
from posttrain.schedule import checkpoint_steps

try:
    validate(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

SFT_RUNS, PREF_RUNS = sorted(config["sft"]), sorted(config["pref"])
RUNS = SFT_RUNS + PREF_RUNS
STEPS = {
    run: checkpoint_steps(spec["checkpoints"], spec["max_steps"])
    for run, spec in {**config["sft"], **config["pref"]}.items()
}


def one_of(names):
    """A wildcard pattern matching exactly these names (a never-matching one if there are none)."""
    return "|".join(map(re.escape, names)) or "(?!)"


wildcard_constraints:
    run=one_of(RUNS),
    dataset=one_of(config["datasets"]),
    step=r"\d+",
    name=one_of(config["reward_models"]),


def spec_json(obj):
    """A config piece passed to an entry point as inline JSON (params: a change re-runs only its jobs)."""
    return json.dumps(obj, sort_keys=True)


def sft_spec(run):
    spec = config["sft"][run]
    return {**spec, "run": run, "model_spec": config["models"][spec["model"]]}


def pref_spec(run):
    spec = {**config["pref"][run], "run": run}
    if spec["algorithm"] == "ppo":
        spec["reward_model_path"] = f"results/reward/{spec['reward_model']}/model"
    return spec


def reward_model_input(w):
    spec = config["pref"][w.run]
    return f"results/reward/{spec['reward_model']}/metrics.json" if spec["algorithm"] == "ppo" else []


def judge_spec():
    judge = config["probes"]["judge"]
    return {**judge, "model_spec": config["models"][judge["model"]]}


def stance_files(run):
    return expand("results/probes/values/{run}/step-{step}.parquet", run=run, step=STEPS[run])
