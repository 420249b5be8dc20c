"""An OpenAI-compatible chat endpoint as stance judge (a vLLM server on the cluster, or a hosted model).

Each item is one `POST {base_url}/chat/completions` asking for a single token with `logprobs` and
`top_logprobs`; the probability of each label is the summed probability of the top tokens that begin
its word (" Support", "support", "sup" when no other label begins so), renormalised over the three labels.
Timeouts, connection errors, 429 and 5xx are retried with exponential backoff; anything else, or a reply
without the expected fields, stops with a JudgeError naming the endpoint and the item.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from tqdm.auto import tqdm

from posttrain.judges import JudgeError, templates
from posttrain.stances import STANCES

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def label_of(token: str) -> str | None:
    """The label a reply token starts (case and surrounding space ignored), if exactly one label fits."""
    t = token.strip().lower()
    if not t:
        return None
    fits = [s for s in STANCES if s.startswith(t) or t.startswith(s)]
    return fits[0] if len(fits) == 1 else None


def parse_reply(reply: dict) -> dict:
    """{p_support, p_neutral, p_oppose, label_mass} from a chat-completions reply; ValueError if malformed."""
    try:
        top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        pairs = [(entry["token"], float(entry["logprob"])) for entry in top]
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ValueError(f"no choices[0].logprobs.content[0].top_logprobs[*].{{token, logprob}} ({e!r}); does "
                         "the server support logprobs?") from None
    mass = dict.fromkeys(STANCES, 0.0)
    for token, logprob in pairs:
        label = label_of(token)
        if label:
            mass[label] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        raise ValueError(f"none of the top tokens {[t for t, _ in pairs][:10]} is a label word")
    return {**{f"p_{s}": mass[s] / total for s in STANCES}, "label_mass": total}


class HTTPJudge:
    def __init__(self, spec: dict, progress: bool = True):
        self.name = spec["name"]
        self.precision = "remote"  # whatever the server computes in
        self.url = spec["base_url"].rstrip("/") + "/chat/completions"
        self.model = spec["model"]
        self.template = templates.load(spec.get("template", "stance-judge-v1"))
        self.timeout = spec.get("timeout_s", 30.0)
        self.max_retries = spec.get("max_retries", 3)
        self.backoff = spec.get("backoff_s", 1.0)
        self.top_logprobs = spec.get("top_logprobs", 20)
        self.concurrency = spec.get("concurrency", 4)
        key_env = spec.get("api_key_env")
        self.headers = {"Content-Type": "application/json"}
        if key_env:
            if not os.environ.get(key_env):
                raise JudgeError(f"judge {self.name!r}: environment variable {key_env} (api_key_env) is not set")
            self.headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        self.progress = progress

    def _request(self, item: dict) -> dict:
        body = {
            "model": self.model, "max_tokens": 1, "temperature": 0.0, "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "messages": [{"role": "user", "content": self.template["instruction"].format(**item)}],
        }
        what = f"judge {self.name!r} at {self.url}, item {item.get('id', '?')!r}"
        last = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                reply = requests.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if reply.status_code in RETRY_STATUS:
                last = f"HTTP {reply.status_code}"
                continue
            if reply.status_code != 200:
                raise JudgeError(f"{what}: HTTP {reply.status_code}: {reply.text[:300]}")
            try:
                return parse_reply(reply.json())
            except ValueError as e:  # also a body that is not JSON
                raise JudgeError(f"{what}: malformed reply: {e}") from None
        raise JudgeError(f"{what}: no answer after {self.max_retries + 1} attempts (last: {last}; "
                         f"timeout {self.timeout}s)")

    def __call__(self, items: list[dict]) -> list[dict]:
        items = [{"question": t["question"], "response": t["response"], "topic": t.get("topic"),
                  "id": t.get("id")} for t in items]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(tqdm(pool.map(self._request, items), total=len(items), desc=f"judge {self.name}",
                             disable=not self.progress))
