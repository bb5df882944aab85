"""HFJudge: mechanics on tiny-random-llama (fast), a real verdict on smollm2-135m-instruct (slow)."""

from __future__ import annotations

import pytest

from harness.judges import JudgeCache


def test_hf_judge_mechanics_tiny(tmp_path):
    from harness.judges.hf import HFJudge

    judge = HFJudge("tiny-random-llama", cache=JudgeCache(tmp_path), device="cpu")
    assert judge.judge_id.startswith("hf:tiny-random-llama@")
    p_ab = judge.annotate("Say hi.", "Hello!", "Go away.")
    p_ba = judge.annotate("Say hi.", "Go away.", "Hello!")
    assert 0.0 < p_ab < 1.0 and 0.0 < p_ba < 1.0
    p = judge.judge("Say hi.", "Hello!", "Go away.")
    assert p == pytest.approx(0.5 * (p_ab + 1 - p_ba), abs=1e-6)
    # symmetric by construction: judging the swapped pair gives 1 - p
    assert judge.judge("Say hi.", "Go away.", "Hello!") == pytest.approx(1 - p, abs=1e-6)
    assert len((tmp_path / "annotations.jsonl").read_text().splitlines()) == 2
    assert "A" in judge.render("q", "x", "y") and "B" in judge.render("q", "x", "y")


@pytest.mark.slow
def test_hf_judge_smollm2_prefers_an_answer_over_garbage(tmp_path):
    from harness.judges.hf import HFJudge
    from harness.models import resolve

    assert resolve("smollm2-135m-instruct").path.is_dir()
    judge = HFJudge("smollm2-135m-instruct", cache=False, device="cpu")
    assert "<|im_start|>" in judge.render("q", "x", "y")
    p = judge.judge("What is the capital of France?", "The capital of France is Paris.", "")
    assert 0.0 <= p <= 1.0
