"""Per (task, model, variant) response-shape summary as ``metrics`` rows, and its text table.

:func:`summarize` turns a ``samples`` table into one ``metrics`` row per
(task, model, variant, metric). Only rows with ``status == "ok"`` are scored; every
other row counts as an error and is reported as ``error_rate``. All per-row work is
vectorised (:func:`harness.metrics.shape.shape_table`) and the group-by runs in Arrow,
so a million rows need no Python loop per row.

Metrics (docs/metrics.md gives formulas and edge cases):

========================  =====================================  =========================
metric                    value                                  95 % interval
========================  =====================================  =========================
``eos_rate``              share of ok rows ending with EOS       Wilson
``mean_output_tokens``    mean output length in tokens           Student t
``echo_rate``             share of ok rows that echo             Wilson
``role_tag_rate``         share of ok rows leaking a role tag    Wilson
``distinct_2``            mean per-row distinct-2 (defined rows) Student t
``refusal_rate``          share of ok rows with a refusal phrase Wilson
``error_rate``            non-ok rows / all rows                 Wilson
========================  =====================================  =========================

``n`` is the number of rows the value is computed over; with ``n == 0`` the value and
interval are null. ``details`` is JSON with the raw counts (``k``, ``std``, ``undefined``).

Example:
    >>> import pyarrow as pa
    >>> s = pa.table({"task": ["t", "t"], "model": ["m", "m"], "variant": ["none", "none"],
    ...               "instruction": ["Say hi.", "Say bye."], "output": ["Hi!", "Bye."],
    ...               "finish_reason": ["eos", "length"], "num_output_tokens": [2, 3],
    ...               "status": ["ok", "ok"]})
    >>> m = summarize(s, "r1")
    >>> {r["metric"]: r["value"] for r in m.to_pylist()}["eos_rate"]
    0.5
"""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.compute as pc

from harness.metrics.shape import shape_table
from harness.metrics.stats import t_mean_ci, wilson_ci
from harness.store.schema import from_rows

KEYS = ("task", "model", "variant")
RATE_METRICS = {"eos_rate": "eos", "echo_rate": "echo", "role_tag_rate": "role_tag", "refusal_rate": "refusal"}
MEAN_METRICS = {"mean_output_tokens": "output_tokens", "distinct_2": "distinct_2"}
METRIC_ORDER = (
    "eos_rate", "mean_output_tokens", "echo_rate", "role_tag_rate", "distinct_2", "refusal_rate", "error_rate",
)


