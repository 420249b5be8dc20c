"""Task complexity on tiny models: the range coder round-trips at the ideal length, every estimator's bits are
recomputed independently, one prequential pass equals retraining for each N, and the frontier and C(T, δ)
views match a hand computation."""

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
import zstandard

from posttrain.complexity import coding, scoring, tasks
from posttrain.complexity.estimators import prequential, prompting, weight_delta, zero_shot
from posttrain.models import load_model, load_tokenizer
from posttrain.store.build import COMPLEXITY_VIEWS

SPEC = {"tiny": {"family": "llama"}}


@pytest.fixture(scope="module")
def tiny():
    tok = load_tokenizer(SPEC)
    return load_model(SPEC, tok), tok


@pytest.fixture(scope="module")
def task():
    return tasks.load("arithmetic", {"n_test": 6, "n_train": 32, "seed": 1})


def reference_bits(model, tok, text):
    """Σ -log2 p(token | start, earlier tokens) from one unbatched forward pass."""
    ids = [coding.start_id(tok), *tok.encode(text, add_special_tokens=False), tok.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    return -sum(logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)) / math.log(2)


def test_range_coder_round_trips_within_one_percent_plus_64_bits(tiny, task):
    model, tok = tiny
    text = task.instruction + task.format(task.train[0])
    words, ideal = coding.encode(model, tok, text)
    assert coding.decode(model, tok, words) == text
    expected = reference_bits(model, tok, text)
    assert ideal == pytest.approx(expected, rel=1e-4)
    assert coding.code_length_bits(model, tok, [text, "x"])[0] == pytest.approx(expected, rel=1e-4)
    assert ideal <= len(words) * 32 <= 1.01 * ideal + 64


def test_prompt_estimators_count_their_prompt_and_their_own_source(tiny, task):
    model, tok = tiny
    rows = {r["setting"] or r["estimator"]: r for r in prompting.run(model, tok, task, {"icl_k": [1, 2]})}
    source = len(Path(prompting.__file__).read_bytes()) * 8
    icl2 = task.format(task.train[0]) + "\n\n" + task.format(task.train[1]) + "\n\n"
    assert rows["k=2"]["bits"] == pytest.approx(source + reference_bits(model, tok, icl2), rel=1e-4)
    assert rows["instruction"]["bits"] == pytest.approx(source + reference_bits(model, tok, task.instruction), rel=1e-4)
    zero = zero_shot.run(model, tok, task, {})[0]
    assert zero["bits"] == len(Path(zero_shot.__file__).read_bytes()) * 8 and zero["payload_bits"] == 0
    assert zero["score"] == scoring.score(model, tok, task, "")


def test_weight_delta_bits_are_the_compressed_quantised_delta(tiny, task):
    model, tok = tiny
    torch.manual_seed(0)
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    ref = {n: p + 0.01 * torch.randn_like(p) for n, p in own.items()}
    (row,) = weight_delta.run(model, tok, task, {"bits": [4]}, {"run_start": ref})
    parts = []
    for n, w in own.items():  # the same code, written out independently
        delta = w - ref[n]
        scale = float(delta.abs().max()) / 7
        parts += [np.float32(scale).tobytes(), torch.round(delta / scale).to(torch.int8).numpy().tobytes()]
    payload = len(zstandard.ZstdCompressor(level=10).compress(b"".join(parts))) * 8
    assert row["bits"] == payload + len(Path(weight_delta.__file__).read_bytes()) * 8
    assert all(torch.equal(p, own[n]) for n, p in model.named_parameters())  # weights restored


def test_one_prequential_pass_equals_retraining_for_each_n(tiny, task):
    model, tok = tiny
    settings = {"max_examples": 32, "batch": 8, "lr": 1e-3}
    one_pass = {r["setting"]: r for r in prequential.run(model, tok, task, settings)}
    assert list(one_pass) == ["N=8,lr=0.001", "N=16,lr=0.001", "N=32,lr=0.001"]
    for n in (8, 16):  # the reference method: a fresh LoRA trained on the first N examples only
        (alone,) = [r for r in prequential.run(model, tok, task, {**settings, "max_examples": n})
                    if r["setting"] == f"N={n},lr=0.001"]
        assert alone["bits"] == pytest.approx(one_pass[alone["setting"]]["bits"], rel=1e-6)
        assert alone["score"] == one_pass[alone["setting"]]["score"]
    first = sum(reference_bits(model, tok, task.format(e)) for e in task.train[:8])
    assert one_pass["N=8,lr=0.001"]["payload_bits"] == pytest.approx(first, rel=1e-4)  # coded before any update
    assert one_pass["N=16,lr=0.001"]["payload_bits"] > first


def hand_frontier(points):
    best, keep = -1.0, []
    for p in sorted(points, key=lambda p: (p["bits"], -p["score"])):
        if p["score"] > best:
            keep.append((p["bits"], p["score"]))
            best = p["score"]
    return keep


