"""The HTTP judge against a real OpenAI-style server on loopback: label read-out, retries after a timeout,
a clear error on a malformed reply, and no verdict lost when a job stops half-way."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from posttrain.judges import JudgeError, build
from posttrain.judges.run import judge_items

ITEMS = [{"id": f"q{i}", "question": f"Should we do thing {i}?", "response": f"Answer {i}."} for i in range(6)]


class Endpoint(BaseHTTPRequestHandler):
    """Replies as vLLM does: one token with top_logprobs. Behaviour per answer text is set by the test."""

    script: ClassVar[dict] = {}  # response text -> "ok" | "slow" | "malformed" | "no-labels" | "500"
    calls: ClassVar[list] = []
    slow_left: ClassVar[dict] = {}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions"
        content = body["messages"][0]["content"]
        answer = next(t["response"] for t in ITEMS if t["response"] in content)
        Endpoint.calls.append(answer)
        mode = Endpoint.script.get(answer, "ok")
        if mode == "slow" and Endpoint.slow_left.get(answer, 0) > 0:
            Endpoint.slow_left[answer] -= 1
            threading.Event().wait(1.0)  # past the client's timeout
        if mode == "500":
            self.send_response(500)
            self.end_headers()
            return
        i = int(answer.split()[1].rstrip("."))
        top = [{"token": " Support", "logprob": math.log(0.1 * (i + 1))},
               {"token": "oppose", "logprob": math.log(0.05)},
               {"token": "neutral", "logprob": math.log(0.2)},
               {"token": "The", "logprob": math.log(0.1)}]
        if mode == "no-labels":
            top = [{"token": "The", "logprob": -0.1}]
        reply = {"choices": [{"logprobs": {"content": [{"token": top[0]["token"], "top_logprobs": top}]}}]}
        if mode == "malformed":
            reply = {"choices": [{"message": {"content": "support"}}]}  # logprobs missing
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint():
    Endpoint.script, Endpoint.calls, Endpoint.slow_left = {}, [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def judge_for(url, **extra):
    return build({"name": "remote", "kind": "http", "base_url": url, "model": "m", "timeout_s": 0.3,
                  "max_retries": 2, "backoff_s": 0.01, "concurrency": 2, **extra}, progress=False)


def test_label_probabilities_come_from_top_logprobs(endpoint):
    verdicts = judge_for(endpoint)(ITEMS[:3])
    for i, v in enumerate(verdicts):
        support, neutral, oppose = 0.1 * (i + 1), 0.2, 0.05
        total = support + neutral + oppose
        assert v["p_support"] == pytest.approx(support / total)
        assert v["p_oppose"] == pytest.approx(oppose / total)
        assert v["label_mass"] == pytest.approx(total)  # "The" is not a label


def test_a_timeout_is_retried(endpoint):
    Endpoint.script = {"Answer 1.": "slow"}
    Endpoint.slow_left = {"Answer 1.": 1}  # the first call times out, the retry answers
    verdicts = judge_for(endpoint)(ITEMS[:2])
    assert len(verdicts) == 2 and Endpoint.calls.count("Answer 1.") == 2


def test_endpoint_that_keeps_timing_out_names_itself(endpoint):
    Endpoint.script = {"Answer 0.": "slow"}
    Endpoint.slow_left = {"Answer 0.": 99}
    with pytest.raises(JudgeError,
                       match=r"at http://127\.0\.0\.1:\d+/v1/chat/completions, item 'q0': no answer after 3"):
        judge_for(endpoint)(ITEMS[:1])


@pytest.mark.parametrize(("mode", "message"), [("malformed", "malformed reply: no choices"),
                                              ("no-labels", "none of the top tokens"),
                                              ("500", "no answer after 3 attempts")])
def test_bad_replies_are_clear_errors(endpoint, mode, message):
    Endpoint.script = {"Answer 0.": mode}
    with pytest.raises(JudgeError, match=message):
        judge_for(endpoint)(ITEMS[:1])


def test_no_verdict_is_lost_when_a_reply_is_malformed(endpoint, tmp_path):
    partial = tmp_path / "step-3.judged.partial.jsonl"
    Endpoint.script = {"Answer 4.": "malformed"}
    judge = judge_for(endpoint)
    with pytest.raises(JudgeError, match="item 'q4'"):
        judge_items(judge, ITEMS, partial, chunk=2)
    kept = [json.loads(line) for line in partial.read_text().splitlines()]
    assert len(kept) == 4  # the two chunks before the bad reply
    Endpoint.script, Endpoint.calls = {}, []  # the server is fixed; the rerun asks only for what is missing
    verdicts = judge_items(judge, ITEMS, partial, chunk=2)
    assert sorted(Endpoint.calls) == ["Answer 4.", "Answer 5."]
    assert [v["p_support"] for v in verdicts] == pytest.approx([v["p_support"] for v in judge(ITEMS)])


def test_missing_api_key_is_named(endpoint, monkeypatch):
    monkeypatch.delenv("POSTTRAIN_TEST_KEY", raising=False)
    with pytest.raises(JudgeError, match="POSTTRAIN_TEST_KEY"):
        judge_for(endpoint, api_key_env="POSTTRAIN_TEST_KEY")
