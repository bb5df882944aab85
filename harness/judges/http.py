"""A judge behind an OpenAI-compatible ``/chat/completions`` endpoint (urllib only).

The request asks for one token (``max_tokens=1``, ``temperature=0``) with
``logprobs``/``top_logprobs``; the probability that the first output is better is the
two-way softmax of the label tokens' log-probabilities ("m" = first, "M" = second, as
in AlpacaEval's ``weighted_alpaca_eval_gpt4_turbo``). When the server returns no
usable log-probabilities the answer text decides (1.0, 0.0).

The API key is read from the environment variable the user NAMES, at request time, and
sent as ``Authorization: Bearer ...``; it is never stored on the object, in the cache,
in metrics or in error messages.

Example:
    >>> j = HttpJudge("http://127.0.0.1:8000/v1", "gpt-4-turbo", api_key_env="OPENAI_API_KEY")  # doctest: +SKIP
    >>> j.judge("Say hi.", "Hello!", "")                                                        # doctest: +SKIP
    0.93
"""

from __future__ import annotations

import json
import math
import os
import socket
import urllib.error
import urllib.request

from harness.errors import HarnessError
from harness.judges.base import BaseJudge, JudgeCache, judge_messages, two_way_softmax


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_choice(body: dict, labels: tuple[str, str] = ("m", "M")) -> float:
    """P(first better) from a chat-completions response body.

    Log-probabilities of tokens equal to a label (after stripping spaces) are summed in
    probability space per label; if neither label appears there, the content's first
    non-space token decides.

    Raises:
        HarnessError: the body has no choice, or no label can be found.

    Example:
        >>> body = {"choices": [{"message": {"content": "m"}, "logprobs": {"content": [{"token": "m",
        ...     "logprob": -0.1, "top_logprobs": [{"token": "m", "logprob": math.log(0.75)},
        ...                                      {"token": "M", "logprob": math.log(0.25)}]}]}}]}
        >>> round(parse_choice(body), 6)
        0.75
        >>> parse_choice({"choices": [{"message": {"content": " M"}}]})
        0.0
    """
    try:
        choice = body["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise HarnessError(f"judge response has no choices: {_one_line(json.dumps(body))}") from None
    mass = {labels[0]: 0.0, labels[1]: 0.0}
    logprobs = choice.get("logprobs") or {}
    entries = logprobs.get("content") or [] if isinstance(logprobs, dict) else []
    if entries:
        first = entries[0] or {}
        candidates = list(first.get("top_logprobs") or [])
        if not candidates and "token" in first:
            candidates = [first]
        seen = set()
        for cand in candidates:
            token = str(cand.get("token", "")).strip()
            if token in mass and token not in seen and cand.get("logprob") is not None:
                seen.add(token)
                mass[token] += math.exp(float(cand["logprob"]))
        if mass[labels[0]] > 0 or mass[labels[1]] > 0:
            la = math.log(mass[labels[0]]) if mass[labels[0]] > 0 else -math.inf
            lb = math.log(mass[labels[1]]) if mass[labels[1]] > 0 else -math.inf
            return two_way_softmax(la, lb)
    content = ((choice.get("message") or {}).get("content") or choice.get("text") or "").strip()
    token = content.split()[0] if content else ""
    if token == labels[0]:
        return 1.0
    if token == labels[1]:
        return 0.0
    raise HarnessError(f"judge answer {_one_line(content, 40)!r} is neither {labels[0]!r} nor {labels[1]!r}")


class HttpJudge(BaseJudge):
    """Judge with a model served behind an OpenAI-compatible chat-completions API.

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` (``/chat/completions`` is appended).
        model: the model name sent in the request.
        api_key_env: NAME of the environment variable holding the API key (optional).
        timeout: seconds per request.
        labels: the identifiers of the first and second output.
        logprobs: request ``logprobs``/``top_logprobs`` (turn off for servers that reject them).
        cache: see :class:`~harness.judges.base.BaseJudge`.

    Raises:
        HarnessError: (on :meth:`judge`) HTTP errors, timeouts, non-JSON bodies, an unset
            key variable, an unparsable answer; always one line.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, timeout: float = 60.0,
                 labels: tuple[str, str] = ("m", "M"), logprobs: bool = True,
                 cache: JudgeCache | None | bool = None):
        super().__init__(cache)
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise HarnessError(f"--base-url {base_url!r}: expected an http:// or https:// URL")
        if not model:
            raise HarnessError("--judge-model: required for the http judge")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.labels = labels
        self.logprobs = logprobs
        self.judge_id = f"http:{model}@{self.base_url}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise HarnessError(f"--api-key-env {self.api_key_env}: environment variable is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def request(self, messages: list[dict]) -> dict:
        """POST one chat-completions request and return the decoded JSON body."""
        payload = {"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0}
        if self.logprobs:
            payload.update(logprobs=True, top_logprobs=5)
        req = urllib.request.Request(self.url, data=json.dumps(payload).encode("utf-8"),
                                     headers=self._headers(), method="POST")
        where = f"judge {self.url}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                detail = _one_line(exc.read().decode("utf-8", "replace"), 120)
            except Exception:  # noqa: BLE001 - the body is best effort
                pass
            raise HarnessError(f"{where}: HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")) from None
        except (socket.timeout, TimeoutError):
            raise HarnessError(f"{where}: timed out after {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise HarnessError(f"{where}: timed out after {self.timeout:g} s") from None
            raise HarnessError(f"{where}: {_one_line(reason)}") from None
        except OSError as exc:
            raise HarnessError(f"{where}: {_one_line(exc)}") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise HarnessError(f"{where}: response is not JSON: {_one_line(raw[:200].decode('utf-8', 'replace'), 80)!r}") from None

    def annotate(self, instruction: str, first: str, second: str) -> float:
        return parse_choice(self.request(judge_messages(instruction, first, second, self.labels)), self.labels)
