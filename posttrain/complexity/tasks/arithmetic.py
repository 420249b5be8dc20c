"""Arithmetic word problems generated offline, scored by exact match of the first integer in the answer."""

from __future__ import annotations

import random
import re

from posttrain.complexity.tasks import Task, TaskError

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jade", "Kofi", "Lena"]
THINGS = ["apples", "books", "coins", "stamps", "marbles", "pencils", "shells", "cards"]
TEMPLATES = {  # operation -> (problem text, answer)
    "add": ("{n} has {a} {t} and gets {b} more. How many {t} does {n} have now?", lambda a, b: a + b),
    "sub": ("{n} has {a} {t} and gives away {b}. How many {t} are left?", lambda a, b: a - b),
    "mul": ("{n} buys {a} boxes with {b} {t} in each. How many {t} is that in total?", lambda a, b: a * b),
    "add-sub": ("{n} had {a} {t}, found {b} more, then lost 1. How many {t} does {n} have?", lambda a, b: a + b - 1),
}
INSTRUCTION = ("Solve the arithmetic word problem. Reply with the number only.\n\n"
               "Question: Sam has 2 pens and gets 3 more. How many pens does Sam have now?\nAnswer: 5\n\n"
               "Question: Mia buys 4 boxes with 2 cups in each. How many cups is that in total?\nAnswer: 8\n\n")


def problem(rng: random.Random, operations: list[str], max_operand: int) -> dict:
    text, solve = TEMPLATES[rng.choice(operations)]
    a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
    if solve(a, b) < 0:
        a += b  # no negative answers
    return {"input": text.format(n=rng.choice(NAMES), a=a, b=b, t=rng.choice(THINGS)), "target": str(solve(a, b))}


def first_integer(text: str) -> str | None:
    match = re.search(r"-?\d+", text)
    return match.group() if match else None


def exact_match(predictions: list[str], examples: list[dict]) -> list[float]:
    return [float(first_integer(p) == e["target"]) for p, e in zip(predictions, examples)]


def build(settings: dict) -> Task:
    """settings: n_test, n_train, seed, operations (add, sub, mul, add-sub; default all), max_operand (12)."""
    rng = random.Random(settings.get("seed", 0))
    operations = settings.get("operations", list(TEMPLATES))
    unknown = sorted(set(operations) - set(TEMPLATES))
    if unknown:
        raise TaskError(f"arithmetic: unknown operations {unknown} (known: {', '.join(TEMPLATES)})")
    seen, train, test = set(), [], []
    while len(test) < settings.get("n_test", 64) or len(train) < settings.get("n_train", 256):
        ex = problem(rng, operations, settings.get("max_operand", 12))
        if ex["input"] in seen:
            continue
        seen.add(ex["input"])
        (test if len(test) < settings.get("n_test", 64) else train).append(ex)
    return Task("arithmetic", INSTRUCTION, train, test, exact_match, max_new_tokens=6)
