"""Per (task, model, variant) response-shape summary as ``metrics`` rows, and its text table.

:func:`summarize` turns a ``samples`` table into one ``metrics`` row per
(task, model, variant, metric). Only rows with ``status == "ok"`` are scored; every
other row counts as an error and is reported as ``error_rate``. Per-row flags come from
the columns the runner stores at commit (:mod:`harness.metrics.stored`) or, for rows
without them, from the vectorised scorer (:func:`harness.metrics.shape.shape_table`);
rows are processed in 65,536-row blocks on all CPUs, each block's group-by (in Arrow)
gives sufficient statistics that are merged, so a million rows need no Python loop per
row and :func:`summarize_store` streams a store larger than memory. ``style=True`` adds
``style_leak_<domain>`` rates for every domain of :data:`harness.metrics.domains.STYLE_DOMAINS`.

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
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.metrics.rows import KEYS, mean_row, rate_row
from harness.metrics.shape import CHUNK_ROWS
from harness.metrics.stored import FLAGS, MEANS, row_features, table_reader
from harness.metrics.style_leak import LABELS
from harness.store.schema import SCHEMA_VERSION, file_version, from_rows

RATE_METRICS = {"eos_rate": "eos", "echo_rate": "echo", "role_tag_rate": "role_tag", "refusal_rate": "refusal"}
MEAN_METRICS = {"mean_output_tokens": "output_tokens", "distinct_2": "distinct_2"}
MEAN_SUPPORT = {"mean_output_tokens": (0.0, math.inf), "distinct_2": (0.0, 1.0)}  # CIs are cut to these
METRIC_ORDER = (
    "eos_rate", "mean_output_tokens", "echo_rate", "role_tag_rate", "distinct_2", "refusal_rate", "error_rate",
)
STYLE_METRICS = tuple(f"style_leak_{label}" for label in LABELS)

Reader = Callable[[tuple[str, ...]], pa.Table]


def _partial(read: Reader, style: bool) -> dict[tuple, dict]:
    """Per-group sufficient statistics of one batch: counts, sums, and (n, mean, M2) per mean."""
    f = row_features(read, style)
    flags = list(FLAGS) + ([f"style_{lab}" for lab in LABELS] if style else [])
    aggs = [("ok", "count"), ("ok", "sum"), ("eos", "count")] + [(c, "sum") for c in flags]
    for c in MEANS:
        aggs += [(c, "count"), (c, "mean"), (c, "variance", pc.VarianceOptions(ddof=0))]
    out = {}
    for r in f.group_by(list(KEYS)).aggregate(aggs).to_pylist():
        st = {"rows": r["ok_count"], "ok": int(r["ok_sum"] or 0), "n_ok": r["eos_count"]}
        st |= {c: int(r[f"{c}_sum"] or 0) for c in flags}
        for c in MEANS:
            n = r[f"{c}_count"]
            st[c] = (n, r[f"{c}_mean"] or 0.0, (r[f"{c}_variance"] or 0.0) * n)
        out[tuple(r[k] for k in KEYS)] = st
    return out


def _merge(acc: dict[tuple, dict], part: dict[tuple, dict]) -> None:
    """Add ``part`` into ``acc``; means and squared deviations combine as in Chan et al. (1979)."""
    for gk, p in part.items():
        a = acc.get(gk)
        if a is None:
            acc[gk] = dict(p)
            continue
        for c, v in p.items():
            if c not in MEANS:
                a[c] += v
                continue
            (n1, m1, q1), (n2, m2, q2) = a[c], v
            n = n1 + n2
            if n2 == 0:
                continue
            d = m2 - m1
            a[c] = (n, m1 + d * n2 / n, q1 + q2 + d * d * n1 * n2 / n)


def _rows(acc: dict[tuple, dict], run_id: str, style: bool) -> pa.Table:
    rows = []
    for gk in sorted(acc):
        g, key = acc[gk], dict(zip(KEYS, gk))
        by_metric = {m: rate_row(run_id, key, m, g[c], g["n_ok"]) for m, c in RATE_METRICS.items()}
        for metric, c in MEAN_METRICS.items():
            n, mean, m2 = g[c]
            std = math.sqrt(m2 / (n - 1)) if n > 1 else None
            by_metric[metric] = mean_row(run_id, key, metric, n, mean if n else None, std, support=MEAN_SUPPORT[metric],
                                         undefined=g["n_ok"] - n)
        by_metric["error_rate"] = rate_row(run_id, key, "error_rate", g["rows"] - g["ok"], g["rows"])
        rows += [by_metric[m] for m in METRIC_ORDER]
        if style:
            rows += [rate_row(run_id, key, f"style_leak_{lab}", g[f"style_{lab}"], g["n_ok"], domain=lab)
                     for lab in LABELS]
    return from_rows(rows, "metrics")


def summarize_batches(
    readers: Iterable[Reader], run_id: str, style: bool = False, workers: int | None = None
) -> pa.Table:
    """:func:`summarize` over batches given as readers, scored on ``workers`` threads (default: all CPUs).

    Only one batch per worker is in memory at a time, so a store larger than memory
    streams (see :func:`summarize_store`). The result does not depend on ``workers``.
    """
    workers = workers or os.cpu_count() or 1
    acc: dict[tuple, dict] = {}
    if workers == 1:
        for read in readers:
            _merge(acc, _partial(read, style))
    else:
        with ThreadPoolExecutor(workers) as pool:  # Arrow and numpy release the GIL while scoring
            for part in pool.map(lambda r: _partial(r, style), readers):
                _merge(acc, part)
    return _rows(acc, run_id, style) if acc else from_rows([], "metrics")


def summarize(samples: pa.Table, run_id: str, style: bool = False, workers: int | None = None) -> pa.Table:
    """Response-shape metrics per (task, model, variant) in the ``metrics`` schema.

    Args:
        samples: rows in the ``samples`` schema (extra columns are ignored; missing
            optional columns count as null). A null ``status`` is not ``"ok"``. Stored
            metric columns (:mod:`harness.metrics.stored`) are used where current; other
            ok rows are scored from their text.
        run_id: written into every row.
        style: also write ``style_leak_<label>`` rates (Wilson intervals) for every
            style domain of :data:`harness.metrics.style_leak.LABELS`.
        workers: scoring threads (default: all CPUs); results do not depend on it.

    Returns:
        ``metrics`` rows ordered by task, model, variant and :data:`METRIC_ORDER`
        (then :data:`STYLE_METRICS`). Empty input gives an empty table. A group whose
        rows all failed still gets its rows, with ``n == 0`` and null values except
        ``error_rate``.
    """

    batches = (samples.slice(i, CHUNK_ROWS) for i in range(0, samples.num_rows, CHUNK_ROWS))
    return summarize_batches([table_reader(b) for b in batches], run_id, style, workers)


def summarize_store(root: str | Path, run_id: str, style: bool = False, workers: int | None = None) -> pa.Table:
    """:func:`summarize` of one run's ``samples`` read from the store one Parquet row group at a time.

    Reads only the columns it needs, and the text columns of a row group only when some
    ok row in it lacks current stored metric columns, so peak memory is bounded by the
    largest row group, not by the store. Equals ``summarize(read_table(root, "samples", run_id), run_id)``.
    """
    base = Path(root) / "samples" / f"run_id={run_id}"
    files = sorted(p for p in base.glob("*.parquet") if not p.name.startswith(".")) if base.is_dir() else []
    parts = []
    for f in files:
        meta = pq.ParquetFile(f)
        if file_version(meta.schema_arrow) > SCHEMA_VERSION:
            raise HarnessError(f"{f}: written under a newer schema than this harness's {SCHEMA_VERSION}; "
                               "upgrade harness")
        names = set(meta.schema_arrow.names)
        parts += [(f, i, names) for i in range(meta.num_row_groups)]

    def reader(path: Path, group: int, names: set[str]) -> Reader:
        return lambda cols: pq.ParquetFile(path).read_row_group(group, columns=[c for c in cols if c in names])

    return summarize_batches([reader(*p) for p in parts], run_id, style, workers)


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
