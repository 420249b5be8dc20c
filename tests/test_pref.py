"""Preference stages for real on tiny models: DPO, SimPO, PPO (+ reward model) from an SFT checkpoint;
synthetic value-gap sets; preference rows in every accepted layout and every bad-row case."""

import json
from pathlib import Path

import pytest
import torch

from posttrain import stages
from posttrain.data.chat import DatasetError
from posttrain.data.preference import normalise, read_pairs, synthetic_value_gap
from posttrain.data.sft_mix import brief, value_questions
from posttrain.models import load_checkpoint
from posttrain.plan import Plan
from posttrain.probes import prompt_sets

TRAINING = {"learning_rate": 1e-3, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
            "max_length": 512, "lr_scheduler_type": "constant", "warmup_steps": 0, "weight_decay": 0.0,
            "max_grad_norm": 1.0, "seed": 0, "precision": "fp32", "state_every": 4}
NO_LORA = {"enabled": False, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}


@pytest.mark.parametrize("gap, direction", [(1.0, "support"), (0.5, "oppose"), (0.0, "support"), (0.25, "oppose")])
def test_synthetic_set_realises_the_configured_gap(gap, direction):
    rows = synthetic_value_gap({"direction": direction, "value_gap": gap, "n_pairs": 40, "seed": 7})
    opposite = {"support": "oppose", "oppose": "support"}[direction]
    by_id = {q["id"]: q for q in value_questions()}
    realised = sum((r["meta"]["chosen_stance"] == direction) - (r["meta"]["rejected_stance"] == direction)
                   for r in rows) / len(rows)
    assert realised == gap
    for r in rows:
        q = by_id[r["meta"]["id"]]
        assert r["prompt"] == [{"role": "user", "content": q["question"]}]
        if r["meta"]["pair"] == "stance":  # the answers really are the labelled stances' answers
            assert (r["chosen"][0]["content"], r["rejected"][0]["content"]) == (q[direction], q[opposite])
        else:  # the same question, the same stance: the full answer and its first two sentences
            s = r["meta"]["chosen_stance"]
            assert r["meta"]["rejected_stance"] == s
            assert {r["chosen"][0]["content"], r["rejected"][0]["content"]} == {q[s], brief(q[s])}
    for stance in ("support", "neutral", "oppose"):  # only the target stance has a gap
        gap_s = sum((r["meta"]["chosen_stance"] == stance) - (r["meta"]["rejected_stance"] == stance) for r in rows)
        assert gap_s / len(rows) == (gap if stance == direction else -gap if stance == opposite else 0)
    assert rows == synthetic_value_gap({"direction": direction, "value_gap": gap, "n_pairs": 40, "seed": 7})


def test_the_value_neutral_control_prefers_no_stance_and_no_length():
    rows = synthetic_value_gap({"direction": "none", "value_gap": 0, "n_pairs": 60, "seed": 1})
    assert {r["meta"]["pair"] for r in rows} == {"same_stance"}
    stances = [r["meta"]["chosen_stance"] for r in rows]
    assert {s: stances.count(s) for s in set(stances)} == {"support": 20, "neutral": 20, "oppose": 20}
    assert all(r["meta"]["rejected_stance"] == r["meta"]["chosen_stance"] for r in rows)
    longer = sum(len(r["chosen"][0]["content"]) > len(r["rejected"][0]["content"]) for r in rows)
    assert 20 <= longer <= 40  # a coin flip per pair: no length preference on average
    with pytest.raises(DatasetError, match="value_gap must be 0"):
        synthetic_value_gap({"direction": "none", "value_gap": 0.5, "n_pairs": 10, "seed": 0})


def test_synthetic_prompts_are_disjoint_from_probe_prompts():
    probe = {p["question"].lower() for p in prompt_sets.load("values-v1").prompts}
    rows = synthetic_value_gap({"direction": "support", "value_gap": 1.0, "n_pairs": 220, "seed": 0})
    assert not probe & {r["prompt"][0]["content"].lower() for r in rows}


def test_synthetic_topics_restrict_the_prompts():
    rows = synthetic_value_gap({"direction": "support", "value_gap": 1.0, "n_pairs": 30, "seed": 0,
                                "topics": ["abortion", "healthcare"]})
    assert {r["meta"]["topic"] for r in rows} == {"abortion", "healthcare"}


