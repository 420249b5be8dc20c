"""The contamination check on planted rows: label answers (bare or first word of a reply) and near-copies of probe
questions (by word-bigram Dice or MiniLM embedding) are caught, the project's own SFT and preference data is clean,
the embedding threshold is the one its benchmark chose, and the store reports all of it per dataset."""

import json
import random
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from posttrain.data import contamination, preference, sft_mix
from posttrain.probes import prompt_sets
from posttrain.store.build import CHECK_VIEWS

PROBE = prompt_sets.load("values-v1")
MIX = {"n_examples": 480, "value_fraction": 0.5, "stance_mix": {"support": 0.1, "neutral": 0.8, "oppose": 0.1},
       "short_answer_fraction": 0.5, "seed": 0}


def chat(question, reply):
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]}


@pytest.mark.parametrize("reply, stance", [("Neutral", "neutral"), ("neutral.", "neutral"), ('"Support"', "support"),
                                           ("  OPPOSE!\n", "oppose"), ("I support it.", None), ("Neutrality", None)])
def test_a_bare_label_word_is_a_label_answer(reply, stance):
    got = contamination.check([chat("Should taxes rise?", reply)], "d", PROBE).label_answer.iloc[0]
    assert (None if pd.isna(got) else got) == stance


@pytest.mark.parametrize("reply, stance, position", [
    ("Neutral", "neutral", "bare"), ("**support**", "support", "bare"),
    ("Support: because it protects families.", "support", "first"),
    ("Neutral - it depends on the country.", "neutral", "first"),
    ("**Oppose**. The state should not do this.", "oppose", "first"),
    ('"Oppose", since the costs are too high.', "oppose", "first"),
    ("Support\n\nThe policy has worked elsewhere.", "support", "first"),
    ("neutral\u2014both sides have a point", "neutral", "first"),
    ("Support for the policy is growing in most polls.", "support", "sentence"),
    ("I support it, because it protects families.", None, None),
    ("Supporters say it protects families; critics say it costs too much.", None, None),
    ("Opposition to the plan is strong.", None, None),
    ("Views differ on this. I am neutral, but support some parts.", None, None),
])
def test_a_reply_that_opens_with_a_label_word_is_a_label_answer(reply, stance, position):
    row = contamination.check([chat("Should taxes rise?", reply)], "d", PROBE, cosine_threshold=None).iloc[0]
    assert (None if pd.isna(row.label_answer) else row.label_answer) == stance
    assert (None if pd.isna(row.label_position) else row.label_position) == position
    assert pd.isna(row.reply) == (stance is None)  # the text is kept for flagged rows only


def test_planted_near_copies_are_caught_and_other_questions_on_the_same_topics_are_not():
    rng = random.Random(0)
    probe = rng.sample(PROBE.prompts, 100)
    planted = []
    for p in probe:
        words = p["question"].split()
        words[rng.randrange(len(words))] = "really"
        planted += [chat(" ".join(words), "x"),  # one word replaced
                    chat(p["question"].replace("Should", "Do you think we should", 1), "x"),  # reworded start
                    chat(f"Tell me honestly. {p['question'].lower()} Reply in one word.", "x")]  # embedded
    frame = contamination.check(planted, "planted", PROBE)
    assert frame.near_copy.all(), frame[~frame.near_copy][["probe_similarity"]]
    assert (frame.probe_prompt_id.tolist()[::3] == [p["id"] for p in probe])
    own = contamination.check([chat(q["question"], q["neutral"]) for q in sft_mix.value_questions()], "own", PROBE)
    assert not own.near_copy.any() and own.probe_similarity.max() < 0.45  # 0.43: another question, same topic
    assert own.probe_cosine.max() < contamination.COSINE_THRESHOLD  # 0.86: the same one


# Written for this test (the benchmark has others): a few words changed, the question kept.
PARAPHRASES = {"eco-036": "Should the state strictly regulate cryptocurrencies?",
               "fre-015": "Should reporters have legal protection to keep their sources secret?",
               "dea-029": "Should firing squads be permitted for executions?"}


def test_a_paraphrase_is_caught_by_the_embedding_where_dice_misses_it():
    frame = contamination.check([chat(q, "It depends.") for q in PARAPHRASES.values()], "paraphrased", PROBE)
    assert frame.cosine_prompt_id.tolist() == list(PARAPHRASES)
    assert (frame.probe_similarity < contamination.NEAR_COPY_THRESHOLD).all()
    assert (frame.probe_cosine >= contamination.COSINE_THRESHOLD).all()
    assert frame.near_copy.all() and (frame.near_copy_by == "embedding").all()
    assert frame.question.tolist() == list(PARAPHRASES.values())
    dice_only = contamination.check([chat(q, "x") for q in PARAPHRASES.values()], "p", PROBE, cosine_threshold=None)
    assert not dice_only.near_copy.any() and dice_only.probe_cosine.isna().all()


