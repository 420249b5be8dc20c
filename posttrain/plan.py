"""The study plan: a validated config -> every job of the study, with its files, its fully resolved job spec and
what it asks the scheduler for.

This is the one place that knows the layout of `results/` (`Layout`) and how a config becomes jobs (`Plan`).
The Snakefile builds one `Plan` and its rules only wire what it returns; tests build their jobs from it too.
A job spec is what a stage reads (`posttrain <stage> --job JOB`): the config entry it needs, unchanged under
`spec`, plus the names and paths the plan resolved for it (run, model_spec, data, out, ...).
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from posttrain.config import VLLM_INSTALL, ConfigError, control_tests, validate
from posttrain.data.sft_mix import SOURCES as SFT_SOURCES
from posttrain.schedule import checkpoint_steps

HEAD_KINDS = ("embedding", "lm_head")  # judges with a head fitted on the labelled set
MODEL_JUDGE_KINDS = ("lm", "lm_head")  # judges that load a model of the config


@dataclass(frozen=True)
class Layout:
    """Where every file of a study lives, under `root`. Arguments may be Snakemake wildcards ("{run}")."""

    root: str = "results"

    def data(self, dataset) -> str:
        return f"{self.root}/data/{dataset}.jsonl"

    def dequantised(self, model) -> str:
        return f"{self.root}/models/{model}"

    def run_dir(self, run) -> str:
        return f"{self.root}/runs/{run}"

    def manifest(self, run) -> str:
        return f"{self.run_dir(run)}/checkpoints.json"

    def snapshot(self, run, step) -> str:
        return f"{self.run_dir(run)}/checkpoints/step-{step}"

    def snapshot_record(self, run, step) -> str:
        return f"{self.run_dir(run)}/retention/step-{step}.json"

    def trainer_state_record(self, run) -> str:
        return f"{self.run_dir(run)}/retention/trainer-state.json"

    def reward_dir(self, name) -> str:
        return f"{self.root}/reward/{name}"

    def reward_metrics(self, name) -> str:
        return f"{self.reward_dir(name)}/metrics.json"

    def reward_model(self, name) -> str:
        return f"{self.reward_dir(name)}/model"

    def judge_head(self, judge) -> str:
        return f"{self.root}/judges/{judge}/head.json"

    def judge_eval(self, judge, split) -> str:
        return f"{self.root}/judges/{judge}/eval-{split}.json"

    def judge_predictions(self, judge, split) -> str:
        return f"{self.root}/judges/{judge}/predictions-{split}.parquet"

    def value_probe(self, run, step) -> str:
        return f"{self.root}/probes/values/{run}/step-{step}.parquet"

    def complexity_probe(self, run, step) -> str:
        return f"{self.root}/complexity/{run}/step-{step}.parquet"

    def dataset_stance(self, dataset) -> str:
        return f"{self.root}/probes/datasets/{dataset}.parquet"

    def dataset_checks(self, dataset) -> str:
        return f"{self.root}/probes/datasets/{dataset}.checks.parquet"

    def db(self) -> str:
        return f"{self.root}/study.duckdb"

    def plot(self, name) -> str:
        return f"{self.root}/plots/{name}.png"

    def summary(self) -> str:
        return f"{self.root}/summary.html"

    def benchmarks(self) -> str:
        return f"{self.root}/benchmarks"

    def benchmark(self, rule, key=None) -> str:
        """`<rule>/<key>.tsv` (the store reads rule and key back from this layout), `<rule>.tsv` for one-off jobs."""
        return f"{self.benchmarks()}/{rule}/{key}.tsv" if key is not None else f"{self.benchmarks()}/{rule}.tsv"

    def log(self, rule, key=None) -> str:
        return f"{self.root}/logs/{rule}/{key}.log" if key is not None else f"{self.root}/logs/{rule}.log"


# The figures of a study: plot rule -> (file name pattern, the figure kind posttrain.plots draws).
PLOTS = {
    "stance_plot": ("stance-{run}", "stance"),
    "compare_plot": ("pref-drift", "compare"),
    "drift_heatmap": ("drift-heatmap", "heatmap"),
    "stance_shares": ("stance-shares", "shares"),
    "pareto_plot": ("pareto-{run}", "pareto"),
    "task_complexity_plot": ("task-complexity", "task_complexity"),
    "judge_plot": ("judge-confusion", "judge"),
    "value_gap_plot": ("value-gap", "value_gap"),
    "time_plot": ("job-time", "time"),
}
PREFERENCE_KINDS = ("synthetic_value_gap", "preference_jsonl", "preference_hub")  # datasets of chosen/rejected pairs


class Plan:
    """Every job of one study. `config` is validated (defaults filled) on the way in."""

    def __init__(self, config: dict, root: str = "results", deepspeed_dir: str | Path = "config/deepspeed"):
        self.config = validate(config)
        self.paths = Layout(root)
        self.deepspeed_dir = Path(deepspeed_dir)
        c = self.config
        self.sft_runs, self.pref_runs = sorted(c["sft"]), sorted(c["pref"])
        self.runs = self.sft_runs + self.pref_runs
        self.steps = {run: checkpoint_steps(spec["checkpoints"], spec["max_steps"])
                      for run, spec in {**c["sft"], **c["pref"]}.items()}
        self.judge = c["probes"]["judge"]
        self.complexity = bool(c["complexity"]["tasks"])
        self.judge_eval_split = c["probes"]["judge_eval"]["split"]
        self.real_answers = c["probes"]["judge_eval"].get("real_answers")
        self.judge_eval_splits = [self.judge_eval_split, *(["real"] if self.real_answers else [])]
        self.evaluated_judges = c["probes"]["judge_eval"]["judges"]
        self.exact_start_runs = [run for run in self.pref_runs if self._starts_exactly(run)]
        self.ppo_reward_models = sorted({c["pref"][r]["reward_model"] for r in self.pref_runs
                                         if c["pref"][r]["algorithm"] == "ppo"})
        values = c["probes"]["values"]
        self.engine = values["generation"]["engine"] if "generation" in values["modes"] else "hf"
        self._snapshot_readers = None  # snapshot_readers(), once asked

    def check_engine(self, conda: bool = False) -> None:
        """Before a real run: the generation engine imports here, where the jobs run (a missing vLLM fails now,
        not in the first value probe after training). `conda`: the rules would run in the conda env file's
        environment, which cannot hold vLLM (it is installed with pip --no-deps: docs/engines.md)."""
        if self.engine != "vllm":
            return
        where = "the rules' conda environment (--sdm conda) cannot hold it" if conda else \
            "vllm is not installed in this environment" if importlib.util.find_spec("vllm") is None else None
        if where:
            raise ConfigError(f"config error at probes.values.generation.engine: {where}; run in an environment "
                              f"prepared with pip: {VLLM_INSTALL}")

    # --- names and resolved pieces -------------------------------------------------------------------------

    def section(self, run: str) -> str:
        return "sft" if run in self.config["sft"] else "pref"

    def base_model(self, section: str, name: str) -> str:
        """The models key a run descends from (a preference run or reward model: its SFT run's model)."""
        spec = self.config[section][name]
        return spec["model"] if section == "sft" else self.config["sft"][spec["from"]["run"]]["model"]

    def model_spec(self, model: str) -> dict:
        """What loading `model` needs: its entry without `resources` and `params` (asking the scheduler for more
        time, or stating the size for the cost estimate, neither reruns finished jobs nor looks like another run
        to a resumed one), and for a GGUF model its dequantised copy, which every job loads instead of decoding
        the GGUF again."""
        spec = {k: v for k, v in self.config["models"][model].items() if k not in ("resources", "params")}
        if "gguf" in spec:
            spec["dequantised"] = self.paths.dequantised(model)
        return spec

    def model_inputs(self, model: str) -> list[str]:
        """What a job loading `model` waits for: the dequantised copy of a GGUF model."""
        return [self.paths.dequantised(model)] if "gguf" in self.config["models"][model] else []

    def judge_spec(self, name: str) -> dict:
        """Judge `name` resolved: its model's spec (lm, lm_head), its head's path (embedding, lm_head)."""
        spec = {**self.config["judges"][name], "name": name}
        if spec["kind"] in HEAD_KINDS:
            spec["head"] = self.paths.judge_head(name)
        if spec["kind"] in MODEL_JUDGE_KINDS:
            spec["model_spec"] = self.model_spec(spec["model"])
        return spec

    def judge_inputs(self, name: str) -> list[str]:
        """The files a judge needs before it can judge: its head, and its model's dequantised copy."""
        judge = self.config["judges"][name]
        needs = [self.paths.judge_head(name)] if judge["kind"] in HEAD_KINDS else []
        if judge["kind"] in MODEL_JUDGE_KINDS:
            needs += self.model_inputs(judge["model"])
        return needs

    def _starts_exactly(self, run: str) -> bool:
        """A preference run's step 0 is its parent's checkpoint bit for bit, so its probe rows can be copied, unless
        DeepSpeed trains it in bf16: DeepSpeed starts its fp32 master weights from the bf16-cast module."""
        deepspeed = self.train_resources("pref", run)["deepspeed"] != "none"
        return not deepspeed or self.config["pref"][run]["training"]["precision"] == "fp32"

    def copies_parent(self, run: str, step: int) -> bool:
        """Whether checkpoint (run, step)'s probe rows are its parent's (no second probe of the same weights)."""
        return run in self.exact_start_runs and int(step) == 0

    # --- resources -------------------------------------------------------------------------------------------

    def train_resources(self, section: str, name: str) -> dict:
        return self.config["models"][self.base_model(section, name)]["resources"]["train"]

    def probe_resources(self, run: str) -> dict:
        return self.config["models"][self.base_model(self.section(run), run)]["resources"]["probe"]

    def judge_resources(self, name: str) -> dict:
        """A judge job's resources: its model's probe resources, or resources.default for a model-free judge."""
        judge = self.config["judges"][name]
        if "model" in judge:
            return self.config["models"][judge["model"]]["resources"]["probe"]
        return self.config["resources"]["default"]

    def launch(self, section: str, name: str) -> dict:
        """How a training job starts: one process per GPU (0: plainly), DeepSpeed as configured, its precision."""
        r = self.train_resources(section, name)
        return {"processes": r["gpus"],
                "deepspeed": str(self.deepspeed_dir / f"{r['deepspeed']}.json") if r["deepspeed"] != "none" else None,
                "precision": self.config[section][name]["training"]["precision"]}

    def resources(self, rule: str, **w) -> dict:
        """What job `rule` with wildcards `w` asks the scheduler for: cpus, gpus, mem_mb, runtime."""
        if rule in ("sft", "pref"):
            return self.train_resources(rule, w["run"])
        if rule == "reward_model":
            return self.train_resources("reward_models", w["name"])
        if rule in ("value_probe", "complexity_probe", "complexity_probe_pref_start"):
            return self.probe_resources(w["run"])
        if rule in ("judge_head", "judge_eval"):
            return self.judge_resources(w["judge"])
        if rule == "dataset_stance":
            return self.judge_resources(self.judge)
        if rule == "store":
            return self.config["resources"]["store"]
        return self.config["resources"]["default"]

    # --- jobs: the spec each stage reads -----------------------------------------------------------------------

    def job(self, rule: str, **w) -> dict:
        """The job spec of rule `rule` for wildcards `w` (what `posttrain <stage> --job` reads)."""
        if rule in PLOTS:
            return self._job_plot(rule, **w)
        if rule.endswith("_pref_start"):  # these rules write step 0 only: no step wildcard
            w = {**w, "step": 0}
        return getattr(self, f"_job_{rule.removesuffix('_pref_start')}")(**w)

    def inputs(self, rule: str, **w) -> dict[str, str | list[str]]:
        """What job `rule` with wildcards `w` reads, by name (a rule's `input: unpack(...)`)."""
        c, p = self.config, self.paths
        if rule == "dataset":
            return {"sources": self.dataset_sources(w["dataset"])}
        if rule == "sft":
            return {"data": p.data(c["sft"][w["run"]]["dataset"]),
                    "model": self.model_inputs(c["sft"][w["run"]]["model"])}
        if rule in ("pref", "reward_model"):
            spec = c["pref"][w["run"]] if rule == "pref" else c["reward_models"][w["name"]]
            ppo = rule == "pref" and spec["algorithm"] == "ppo"
            return {"data": p.data(spec["dataset"]), "start": p.manifest(spec["from"]["run"]),
                    "reward": [p.reward_metrics(spec["reward_model"])] if ppo else []}
        if rule == "judge_head":
            judge = c["judges"][w["judge"]]
            return {"model": self.model_inputs(judge["model"]) if judge["kind"] in MODEL_JUDGE_KINDS else []}
        if rule == "judge_eval":
            return {"judge": self.judge_inputs(w["judge"])}
        if rule in ("value_probe", "complexity_probe", "value_probe_pref_start", "complexity_probe_pref_start"):
            uses_judge = ("generation" in c["probes"]["values"]["modes"] if rule.startswith("value")
                          else "stance" in c["complexity"]["tasks"])
            copies_all = rule == "value_probe_pref_start"  # rows copied, no judge run
            needs = {"manifest": p.manifest(w["run"]),
                     "judge": self.judge_inputs(self.judge) if uses_judge and not copies_all else []}
            if rule.endswith("_pref_start"):
                needs["parent"] = self.job(rule, **w)["same_as"]
            return needs
        if rule == "dataset_stance":
            return {"data": p.data(w["dataset"]), "judge": self.judge_inputs(self.judge)}
        if rule == "store":
            return self.store_inputs()
        if rule == "summary":
            return {"db": p.db(), "figures": self.plot_targets()}
        if rule in PLOTS:
            return {"db": p.db()}
        if rule == "release_snapshot":
            return {"manifest": p.manifest(w["run"]), "readers": self.readers(w["run"], int(w["step"]))}
        if rule == "release_trainer_state":
            return {"manifest": p.manifest(w["run"])}
        return {}

    def _job_dataset(self, dataset):
        return {"stage": "data", "name": dataset, "spec": self.config["datasets"][dataset],
                "out": self.paths.data(dataset)}

    def _job_dequantise(self, model):
        return {"stage": "dequantise", "name": model, "model_spec": self.model_spec(model),
                "out": self.paths.dequantised(model)}

    def _job_sft(self, run):
        spec = self.config["sft"][run]
        return {"stage": "sft", "run": run, "spec": spec, "model_spec": self.model_spec(spec["model"]),
                "data": self.paths.data(spec["dataset"]), "run_dir": self.paths.run_dir(run),
                "launch": self.launch("sft", run)}

    def _job_pref(self, run):
        spec = self.config["pref"][run]
        job = {"stage": "pref", "run": run, "spec": spec, "data": self.paths.data(spec["dataset"]),
               "start": self.paths.manifest(spec["from"]["run"]), "run_dir": self.paths.run_dir(run),
               "launch": self.launch("pref", run)}
        if spec["algorithm"] == "ppo":
            job["reward_model"] = self.paths.reward_model(spec["reward_model"])
        return job

    def _job_reward_model(self, name):
        spec = self.config["reward_models"][name]
        return {"stage": "reward-model", "name": name, "spec": spec, "data": self.paths.data(spec["dataset"]),
                "start": self.paths.manifest(spec["from"]["run"]), "out": self.paths.reward_dir(name),
                "launch": self.launch("reward_models", name)}

    def _job_judge_head(self, judge):
        return {"stage": "judge-head", "judge": self.judge_spec(judge), "out": self.paths.judge_head(judge)}

    def _job_judge_eval(self, judge, split):
        job = {"stage": "judge-eval", "judge": self.judge_spec(judge), "split": split,
               "out": self.paths.judge_eval(judge, split)}
        return {**job, "real_answers": self.real_answers} if split == "real" else job

    def value_probe_spec(self) -> dict:
        """probes.values, with the judge in use resolved when answers are generated and judged."""
        spec = dict(self.config["probes"]["values"])
        if "generation" in spec["modes"]:
            spec["judge"] = self.judge_spec(self.judge)
        return spec

    def _job_value_probe(self, run, step):
        job = {"stage": "value-probe", "run": run, "step": int(step), "manifest": self.paths.manifest(run),
               "out": self.paths.value_probe(run, step)}
        if self.copies_parent(run, step):
            job["same_as"] = self.paths.value_probe(**self.config["pref"][run]["from"])
        else:
            job["spec"] = self.value_probe_spec()
        return job

    def complexity_spec(self) -> dict:
        """The complexity section, with the study's judge resolved for the stance task."""
        spec = json.loads(json.dumps(self.config["complexity"]))
        if "stance" in spec["tasks"]:
            spec["tasks"]["stance"]["judge"] = self.judge_spec(self.judge)
        return spec

    def reference_snapshots(self, run: str) -> dict[str, tuple[str, int]]:
        """The snapshots a complexity probe of `run` loads as weight-delta references, name -> (run, step): the
        run's step 0 (run_start) and, for a preference run, its parent SFT run's step 0 (base)."""
        delta = self.config["complexity"]["estimators"].get("weight_delta")
        if not self.complexity or delta is None:
            return {}
        refs = {"run_start": (run, 0)}
        if run in self.config["pref"]:
            refs["base"] = (self.config["pref"][run]["from"]["run"], 0)
        return {name: ref for name, ref in refs.items() if name in delta["references"]}

    def _job_complexity_probe(self, run, step):
        job = {"stage": "complexity-probe", "run": run, "step": int(step), "manifest": self.paths.manifest(run),
               "spec": self.complexity_spec(), "out": self.paths.complexity_probe(run, step),
               "references": {name: {"path": self.paths.snapshot(*ref), "run": ref[0], "step": ref[1]}
                              for name, ref in self.reference_snapshots(run).items()}}
        if self.copies_parent(run, step):
            job["same_as"] = self.paths.complexity_probe(**self.config["pref"][run]["from"])
        return job

    def _job_dataset_stance(self, dataset):
        checks = self.config["probes"]["datasets"]
        job = {"stage": "dataset-stance", "name": dataset, "data": self.paths.data(dataset),
               "judge": self.judge_spec(self.judge), "out": self.paths.dataset_stance(dataset),
               "checks_out": self.paths.dataset_checks(dataset),
               "prompt_set": self.config["probes"]["values"]["prompt_set"],
               "near_copy_threshold": checks.get("near_copy_threshold", 0.5),
               "near_copy_cosine": checks.get("near_copy_cosine", 0.87)}
        if "max_rows" in checks:
            job["max_rows"] = checks["max_rows"]
        return job

    def _job_store(self):
        drift = self.config["drift"]
        floor = self.config["probes"]["values"].get("forced_choice", {}).get("label_mass_floor", 0.1)
        return {"stage": "store", "out": self.paths.db(), "extremum_fraction": drift["extremum_fraction"],
                "label_mass_floor": floor,
                **{k: drift["bootstrap"][k] for k in ("resamples", "confidence", "seed")},
                "deltas": self.config["complexity"]["delta"], "benchmark_root": self.paths.benchmarks(),
                "datasets": self.config["datasets"], "controls": control_tests(self.config),
                "label_mass_min_share": self.config["probes"]["values"].get("forced_choice", {}).get(
                    "label_mass_min_share", 0.9)}

    def _job_summary(self):
        return {"stage": "report", "db": self.paths.db(), "out": self.paths.summary(), "figures": self.plot_targets()}

    def _job_plot(self, rule, run=None):
        name, kind = PLOTS[rule]
        job = {"stage": "plot", "kind": kind, "db": self.paths.db(), "out": self.paths.plot(name.format(run=run))}
        return {**job, "run": run} if run is not None else job

    def _job_release_snapshot(self, run, step):
        return {"stage": "release-snapshot", "manifest": self.paths.manifest(run), "step": int(step),
                "needed_by": self.readers(run, int(step)), "out": self.paths.snapshot_record(run, step)}

    def _job_release_trainer_state(self, run):
        return {"stage": "release-trainer-state", "manifest": self.paths.manifest(run),
                "out": self.paths.trainer_state_record(run)}

    # --- what each job reads (the rules' inputs) -----------------------------------------------------------------

    def dataset_sources(self, dataset: str) -> list[str]:
        """The files a dataset is made from, so that editing them remakes it."""
        spec = self.config["datasets"][dataset]
        if spec["kind"] == "generated_sft":
            return [str(p) for p in sorted(SFT_SOURCES.glob("*.jsonl"))]
        return [spec["path"]] if spec["kind"] in ("jsonl", "preference_jsonl") else []

    def value_probe_inputs(self, run: str) -> list[str]:
        judge = self.judge_inputs(self.judge) if "generation" in self.config["probes"]["values"]["modes"] else []
        return [self.paths.manifest(run), *judge]

    def complexity_inputs(self, run: str) -> list[str]:
        judge = self.judge_inputs(self.judge) if "stance" in self.config["complexity"]["tasks"] else []
        return [self.paths.manifest(run), *judge]

    def value_probe_files(self, run: str) -> list[str]:
        return [self.paths.value_probe(run, s) for s in self.steps[run]]

    def complexity_files(self, run: str) -> list[str]:
        return [self.paths.complexity_probe(run, s) for s in self.steps[run]] if self.complexity else []

    def store_inputs(self) -> dict[str, list[str]]:
        return {
            "manifests": [self.paths.manifest(r) for r in self.runs],
            "stance": [f for r in self.runs for f in self.value_probe_files(r)],
            "datasets_stance": [self.paths.dataset_stance(d) for d in sorted(self.config["datasets"])],
            "dataset_checks": [self.paths.dataset_checks(d) for d in sorted(self.config["datasets"])],
            "judge_evals": [self.paths.judge_eval(j, split) for j in self.evaluated_judges
                            for split in self.judge_eval_splits],
            "complexity": [f for r in self.runs for f in self.complexity_files(r)],
        }

    def upstream_benchmarks(self) -> list[str]:
        """The `benchmark:` files of every job the store depends on (the DAG above it, rule by rule).

        Passed to the store as a parameter, not as inputs: a missing benchmark file would make Snakemake rerun
        its job (a whole SFT run for a deleted TSV), and jobs that ran before these files were recorded have none.
        """
        needs = {p for j in {self.judge, *self.evaluated_judges} for p in self.judge_inputs(j)}
        needs |= {p for r in self.sft_runs for p in self.model_inputs(self.config["sft"][r]["model"])}
        heads = self.judge_heads()
        gguf = sorted(m for m in self.config["models"] if self.paths.dequantised(m) in needs)
        b = self.paths.benchmark
        return [
            *[b("dataset", d) for d in sorted(self.config["datasets"])],
            *[b("dequantise", m) for m in gguf],
            *[b("sft", r) for r in self.sft_runs],
            *[b("pref", r) for r in self.pref_runs],
            *[b("reward_model", n) for n in self.ppo_reward_models],
            *[b("judge_head", j) for j in heads],
            *[b("judge_eval", f"{j}/{split}") for j in self.evaluated_judges for split in self.judge_eval_splits],
            *[b("dataset_stance", d) for d in sorted(self.config["datasets"])],
            *[b(f"{probe}{'_pref_start' * self.copies_parent(run, step)}", f"{run}/step-{step}")
              for probe in ["value_probe", *["complexity_probe"] * self.complexity]
              for run in self.runs for step in self.steps[run]],
        ]

    def judge_heads(self) -> list[str]:
        """The judges whose head the study fits (judge_head jobs): those in use or evaluated that have one."""
        return sorted(j for j in {self.judge, *self.evaluated_judges} if self.config["judges"][j]["kind"] in HEAD_KINDS)

    def plot_targets(self) -> list[str]:
        """Every figure of the study (each one's data must be in the database: no figure without rows)."""
        plot = self.paths.plot
        pairs = any(d["kind"] in PREFERENCE_KINDS for d in self.config["datasets"].values())
        return [
            *[plot(f"stance-{r}") for r in self.runs],
            *([plot("pref-drift")] if self.pref_runs else []),
            plot("drift-heatmap"),
            plot("stance-shares"),
            *([plot(f"pareto-{r}") for r in self.runs] + [plot("task-complexity")] if self.complexity else []),
            *([plot("judge-confusion")] if self.evaluated_judges else []),
            *([plot("value-gap")] if pairs else []),
            plot("job-time"),
        ]

    def targets(self) -> list[str]:
        """What a whole study makes: the database, every figure, the summary page, and the retention records."""
        return [self.paths.db(), *self.plot_targets(), self.paths.summary(), *self.retention_records()]

    # --- retention: which snapshot goes when ----------------------------------------------------------------

    def snapshot_readers(self) -> dict[tuple[str, int], tuple[list[str], list[str]]]:
        """(run, step) of every snapshot -> the outputs of the jobs that read it: (those of its own run, those of
        other runs). Once they all exist, nothing needs the snapshot any more. Computed once: every
        release_snapshot job asks, and the cluster study has 2,026 of them."""
        if self._snapshot_readers is None:
            self._snapshot_readers = self._find_snapshot_readers()
        return self._snapshot_readers

    def _find_snapshot_readers(self) -> dict[tuple[str, int], tuple[list[str], list[str]]]:
        c, p = self.config, self.paths
        own_others = {(run, s): ([], []) for run in self.runs for s in self.steps[run]}
        for run in self.runs:
            complexity = self.complexity_files(run)
            for i, s in enumerate(self.steps[run]):
                # A preference run's step-0 value probe copies its parent's rows: it loads no weights.
                if not (run in c["pref"] and s == 0):
                    own_others[run, s][0].append(p.value_probe(run, s))
                own_others[run, s][0].extend(complexity[i:i + 1])
            for ref_run, ref_step in self.reference_snapshots(run).values():
                own, others = own_others[ref_run, ref_step]
                (own if ref_run == run else others).extend(complexity)
        for child, spec in c["pref"].items():  # runs and reward models that start from it
            own_others[spec["from"]["run"], spec["from"]["step"]][1].append(p.manifest(child))
        for name, spec in c["reward_models"].items():
            own_others[spec["from"]["run"], spec["from"]["step"]][1].append(p.reward_metrics(name))
        return {key: (list(dict.fromkeys(own)), list(dict.fromkeys(others)))
                for key, (own, others) in own_others.items()}

    def readers(self, run: str, step: int) -> list[str]:
        """The outputs of every job that reads snapshot (run, step)."""
        own, others = self.snapshot_readers()[run, int(step)]
        return own + others

    def removable(self) -> list[tuple[str, int]]:
        """(run, step) of every snapshot the policy removes once its readers have finished. Snapshots that jobs
        of other runs read are never among them: a changed preference run would otherwise need its parent
        retrained, and everything downstream of the parent with it."""
        policy = self.config["retention"]["checkpoints"]
        if policy == "all":
            return []
        finals = {(run, steps[-1]) for run, steps in self.steps.items()}
        return [key for key, (_, others) in self.snapshot_readers().items()
                if not others and (policy == "until_probed" or key not in finals)]

    def retention_records(self) -> list[str]:
        """The record files the workflow asks for: one per removable snapshot, one per run's trainer state."""
        out = [self.paths.snapshot_record(run, step) for run, step in self.removable()]
        if self.config["retention"]["trainer_state"] == "remove_when_finished":
            out += [self.paths.trainer_state_record(run) for run in self.runs]
        return out


# --- Snakemake glue: what rules pass for `params: job=`, `threads:` and `resources: **` ---------------------------
# Functions of a job's wildcards (Snakemake calls them with its Wildcards object); nothing here imports Snakemake.

def _wildcards(w) -> dict:
    return dict(w.items())


def inputs(plan: Plan, rule: str):
    """`input: unpack(...)` of a rule: what its job reads, by name."""
    return lambda w: plan.inputs(rule, **_wildcards(w))


def job_param(plan: Plan, rule: str, **fixed):
    """`params: job=` of a rule: its job spec as JSON (a change to it reruns exactly the jobs it changes)."""
    return lambda w: json.dumps(plan.job(rule, **fixed, **_wildcards(w)), sort_keys=True)


def threads(plan: Plan, rule: str):
    return lambda w: plan.resources(rule, **_wildcards(w))["cpus"]


def resources(plan: Plan, rule: str) -> dict:
    """`resources: **` of a rule: Snakemake's names, which the Slurm executor maps to sbatch flags
    (gpu -> --gpus, mem_mb -> --mem, runtime -> --time; threads -> --cpus-per-task)."""
    return {"gpu": lambda w: plan.resources(rule, **_wildcards(w))["gpus"],
            "mem_mb": lambda w: plan.resources(rule, **_wildcards(w))["mem_mb"],
            "runtime": lambda w: plan.resources(rule, **_wildcards(w))["runtime"]}


def one_of(names) -> str:
    """A wildcard pattern matching exactly these names (a never-matching one if there are none)."""
    return "|".join(map(re.escape, names)) or "(?!)"
