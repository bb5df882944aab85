"""Pairwise judges and win rates (AlpacaEval-style), judged in both orders and cached.

Public API:
    - :class:`Judge` (protocol), :class:`BaseJudge`, :class:`LengthJudge`,
      :class:`HttpJudge`, :class:`HFJudge` (imported lazily: it loads torch).
    - :class:`JudgeCache`, :func:`judge_messages`, :func:`content_key`.
    - :func:`win_rate`, :func:`pair_outputs`, :func:`judge_pairs`, :func:`metric_rows`,
      :func:`append_metrics`.

Example:
    >>> from harness.judges import LengthJudge, win_rate
    >>> prefs = [LengthJudge().judge("q", a, b) for a, b in [("long one", "s"), ("s", "long one")]]
    >>> win_rate(prefs)["value"]
    0.5
"""

from harness.judges.base import BaseJudge, Judge, JudgeCache, LengthJudge, content_key, judge_messages
from harness.judges.http import HttpJudge, parse_choice
from harness.judges.winrate import Pair, PairSet, append_metrics, judge_pairs, metric_rows, pair_outputs, win_rate


def __getattr__(name):
    if name == "HFJudge":
        from harness.judges.hf import HFJudge

        return HFJudge
    raise AttributeError(name)


__all__ = ["BaseJudge", "HFJudge", "HttpJudge", "Judge", "JudgeCache", "LengthJudge", "Pair", "PairSet",
           "append_metrics", "content_key", "judge_messages", "judge_pairs", "metric_rows", "pair_outputs",
           "parse_choice", "win_rate"]
