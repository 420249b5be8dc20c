"""The contamination check on planted rows: label answers and near-copies of probe questions are caught, the
project's own SFT and preference data is clean, and the store reports both per dataset."""

import random

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
            chat("Write a haiku about rain.", "Rain on the window.")]
    frame = contamination.check(rows, "user-set", PROBE)
    con = duckdb.connect()
    con.register("checks", frame)
    con.execute("CREATE TABLE dataset_checks AS SELECT * FROM checks")
    con.execute(CHECK_VIEWS.read_text())
    summary = con.sql("SELECT * FROM dataset_contamination").df().iloc[0]
    assert (summary.n_rows, summary.n_label_answers, summary.n_label_answers_to_label_requests,
            summary.n_near_copies, summary.clean) == (3, 1, 1, 1, False)
    assert summary.max_probe_similarity == pytest.approx(1.0)
    found = con.sql("SELECT row, finding, label_answer, probe_prompt_id, reply FROM contaminated_rows").fetchall()
    assert [(r[0], r[1], r[2], r[4]) for r in found] == [(0, "label answer", "neutral", "Neutral."),
                                                         (1, "near-copy", None, "I am not sure.")]
    assert found[1][3] == PROBE.prompts[0]["id"]
