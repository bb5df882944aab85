"""Pairwise judges: the protocol, both-order judging, the annotation cache, the length baseline.

A judge answers "which of two outputs better follows this instruction?" with the
probability that the FIRST one (A) is better. :class:`BaseJudge` turns a one-order
annotation (:meth:`BaseJudge.annotate`) into a position-debiased verdict by judging
both orders and averaging ``p(A, B)`` with ``1 - p(B, A)``; each one-order annotation
is cached by content hash in ``$HARNESS_HOME/judge_cache/annotations.jsonl``.

Example:
    >>> j = LengthJudge()
    >>> j.judge("Say hi.", "Hello there!", "Hi")
    1.0
    >>> j.judge("Say hi.", "Hi", "Yo")
    0.5
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from filelock import FileLock

from harness.models.home import harness_home

logger = logging.getLogger(__name__)

CACHE_DIR = "judge_cache"
CACHE_FILE = "annotations.jsonl"

SYSTEM_PROMPT = ("You are a highly efficient assistant, who evaluates and selects the best large language "
                 "model (LLM) based on the quality of its response to a given instruction. This process "
                 "is used to create a leaderboard reflecting the most accurate and human-preferred answers.")

USER_TEMPLATE = """I require a leaderboard for various large language models. I'll provide you with prompts given to these models and their corresponding outputs. Your task is to assess these responses, and select the model that produces the best output from a human perspective.

## Instruction

{{
    "instruction": {instruction}
}}

## Model Outputs

Here are the unordered outputs from the models. Each output is associated with a specific model, identified by a unique model identifier.

{{
    {{
        "model_identifier": "{label_a}",
        "output": {output_a}
    }},
    {{
        "model_identifier": "{label_b}",
        "output": {output_b}
    }}
}}

## Task

Evaluate the models based on the quality and relevance of their outputs, and select the model that generated the best output. Answer by providing the model identifier of the best model. We will use your output as the name of the best model, so make sure your output only contains one of the following model identifiers and nothing else (no quotes, no spaces, no new lines, ...): {label_a} or {label_b}.

## Best Model Identifier"""


def judge_messages(instruction: str, output_a: str, output_b: str, labels: tuple[str, str] = ("m", "M")) -> list[dict]:
    """The AlpacaEval-style chat messages asking which of two outputs is better.

    Texts are JSON-quoted so that an output cannot close its own field.

    Example:
        >>> msgs = judge_messages("Add 2+2.", "4", "5")
        >>> [m["role"] for m in msgs], '"output": "4"' in msgs[1]["content"]
        (['system', 'user'], True)
    """
    user = USER_TEMPLATE.format(instruction=json.dumps(instruction, ensure_ascii=False),
                                output_a=json.dumps(output_a, ensure_ascii=False),
                                output_b=json.dumps(output_b, ensure_ascii=False),
                                label_a=labels[0], label_b=labels[1])
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def two_way_softmax(logp_a: float, logp_b: float) -> float:
    """``exp(a) / (exp(a) + exp(b))`` computed stably; ``-inf`` on one side gives 0 or 1.

    >>> round(two_way_softmax(0.0, math.log(3)), 4)
    0.25
    """
    if logp_a == -math.inf and logp_b == -math.inf:
        return 0.5
    m = max(logp_a, logp_b)
    ea, eb = math.exp(logp_a - m), math.exp(logp_b - m)
    return ea / (ea + eb)


def content_key(judge_id: str, instruction: str, first: str, second: str) -> str:
    """sha256 over the judge id, the instruction and the two outputs IN THIS ORDER.

    >>> content_key("length", "i", "a", "b") != content_key("length", "i", "b", "a")
    True
    """
    h = hashlib.sha256()
    for part in (judge_id, instruction, first, second):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


class JudgeCache:
    """Append-only JSONL cache of one-order annotations, keyed by :func:`content_key`.

    Lines are ``{"key", "judge", "p"}`` only (never texts, never credentials). Appends
    hold a ``FileLock`` so several processes may share one cache; a torn last line
    (a crash mid-write) is skipped on read.

    Example:
        >>> import tempfile
        >>> c = JudgeCache(tempfile.mkdtemp())
        >>> c.put("k1", "length", 0.25); c.get("k1")
        0.25
        >>> JudgeCache(c.root).get("k1")
        0.25
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else harness_home() / CACHE_DIR
        self.path = self.root / CACHE_FILE
        self._mem: dict[str, float] | None = None

    def _load(self) -> dict[str, float]:
        if self._mem is None:
            self._mem = {}
            if self.path.is_file():
                with open(self.path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            rec = json.loads(line)
                            self._mem[rec["key"]] = float(rec["p"])
                        except (ValueError, KeyError, TypeError):
                            continue
        return self._mem

    def get(self, key: str) -> float | None:
        """The cached probability for ``key``, or ``None``."""
        return self._load().get(key)

    def put(self, key: str, judge_id: str, p: float) -> None:
        """Append one annotation (and remember it in memory)."""
        self._load()[key] = p
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "judge": judge_id, "p": p}) + "\n"
        with FileLock(str(self.root / ".annotations.lock")):
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())


@runtime_checkable
class Judge(Protocol):
    """Anything with an id and ``judge(instruction, output_a, output_b) -> P(A better)``."""

    judge_id: str

    def judge(self, instruction: str, output_a: str, output_b: str) -> float: ...


class BaseJudge:
    """Both-order judging and caching on top of a one-order :meth:`annotate`.

    Subclasses set ``judge_id`` and implement ``annotate(instruction, first, second)``
    returning the probability that ``first`` is better as the judge sees it in that
    order (position bias included).

    Args:
        cache: a :class:`JudgeCache`; ``None`` uses ``$HARNESS_HOME/judge_cache``;
            ``False`` disables caching.
    """

    judge_id = "base"

    def __init__(self, cache: JudgeCache | None | bool = None):
        self.cache = JudgeCache() if cache is None or cache is True else (cache or None)

    def annotate(self, instruction: str, first: str, second: str) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _cached(self, instruction: str, first: str, second: str) -> float:
        if self.cache is None:
            return float(self.annotate(instruction, first, second))
        key = content_key(self.judge_id, instruction, first, second)
        p = self.cache.get(key)
        if p is None:
            p = float(self.annotate(instruction, first, second))
            self.cache.put(key, self.judge_id, p)
        return p

    def judge(self, instruction: str, output_a: str, output_b: str) -> float:
        """P(A better), averaged over both presentation orders: ``(p(A,B) + 1 - p(B,A)) / 2``."""
        p_ab = self._cached(instruction, output_a, output_b)
        p_ba = self._cached(instruction, output_b, output_a)
        return 0.5 * (p_ab + (1.0 - p_ba))


class LengthJudge(BaseJudge):
    """Baseline judge: the longer output (in characters, stripped) wins; equal lengths tie.

    Example:
        >>> LengthJudge(cache=False).annotate("q", "long answer", "short")
        1.0
    """

    judge_id = "length"

    def __init__(self, cache: JudgeCache | None | bool = False):
        super().__init__(cache)

    def annotate(self, instruction: str, first: str, second: str) -> float:
        a, b = len(first.strip()), len(second.strip())
        return 1.0 if a > b else 0.0 if a < b else 0.5
