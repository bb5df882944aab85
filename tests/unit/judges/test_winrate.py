"""LengthJudge, both-order averaging, the cache and win-rate arithmetic (hand-computed)."""

from __future__ import annotations

import json
import math

import pytest

from harness.judges import BaseJudge, JudgeCache, LengthJudge, content_key, win_rate
from harness.judges.winrate import Pair, PairSet, judge_pairs, metric_rows


def test_length_judge_and_win_rate_by_hand():
    pairs = [("q1", "a longer answer", "short"),   # treatment longer -> 1
             ("q2", "tiny", "a much longer one"),   # shorter -> 0
             ("q3", "same", "SAME"),                # tie -> 0.5
             ("q4", "  padded  ", "pad")]           # stripped 6 > 3 -> 1
    prefs = [LengthJudge().judge(*p) for p in pairs]
    assert prefs == [1.0, 0.0, 0.5, 1.0]
    wr = win_rate(prefs)
    # mean 2.5/4; sample var = ((.375)^2*2 + (.625)^2 + (.125)^2)/3 = 0.229166..; se = sqrt(var/4)
    assert wr["value"] == 0.625 and wr["n"] == 4
    se = math.sqrt((2 * 0.375**2 + 0.625**2 + 0.125**2) / 3 / 4)
    assert wr["se"] == pytest.approx(se)
    assert wr["ci_low"] == pytest.approx(max(0.0, 0.625 - 1.96 * se))
    assert wr["ci_high"] == pytest.approx(min(1.0, 0.625 + 1.96 * se))
    assert math.isnan(win_rate([])["value"]) and win_rate([]) ["n"] == 0


class _Biased(BaseJudge):
    """Prefers whatever is shown first with probability 0.9, regardless of content."""

    judge_id = "biased"

    def __init__(self, cache):
        super().__init__(cache)
        self.calls = 0

    def annotate(self, instruction, first, second):
        self.calls += 1
        return 0.9


def test_both_orders_cancel_position_bias_and_cache(tmp_path):
    cache = JudgeCache(tmp_path)
    j = _Biased(cache)
    assert j.judge("q", "a", "b") == pytest.approx(0.5)
    assert j.calls == 2
    assert j.judge("q", "a", "b") == pytest.approx(0.5) and j.calls == 2
    j2 = _Biased(JudgeCache(tmp_path))
    j2.judge("q", "b", "a")  # both orders already annotated
    assert j2.calls == 0
    lines = (tmp_path / "annotations.jsonl").read_text().splitlines()
    assert len(lines) == 2 and {json.loads(x)["key"] for x in lines} == {
        content_key("biased", "q", "a", "b"), content_key("biased", "q", "b", "a")}
    # a torn last line is ignored
    with open(tmp_path / "annotations.jsonl", "a") as f:
        f.write('{"key": "x", "p"')
    assert JudgeCache(tmp_path).get(content_key("biased", "q", "a", "b")) == 0.9


def test_metric_rows_per_task_and_sample():
    ps = PairSet([Pair("t1", "0", "q", "long answer", "s"), Pair("t1", "1", "q", "s", "long answer"),
                  Pair("t2", "0", "q", "x", "y")], "variant:none", "m", "rules", {"error": 0, "unpaired": 1})
    prefs = judge_pairs(LengthJudge(), ps.pairs)
    rows = metric_rows("r", ps, prefs, "length")
    agg = [r for r in rows if r["metric"] == "judge_win_rate" and r.get("sample_id") is None]
    assert [(r["task"], r["value"], r["n"]) for r in agg] == [("t1", 0.5, 2), ("t2", 0.5, 1)]
    assert all(r["reference"] == "variant:none" and json.loads(r["details"])["judge"] == "length" for r in rows)
    per = [r for r in rows if r["metric"] == "judge_win_rate" and r.get("sample_id") is not None]
    assert [(r["task"], r["sample_id"], r["value"]) for r in per] == [("t1", "0", 1.0), ("t1", "1", 0.0), ("t2", "0", 0.5)]
