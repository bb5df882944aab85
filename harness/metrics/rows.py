"""Builders of ``metrics`` rows with intervals, shared by every aggregate metric module.

Example:
    >>> rate_row("r1", {"task": "t", "model": "m", "variant": "none"}, "eos_rate", 1, 2)["value"]
    0.5
"""

from __future__ import annotations

import json
import math

from harness.metrics.stats import t_mean_ci, wilson_ci

KEYS = ("task", "model", "variant")


def null_if_nan(x: float | None) -> float | None:
    """``None`` for ``None`` and NaN, else ``float(x)``."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def rate_row(run_id: str, key: dict, metric: str, k: int, n: int, **details) -> dict:
    """One ``metrics`` row for a proportion ``k / n`` with its Wilson interval (null when n == 0)."""
    lo, hi = wilson_ci(k, n)
    return {
        "run_id": run_id, **key, "metric": metric, "value": k / n if n else None, "n": n,
        "ci_low": null_if_nan(lo), "ci_high": null_if_nan(hi), "details": json.dumps({"k": k, **details}),
    }


def mean_row(run_id: str, key: dict, metric: str, n: int, mean: float | None, std: float | None,
             support: tuple[float, float] = (-math.inf, math.inf), **details) -> dict:
    """One ``metrics`` row for a mean with its Student-t interval (null when n == 0).

    ``support``: the values the measure can take; the interval is cut to it (a mean of
    token counts has no CI below 0, however heavy the tail that widened it).

    >>> r = mean_row("r", {}, "mean_output_tokens", 3, 100.0, 150.0, support=(0, math.inf))
    >>> r["ci_low"], round(r["ci_high"], 1)
    (0, 472.6)
    """
    if n == 0 or mean is None:
        lo = hi = mean = std = None
    else:
        lo, hi = t_mean_ci(n, mean, std or 0.0)
        lo, hi = max(lo, support[0]), min(hi, support[1])
    return {
        "run_id": run_id, **key, "metric": metric, "value": mean, "n": n,
        "ci_low": lo, "ci_high": hi, "details": json.dumps({"std": std, **details}),
    }
