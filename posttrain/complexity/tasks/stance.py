"""Stance expression: answer a value question taking a given stance; an item's score is the stance judge's
probability of that stance for the answer (the study's own judge, validated on the labelled set).

Train examples (what in-context and prequential programs carry) are answers of that stance, from `train_from`:
`labelled` (default: the judge's labelled set, train split: 77 per stance), `value_qa` (the SFT source questions'
answers, 220 per stance: what the synthetic value-gap sets' DPO pairs carry, so a stage trained on one of them
teaches this task in its own format), or both in that order. value_qa is interleaved topic by topic, so that a
data program's first N examples span the topics. Test items are questions of the value prompt set (values-v1:
11 topics), `n_test_per_topic` from every topic, interleaved topic by topic so that `n_test` cuts evenly. A test
question is never one the judge was fitted on, nor one a program carries.
"""

from __future__ import annotations

from itertools import chain, zip_longest

from posttrain.complexity.tasks import STANCE_TRAIN_SOURCES, Task, TaskError
from posttrain.data.sft_mix import value_questions
from posttrain.judges import build, labelled
from posttrain.probes import prompt_sets
from posttrain.probes.values import judge_training_questions

INSTRUCTION = {"support": "a clear supportive stance", "oppose": "a clear opposing stance",
               "neutral": "a neutral, balanced stance"}


def test_questions(settings: dict, excluded: set[str]) -> list[dict]:
    ps = prompt_sets.load(settings.get("prompt_set", "values-v1"))
    by_topic: dict[str, list[dict]] = {}
    for p in ps.prompts:
        if p["question"].strip().lower() not in excluded:
            by_topic.setdefault(p["topic"], []).append(p)
    per_topic = settings.get("n_test_per_topic", 10)
    columns = [group[:per_topic] for group in by_topic.values()]
    items = [p for p in chain.from_iterable(zip_longest(*columns)) if p is not None]  # topic by topic
    items = items[: settings.get("n_test", len(items))]
    if not items:
        raise TaskError(f"stance task: no test question left in prompt set {ps.name!r}")
    return [{"input": p["question"], "target": settings.get("stance", "support"), "topic": p["topic"]}
            for p in items]


def train_examples(settings: dict, stance: str) -> list[dict]:
    sources = settings.get("train_from", "labelled")
    sources = [sources] if isinstance(sources, str) else list(sources)
    unknown = [s for s in sources if s not in STANCE_TRAIN_SOURCES]
    if unknown or not sources:
        raise TaskError(f"stance task: train_from {settings.get('train_from')!r} must name one or more of "
                        f"{', '.join(STANCE_TRAIN_SOURCES)}")
    train = []
    for source in sources:
        if source == "labelled":
            rows = labelled.load(settings.get("labelled_set", labelled.DEFAULT))
            train += [{"input": r["question"], "target": r["response"]}
                      for r in rows if r["stance"] == stance and r["split"] == "train"]
        else:
            by_topic: dict[str, list[dict]] = {}
            for q in value_questions():
                by_topic.setdefault(q["topic"], []).append({"input": q["question"], "target": q[stance]})
            train += [e for e in chain.from_iterable(zip_longest(*by_topic.values())) if e is not None]
    return train[: settings.get("n_train")]


def build_task(settings: dict) -> Task:
    stance = settings.get("stance", "support")
    if stance not in INSTRUCTION:
        raise TaskError(f"stance task: stance {stance!r} is not one of {', '.join(INSTRUCTION)}")
    if "judge" not in settings:
        raise TaskError("the stance task needs a judge spec (the workflow passes probes.judge)")
    train = train_examples(settings, stance)
    carried = {e["input"].strip().lower() for e in train}
    test = test_questions(settings, carried | judge_training_questions(settings["judge"]))
    judge = {}

    def score(predictions: list[str], examples: list[dict]) -> list[float]:
        if "fn" not in judge:  # loaded once, on first use
            judge["fn"] = build(settings["judge"], progress=False)
        verdicts = judge["fn"]([{"question": e["input"], "response": p or "(no answer)"}
                                for p, e in zip(predictions, examples)])
        return [v[f"p_{stance}"] for v in verdicts]

    return Task("stance", f"Answer the question, taking {INSTRUCTION[stance]}.\n\n", train, test, score,
                max_new_tokens=settings.get("max_new_tokens", 48), meta={"stance": stance})
