"""The reference work's tasks, loaded from the hub on a cluster (weights and data in the HF cache).

gsm8k         train: openai/gsm8k main train, as worked solutions ending "The answer is N." (or, with
              train_dataset: meta-math/MetaMathQA, its GSM-derived rows: 240k, for data programs of 10^4 and
              more examples, as in the reference work); test: main test; exact match of the final number
flores-en-fr  train: the dev split; test: devtest (facebook/flores eng_Latn-fra_Latn); mean sentence BLEU / 100
ifeval        test: google/IFEval prompts whose instructions posttrain.complexity.tasks.ifeval can check;
              train: none shipped (in-context and prequential programs need `train_jsonl`); loose accuracy
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from posttrain.complexity.tasks import Task, TaskError
from posttrain.io import read_jsonl_rows


def _hub(name: str, subset: str | None, split: str, settings: dict):
    from datasets import load_dataset

    try:
        return load_dataset(name, subset, split=split)
    except Exception as e:  # noqa: BLE001 - offline, not cached, gated, renamed: all end here, named
        raise TaskError(f"complexity task data {name} ({subset}, {split}) could not be loaded: {e}") from None


def _final_number(text: str) -> str | None:
    numbers = re.findall(r"-?\d[\d,]*\.?\d*", text)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


def _worked(answer: str) -> str:
    """A GSM8K solution without its calculator annotations, ending "The answer is N."."""
    steps, final = answer.split("####")
    return f"{re.sub(r'<<[^>]*>>', '', steps).strip()}\nThe answer is {final.strip().replace(',', '')}."


def gsm8k(settings: dict) -> Task:
    def rows(split, n):
        data = _hub("openai/gsm8k", "main", split, settings)
        return [{"input": r["question"], "target": r["answer"].split("####")[-1].strip().replace(",", "")}
                for r in data.select(range(min(n, len(data))))]

    def train_rows(n):
        source = settings.get("train_dataset", "openai/gsm8k")
        if source == "openai/gsm8k":
            data = _hub(source, "main", "train", settings)
            return [{"input": r["question"], "target": _worked(r["answer"])}
                    for r in data.select(range(min(n, len(data))))]
        if source == "meta-math/MetaMathQA":
            data = _hub(source, None, "train", settings)
            picked = (r for r in data if r["type"].startswith("GSM"))  # its MATH-derived rows are another task
            return [{"input": r["query"], "target": r["response"]} for r, _ in zip(picked, range(n))]
        raise TaskError(f"gsm8k train_dataset {source!r}: openai/gsm8k or meta-math/MetaMathQA")

    def score(predictions, examples):
        return [float(_final_number(p.split("Question:")[0]) == e["target"]) for p, e in zip(predictions, examples)]

    return Task("gsm8k", "Solve the math problem. End with the final number.\n\n",
                train_rows(settings.get("n_train", 1024)), rows("test", settings.get("n_test", 1319)),
                score, max_new_tokens=settings.get("max_new_tokens", 256))


def flores_en_fr(settings: dict) -> Task:
    import sacrebleu

    def rows(split, n):
        data = _hub("facebook/flores", "eng_Latn-fra_Latn", split, settings)
        return [{"input": r["sentence_eng_Latn"], "target": r["sentence_fra_Latn"]}
                for r in data.select(range(min(n, len(data))))]

    def score(predictions, examples):  # sentence BLEU per item, so the score has an interval over items
        hyps = [p.strip().splitlines()[0] if p.strip() else "" for p in predictions]
        return [sacrebleu.sentence_bleu(h, [e["target"]]).score / 100 for h, e in zip(hyps, examples)]

    return Task("flores-en-fr", "Translate the English sentence into French.\n\n",
                rows("dev", settings.get("n_train", 997)), rows("devtest", settings.get("n_test", 1012)),
                score, max_new_tokens=settings.get("max_new_tokens", 128))


def ifeval(settings: dict) -> Task:
    from posttrain.complexity.tasks import ifeval_checks

    data = _hub("google/IFEval", None, "train", settings)
    test = [{"input": r["prompt"], "target": json.dumps({"ids": r["instruction_id_list"], "kwargs": r["kwargs"]})}
            for r in data if all(i in ifeval_checks.CHECKS for i in r["instruction_id_list"])]
    train = []
    if settings.get("train_jsonl"):
        if not Path(settings["train_jsonl"]).is_file():
            raise TaskError(f"ifeval train_jsonl: no such file {settings['train_jsonl']}")
        train = [row for _, row in read_jsonl_rows(settings["train_jsonl"], TaskError)]
    return Task("ifeval", "Follow every instruction in the request exactly.\n\n", train,
                test[: settings.get("n_test", len(test))], ifeval_checks.loose_accuracy,
                max_new_tokens=settings.get("max_new_tokens", 512), item_weights=ifeval_checks.n_instructions)
