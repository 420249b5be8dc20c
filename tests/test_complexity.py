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

from posttrain.complexity import coding, program_length, scoring, tasks
from posttrain.complexity.estimators import prequential, prompting, weight_delta, zero_shot
from posttrain.complexity.measure import measure
from posttrain.models import load_model, load_tokenizer
from posttrain.store.build import COMPLEXITY_VIEWS, delta_sql

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


def driver_bits(module):
    return program_length.source_bits(str(Path(module.__file__).resolve()))[0]


def test_prompt_estimators_count_their_prompt_and_their_own_source(tiny, task):
    model, tok = tiny
    settings = {"icl_k": [1, 2], "format": "plain"}
    rows = {r["setting"] or r["estimator"]: r for r in prompting.run(model, tok, task, settings)}
    icl2 = task.format(task.train[0]) + "\n\n" + task.format(task.train[1]) + "\n\n"
    assert rows["k=2"]["payload_bits"] == pytest.approx(reference_bits(model, tok, icl2), rel=1e-4)
    assert rows["instruction"]["payload_bits"] == pytest.approx(reference_bits(model, tok, task.instruction), rel=1e-4)
    assert {r["driver_bits"] for r in rows.values()} == {driver_bits(prompting)}
    answered = scoring.answers(model, tok, task, "plain", examples=tuple(task.train[:2]))
    assert rows["k=2"]["item_scores"] == task.score_items(answered, task.test)
    zero = zero_shot.run(model, tok, task, {"format": "plain"})[0]
    assert zero["payload_bits"] == 0 and zero["driver_bits"] == driver_bits(zero_shot)
    assert np.mean(zero["item_scores"]) == scoring.score(model, tok, task, "plain")