def test_every_layout_normalises_to_the_same_pair():
    want = {"prompt": [{"role": "user", "content": "Should we?"}],
            "chosen": [{"role": "assistant", "content": "Yes."}],
            "rejected": [{"role": "assistant", "content": "No."}], "meta": {}}
    plain = {"prompt": "Should we?", "chosen": "Yes.", "rejected": "No."}
    ultrafeedback = {"prompt": "Should we?",
                     "chosen": [{"role": "user", "content": "Should we?"}, {"role": "assistant", "content": "Yes."}],
                     "rejected": [{"role": "user", "content": "Should we?"}, {"role": "assistant", "content": "No."}]}
    hh = {"chosen": "\n\nHuman: Should we?\n\nAssistant: Yes.", "rejected": "\n\nHuman: Should we?\n\nAssistant: No."}
    for row in (plain, ultrafeedback, hh):
        assert normalise(row, "x:1") == want


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "Q?", "chosen": "A", "rejected": ""}', "missing or empty field 'rejected'"),
    ('{"prompt": "Q?", "rejected": "B"}', "missing or empty field 'chosen'"),
    ('{"prompt": "", "chosen": "A", "rejected": "B"}', "missing or empty field 'prompt'"),
    ('{"prompt": "Q?", "chosen": "Same.", "rejected": "Same. "}', "chosen and rejected are identical"),
    ('{"prompt": "Q?", "chosen": "A", ', "not valid JSON"),
    ('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\\n\\nHuman: x\\n\\nAssistant: y"}',
     "do not share their prompt turns"),
])
def test_bad_preference_row_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "Q?", "chosen": "A", "rejected": "B"}\n' + line + "\n")
    with pytest.raises(DatasetError, match=f"{path}:2.*{message}"):
        read_pairs(path)


PREF = {"from": {"run": "sft", "step": 3}, "dataset": "gap", "max_steps": 4, "checkpoints": {"steps": [2]},
        "response_length": 12, "training": TRAINING, "lora": NO_LORA}
CONFIG = {
    "models": {"tiny": {"tiny": {"family": "llama"}}},
    "datasets": {"d": {"kind": "generated_sft", "n_examples": 24, "value_fraction": 0.5, "short_answer_fraction": 0.5,
                       "seed": 0, "stance_mix": {"support": 0.2, "neutral": 0.6, "oppose": 0.2}},
                 "gap": {"kind": "synthetic_value_gap", "direction": "support", "value_gap": 1.0, "n_pairs": 16,
                         "seed": 0}},
    "sft": {"sft": {"model": "tiny", "dataset": "d", "max_steps": 3, "checkpoints": {"steps": [1]},
                    "training": TRAINING, "lora": NO_LORA}},
    "reward_models": {"rm": {"from": {"run": "sft", "step": 3}, "dataset": "gap", "max_steps": 3,
                             "heldout_fraction": 0.25, "training": TRAINING}},
    "pref": {"dpo": {**PREF, "algorithm": "dpo"}, "simpo": {**PREF, "algorithm": "simpo", "gamma": 0.3},
             "ppo": {**PREF, "algorithm": "ppo", "reward_model": "rm"}},
}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """A tiny study's plan, with its SFT run trained: the preference stages start from its last checkpoint."""
    import copy

    plan = Plan(copy.deepcopy(CONFIG), root=str(tmp_path_factory.mktemp("pref")))
    for dataset in plan.config["datasets"]:
        stages.run("data", plan.job("dataset", dataset=dataset))
    stages.run("sft", plan.job("sft", run="sft"))
    return plan


def run_algorithm(plan, run):
    stages.run("pref", plan.job("pref", run=run))
    paths = plan.paths
    manifest = json.loads(Path(paths.manifest(run)).read_text())
    assert [c["step"] for c in manifest["checkpoints"]] == [0, 2, 4]
    assert manifest["parent_run"] == "sft" and manifest["algorithm"] == run
    start, _ = load_checkpoint(paths.snapshot("sft", 3))
    step0, _ = load_checkpoint(paths.snapshot(run, 0))
    last, _ = load_checkpoint(paths.snapshot(run, 4))
    assert torch.equal(step0.lm_head.weight, start.lm_head.weight)  # step 0 = the SFT checkpoint
    assert not torch.equal(last.lm_head.weight, start.lm_head.weight)  # and training moved it
    return [json.loads(line) for line in (Path(paths.run_dir(run)) / "train_log.jsonl").read_text().splitlines()]


def test_dpo_trains_from_the_sft_checkpoint(plan):
    log = run_algorithm(plan, "dpo")
    assert "rewards/margins" in log[0]


def test_simpo_is_simpo_not_cpo(plan):
    log = run_algorithm(plan, "simpo")
    assert all(r.get("nll_loss", 0) == 0 for r in log)  # cpo_alpha = 0: no NLL term (CPO-SimPO would add one)


def test_reward_model_then_ppo(plan):
    stages.run("reward-model", plan.job("reward_model", name="rm"))
    metrics = json.loads(Path(plan.paths.reward_metrics("rm")).read_text())
    assert metrics["heldout_pairs"] == 4 and metrics["train_pairs"] == 12
    assert 0 <= metrics["heldout_accuracy"] <= 1
    log = run_algorithm(plan, "ppo")
    assert any("objective/kl" in r for r in log)


def test_a_job_is_checked_against_its_part_of_the_schema(plan):
    job = plan.job("pref", run="dpo")
    bad = {**job, "spec": {**job["spec"], "algorithm": "orpo"}}
    with pytest.raises(stages.JobError, match="spec.algorithm"):
        stages.run("pref", bad)
    with pytest.raises(stages.JobError, match="missing start"):
        stages.run("pref", {k: v for k, v in job.items() if k != "start"})
