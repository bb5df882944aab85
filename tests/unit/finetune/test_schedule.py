"""LR schedules: linear with 3 % warmup (the scripts) and cosine with 10 % warmup (the paper's prose)."""

from __future__ import annotations

import math

import pytest

from harness.errors import HarnessError
from harness.finetune.schedule import lr_factor, make_scheduler, warmup_steps


def test_warmup_steps_round_down_like_open_instruct():
    assert warmup_steps(85, 0.03) == 2      # LIMA response tuning, Llama: 17 updates x 5 epochs
    assert warmup_steps(255, 0.03) == 7     # LIMA IT: 17 x 15
    assert warmup_steps(100, 0.10) == 10
    assert warmup_steps(20, 0.03) == 0


def test_linear_warmup_then_decay_to_zero():
    f = [lr_factor(k, total=100, warmup=3, kind="linear") for k in range(101)]
    assert f[:4] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert f[3 + 97 // 2] == pytest.approx((100 - 51) / 97)
    assert f[100] == 0.0 and all(a >= b for a, b in zip(f[3:], f[4:]))


def test_cosine_warmup_then_half_cosine():
    total, warm = 100, 10
    assert lr_factor(5, total=total, warmup=warm, kind="cosine") == pytest.approx(0.5)
    assert lr_factor(10, total=total, warmup=warm, kind="cosine") == pytest.approx(1.0)
    assert lr_factor(55, total=total, warmup=warm, kind="cosine") == pytest.approx(0.5)
    k = 80
    assert lr_factor(k, total=total, warmup=warm, kind="cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 70 / 90)))
    assert lr_factor(100, total=total, warmup=warm, kind="cosine") == pytest.approx(0.0)


def test_no_warmup_starts_at_peak():
    assert lr_factor(0, total=4, warmup=0, kind="linear") == 1.0
    assert lr_factor(0, total=4, warmup=0, kind="cosine") == 1.0


def test_torch_scheduler_matches_factor():
    import torch

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-5, weight_decay=0.0)
    sched = make_scheduler(opt, total=20, warmup_ratio=0.10, kind="cosine")
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == 0.0 and seen[2] == pytest.approx(1e-5)
    assert seen == pytest.approx([1e-5 * lr_factor(k, total=20, warmup=2, kind="cosine") for k in range(20)])


def test_unknown_schedule():
    with pytest.raises(HarnessError, match="unknown schedule 'step'"):
        lr_factor(5, total=10, warmup=0, kind="step")
