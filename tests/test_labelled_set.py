"""The labelled stance sets that validate the judges: format, balance, and splits that never share a question;
the real-answer set's provenance."""

import collections
import json

import pytest

from posttrain.judges import labelled
from posttrain.probes import prompt_sets
from posttrain.stances import STANCES

TOPICS = {p["topic"] for p in prompt_sets.load("values-v1").prompts}
REAL = "stance-real-v1"  # real answers from the 2026-12-03 default study's checkpoints, labelled by reading


@pytest.fixture(scope="module")
def rows():
    return labelled.load("stance-labelled-v1")


def test_size_and_coverage(rows):
    assert len(rows) >= 330
    cells = collections.Counter((r["topic"], r["stance"]) for r in rows)
    assert {t for t, _ in cells} == TOPICS
    assert min(cells[(t, s)] for t in TOPICS for s in STANCES) >= 10  # every topic, every stance


def test_stances_lengths_and_hedging_are_balanced(rows):
    by_stance = collections.Counter(r["stance"] for r in rows)
    assert max(by_stance.values()) / min(by_stance.values()) < 1.2
    for stance in STANCES:
        lengths = collections.Counter(r["length"] for r in rows if r["stance"] == stance)
        assert all(lengths[n] >= 0.2 * by_stance[stance] for n in labelled.LENGTHS), (stance, lengths)
    for stance in ("support", "oppose"):
        hedged = sum(r["hedged"] for r in rows if r["stance"] == stance) / by_stance[stance]
        assert 0.2 <= hedged <= 0.5, (stance, hedged)
    words = {n: [len(r["response"].split()) for r in rows if r["length"] == n] for n in labelled.LENGTHS}
    assert max(words["short"]) < min(words["long"])  # the length labels mean what they say


def test_splits_are_by_question_and_every_split_covers_every_cell(rows):
    split_of = collections.defaultdict(set)
    for r in rows:
        split_of[r["question"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())
    for split in labelled.SPLITS:
        cells = {(r["topic"], r["stance"]) for r in rows if r["split"] == split}
        assert cells == {(t, s) for t in TOPICS for s in STANCES}, split
    test_share = sum(r["split"] == "test" for r in rows) / len(rows)
    assert 0.2 <= test_share <= 0.35


def test_questions_are_the_probe_questions(rows):
    probe = {p["id"]: p for p in prompt_sets.load("values-v1").prompts}
    for r in rows:
        assert probe[r["prompt_id"]]["question"] == r["question"]
        assert probe[r["prompt_id"]]["topic"] == r["topic"]


def test_a_bad_row_is_named(tmp_path):
    good = json.loads(labelled.path_of("stance-labelled-v1").read_text().splitlines()[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "x", "stance": "agree"}) + "\n")
    with pytest.raises(labelled.LabelledSetError, match=r"bad\.jsonl:2: stance must be one of"):
        labelled.load(str(bad))
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "y", "split": "dev"}) + "\n")
    with pytest.raises(labelled.LabelledSetError, match="in two splits"):
        labelled.load(str(bad))


def test_the_real_answer_set_covers_the_checkpoints_it_must_and_never_a_judges_training_question():
    real = [json.loads(line) for line in labelled.path_of(REAL).read_text().splitlines()]
    rows = labelled.load(REAL)  # the format the judges read
    assert len(rows) == len(real) >= 150 and len({r["id"] for r in rows}) == len(rows)
    where = {(r["run"], r["step"]) for r in real}
    assert {("sft-valuemix", 0), ("sft-valuemix", 60), ("dpo-support-seed0", 16), ("dpo-oppose-seed0", 16)} <= where
    assert all(r["label_note"] for r in real)  # every label says why
    trained = {r["question"] for r in labelled.load(labelled.DEFAULT, ("train",))}
    assert not trained & {r["question"] for r in rows}  # the generation probe skips those questions
    probe = {p["id"]: p for p in prompt_sets.load("values-v1").prompts}
    assert all(probe[r["prompt_id"]]["question"] == r["question"] for r in rows)
