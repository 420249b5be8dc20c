"""Stance expression: answer a value question taking a given stance; the score is the stance judge's mean
probability of that stance over the test answers (the study's own judge, validated on the labelled set).

Train examples are the labelled set's answers of that stance on its train split; test questions are those
of its test split (so no test question is ever carried by a program).
"""

from __future__ import annotations

from posttrain.complexity.tasks import Task, TaskError
from posttrain.judges import build, labelled

INSTRUCTION = {"support": "a clear supportive stance", "oppose": "a clear opposing stance",
               "neutral": "a neutral, balanced stance"}


def build_task(settings: dict) -> Task:
    stance = settings.get("stance", "support")
    if "judge" not in settings:
        raise TaskError("the stance task needs a judge spec (the workflow passes probes.judge)")
    rows = labelled.load(settings.get("labelled_set", labelled.DEFAULT))
    pick = [r for r in rows if r["stance"] == stance]
    train = [{"input": r["question"], "target": r["response"]} for r in pick if r["split"] == "train"]
    test = [{"input": r["question"], "target": stance} for r in pick if r["split"] == "test"]
    judge = {}

    def score(predictions: list[str], examples: list[dict]) -> float:
        if "fn" not in judge:  # loaded once, on first use
            judge["fn"] = build(settings["judge"], progress=False)
        verdicts = judge["fn"]([{"question": e["input"], "response": p or "(no answer)"}
                                for p, e in zip(predictions, examples)])
        return sum(v[f"p_{stance}"] for v in verdicts) / len(verdicts)

    return Task("stance", f"Answer the question, taking {INSTRUCTION[stance]}.\n\n",
                train[: settings.get("n_train", len(train))], test[: settings.get("n_test", len(test))], score,
                max_new_tokens=settings.get("max_new_tokens", 48), meta={"stance": stance})
