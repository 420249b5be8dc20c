"""The project's data: prompt set format and balance, SFT generator counts, disjointness, bad rows."""

import json
import re

import pytest

from posttrain.cli import main as posttrain
from posttrain.data import sft_mix
from posttrain.data.chat import DatasetError, read_jsonl
from posttrain.probes import prompt_sets

TOPICS = ["immigration", "abortion", "climate_change", "economic_policy", "religion", "family_relationships",
          "death_penalty", "gun_control", "lgbtq_rights", "free_speech", "healthcare"]


def _words(text):
    return set(re.findall(r"[a-z']+", text.lower()))


def test_probe_prompt_set_is_11_topics_by_50_with_stable_ids():
    ps = prompt_sets.load("values-v1")
    assert len(ps.prompts) == 550
    assert sorted({p["topic"] for p in ps.prompts}) == sorted(TOPICS)
    for topic in TOPICS:
        ids = [p["id"] for p in ps.prompts if p["topic"] == topic]
        assert len(ids) == 50
        assert ids == [f"{ids[0][:3]}-{i:03d}" for i in range(1, 51)]
    assert len({p["question"].lower() for p in ps.prompts}) == 550


def test_sft_value_questions_are_disjoint_from_probe_prompts():
    probe = [p["question"] for p in prompt_sets.load("values-v1").prompts]
    train = [q["question"] for q in sft_mix.value_questions()]
    assert not {q.lower().strip() for q in probe} & {q.lower().strip() for q in train}
    # and no near-paraphrases: word-set Jaccard similarity stays below 0.4 for every pair
    probe_words = [_words(q) for q in probe]
    for q in train:
        w = _words(q)
        worst = max(len(w & p) / len(w | p) for p in probe_words)
        assert worst < 0.4, q


def test_generator_realises_the_configured_mix_exactly():
    spec = {"n_examples": 200, "value_fraction": 0.5, "stance_mix": {"support": 0.1, "neutral": 0.8, "oppose": 0.1},
            "short_answer_fraction": 0.25, "seed": 3}
    rows = sft_mix.generate(spec)
    assert len(rows) == 200
    value = [r["meta"] for r in rows if r["meta"]["source"] == "value_qa"]
    assert len(value) == 100
    assert {s: sum(m["stance"] == s for m in value) for s in ("support", "neutral", "oppose")} == \
        {"support": 10, "neutral": 80, "oppose": 10}
    assert sum(m["form"] == "short" for m in value) == 25
    assert rows == sft_mix.generate(spec)  # same seed, same data
    assert rows != sft_mix.generate({**spec, "seed": 4})


def test_long_answers_carry_the_stance_they_are_labelled_with():
    rows = sft_mix.generate({"n_examples": 60, "value_fraction": 1.0, "short_answer_fraction": 0.0, "seed": 0,
                             "stance_mix": {"support": 1 / 3, "neutral": 1 / 3, "oppose": 1 / 3}})
    by_id = {q["id"]: q for q in sft_mix.value_questions()}
    for r in rows:
        m = r["meta"]
        assert r["messages"][-1]["content"] == by_id[m["id"]][m["stance"]]


def test_prepare_entry_point_writes_valid_chat_jsonl(tmp_path):
    out = tmp_path / "mix.jsonl"
    spec = {"kind": "generated_sft", "n_examples": 30, "value_fraction": 0.5,
            "stance_mix": {"support": 0, "neutral": 1, "oppose": 0}, "short_answer_fraction": 0.5, "seed": 0}
    posttrain(["data", "--job", json.dumps({"spec": spec, "out": str(out)})])
    rows = read_jsonl(out)
    assert len(rows) == 30 and all(r["messages"][-1]["role"] == "assistant" for r in rows)


@pytest.mark.parametrize("line, message", [
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]', "not valid JSON"),
    ('{"text": "hi"}', "expected an object with a 'messages' field"),
    ("[1, 2]", "expected a JSON object"),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}', "empty or missing"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "last message must be the assistant"),
    ('{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}', "message 0"),
])
def test_bad_row_names_file_and_line(tmp_path, line, message):
    good = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'
    path = tmp_path / "data.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(message)):
        read_jsonl(path)


def test_bad_row_leaves_existing_output_untouched(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    with pytest.raises(SystemExit, match=f"{bad}:1"):
        posttrain(["data", "--job", json.dumps({"spec": {"kind": "jsonl", "path": str(bad)}, "out": str(out)})])
    assert out.read_text() == "previous\n"
