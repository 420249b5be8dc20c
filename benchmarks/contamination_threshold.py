"""The embedding threshold of the near-copy check (posttrain/data/contamination.py), chosen from a distribution.

    python benchmarks/contamination_threshold.py [--threads 2]

Every similarity is the one the check computes (ProbeIndex: all-MiniLM-L6-v2 cosine, the largest over the
turn's sentences and the whole turn; word-bigram Dice, the largest over its sentences) against the 550
values-v1 questions.

Null (not copies of a probe question):
- own_user_turns: the project's SFT and preference user turns: each value_qa question (by design disjoint
  from the probe's) as asked plainly and in the four brief-answer forms of sft_mix.SHORT_FORMS (1,100 turns);
- generic_instructions: the 200 generic instructions of the SFT mix;
- values_v1_leave_one_out: each values-v1 question against the other 49 questions of its topic only.
Reported, not used for the choice: value_answer_sentences, each sentence of the value_qa answers (statements
on the same policies, not requests; a user turn quoting such a statement scores like them).

Positive (copies): every values-v1 question with one word replaced by "really" (seed 0), its opening "Should"
reworded as "Do you think we should" (the questions that open with "Should"), embedded in each of three longer
requests; 28 hand paraphrases that keep the question's structure with a few synonyms (light) and 28 that
reword it throughout (heavy), written for this benchmark.

Choice: COSINE_THRESHOLD is the smallest multiple of 0.01 strictly above the largest similarity of any null
turn, so none of them is flagged. The sweep gives the false-positive rate and the recall around it; the segment
comparison shows why the check embeds both the sentences and the whole turn. Writes
benchmarks/results/contamination_threshold.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from posttrain.data import contamination, preference, sft_mix
from posttrain.io import write_json
from posttrain.models import inference_device
from posttrain.probes import prompt_sets

LABELLED_SETS = [Path(contamination.__file__).parents[1] / "judges" / "labelled" / f"{name}.jsonl"
                 for name in ("stance-labelled-v1", "stance-real-v1")]
EMBEDDED = ("Tell me honestly. {lower} Reply in one word.",
            ("I'm writing an essay for my civics class and need a clear thesis. {q} Give me the strongest "
             "arguments on both sides in about 300 words."),
            "Here is a question from our debate club:\n\n{q}\n\nWhat would you answer, and why?")
# Keep the question's structure, change a few words (each has Dice < 0.5 to its source).
LIGHT = {
    "imm-001": "Should we shut the borders and halt immigration entirely?",
    "imm-008": "Should automatic citizenship by birth be scrapped?",
    "imm-029": "Should refugees be permitted to take jobs while their asylum claims are being decided?",
    "abo-001": "Should terminating a pregnancy be lawful in every situation?",
    "abo-029": "Should emergency contraception be available without a prescription to buyers of any age?",
    "abo-036": "Should wives have to inform their husbands before getting an abortion?",
    "cli-001": "Should states charge a price for carbon dioxide emissions?",
    "cli-022": "Should new houses stop being built with gas cookers?",
    "eco-001": "Should the national minimum wage go up to fifteen dollars per hour?",
    "eco-022": "Should profits from investments face the same tax as income from a job?",
    "eco-036": "Should the state strictly regulate cryptocurrencies?",
    "rel-001": "Should teachers be permitted to lead prayers in state schools?",
    "rel-008": "Should science lessons teach creationism next to evolution?",
    "fam-001": "Should parents be permitted to smack their kids?",
    "fam-029": "Should brides adopt their husband's family name when they wed?",
    "dea-001": "Should capital punishment be abolished?",
    "dea-008": "Should executions be shown on public television?",
    "dea-029": "Should firing squads be permitted for executions?",
    "gun-001": "Should military-style rifles be outlawed?",
    "gun-008": "Should the legal age for buying any firearm be raised to 21?",
    "lgb-001": "Should gay marriage be lawful in every country?",
    "lgb-022": "Should the restrictions on gay men giving blood be eased?",
    "fre-001": "Should hateful speech be punishable as a crime?",
    "fre-008": "Should social networks prohibit anonymous users?",
    "fre-015": "Should reporters have legal protection to keep their sources secret?",
    "hea-001": "Should the state pay for healthcare for everyone?",
    "hea-022": "Should authorities make face masks compulsory during pandemics?",
    "hea-029": "Should drug addicts be treated as patients rather than criminals?",
}
# Reword throughout: other verbs, other nouns, another sentence shape.
HEAVY = {
    "imm-001": "Would it be right to shut the borders and end all immigration completely?",
    "imm-008": "Ought we to scrap the rule that anyone born in the country automatically becomes a citizen?",
    "imm-029": "While their refugee claims are being processed, ought people seeking asylum to have the right to "
               "take a job?",
    "abo-001": "Is terminating a pregnancy something the law ought to permit no matter the situation?",
    "abo-029": "Ought emergency contraception to be available at pharmacies without a prescription to buyers of any "
               "age?",
    "abo-036": "Must a wife tell her spouse before she terminates a pregnancy?",
    "cli-001": "Ought states to make polluters pay for every tonne of CO2 they emit?",
    "cli-022": "Ought newly built houses to stop being fitted with gas cookers?",
    "eco-001": "Is it time to lift the national wage floor to fifteen dollars per hour?",
    "eco-022": "Ought profits from selling investments to face the same tax rate as income from work?",
    "eco-036": "Ought the government to strictly oversee Bitcoin and other digital currencies?",
    "rel-001": "Is it acceptable for teachers in state schools to lead their pupils in prayer?",
    "rel-008": "Ought biology lessons to present the creation story next to Darwin's theory?",
    "fam-001": "Is it okay for mothers and fathers to smack their kids as punishment?",
    "fam-029": "When a woman weds, ought she to adopt her spouse's family name?",
    "dea-001": "Is it time to do away with capital punishment?",
    "dea-008": "Ought the state to show the killing of condemned prisoners on television?",
    "dea-029": "Ought condemned prisoners to be put to death by a team of riflemen?",
    "gun-001": "Ought military-style rifles to be outlawed?",
    "gun-008": "Ought nobody under twenty-one to be allowed to purchase a firearm?",
    "lgb-001": "Ought gay couples to be able to wed in every country?",
    "lgb-022": "Ought the restrictions on homosexual men giving blood to be eased?",
    "fre-001": "Ought saying hateful things about groups of people to be punishable as a crime?",
    "fre-008": "Ought online platforms to forbid users from posting without revealing who they are?",
    "fre-015": "Ought reporters to have a legal right to keep their informants secret?",
    "hea-001": "Ought the state to pay for medical care for every resident?",
    "hea-022": "When a pandemic hits, ought authorities to make face coverings compulsory?",
    "hea-029": "Ought people hooked on drugs to get medical treatment instead of being prosecuted?",
}
NULL_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
POSITIVE_QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def quantiles(x: np.ndarray, qs) -> dict[str, float]:
    return {f"q{q * 100:g}": round(float(np.quantile(x, q)), 4) for q in qs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "contamination_threshold.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probe_set = prompt_sets.load("values-v1")
    probe = contamination.ProbeIndex(probe_set)
    ids, questions = probe.ids, probe.questions
    where = {i: k for k, i in enumerate(ids)}
    topics = np.array([p["topic"] for p in probe_set.prompts])
    start = time.perf_counter()
    probe.probe_embeddings()
    probe_embed_s = time.perf_counter() - start

    # Null: (text, mask of the probe questions it is compared with).
    everything = np.ones(len(ids), dtype=bool)
    values = sft_mix.value_questions()
    own = [q["question"] for q in values] + [f.format(q=q["question"]) for f in sft_mix.SHORT_FORMS for q in values]
    generic_rows = [json.loads(line) for line in
                    (sft_mix.SOURCES / "generic_instructions.jsonl").read_text().splitlines() if line.strip()]
    generic = [g["instruction"] for g in generic_rows]
    answers = list(dict.fromkeys(s.strip() for q in values for stance in ("support", "neutral", "oppose")
                                 for s in contamination._sentences(q[stance])))
    nulls = {
        "own_user_turns": (own, [everything] * len(own)),
        "generic_instructions": (generic, [everything] * len(generic)),
        "values_v1_leave_one_out": (questions, [(topics == topics[k]) & (np.arange(len(ids)) != k)
                                                for k in range(len(ids))]),
        "value_answer_sentences": (answers, [everything] * len(answers)),
    }
    chosen_from = ("own_user_turns", "generic_instructions", "values_v1_leave_one_out")

    # Positive: (text, the probe question it copies).
    rng = random.Random(args.seed)
    replaced = []
    for q in questions:
        words = q.split()
        words[rng.randrange(len(words))] = "really"
        replaced.append(" ".join(words))
    should = [k for k, q in enumerate(questions) if q.startswith("Should ")]
    positives = {
        "one_word_replaced": (replaced, ids),
        "reworded_start": ([questions[k].replace("Should", "Do you think we should", 1) for k in should],
                           [ids[k] for k in should]),
        "embedded_in_request": ([t.format(q=q, lower=q.lower()) for t in EMBEDDED for q in questions],
                                ids * len(EMBEDDED)),
        "paraphrase_light": (list(LIGHT.values()), list(LIGHT)),
        "paraphrase_heavy": (list(HEAVY.values()), list(HEAVY)),
    }

    # Every distinct segment is embedded once; each mode's cosine is the largest over its segments, as in
    # ProbeIndex.cosines (checked below on a sample).
    texts_all = [t for texts, _ in (*nulls.values(), *positives.values()) for t in texts]
    unique = list(dict.fromkeys(seg for t in texts_all for seg in contamination.segments(t, "both")))
    start = time.perf_counter()
    segment_sims = contamination.embed(unique) @ probe.probe_embeddings().T
    embed_s = time.perf_counter() - start
    row = {seg: k for k, seg in enumerate(unique)}

    def cosines(texts, mode):
        return np.stack([segment_sims[[row[seg] for seg in contamination.segments(t, mode)]].max(axis=0)
                         for t in texts])

    sample = texts_all[:: max(1, len(texts_all) // 50)]
    assert np.allclose(cosines(sample, "both"), probe.cosines(sample), atol=1e-4), "not the check's cosine"

    def null_scores(texts, masks, mode="both"):
        cos = cosines(texts, mode)
        dice = [probe.dice(t) for t in texts]
        return (np.array([c[m].max() for c, m in zip(cos, masks)]),
                np.array([max((v for i, v in d.items() if m[i]), default=0.0) for d, m in zip(dice, masks)]))

    def positive_scores(texts, targets, mode="both"):
        cos = cosines(texts, mode)
        return (np.array([c[where[t]] for c, t in zip(cos, targets)]),
                np.array([probe.dice(x).get(where[t], 0.0) for x, t in zip(texts, targets)]))

    null = {k: null_scores(*v) for k, v in nulls.items()}
    pos = {k: positive_scores(*v) for k, v in positives.items()}

    null_max = max(float(null[k][0].max()) for k in chosen_from)
    threshold = math.floor(null_max * 100 + 1e-9) / 100 + 0.01  # smallest multiple of 0.01 strictly above
    threshold = round(threshold, 2)
    dice_t = contamination.NEAR_COPY_THRESHOLD

    def describe_null(name):
        cos, dice = null[name]
        texts, masks = nulls[name]
        top = int(cos.argmax())
        nearest = ids[int(np.where(masks[top], cosines([texts[top]], "both")[0], -1).argmax())]
        return {"n": len(cos), "used_for_threshold": name in chosen_from,
                "cosine": quantiles(cos, NULL_QUANTILES), "dice": quantiles(dice, NULL_QUANTILES),
                "false_positive_rate": {"embedding": float((cos >= threshold).mean()),
                                        "dice": float((dice >= dice_t).mean()),
                                        "either": float(((cos >= threshold) | (dice >= dice_t)).mean())},
                "highest_cosine": {"text": texts[top], "probe_question": nearest, "cosine": round(float(cos[top]), 4)}}

    def describe_positive(name):
        cos, dice = pos[name]
        return {"n": len(cos), "cosine": quantiles(cos, POSITIVE_QUANTILES),
                "dice": quantiles(dice, POSITIVE_QUANTILES),
                "recall": {"embedding": float((cos >= threshold).mean()), "dice": float((dice >= dice_t).mean()),
                           "either": float(((cos >= threshold) | (dice >= dice_t)).mean())}}

    sweep = []
    for t in np.round(np.arange(0.80, 0.951, 0.01), 2):
        sweep.append({"threshold": float(t),
                      "false_positive_rate": {k: float((null[k][0] >= t).mean()) for k in nulls},
                      "recall": {k: float((pos[k][0] >= t).mean()) for k in positives}})

    # Which segments to embed: the sentences, the whole turn, or both (the check's choice).
    modes = {}
    for mode in ("sentence", "whole", "both"):
        nm = max(float(null_scores(*nulls[k], mode)[0].max()) for k in chosen_from)
        t = round(math.floor(nm * 100 + 1e-9) / 100 + 0.01, 2)
        modes[mode] = {"null_max": round(nm, 4), "threshold": t,
                       "recall": {k: float((positive_scores(*v, mode)[0] >= t).mean()) for k, v in positives.items()}}

    # The check end to end on the project's SFT mix: with and without the embedding.
    mix = sft_mix.generate({"n_examples": 480, "value_fraction": 0.5, "stance_mix": {"support": 0.1,
                            "neutral": 0.8, "oppose": 0.1}, "short_answer_fraction": 0.5, "seed": 0})
    turns = [contamination._turns(r)[0] for r in mix]
    timing = {"note": "the encoder loaded and the probe questions embedded beforehand (once per process)",
              "distinct_segments": len({seg for t in turns for seg in contamination.segments(t)})}
    for name, cos_t in (("dice_only", None), ("dice_and_embedding", threshold)):
        start = time.perf_counter()
        frame = contamination.check(mix, "valuemix", probe_set, cosine_threshold=cos_t)
        timing[name] = {"seconds": round(time.perf_counter() - start, 3), "rows": len(mix),
                        "near_copies": int(frame.near_copy.sum()),
                        "label_answers": int(frame.label_answer.notna().sum())}

    # How often the project's own replies open with a label word (flagged) or a word that starts with one
    # ("Supporters", not flagged: the check is by word).
    pairs = [p for direction, gap in (("support", 1.0), ("oppose", 0.5), ("none", 0.0))
             for p in preference.synthetic_value_gap({"direction": direction, "value_gap": gap, "n_pairs": 64,
                                                      "seed": 0})]
    replies = {
        "value_qa_answers": [q[stance] for q in values for stance in ("support", "neutral", "oppose")],
        "generic_responses": [g["response"] for g in generic_rows],
        "sft_mix_replies": [r["messages"][-1]["content"] for r in mix],
        "preference_replies": [p[side][-1]["content"] for p in pairs for side in ("chosen", "rejected")],
        "judge_labelled_answers": [json.loads(line)["response"] for f in LABELLED_SETS
                                   for line in f.read_text().splitlines() if line.strip()],
    }
    opening = {}
    for name, texts in replies.items():
        positions = [probe.label_answer(t)[1] for t in texts]
        firsts = [contamination._words(t)[:1] for t in texts]
        opening[name] = {"n": len(texts), **{p: positions.count(p) for p in ("bare", "first", "sentence")},
                         "word_starting_with_a_label_word": sum(bool(w) and w[0] not in probe.labels and
                                                                w[0].startswith(tuple(probe.labels)) for w in firsts)}

    result = {
        "command": f"python benchmarks/contamination_threshold.py --threads {args.threads} --seed {args.seed}",
        "machine": {"cpu": cpu_model(), "device": str(inference_device()), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "encoder": contamination.ENCODER, "probe": {"prompt_set": probe_set.name, "questions": len(ids)},
        "chosen": {"cosine_threshold": threshold, "rule": "smallest multiple of 0.01 strictly above the largest "
                   "cosine of every null used for the threshold", "null_max": round(null_max, 4),
                   "dice_threshold": dice_t, "segments": "both"},
        "null": {k: describe_null(k) for k in nulls},
        "positive": {k: describe_positive(k) for k in positives},
        "sweep": sweep,
        "segment_modes": modes,
        "paraphrases": {k: {"probe_question": questions[where[k]], "light": LIGHT[k], "heavy": HEAVY[k],
                            "cosine_light": round(float(cosines([LIGHT[k]], "both")[0][where[k]]), 4),
                            "cosine_heavy": round(float(cosines([HEAVY[k]], "both")[0][where[k]]), 4),
                            "dice_light": round(probe.dice(LIGHT[k]).get(where[k], 0.0), 4),
                            "dice_heavy": round(probe.dice(HEAVY[k]).get(where[k], 0.0), 4)}
                        for k in LIGHT},
        "seconds": {"embed_probe_questions": round(probe_embed_s, 3), "embed_segments": round(embed_s, 3),
                    "segments": len(unique), "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()]},
        "check_on_sft_mix": timing,
        "replies_opening_with_a_label_word": opening,
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("chosen", "machine", "check_on_sft_mix")}, indent=1))
    for k, v in result["null"].items():
        print(f"null {k:26s} n={v['n']:5d} cosine {v['cosine']}  fpr {v['false_positive_rate']}")
    for k, v in result["positive"].items():
        print(f"pos  {k:26s} n={v['n']:5d} cosine {v['cosine']}  recall {v['recall']}")
    for k, v in modes.items():
        print(f"segments {k:8s} {v}")
    print("replies opening with a label word:", opening)


if __name__ == "__main__":
    main()
