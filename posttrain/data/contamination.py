"""Does a training set teach the value probe its answers? Two checks on every row of any dataset (chat rows or
preference pairs, the project's own or a user's), run by the `dataset-stance` stage:

- label answers: a reply (SFT response, or either side of a pair) that is nothing but one of the probe's
  label words ("Neutral.", "support"). Training on those teaches the forced-choice read-out the label word,
  not a stance: the probe then measures how often each word was in the data. `asks_for_label` says whether
  the user turn also names the label words of at least two stances (a stance-format instruction).
- near-copies of probe questions: the user turn's sentence most similar to any probe question, by the Dice
  coefficient of their word bigrams (lower-cased, punctuation dropped). At or above `threshold` (0.5) the
  row is a near-copy. On the project's own value questions the highest similarity to a values-v1 question is
  0.43 (a different question on the same topic). A probe question with one word replaced, reworded at its start,
  or embedded in a longer instruction scores 0.5 to 1 (tests/test_contamination.py).
"""

from __future__ import annotations

import re

import pandas as pd

from posttrain.stances import PromptSet

COLUMNS = ["dataset", "row", "side", "topic", "label_answer", "asks_for_label", "probe_prompt_id",
           "probe_similarity", "near_copy", "question", "reply"]
NEAR_COPY_THRESHOLD = 0.5


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", "").replace("\u2019", ""))


def _bigrams(text: str) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i:i + 2]) for i in range(len(w) - 1)} if len(w) > 1 else {tuple(w)} if w else set()


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!:])\s+|\n+", text) if _words(s)]


class ProbeIndex:
    """The probe's questions, indexed by word bigram, and its label words."""

    def __init__(self, prompt_set: PromptSet):
        self.ids = [p["id"] for p in prompt_set.prompts]
        self.grams = [_bigrams(p["question"]) for p in prompt_set.prompts]
        self.index: dict[tuple, list[int]] = {}
        for i, grams in enumerate(self.grams):
            for g in grams:
                self.index.setdefault(g, []).append(i)
        self.labels = {word.lower(): stance for stance, words in prompt_set.labels.items() for word in words}

    def label_answer(self, reply: str) -> str | None:
        """The stance whose label word the reply is, alone (case, punctuation and quotes aside), else None."""
        words = _words(reply)
        return self.labels.get(words[0]) if len(words) == 1 else None

    def asks_for_label(self, prompt: str) -> bool:
        named = {self.labels[w] for w in _words(prompt) if w in self.labels}
        return len(named) >= 2

    def nearest(self, text: str) -> tuple[str | None, float]:
        """(id of the probe question most similar to a sentence of `text`, that Dice similarity)."""
        best, similarity = None, 0.0
        for sentence in _sentences(text):
            grams = _bigrams(sentence)
            hits: dict[int, int] = {}
            for g in grams:
                for i in self.index.get(g, ()):
                    hits[i] = hits.get(i, 0) + 1
            for i, n in hits.items():
                dice = 2 * n / (len(grams) + len(self.grams[i]))
                if dice > similarity:
                    best, similarity = self.ids[i], dice
        return best, similarity


def _turns(row: dict) -> tuple[str, list[tuple[str, str]]]:
    """(the last user turn, [(side, reply)]) of a chat row or a preference pair."""
    if "messages" in row:
        question = next((m["content"] for m in reversed(row["messages"]) if m["role"] == "user"), "")
        return question, [("response", row["messages"][-1]["content"])]
    question = next((m["content"] for m in reversed(row["prompt"]) if m["role"] == "user"), "")
    return question, [(side, row[side][-1]["content"]) for side in ("chosen", "rejected")]


def check(rows: list[dict], dataset: str, prompt_set: PromptSet, threshold: float = NEAR_COPY_THRESHOLD
          ) -> pd.DataFrame:
    """One row per (dataset row, reply side). The question and reply texts are kept for flagged rows only."""
    probe = ProbeIndex(prompt_set)
    out = []
    for i, row in enumerate(rows):
        question, sides = _turns(row)
        prompt_id, similarity = probe.nearest(question)
        asks = probe.asks_for_label(question)
        for side, reply in sides:
            label = probe.label_answer(reply)
            flagged = label is not None or similarity >= threshold
            out.append({"dataset": dataset, "row": i, "side": side, "topic": (row.get("meta") or {}).get("topic"),
                        "label_answer": label, "asks_for_label": asks,
                        "probe_prompt_id": prompt_id, "probe_similarity": similarity,
                        "near_copy": similarity >= threshold,
                        "question": question if flagged else None, "reply": reply if flagged else None})
    frame = pd.DataFrame(out, columns=COLUMNS)
    return frame.astype({c: "string" for c in ("topic", "label_answer", "probe_prompt_id", "question", "reply")})
