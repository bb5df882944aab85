"""Learning-rate schedules: the scripts' ``linear`` (3 % warmup) and the paper's ``cosine`` (10 %).

Both are the Hugging Face schedules open-instruct uses (``get_scheduler``): a multiplier of
the peak LR that rises linearly over ``warmup`` updates from 0, then decays to 0 at
``total``. The warmup length is ``int(total * ratio)`` as in open-instruct. As with HF's
``LambdaLR``, update ``k`` (0-based) uses ``factor(k)``, so with warmup the first update
has LR 0.

Example:
    >>> [round(lr_factor(k, total=10, warmup=2, kind="linear"), 3) for k in (0, 1, 2, 6, 10)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    >>> round(lr_factor(6, total=10, warmup=2, kind="cosine"), 3)
    0.5
    >>> warmup_steps(85, 0.03), warmup_steps(85, 0.10)
    (2, 8)
"""

from __future__ import annotations

import math

from harness.errors import HarnessError


def warmup_steps(total: int, ratio: float) -> int:
    """Warmup updates for ``total`` updates: ``int(total * ratio)`` (open-instruct's rounding)."""
    return int(total * ratio)


def lr_factor(step: int, *, total: int, warmup: int, kind: str) -> float:
    """Multiplier of the peak LR for 0-based update ``step`` (HF linear / cosine with warmup)."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    if kind == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))
    raise HarnessError(f"unknown schedule {kind!r}; schedules: linear, cosine")


def make_scheduler(optimizer, *, total: int, warmup_ratio: float, kind: str):
    """A ``torch.optim.lr_scheduler.LambdaLR`` stepping once per optimizer update."""
    from torch.optim.lr_scheduler import LambdaLR

    warm = warmup_steps(total, warmup_ratio)
    return LambdaLR(optimizer, lambda k: lr_factor(k, total=total, warmup=warm, kind=kind))