def test_program_length_ignores_formatting_comments_docstrings_and_type_hints(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("import math\n\ndef run(model, k=2):\n    x = math.sqrt(k)\n"
                     "    return [model(x) for _ in range(k)]\n")
    dressed = tmp_path / "dressed.py"
    dressed.write_text('''"""A module docstring that explains a lot."""
from __future__ import annotations

import math   # the square root


def run(model: object,
        k: int = 2) -> list[float]:
    """Run it."""
    x: float = math.sqrt( k )  # why: spacing, comments and hints do nothing
    limit: int
    return [ model(x)
             for _ in range(k) ]
''')
    changed = tmp_path / "changed.py"
    changed.write_text(plain.read_text().replace("range(k)", "range(k + 1)"))
    bits = {p.name: program_length.source_bits(str(p)) for p in (plain, dressed, changed)}
    assert bits["plain.py"] == bits["dressed.py"]  # same bits, same hash
    assert bits["changed.py"][1] != bits["plain.py"][1]  # what the code does is counted
    assert program_length.canonical_source(dressed) == program_length.canonical_source(plain)
    # the charge is the raw-DEFLATE size of the canonical text, far below the file's own bytes
    assert bits["dressed.py"][0] < 8 * len(dressed.read_bytes()) / 2
    # every shipped driver and the harness count this way, not by file size
    for module in (zero_shot, prompting, prequential, weight_delta):
        assert driver_bits(module) < 8 * Path(module.__file__).stat().st_size
    here = Path(scoring.__file__).parent
    assert program_length.harness()["harness_bits"] == sum(
        program_length.source_bits(str((here / n).resolve()))[0] for n in program_length.HARNESS)


def test_weight_delta_bits_are_the_compressed_quantised_delta(tiny, task):
    model, tok = tiny
    torch.manual_seed(0)
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    ref = {n: p + 0.01 * torch.randn_like(p) for n, p in own.items()}
    (row,) = weight_delta.run(model, tok, task, {"bits": [4], "format": "plain"}, {"run_start": ref})
    parts = []
    for n, w in own.items():  # the same code, written out independently
        delta = w - ref[n]
        scale = float(delta.abs().max()) / 7
        parts += [np.float32(scale).tobytes(), torch.round(delta / scale).to(torch.int8).numpy().tobytes()]
    payload = len(zstandard.ZstdCompressor(level=10).compress(b"".join(parts))) * 8
    assert row["payload_bits"] == payload and row["driver_bits"] == driver_bits(weight_delta)
    assert row["reference"] == "run_start"
    assert all(torch.equal(p, own[n]) for n, p in model.named_parameters())  # weights restored


def test_one_prequential_pass_equals_retraining_for_each_n(tiny, task):
    model, tok = tiny
    settings = {"max_examples": 32, "batch": 8, "lr": 1e-3, "format": "plain"}
    one_pass = {r["setting"]: r for r in prequential.run(model, tok, task, settings)}
    assert list(one_pass) == ["N=8,lr=0.001", "N=16,lr=0.001", "N=32,lr=0.001"]
    for n in (8, 16):  # the reference method: a fresh LoRA trained on the first N examples only
        (alone,) = [r for r in prequential.run(model, tok, task, {**settings, "max_examples": n})
                    if r["setting"] == f"N={n},lr=0.001"]
        assert alone["payload_bits"] == pytest.approx(one_pass[alone["setting"]]["payload_bits"], rel=1e-6)
        assert alone["item_scores"] == one_pass[alone["setting"]]["item_scores"]
    first = sum(reference_bits(model, tok, task.format(e)) for e in task.train[:8])
    assert one_pass["N=8,lr=0.001"]["payload_bits"] == pytest.approx(first, rel=1e-4)  # coded before any update
    assert one_pass["N=16,lr=0.001"]["payload_bits"] > first
    # in the chat format the examples are coded as the checkpoint is trained on them: as chat turns
    chat = prequential.run(model, tok, task, {**settings, "max_examples": 8, "format": "chat"})[0]
    turns = sum(reference_bits(model, tok, scoring.training_text(tok, task, e, "chat")) for e in task.train[:8])
    assert chat["payload_bits"] == pytest.approx(turns, rel=1e-4) and "<|im_start|>" in scoring.training_text(
        tok, task, task.train[0], "chat")


def test_measure_files_each_program_on_the_checkpoint_it_runs_on(tiny, task):
    model, tok = tiny
    torch.manual_seed(1)
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    start = {n: p + 0.01 * torch.randn_like(p) for n, p in own.items()}
    spec = {"tasks": {"arithmetic": {"n_test": 6, "n_train": 8, "seed": 1}}, "format": "chat",
            "estimators": {"zero_shot": {}, "prompting": {"icl_k": [1]}, "weight_delta": {"bits": [4, 8]}},
            "bootstrap": {"resamples": 200, "seed": 3}}
    refs = {"run_start": (start, ("r", 0)), "base": (own, ("r", 5))}  # `base` is this checkpoint: no program
    frame = measure(model, tok, spec, "r", 5, refs)
    delta = frame[frame.estimator == "weight_delta"]
    assert sorted(delta.setting) == ["ref=run_start,bits=4", "ref=run_start,bits=8"]
    assert (delta.step == 0).all() and (delta.target_step == 5).all()  # on the reference, reaching step 5
    rest = frame[frame.estimator != "weight_delta"]
    assert (rest.step == 5).all() and (rest.target_step == 5).all() and (frame.format == "chat").all()
    harness = program_length.harness()["harness_bits"]
    assert np.allclose(frame.bits, frame.payload_bits + frame.driver_bits + harness)
    assert (frame.harness_bits == harness).all() and frame.driver_sha256.str.len().eq(12).all()
    assert (frame.score_lo <= frame.score).all() and (frame.score <= frame.score_hi).all()
    assert np.allclose(frame.score, [np.mean(x) for x in frame.item_scores]) and (frame.n_items == 6).all()
    # the interval is the percentile interval of the mean over the same resampled items for every program
    draws = np.random.default_rng(3).integers(0, 6, (200, 6))
    items = np.asarray(frame.item_scores.iloc[0])
    assert frame.score_lo.iloc[0] == pytest.approx(np.quantile(items[draws].mean(1), 0.025))


def hand_frontier(points):
    best, keep = -1.0, []
    for p in sorted(points, key=lambda p: (p["bits"], -p["score"])):
        if p["score"] > best:
            keep.append((p["bits"], p["score"]))
            best = p["score"]
    return keep


def views(points, deltas=None):
    con = duckdb.connect()
    con.register("points_df", pd.DataFrame(points))
    con.execute("CREATE TABLE complexity_points AS SELECT * FROM points_df")
    steps = sorted({(p["run"], p["step"]) for p in points})
    con.execute("CREATE TABLE checkpoints AS SELECT * FROM (VALUES " + ", ".join(
        f"('{r}', {s}, {s / 10})" for r, s in steps) + ") AS t(run, step, progress)")
    con.execute(COMPLEXITY_VIEWS.read_text().format(delta_sql=delta_sql(deltas or {})))
    return con


def point(step, setting, bits, score, lo=None, hi=None, payload=None, estimator="e", target=None):
    return {"run": "r", "step": step, "task": "t", "estimator": estimator, "family": "f", "setting": setting,
            "bits": float(bits), "payload_bits": float(bits - 1000 if payload is None else payload),
            "driver_bits": 500.0, "harness_bits": 500.0, "score": score,
            "score_lo": score - 0.1 if lo is None else lo, "score_hi": score + 0.1 if hi is None else hi,
            "target_run": "r", "target_step": step if target is None else target}


def test_frontier_and_task_complexity_views_match_a_hand_computation():
    rng = np.random.default_rng(5)
    points = [point(s, str(i), int(rng.integers(1100, 10_000)), float(rng.integers(0, 10)) / 10)
              for s in (0, 5, 9) for i in range(25)]
    con = views(points)
    for step in (0, 5, 9):
        got = con.execute("SELECT bits, score FROM complexity_frontier WHERE step = ? ORDER BY bits", [step]).fetchall()
        assert got == hand_frontier([p for p in points if p["step"] == step])
    grid = con.execute("SELECT delta FROM complexity_deltas ORDER BY delta").fetchall()
    assert [d for (d,) in grid] == pytest.approx([0.1 * i for i in range(1, 10)])  # the default, for every run
    for step, delta, bits in con.execute("SELECT step, delta, bits FROM task_complexity").fetchall():
        reaching = [p["bits"] for p in points if p["step"] == step and p["score"] >= delta]
        assert bits == (min(reaching) if reaching else None)
    con = views(points, {"t": 0.35})
    got = dict(con.execute("SELECT step, bits FROM task_complexity").fetchall())
    assert got[5] == min(p["bits"] for p in points if p["step"] == 5 and p["score"] >= 0.35)


def test_weight_deltas_sit_on_their_reference_and_c_has_an_interval():
    """A hand-made staircase. Step 0 runs zero-shot (2,000 bits, score 0.2) and instruction (2,500, 0.5); the
    4-bit delta to step 10 (90,000 bits, score 0.9) runs on step 0 too. Step 10 runs zero-shot (2,000, 0.85)."""
    points = [point(0, "zs", 2000, 0.2, payload=0), point(0, "instr", 2500, 0.5, lo=0.38, hi=0.6, payload=500),
              point(0, "d4", 90_000, 0.9, lo=0.82, hi=0.97, payload=88_000, estimator="weight_delta", target=10),
              point(10, "zs", 2000, 0.85, lo=0.75, hi=0.93, payload=0)]
    con = views(points, {"t": [0.4, 0.8, 0.95]})
    frontier = con.execute("SELECT step, setting, target_step FROM complexity_frontier ORDER BY step, bits").fetchall()
    assert frontier == [(0, "zs", 0), (0, "instr", 0), (0, "d4", 10), (10, "zs", 10)]
    rows = con.execute("SELECT step, delta, bits, bits_confident, bits_optimistic, payload_bits, program "
                       "FROM task_complexity").fetchall()
    c = {(s, d): (b, conf, opt, pay, prog) for s, d, b, conf, opt, pay, prog in rows}
    # δ = 0.4: step 0 reaches it with the instruction (2,500), but its lower bound 0.38 does not: confidently
    # only with the delta (90,000); step 10 with zero-shot, confidently too (0.75)
    assert c[0, 0.4] == (2500, 90_000, 2500, 500, "e instr")
    assert c[10, 0.4] == (2000, 2000, 2000, 0, "e zs")
    # δ = 0.8: only the delta on step 0; step 10's zero-shot (0.85) but not confidently (0.75)
    assert c[0, 0.8] == (90_000, 90_000, 90_000, 88_000, "weight_delta d4")
    assert c[10, 0.8] == (2000, None, 2000, 0, "e zs")
    # δ = 0.95: no point estimate reaches it; the delta's upper bound (0.97) does
    assert c[0, 0.95][:3] == (None, None, 90_000) and c[10, 0.95][:3] == (None, None, None)
    progress = dict(con.execute("SELECT step, any_value(progress) FROM task_complexity GROUP BY step").fetchall())
    assert progress == {0: 0.0, 10: 1.0}
    # the payload-only staircase: instruction (500) comes after zero-shot (0), then the delta
    payload = con.execute("SELECT setting FROM complexity_frontier_payload WHERE step = 0 ORDER BY payload_bits")
    assert [s for (s,) in payload.fetchall()] == ["zs", "instr", "d4"]


def test_stance_task_is_scored_by_the_judge(tiny, tmp_path):
    import json

    from posttrain.judges import build, labelled, train_head

    judge = {"name": "tiny-head", "kind": "lm_head", "model_spec": SPEC, "head": str(tmp_path / "head.json")}
    (tmp_path / "head.json").write_text(json.dumps(train_head.train(judge)))
    task = tasks.load("stance", {"stance": "oppose", "n_test": 3, "n_train": 2, "max_new_tokens": 6,
                                 "judge": judge})
    assert len(task.train) == 2 and all(len(e["target"].split()) > 3 for e in task.train)  # opposing answers
    assert len({e["topic"] for e in task.test}) == 3  # the cut takes topic by topic
    model, tok = tiny
    answers = scoring.answers(model, tok, task, "chat")
    expected = np.mean([v["p_oppose"] for v in build(judge, progress=False)(
        [{"question": e["input"], "response": a or "(no answer)"} for a, e in zip(answers, task.test)])])
    assert scoring.score(model, tok, task, "chat") == pytest.approx(expected)
    # the full test set: 10 questions of each of the 11 topics, none the judge was fitted on, none carried
    full = tasks.load("stance", {"judge": judge})
    fitted = {r["question"].strip().lower() for r in labelled.load(labelled.DEFAULT, ("train",))}
    carried = {e["input"].strip().lower() for e in full.train}
    questions = [e["input"].strip().lower() for e in full.test]
    assert len(questions) == len(set(questions)) == 110
    assert not set(questions) & (fitted | carried)
    assert pd.Series([e["topic"] for e in full.test]).value_counts().eq(10).all()
    with pytest.raises(tasks.TaskError, match="needs a judge"):
        tasks.load("stance", {})
    with pytest.raises(tasks.TaskError, match="unknown complexity task 'mmlu'"):
        tasks.load("mmlu", {})


def test_stance_task_can_carry_what_the_value_gap_sets_train_on():
    """train_from value_qa: the SFT source questions' answers of the stance (the DPO value-gap sets' chosen
    answers), interleaved topic by topic, after the labelled set's when both are named; never a test question."""
    from posttrain.data.sft_mix import value_questions
    from posttrain.judges import labelled

    judge = {"kind": "lm_head"}
    labelled_only = tasks.load("stance", {"judge": judge})
    both = tasks.load("stance", {"judge": judge, "train_from": ["labelled", "value_qa"]})
    value_qa = tasks.load("stance", {"judge": judge, "stance": "oppose", "train_from": "value_qa", "n_train": 22})
    sources = {q["question"]: q for q in value_questions()}
    assert len(labelled_only.train) == sum(r["stance"] == "support" and r["split"] == "train"
                                           for r in labelled.load(labelled.DEFAULT))
    assert both.train[: len(labelled_only.train)] == labelled_only.train
    added = both.train[len(labelled_only.train):]
    assert len(added) == len(sources) == 220 and all(sources[e["input"]]["support"] == e["target"] for e in added)
    assert len(value_qa.train) == 22 and all(sources[e["input"]]["oppose"] == e["target"] for e in value_qa.train)
    first_topics = [sources[e["input"]]["topic"] for e in value_qa.train]
    assert first_topics[:11] == first_topics[11:] and len(set(first_topics)) == 11  # every topic, in turn
    carried = {e["input"].strip().lower() for e in both.train}
    assert len(both.test) == 110 and not carried & {e["input"].strip().lower() for e in both.test}
    with pytest.raises(tasks.TaskError, match="train_from 'sft'"):
        tasks.load("stance", {"judge": judge, "train_from": "sft"})


def test_cluster_task_loaders_and_scorers_on_local_rows(monkeypatch):
    """The hub tasks' row handling and metrics, on rows shaped like the hub's (no network here)."""
    import json

    from datasets import Dataset

    from posttrain.complexity.tasks import hub

    rows = {
        ("openai/gsm8k", "train"): [{"question": "1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"}],
        ("meta-math/MetaMathQA", "train"): [
            {"query": "What is 3+4?", "response": "3+4=7. The answer is: 7", "type": "GSM_AnsAug"},
            {"query": "Find x.", "response": "x=1. The answer is: 1", "type": "MATH_AnsAug"},
            {"query": "What is 2*5?", "response": "2*5=10. The answer is: 10", "type": "GSM_Rephrased"}],
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
    assert [e["target"] for e in gsm.test] == ["4", "1000"]
    assert gsm.train[0]["target"] == "1+1=2\nThe answer is 2."  # worked, without calculator annotations
    meta = tasks.load("gsm8k", {"train_dataset": "meta-math/MetaMathQA", "n_train": 5})
    assert [e["input"] for e in meta.train] == ["What is 3+4?", "What is 2*5?"]  # GSM-derived rows only
    with pytest.raises(tasks.TaskError, match="train_dataset 'x'"):
        tasks.load("gsm8k", {"train_dataset": "x"})
    assert gsm.score(["The answer is 4.", "It is 1,000\nQuestion: next"], gsm.test) == 1.0
    assert gsm.score(["4 apples, no wait 5", "1000"], gsm.test) == 0.5
    flores = tasks.load("flores-en-fr", {})
    assert flores.score(["Le chat dort sur le tapis.\nextra line"], flores.test) == pytest.approx(1.0)
    assert flores.score(["Un chien."], flores.test) < 0.2
    ifeval = tasks.load("ifeval", {})
    assert len(ifeval.test) == 2  # the prompt with an instruction we cannot check is left out
    assert ifeval.score(["all lowercase here", "one, two"], ifeval.test) == pytest.approx(2 / 3)
    assert json.loads(ifeval.test[1]["target"])["ids"] == ["punctuation:no_comma", "length_constraints:number_words"]


def test_complexity_plots_draw_the_frontiers_the_grid_and_the_bands(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from posttrain.plots import complexity as plots

    points = [point(0, "zs", 2000, 0.2, payload=0), point(0, "instr", 2500, 0.5, payload=500),
              point(0, "d4", 90_000, 0.9, payload=88_000, estimator="weight_delta", target=10),
              point(5, "zs", 2000, 0.6, payload=0), point(10, "zs", 2000, 0.85, payload=0)]
    con = views(points)

    def query(sql, params=()):
        return con.execute(sql, list(params)).df()

    saved = {}

    def save(fig, out):
        fig.savefig(out)
        saved[out] = fig

    plots.pareto(query, save, "r", str(tmp_path / "pareto.png"))
    plots.task_complexity(query, save, str(tmp_path / "c.png"))
    pareto_ax = saved[str(tmp_path / "pareto.png")].axes[0]
    assert pareto_ax.get_xscale() == "log"
    assert pareto_ax.get_xlim()[0] < 2000 and pareto_ax.get_xlim()[1] > 90_000  # the shortest to the longest
    assert len([ln for ln in pareto_ax.get_lines() if ln.get_linestyle() == ":"]) == 9  # the δ grid
    c_axes = [a for a in saved[str(tmp_path / "c.png")].axes if a.get_visible()]
    assert len(c_axes) == 9  # every δ of the grid is reached by some program here
    assert all(a.get_yscale() == "log" and a.collections for a in c_axes)  # bands drawn
    assert (tmp_path / "pareto.png").stat().st_size > 10_000 and (tmp_path / "c.png").stat().st_size > 10_000
    # nothing reaches the grid (a random model): the figure says so instead of failing
    low = views([point(0, "zs", 2000, 0.01, lo=0.0, hi=0.05), point(10, "zs", 2000, 0.02, lo=0.0, hi=0.06)])
    plots.task_complexity(lambda sql, params=(): low.execute(sql, list(params)).df(), save, str(tmp_path / "low.png"))
    assert "No program reaches" in saved[str(tmp_path / "low.png")].axes[0].get_title()
