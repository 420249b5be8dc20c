# Config -> validated, defaults filled (one message naming the bad key), checkpoint lists known at parse time.
import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from posttrain.config import ConfigError, base_model, model_spec, training_resources, validate
from posttrain.data.sft_mix import SOURCES as SFT_SOURCES
from posttrain.judges import head_path as judge_inputs
from posttrain.judges import model_inputs
from posttrain.judges import resolve as resolve_judge
from posttrain.schedule import checkpoint_steps

try:
    validate(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

SFT_RUNS, PREF_RUNS = sorted(config["sft"]), sorted(config["pref"])
RUNS = SFT_RUNS + PREF_RUNS


def starts_exactly(run):
    """A preference run's step 0 holds its parent's checkpoint bit for bit, so its probe rows can be copied, unless
    DeepSpeed trains it in bf16: DeepSpeed starts its fp32 master weights from the bf16-cast module, so step 0 is
    the parent rounded to bf16, and is probed like any other checkpoint."""
    deepspeed = training_resources(config, "pref", run)["deepspeed"] != "none"
    return not deepspeed or config["pref"][run]["training"]["precision"] == "fp32"


EXACT_START_RUNS = [run for run in PREF_RUNS if starts_exactly(run)]
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
    judge=one_of(config["judges"]),
    model=one_of(config["models"]),
    split="train|dev|test",


def spec_json(obj):
    """A config piece passed to an entry point as inline JSON (params: a change re-runs only its jobs)."""
    return json.dumps(obj, sort_keys=True)


def sft_spec(run):
    spec = config["sft"][run]
    return {**spec, "run": run, "model_spec": model_spec(config, spec["model"])}


def pref_spec(run):
    spec = {**config["pref"][run], "run": run}
    if spec["algorithm"] == "ppo":
        spec["reward_model_path"] = f"results/reward/{spec['reward_model']}/model"
    return spec


def reward_model_input(w):
    spec = config["pref"][w.run]
    return f"results/reward/{spec['reward_model']}/metrics.json" if spec["algorithm"] == "ppo" else []


JUDGE = config["probes"]["judge"]


def value_probe_spec():
    """probes.values, with the judge in use resolved when answers are generated and judged."""
    spec = dict(config["probes"]["values"])
    if "generation" in spec["modes"]:
        spec["judge"] = resolve_judge(config, JUDGE)
    return spec


def value_probe_inputs(w):
    judge = judge_inputs(config, JUDGE) if "generation" in config["probes"]["values"]["modes"] else []
    return ["results/runs/{run}/checkpoints.json".format(run=w.run), *judge]


def judge_evals():
    split = config["probes"]["judge_eval"]["split"]
    return expand("results/judges/{judge}/eval-{split}.json", judge=config["probes"]["judge_eval"]["judges"],
                  split=split)


def stance_files(run):
    return expand("results/probes/values/{run}/step-{step}.parquet", run=run, step=STEPS[run])


COMPLEXITY = bool(config["complexity"]["tasks"])


def complexity_files(run):
    if not COMPLEXITY:
        return []
    return expand("results/complexity/{run}/step-{step}.parquet", run=run, step=STEPS[run])


def upstream_benchmarks():
    """The `benchmark:` files of every job the store depends on (the DAG above it, rule by rule).

    Passed to the store as a parameter, not as inputs: a missing benchmark file would make Snakemake rerun
    its job (a whole SFT run for a deleted TSV), and jobs that ran before these files were recorded have none.
    """
    # What the judges in use and the SFT runs wait for (the rules' own input functions): heads, dequantised models.
    needs = {p for j in {JUDGE, *config["probes"]["judge_eval"]["judges"]} for p in judge_inputs(config, j)}
    needs |= {p for r in SFT_RUNS for p in model_inputs(config, config["sft"][r]["model"])}
    heads = sorted(Path(p).parent.name for p in needs if Path(p).name == "head.json")
    gguf = sorted(Path(p).name for p in needs if p.startswith("results/models/"))
    rms = {config["pref"][r]["reward_model"] for r in PREF_RUNS if config["pref"][r]["algorithm"] == "ppo"}
    steps = [(run, step) for run in RUNS for step in STEPS[run]]
    return [
        *expand("results/benchmarks/dataset/{dataset}.tsv", dataset=sorted(config["datasets"])),
        *expand("results/benchmarks/dequantise/{model}.tsv", model=gguf),
        *expand("results/benchmarks/sft/{run}.tsv", run=SFT_RUNS),
        *expand("results/benchmarks/pref/{run}.tsv", run=PREF_RUNS),
        *expand("results/benchmarks/reward_model/{name}.tsv", name=sorted(rms)),
        *expand("results/benchmarks/judge_head/{judge}.tsv", judge=heads),
        *[f"results/benchmarks/judge_eval/{judge}/{config['probes']['judge_eval']['split']}.tsv"
          for judge in config["probes"]["judge_eval"]["judges"]],
        *expand("results/benchmarks/dataset_stance/{dataset}.tsv", dataset=sorted(config["datasets"])),
        *[f"results/benchmarks/{probe}{'_pref_start' * (run in EXACT_START_RUNS and step == 0)}/{run}/step-{step}.tsv"
          for probe in ["value_probe", *["complexity_probe"] * COMPLEXITY] for run, step in steps],
    ]


# --- What each job asks the scheduler for (config: models.<name>.resources, resources.*) -------------------
# Rules turn these into Snakemake's threads and resources, which the Slurm executor maps to sbatch flags:
# threads -> --cpus-per-task, gpu -> --gpus, mem_mb -> --mem, runtime -> --time. Site facts (account,
# partition, GPU model, QoS) come from a profile (slurm/profile.yaml, README: Running on a Slurm cluster).

DEEPSPEED_CONFIGS = Path(workflow.basedir) / "configs" / "deepspeed"


def run_section(run):
    return "sft" if run in config["sft"] else "pref"


def trained(w):
    """(config section, name) of a training job: a reward model (wildcard `name`) or a run."""
    return ("reward_models", w.name) if "name" in w.keys() else (run_section(w.run), w.run)


def train_resources(w):
    """A training job's resources: those of the model its run (or reward model) descends from."""
    return training_resources(config, *trained(w))


def probe_resources(w):
    return config["models"][base_model(config, run_section(w.run), w.run)]["resources"]["probe"]


def judge_resources(name):
    """A judge job's resources: its model's probe resources, or resources.default for a model-free judge."""
    judge = config["judges"][name]
    return config["models"][judge["model"]]["resources"]["probe"] if "model" in judge else config["resources"]["default"]


def named_judge_resources(w):
    """The resources of the judge named by the job's `judge` wildcard."""
    return judge_resources(w.judge)


def launch_args(w):
    """posttrain.launch options: one process per GPU, DeepSpeed as configured, the run's training precision."""
    section, name = trained(w)
    r = training_resources(config, section, name)
    args = [f"--processes {r['gpus']}"]
    if r["deepspeed"] != "none":
        args.append(f"--deepspeed {DEEPSPEED_CONFIGS / (r['deepspeed'] + '.json')}")
    args.append(f"--precision {config[section][name]['training']['precision']}")
    return " ".join(args)


def asks(pick, key):
    """A resource of the job, per wildcards: asks(train_resources, "gpus")."""
    return lambda w: pick(w)[key]


def fixed(resources):
    """The same for a job whose resources do not depend on its wildcards."""
    return lambda w: resources