def test_frontier_and_task_complexity_views_match_a_hand_computation():
    rng = np.random.default_rng(5)
    points = [{"run": "r", "step": s, "task": "t", "estimator": "e", "family": "f", "setting": str(i),
               "bits": float(rng.integers(100, 10_000)), "payload_bits": 0.0, "driver_bits": 0.0,
               "score": float(rng.integers(0, 10)) / 10}
              for s in (0, 5, 9) for i in range(25)]
    con = duckdb.connect()
    con.register("points_df", pd.DataFrame(points))
    con.execute("CREATE TABLE complexity_points AS SELECT * FROM points_df")
    con.execute(COMPLEXITY_VIEWS.read_text().format(delta_sql="SELECT NULL::VARCHAR AS task, NULL::DOUBLE AS delta"))
    for step in (0, 5, 9):
        got = con.execute("SELECT bits, score FROM complexity_frontier WHERE step = ? ORDER BY bits", [step]).fetchall()
        assert got == hand_frontier([p for p in points if p["step"] == step])
    delta = max(p["score"] for p in points if p["step"] == 0)
    for step, bits in con.execute("SELECT step, bits FROM task_complexity ORDER BY step").fetchall():
        reaching = [p["bits"] for p in points if p["step"] == step and p["score"] >= delta]
        assert bits == (min(reaching) if reaching else None)
    con.execute(COMPLEXITY_VIEWS.read_text().format(delta_sql="SELECT 't' AS task, 0.35 AS delta"))
    got = dict(con.execute("SELECT step, bits FROM task_complexity").fetchall())
    assert got[5] == min(p["bits"] for p in points if p["step"] == 5 and p["score"] >= 0.35)


def test_stance_task_is_scored_by_the_judge(tiny, tmp_path):
    import json

    from posttrain.judges import build, train_head

    judge = {"name": "tiny-head", "kind": "lm_head", "model_spec": SPEC, "head": str(tmp_path / "head.json")}
    (tmp_path / "head.json").write_text(json.dumps(train_head.train(judge)))
    task = tasks.load("stance", {"stance": "oppose", "n_test": 3, "n_train": 2, "max_new_tokens": 6,
                                 "judge": judge})
    assert len(task.train) == 2 and all(len(e["target"].split()) > 3 for e in task.train)  # opposing answers
    model, tok = tiny
    answers = scoring.answers(model, tok, task, "")
    expected = np.mean([v["p_oppose"] for v in build(judge, progress=False)(
        [{"question": e["input"], "response": a or "(no answer)"} for a, e in zip(answers, task.test)])])
    assert scoring.score(model, tok, task, "") == pytest.approx(expected)
    with pytest.raises(tasks.TaskError, match="needs a judge"):
        tasks.load("stance", {})
    with pytest.raises(tasks.TaskError, match="unknown complexity task 'mmlu'"):
        tasks.load("mmlu", {})


def test_cluster_task_loaders_and_scorers_on_local_rows(monkeypatch):
    """The hub tasks' row handling and metrics, on rows shaped like the hub's (no network here)."""
    import json

    from datasets import Dataset

    from posttrain.complexity.tasks import hub

    rows = {
        ("openai/gsm8k", "train"): [{"question": "1+1?", "answer": "1+1=2\n#### 2"}],
        ("openai/gsm8k", "test"): [{"question": "2+2?", "answer": "so\n#### 4"},
                                   {"question": "10*100?", "answer": "#### 1,000"}],
        ("facebook/flores", "dev"): [{"sentence_eng_Latn": "Hello.", "sentence_fra_Latn": "Bonjour."}],
        ("facebook/flores", "devtest"): [{"sentence_eng_Latn": "The cat sleeps on the mat.",
                                          "sentence_fra_Latn": "Le chat dort sur le tapis."}],
        ("google/IFEval", "train"): [
            {"prompt": "Write about cats in lowercase.", "instruction_id_list": ["change_case:english_lowercase"],
             "kwargs": [{}]},
            {"prompt": "Write 3 words, no commas.", "instruction_id_list": ["punctuation:no_comma",
             "length_constraints:number_words"], "kwargs": [{}, {"relation": "less than", "num_words": 4}]},
            {"prompt": "Unsupported.", "instruction_id_list": ["language:response_language"], "kwargs": [{}]}],
    }
    monkeypatch.setattr(hub, "_hub", lambda name, subset, split, settings: Dataset.from_list(rows[(name, split)]))
    gsm = tasks.load("gsm8k", {})
    assert [e["target"] for e in gsm.test] == ["4", "1000"] and gsm.train[0]["target"] == "2"
    assert gsm.score(["The answer is 4.", "It is 1,000\nQuestion: next"], gsm.test) == 1.0
    assert gsm.score(["4 apples, no wait 5", "1000"], gsm.test) == 0.5
    flores = tasks.load("flores-en-fr", {})
    assert flores.score(["Le chat dort sur le tapis.\nextra line"], flores.test) == pytest.approx(1.0)
    assert flores.score(["Un chien."], flores.test) < 0.2
    ifeval = tasks.load("ifeval", {})
    assert len(ifeval.test) == 2  # the prompt with an instruction we cannot check is left out
    assert ifeval.score(["all lowercase here", "one, two"], ifeval.test) == pytest.approx(2 / 3)
    assert json.loads(ifeval.test[1]["target"])["ids"] == ["punctuation:no_comma", "length_constraints:number_words"]