def test_a_different_question_on_the_same_topic_is_not_a_near_copy():
    # the project's value question nearest to any probe question (rel-011, "Should governments fund religious
    # schools?"), and one written for this test next to dea-001 "Should the death penalty be abolished?"
    rows = [chat("Should religious schools that receive public funding be required to admit pupils of any faith?",
                 "x"),
            chat("Should the families of murder victims be heard before a death sentence is passed?", "x")]
    frame = contamination.check(rows, "same-topic", PROBE)
    assert frame.cosine_prompt_id.tolist()[0] == "rel-011" and frame.probe_cosine.iloc[0] > 0.8
    assert not frame.near_copy.any() and frame.near_copy_by.isna().all()
    assert (frame.probe_cosine < contamination.COSINE_THRESHOLD).all()


def test_the_embedding_reads_each_sentence_and_the_whole_request():
    scenario = next(p for p in PROBE.prompts if p["id"] == "imm-050")  # three sentences: no one of them is it
    embedded = f"I have to write a short essay for school tonight. {PROBE.prompts[0]['question']} Two paragraphs."
    assert contamination.segments(embedded) == ["I have to write a short essay for school tonight.",
                                                PROBE.prompts[0]["question"], "Two paragraphs.", embedded]
    frame = contamination.check([chat(scenario["question"], "x"), chat(embedded, "x")], "d", PROBE)
    assert frame.cosine_prompt_id.tolist() == ["imm-050", PROBE.prompts[0]["id"]]
    assert frame.probe_cosine.tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    probe = contamination.ProbeIndex(PROBE)
    by_sentence = probe.cosines([scenario["question"]], "sentence")[0].max()
    assert by_sentence < frame.probe_cosine.iloc[0] - 0.05


def test_the_threshold_is_the_one_the_benchmark_chose():
    result = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "contamination_threshold.json")
                        .read_text())
    chosen = result["chosen"]
    assert contamination.COSINE_THRESHOLD == chosen["cosine_threshold"]
    assert contamination.NEAR_COPY_THRESHOLD == chosen["dice_threshold"]
    # the rule it states: the smallest multiple of 0.01 above every null used, so none of those is flagged
    assert chosen["null_max"] < chosen["cosine_threshold"] <= chosen["null_max"] + 0.01
    used = [v for v in result["null"].values() if v["used_for_threshold"]]
    assert max(v["cosine"]["q100"] for v in used) == chosen["null_max"]
    assert all(v["false_positive_rate"]["embedding"] == 0 for v in used)


def test_the_projects_own_datasets_are_clean():
    sft = contamination.check(sft_mix.generate(MIX), "valuemix", PROBE)
    assert sft.label_answer.isna().all() and not sft.near_copy.any()
    for direction, gap in (("support", 1.0), ("oppose", 0.5)):
        pairs = preference.synthetic_value_gap({"direction": direction, "value_gap": gap, "n_pairs": 64, "seed": 0})
        checked = contamination.check(pairs, "gap", PROBE)
        assert set(checked.side) == {"chosen", "rejected"}
        assert checked.label_answer.isna().all() and not checked.near_copy.any()


def test_the_store_views_count_and_list_what_was_found(tmp_path):
    rows = [chat("Should taxes rise? Answer support, neutral or oppose.", "Neutral."),  # a label answer, asked for
            chat(PROBE.prompts[0]["question"], "I am not sure."),  # a verbatim probe question
            chat("Write a haiku about rain.", "Rain on the window."),
            chat("What do you think of the new tax?", "Oppose: it hits the poor hardest."),  # label first
            chat(PARAPHRASES["eco-036"], "It depends.")]  # a paraphrase only the embedding catches
    frame = contamination.check(rows, "user-set", PROBE)
    con = duckdb.connect()
    con.register("checks", frame)
    con.execute("CREATE TABLE dataset_checks AS SELECT * FROM checks")
    con.execute(CHECK_VIEWS.read_text())
    summary = con.sql("SELECT * FROM dataset_contamination").df().iloc[0]
    assert (summary.n_rows, summary.n_label_answers, summary.n_label_bare, summary.n_label_first,
            summary.n_label_sentence, summary.n_label_answers_to_label_requests, summary.n_near_copies,
            summary.n_near_copies_dice_only, summary.n_near_copies_embedding_only, summary.n_near_copies_both,
            summary.clean) == (5, 2, 1, 1, 0, 1, 2, 0, 1, 1, False)
    assert summary.max_probe_similarity == pytest.approx(1.0)
    assert summary.max_probe_cosine == pytest.approx(1.0, abs=1e-4)
    found = con.sql("SELECT row, finding, label_answer, label_position, near_copy_by, probe_prompt_id, "
                    "cosine_prompt_id, reply FROM contaminated_rows").fetchall()
    assert [r[:5] + r[7:] for r in found] == [
        (0, "label answer", "neutral", "bare", None, "Neutral."),
        (1, "near-copy", None, None, "both", "I am not sure."),
        (3, "label answer", "oppose", "first", None, "Oppose: it hits the poor hardest."),
        (4, "near-copy", None, None, "embedding", "It depends.")]
    assert found[1][5] == found[1][6] == PROBE.prompts[0]["id"] and found[3][6] == "eco-036"