def _null_if_nan(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _key_columns(samples: pa.Table) -> dict[str, pa.Array]:
    cols = {}
    for k in KEYS:
        col = samples.column(k) if k in samples.column_names else pa.nulls(samples.num_rows, pa.string())
        cols[k] = pc.fill_null(col.cast(pa.string()), "")
    return cols


def rate_row(run_id: str, key: dict, metric: str, k: int, n: int, **details) -> dict:
    """One ``metrics`` row for a proportion ``k / n`` with its Wilson interval (null when n == 0)."""
    lo, hi = wilson_ci(k, n)
    return {
        "run_id": run_id, **key, "metric": metric, "value": k / n if n else None, "n": n,
        "ci_low": _null_if_nan(lo), "ci_high": _null_if_nan(hi), "details": json.dumps({"k": k, **details}),
    }


def mean_row(run_id: str, key: dict, metric: str, n: int, mean: float | None, std: float | None, **details) -> dict:
    """One ``metrics`` row for a mean with its Student-t interval (null when n == 0)."""
    if n == 0 or mean is None:
        lo = hi = mean = std = None
    else:
        lo, hi = t_mean_ci(n, mean, std or 0.0)
    return {
        "run_id": run_id, **key, "metric": metric, "value": mean, "n": n,
        "ci_low": lo, "ci_high": hi, "details": json.dumps({"std": std, **details}),
    }


def summarize(samples: pa.Table, run_id: str) -> pa.Table:
    """Response-shape metrics per (task, model, variant) in the ``metrics`` schema.

    Args:
        samples: rows in the ``samples`` schema (extra columns are ignored; missing
            optional columns count as null). A null ``status`` is not ``"ok"``.
        run_id: written into every row.

    Returns:
        ``metrics`` rows ordered by task, model, variant and :data:`METRIC_ORDER`.
        Empty input gives an empty table. A group whose rows all failed still gets its
        rows, with ``n == 0`` and null values except ``error_rate``.
    """
    if samples.num_rows == 0:
        return from_rows([], "metrics")
    keys = _key_columns(samples)
    status = samples.column("status") if "status" in samples.column_names else pa.nulls(samples.num_rows, pa.string())
    ok = pc.fill_null(pc.equal(status, "ok"), False)
    totals = pa.table({**keys, "ok": ok}).group_by(list(KEYS)).aggregate([("ok", "count"), ("ok", "sum")])

    # Score every row and drop the failed ones afterwards: filtering the narrow flag table
    # is cheaper than copying the output strings of a million rows.
    feats = shape_table(samples).filter(ok)
    table = pa.table({**{k: v.filter(ok) for k, v in keys.items()}, **{c: feats.column(c) for c in feats.column_names}})
    variance = pc.VarianceOptions(ddof=1)
    aggs = [("eos", "count")] + [(c, "sum") for c in RATE_METRICS.values()]
    for c in MEAN_METRICS.values():
        aggs += [(c, "mean"), (c, "stddev", variance), (c, "count")]
    stats = {tuple(r[k] for k in KEYS): r for r in table.group_by(list(KEYS)).aggregate(aggs).to_pylist()}

    rows = []
    for t in sorted(totals.to_pylist(), key=lambda r: tuple(r[k] for k in KEYS)):
        gk = tuple(t[k] for k in KEYS)
        key = dict(zip(KEYS, gk))
        g = stats.get(gk, {})
        n_ok = int(g.get("eos_count", 0))
        by_metric = {}
        for metric, col in RATE_METRICS.items():
            by_metric[metric] = rate_row(run_id, key, metric, int(g.get(f"{col}_sum") or 0), n_ok)
        for metric, col in MEAN_METRICS.items():
            n = int(g.get(f"{col}_count", 0))
            by_metric[metric] = mean_row(
                run_id, key, metric, n, g.get(f"{col}_mean"), _null_if_nan(g.get(f"{col}_stddev")), undefined=n_ok - n
            )
        n_all, n_good = int(t["ok_count"]), int(t["ok_sum"])
        by_metric["error_rate"] = rate_row(run_id, key, "error_rate", n_all - n_good, n_all)
        rows += [by_metric[m] for m in METRIC_ORDER]
    return from_rows(rows, "metrics")


_COLUMNS = (
    ("n", "eos_rate", "n"),
    ("errors", "error_rate", "k"),
    ("eos", "eos_rate", "value"),
    ("mean_tokens", "mean_output_tokens", "value"),
    ("echo", "echo_rate", "value"),
    ("role_tag", "role_tag_rate", "value"),
    ("distinct_2", "distinct_2", "value"),
    ("refusal", "refusal_rate", "value"),
)


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3f}"


def format_summary(metrics: pa.Table) -> str:
    """An aligned text table, one line per (task, model, variant), for the end of a run.

    Columns: n (ok rows), errors, EOS-terminated rate, mean output tokens, echo rate,
    role-tag rate, distinct-2 and refusal rate; ``-`` where a metric is missing or
    undefined. Intervals are in the ``metrics`` table, not here.

    Example:
        >>> print(format_summary(from_rows([], "metrics")))
        (no metrics)
    """
    groups: dict[tuple, dict] = {}
    for r in metrics.to_pylist():
        groups.setdefault(tuple(r[k] or "" for k in KEYS), {})[r["metric"]] = r
    if not groups:
        return "(no metrics)"
    header = list(KEYS) + [c[0] for c in _COLUMNS]
    lines = []
    for gk in sorted(groups):
        g = groups[gk]
        cells = list(gk)
        for _, metric, field in _COLUMNS:
            r = g.get(metric)
            if r is None:
                cells.append("-")
            elif field == "k":
                cells.append(str(json.loads(r["details"] or "{}").get("k", "-")))
            else:
                cells.append(_fmt(r[field]))
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    n_keys = len(KEYS)

    def render(cells: list[str]) -> str:
        padded = (c.ljust(w) if i < n_keys else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([render(header), render(["-" * w for w in widths])] + [render(c) for c in lines])
