"""Checkers for the IFEval instruction types posttrain scores (a subset of google/IFEval's), loose variant:
an instruction counts as followed if it holds for the response or for the response with its first or last
line, or markdown asterisks, removed (as in the reference harness). Instruction-level accuracy."""

from __future__ import annotations

import json
import re


def _words(text: str) -> int:
    return len(re.findall(r"\b\w+\b", text))


def _relation(value: int, kwargs: dict, key: str) -> bool:
    return value < kwargs[key] if kwargs.get("relation") == "less than" else value >= kwargs[key]


CHECKS = {
    "change_case:english_lowercase": lambda r, k: r == r.lower(),
    "change_case:english_capital": lambda r, k: r == r.upper(),
    "punctuation:no_comma": lambda r, k: "," not in r,
    "keywords:existence": lambda r, k: all(w.lower() in r.lower() for w in k.get("keywords") or []),
    "keywords:forbidden_words": lambda r, k: not any(re.search(rf"\b{re.escape(w)}\b", r, re.IGNORECASE)
                                                     for w in k.get("forbidden_words") or []),
    "length_constraints:number_words": lambda r, k: _relation(_words(r), k, "num_words"),
    "startend:end_checker": lambda r, k: r.strip().lower().endswith(str(k.get("end_phrase", "")).strip().lower()),
    "startend:quotation": lambda r, k: r.strip().startswith('"') and r.strip().endswith('"'),
    "detectable_format:title": lambda r, k: re.search(r"<<[^\n]+>>", r) is not None,
    "detectable_format:number_bullet_lists": lambda r, k: len(re.findall(r"^\s*[*-]\s", r, re.MULTILINE))
    == k.get("num_bullets"),
}


def _variants(response: str) -> list[str]:
    lines = response.split("\n")
    base = [response, "\n".join(lines[1:]), "\n".join(lines[:-1]), "\n".join(lines[1:-1])]
    return base + [v.replace("*", "") for v in base]


def loose_accuracy(predictions: list[str], examples: list[dict]) -> list[float]:
    """Per prompt, the share of its instructions followed; weighted by `n_instructions`, their mean is the
    instruction-level accuracy."""
    out = []
    for response, example in zip(predictions, examples):
        spec = json.loads(example["target"])
        followed = 0
        for instruction, kwargs in zip(spec["ids"], spec["kwargs"]):
            kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
            followed += any(v.strip() and CHECKS[instruction](v, kwargs) for v in _variants(response))
        out.append(followed / max(len(spec["ids"]), 1))
    return out


def n_instructions(examples: list[dict]) -> list[float]:
    return [float(max(len(json.loads(e["target"])["ids"]), 1)) for e in examples]
