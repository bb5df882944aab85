"""Invariance sentinel: prove, per run, that batching did not change the tokens.

After a run's shards are committed, a small random subset of its (prompt, variant)
pairs is generated again **alone** (batch of one, so no padding and no batch
neighbours) through the same ``Backend.generate`` every engine serves, and each
re-generation is compared token by token with the committed row. The result goes to
``metrics`` as ``sentinel_identical_rate`` per (task, model, variant), with a Wilson
interval; ``details`` lists every divergence with its first differing token position.
``harness report`` flags any rate below 1.

The subset is ``fraction`` of the pairs (default 2 %), at least one, drawn with a seed
derived from the run id (the same run checks the same pairs); ``fraction == 0``
disables the sentinel.

Example:
    >>> first_divergence([1, 2, 3], [1, 2, 3]), first_divergence([1, 2, 3], [1, 9, 3]), first_divergence([1, 2], [1, 2, 5])
    (None, 1, 2)
    >>> len(choose([("t", str(i), "none") for i in range(100)], 0.02, "run-1"))
    2
    >>> choose([("t", "0", "none")], 0.0, "run-1")
    []
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence

SENTINEL_METRIC = "sentinel_identical_rate"
DEFAULT_FRACTION = 0.02

PERTURB: Callable[[dict], dict] | None = None
"""Test hook: applied to each re-generated row before the comparison (forces a divergence)."""


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first token where ``a`` and ``b`` differ (``None`` when identical)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def choose(pairs: Sequence[tuple], fraction: float, run_id: str) -> list[tuple]:
    """``fraction`` of ``pairs`` (at least one), drawn with a seed from ``run_id``; none when 0."""
    if fraction <= 0 or not pairs:
        return []
    k = min(len(pairs), max(1, math.ceil(fraction * len(pairs) - 1e-9)))
    return random.Random(f"{run_id}:sentinel").sample(sorted(pairs), k)


def check(plan, backend, stored: dict[tuple, dict], finish: Callable[[dict, object], dict]) -> list[dict]:
    """Re-generate the chosen pairs alone and return ``metrics`` rows.

    Args:
        plan: the runner's plan (items, variants, ``decoding_for``, ``cfg.sentinel``, ``run_id``).
        backend: an open backend (``generate(items, variants, decoding)``).
        stored: ``(task, sample_id, variant) -> committed row`` (needs ``output_token_ids``, ``model``,
            ``batch_size``).
        finish: ``(row, decoding) -> row`` as the runner finishes committed rows (stop strings).
    """
    from harness.metrics.summary import rate_row

    items = {(i.task, i.sample_id): i for i in plan.items}
    variants = {v.name: v for v in plan.variants}
    chosen = choose([k for k in stored if k[2] in variants and k[:2] in items], plan.cfg.sentinel, plan.run_id)
    groups: dict[tuple, list[dict]] = {}
    for task, sample_id, name in chosen:
        item, variant, old = items[(task, sample_id)], variants[name], stored[(task, sample_id, name)]
        decoding = plan.decoding_for(item, variant)
        new = finish(backend.generate([item], [variant], decoding)[0], decoding)
        if PERTURB is not None:
            new = PERTURB(new)
        pos = first_divergence(list(old["output_token_ids"] or []), list(new["output_token_ids"] or []))
        groups.setdefault((task, old["model"], name), []).append(
            {"sample_id": sample_id, "first_divergence": pos, "batch_size": old.get("batch_size"),
             "alone_batch_size": new.get("batch_size")})
    rows = []
    for (task, model, name), checks in sorted(groups.items()):
        diverged = [c for c in checks if c["first_divergence"] is not None]
        rows.append(rate_row(plan.run_id, {"task": task, "model": model, "variant": name}, SENTINEL_METRIC,
                             len(checks) - len(diverged), len(checks), fraction=plan.cfg.sentinel,
                             checked=[c["sample_id"] for c in checks], divergences=diverged))
    return rows


def divergences(metrics) -> list[dict]:
    """Sentinel rows of a ``metrics`` table whose rate is below 1 (for reports).

    >>> import pyarrow as pa
    >>> divergences(pa.table({"metric": [SENTINEL_METRIC], "task": ["t"], "variant": ["rules"],
    ...                       "value": [0.5], "details": [json.dumps({"divergences": [{"first_divergence": 3}]})]}))
    [{'task': 't', 'variant': 'rules', 'value': 0.5, 'positions': [3]}]
    """
    out = []
    for r in metrics.to_pylist():
        if r["metric"] == SENTINEL_METRIC and r["value"] is not None and r["value"] < 1:
            details = json.loads(r["details"] or "{}")
            out.append({"task": r["task"], "variant": r["variant"], "value": r["value"],
                        "positions": [d["first_divergence"] for d in details.get("divergences", [])]})
    return out


def summary_line(metrics) -> str:
    """One line for the end of ``harness run``: how many pairs were checked, any divergence."""
    rows = [r for r in metrics.select(["metric", "value", "n", "variant"]).to_pylist() if r["metric"] == SENTINEL_METRIC]
    if not rows:
        return ""
    n = sum(r["n"] or 0 for r in rows)
    bad = [r["variant"] for r in rows if r["value"] is not None and r["value"] < 1]
    if bad:
        return (f"\nINVARIANCE SENTINEL: tokens changed when re-generated alone (batch 1) for variant(s) "
                f"{', '.join(sorted(set(bad)))}; see metric {SENTINEL_METRIC}")
    return f"\ninvariance sentinel: {n} pairs re-generated alone (batch 1), all identical"
