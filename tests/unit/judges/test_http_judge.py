"""HttpJudge against a real chat-completions server on loopback (bounded, self-stopping)."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from harness.errors import HarnessError
from harness.judges import HttpJudge, JudgeCache, parse_choice

SECRET = "sk-test-SECRET-123"


class _Server:
    """Serve at most ``max_requests`` requests on 127.0.0.1 in a thread, then stop."""

    def __init__(self, mode: str = "ok", max_requests: int = 8):
        self.mode, self.requests = mode, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if outer.mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"internal\nerror")
                    return
                if outer.mode == "slow":
                    time.sleep(1.5)
                if outer.mode == "badjson":
                    payload = b"<html>not json</html>"
                else:
                    user = body["messages"][-1]["content"]
                    first = user.index('"model_identifier": "m"')
                    p_m = 0.8 if "GOOD" in user[first:user.index('"model_identifier": "M"')] else 0.3
                    top = [{"token": "m", "logprob": math.log(p_m)}, {"token": "M", "logprob": math.log(1 - p_m)}]
                    content = "m" if p_m > 0.5 else "M"
                    choice = {"index": 0, "message": {"role": "assistant", "content": content},
                              "logprobs": {"content": [{"token": content, "logprob": -0.1, "top_logprobs": top}]}}
                    if outer.mode == "text":
                        choice.pop("logprobs")
                    payload = json.dumps({"id": "x", "object": "chat.completion", "choices": [choice]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.2
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(max_requests,), daemon=True)
        self.thread.start()

    def _serve(self, max_requests: int):
        deadline = time.monotonic() + 30
        while len(self.requests) < max_requests and not self._stop.is_set() and time.monotonic() < deadline:
            self.httpd.handle_request()
        self.httpd.server_close()

    def close(self):
        self._stop.set()
        self.thread.join(timeout=5)


@pytest.fixture
def server(request):
    srv = _Server(getattr(request, "param", "ok"))
    yield srv
    srv.close()


def test_both_orders_cache_and_key(server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", SECRET)
    cache = JudgeCache(tmp_path / "cache")
    judge = HttpJudge(server.url, "judge-model", api_key_env="JUDGE_KEY_FOR_TEST", timeout=5, cache=cache)
    p = judge.judge("Write a poem.", "GOOD poem", "bad poem")
    # order 1: GOOD first -> 0.8; order 2: bad first -> 0.3; (0.8 + 1 - 0.3) / 2
    assert p == pytest.approx(0.75)
    assert len(server.requests) == 2
    firsts = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert firsts[0].index("GOOD poem") < firsts[0].index("bad poem")
    assert firsts[1].index("bad poem") < firsts[1].index("GOOD poem")
    for r in server.requests:
        assert r["path"] == "/v1/chat/completions"
        assert r["auth"] == f"Bearer {SECRET}"
        assert r["body"]["model"] == "judge-model" and r["body"]["logprobs"] is True
        assert r["body"]["max_tokens"] == 1
    # cached: no new request, same answer, also from a fresh judge reading the file
    assert judge.judge("Write a poem.", "GOOD poem", "bad poem") == pytest.approx(0.75)
    fresh = HttpJudge(server.url, "judge-model", api_key_env="JUDGE_KEY_FOR_TEST", cache=JudgeCache(tmp_path / "cache"))
    assert fresh.judge("Write a poem.", "GOOD poem", "bad poem") == pytest.approx(0.75)
    assert len(server.requests) == 2
    # the key is never on disk nor on the object
    for f in (tmp_path / "cache").rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="replace")
    assert SECRET not in json.dumps(vars(judge), default=str)


@pytest.mark.parametrize("server", ["text"], indirect=True)
def test_text_fallback(server, tmp_path):
    judge = HttpJudge(server.url, "m1", timeout=5, logprobs=False, cache=False)
    # order 1 answers "m" (1.0), order 2 answers "M" (p_ba = 0.0): (1.0 + 1 - 0.0) / 2
    assert judge.judge("q", "GOOD", "bad") == 1.0
    assert "logprobs" not in server.requests[0]["body"]
    assert server.requests[0]["auth"] is None


@pytest.mark.parametrize("server,needle", [("500", "HTTP 500"), ("badjson", "not JSON"), ("slow", "timed out")],
                         indirect=["server"])
def test_errors_are_one_line(server, needle, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", SECRET)
    judge = HttpJudge(server.url, "m1", api_key_env="JUDGE_KEY_FOR_TEST", timeout=0.5, cache=False)
    with pytest.raises(HarnessError) as exc:
        judge.judge("q", "a", "b")
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg and SECRET not in msg
    assert server.url in msg


def test_unset_key_and_bad_url(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    judge = HttpJudge("http://127.0.0.1:9/v1", "m", api_key_env="NO_SUCH_KEY_VAR", cache=False)
    with pytest.raises(HarnessError, match="NO_SUCH_KEY_VAR: environment variable is not set"):
        judge.judge("q", "a", "b")
    with pytest.raises(HarnessError, match="--base-url"):
        HttpJudge("ftp://x", "m")


def test_parse_choice_variants():
    one_side = {"choices": [{"logprobs": {"content": [{"token": "M", "logprob": -0.2,
                                                       "top_logprobs": [{"token": " M", "logprob": -0.2},
                                                                        {"token": "x", "logprob": -3}]}]},
                             "message": {"content": "M"}}]}
    assert parse_choice(one_side) == 0.0
    assert parse_choice({"choices": [{"message": {"content": "A"}}]}, labels=("A", "B")) == 1.0
    with pytest.raises(HarnessError, match="neither"):
        parse_choice({"choices": [{"message": {"content": "maybe"}}]})
    with pytest.raises(HarnessError, match="no choices"):
        parse_choice({"error": "x"})
