"""Per-row metric columns computed once, when a shard is committed, and read back by summaries.

Scoring text is the expensive part of a summary (tokenising every output for echo and
distinct-2, running the style detectors). :func:`commit_columns` does it once per row
when the runner commits a shard and stores the result in ``samples``:

=========================  ==========================================================
column                     meaning
=========================  ==========================================================
``row_metrics_version``    :data:`ROW_METRICS_VERSION` the columns below were made under
``shape_echo``             :func:`harness.metrics.shape.echo`
``shape_role_tag``         :func:`harness.metrics.shape.role_tag_leak`
``shape_refusal``          :func:`harness.metrics.shape.refusal`
``shape_distinct_2``       :func:`harness.metrics.shape.distinct_n` with n = 2 (null below 2 tokens)
``style_labels``           sorted :func:`harness.metrics.style_leak.detect` labels (``[]``: none)
=========================  ==========================================================

:func:`row_features` reads these columns where ``row_metrics_version`` equals the
current version and scores the text of every other ok row (rows written before the
columns existed, or under an older definition), so old stores need no rewrite. Bump
:data:`ROW_METRICS_VERSION` whenever a definition in ``shape`` or ``style_leak`` changes.

Example:
    >>> rows = commit_columns([{"instruction": "Say hi.", "output": "Hi! <|user|>"}])
    >>> rows[0]["shape_role_tag"], rows[0]["style_labels"], rows[0]["row_metrics_version"]
    (True, [], 1)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.metrics.rows import KEYS
from harness.metrics.shape import shape_table
from harness.metrics.style_leak import LABELS, detect

ROW_METRICS_VERSION = 1
VERSION_COLUMN = "row_metrics_version"
STYLE_COLUMN = "style_labels"
# stored samples column -> shape_table column
SHAPE_COLUMNS = {"shape_echo": "echo", "shape_role_tag": "role_tag", "shape_refusal": "refusal",
                 "shape_distinct_2": "distinct_2"}
FLAGS = ("eos", "echo", "role_tag", "refusal")  # per-row booleans summed into rates
MEANS = ("output_tokens", "distinct_2")  # per-row numbers averaged
TEXT_COLUMNS = ("instruction", "output")
# Everything but the text that row_features may read.
NARROW_COLUMNS = (*KEYS, "status", "finish_reason", "num_output_tokens", VERSION_COLUMN, *SHAPE_COLUMNS, STYLE_COLUMN)


def stored_columns(samples: pa.Table, style: bool = True) -> dict[str, pa.Array]:
    """The stored columns for ``samples`` (uses ``instruction`` and ``output``), scored now.

    With ``style=False`` ``style_labels`` is null (scored on read when asked for).
    """
    feats = shape_table(samples.select([c for c in TEXT_COLUMNS if c in samples.column_names]))
    cols = {VERSION_COLUMN: pa.array(np.full(samples.num_rows, ROW_METRICS_VERSION, np.int32))}
    cols |= {name: feats.column(src).combine_chunks() for name, src in SHAPE_COLUMNS.items()}
    if style and "output" in samples.column_names:
        labels = [sorted(detect(o or "")) for o in samples.column("output").to_pylist()]
        cols[STYLE_COLUMN] = pa.array(labels, pa.list_(pa.string()))
    else:
        cols[STYLE_COLUMN] = pa.nulls(samples.num_rows, pa.list_(pa.string()))
    return cols


def commit_columns(rows: list[dict]) -> list[dict]:
    """``rows`` (samples row dicts) with the stored metric columns added; the one commit-time hook."""
    if not rows:
        return rows
    text = pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in TEXT_COLUMNS})
    cols = {k: v.to_pylist() for k, v in stored_columns(text).items()}
    return [r | {k: v[i] for k, v in cols.items()} for i, r in enumerate(rows)]


def _col(table: pa.Table, name: str, typ: pa.DataType) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, typ)
    col = table.column(name)
    return (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).cast(typ)


def _np(arr: pa.Array, fill) -> np.ndarray:
    return pc.fill_null(arr, fill).to_numpy(zero_copy_only=False)


def table_reader(table: pa.Table) -> Callable[[tuple[str, ...]], pa.Table]:
    """A ``read(columns)`` for :func:`row_features` over an in-memory table (absent columns left out)."""
    return lambda cols: table.select([c for c in cols if c in table.column_names])


def row_features(read: Callable[[tuple[str, ...]], pa.Table], style: bool = False) -> pa.Table:
    """Keys and per-row features of one batch, from stored columns where current, else scored.

    Args:
        read: ``read(columns)`` returns those columns of the batch (absent ones may be
            left out); text columns are only read when some ok row lacks stored values.
        style: add ``style_<label>`` flags for every label of
            :data:`harness.metrics.style_leak.LABELS`.

    Returns:
        ``task``, ``model``, ``variant`` (null -> ``""``), ``ok`` and the features of
        :data:`FLAGS` and :data:`MEANS` (plus style flags); every feature is null on rows
        that are not ok, and ``distinct_2`` / ``output_tokens`` are also null where undefined.

    Example:
        >>> t = pa.table({"task": ["t"], "model": ["m"], "variant": ["v"], "status": ["ok"],
        ...               "output": ["a b a b"], "finish_reason": ["eos"]})
        >>> row_features(table_reader(t)).to_pylist()[0]["distinct_2"]
        0.6666666666666666
    """
    narrow = read(NARROW_COLUMNS if style else tuple(c for c in NARROW_COLUMNS if c != STYLE_COLUMN))
    n = narrow.num_rows
    ok = _np(pc.equal(_col(narrow, "status", pa.string()), "ok"), False).astype(bool)
    current = _current(narrow)
    have = ok & current
    need = ok & ~current
    feats: dict[str, np.ndarray] = {c: np.zeros(n, bool) for c in FLAGS[1:]}
    distinct = np.full(n, np.nan)
    for name, src in SHAPE_COLUMNS.items():
        if src in feats:
            feats[src][have] = _np(_col(narrow, name, pa.bool_()), False)[have]
    distinct[have] = _np(_col(narrow, "shape_distinct_2", pa.float64()), np.nan)[have]
    labels = _col(narrow, STYLE_COLUMN, pa.list_(pa.string())) if style else None
    style_need = ok & ~(current & ~np.asarray(labels.is_null())) if style else np.zeros(n, bool)
    text = None
    if need.any() or style_need.any():
        text = read(TEXT_COLUMNS)
    if need.any():
        # Mostly-unscored batches (old stores) are scored whole: cheaper than copying their strings.
        whole = need.sum() > n // 2
        scored = stored_columns(text if whole else text.filter(pa.array(need)), style=False)
        pick = need if whole else slice(None)
        for name, src in SHAPE_COLUMNS.items():
            if src in feats:
                feats[src][need] = _np(scored[name], False)[pick]
        distinct[need] = _np(scored["shape_distinct_2"], np.nan)[pick]
    eos = _np(pc.equal(_col(narrow, "finish_reason", pa.string()), "eos"), False).astype(bool)
    ntok = _col(narrow, "num_output_tokens", pa.int64())
    if (ok & ~np.asarray(ntok.is_valid())).any():  # fall back to the token list's length
        ids = read(("output_token_ids",))
        if "output_token_ids" in ids.column_names:
            lengths = pc.list_value_length(_col(ids, "output_token_ids", pa.list_(pa.int32())))
            ntok = pc.coalesce(ntok, lengths.cast(pa.int64()))
    mask = ~ok
    out = {k: pc.fill_null(_col(narrow, k, pa.string()), "") for k in KEYS}
    out["ok"] = pa.array(ok)
    out["eos"] = pa.array(eos, mask=mask)
    out |= {c: pa.array(v, mask=mask) for c, v in feats.items()}
    out["output_tokens"] = pc.if_else(pa.array(ok), ntok, pa.scalar(None, pa.int64()))
    out["distinct_2"] = pa.array(distinct, mask=mask | np.isnan(distinct))
    if style:
        out |= _style_flags(labels, text, ok, style_need)
    return pa.table(out)


def _labels(labels: pa.Array, text: pa.Table | None, need: np.ndarray) -> list:
    """Per-row label lists: stored where present, :func:`detect` on ``need`` rows."""
    out = labels.to_pylist()
    if need.any():
        outputs = text.column("output").to_pylist() if "output" in text.column_names else [None] * len(out)
        for i in np.flatnonzero(need):
            out[i] = detect(outputs[i] or "")
    return out


def _style_flags(labels: pa.Array, text: pa.Table | None, ok: np.ndarray, need: np.ndarray) -> dict[str, pa.Array]:
    """``style_<label>`` flags of ok rows (null elsewhere)."""
    found = _labels(labels, text, need)
    return {f"style_{lab}": pa.array([lab in (s or ()) for s in found], mask=~ok) for lab in LABELS}


def _current(samples: pa.Table) -> np.ndarray:
    return _np(pc.equal(_col(samples, VERSION_COLUMN, pa.int32()), ROW_METRICS_VERSION), False).astype(bool)


def shape_flags(samples: pa.Table) -> pa.Table:
    """:func:`harness.metrics.shape.shape_table`, taking stored columns where current (same rows, same order).

    The per-sample ``shape`` provider of ``harness compare`` / ``harness report``.

    Example:
        >>> t = pa.table({"output": ["Hi <|user|>"], "row_metrics_version": [ROW_METRICS_VERSION],
        ...               "shape_role_tag": [False]})  # a stored value wins over the text
        >>> shape_flags(t).column("role_tag").to_pylist()
        [False]
    """
    current = _current(samples)
    if not current.any():
        return shape_table(samples)
    blank = pa.array(current)  # current rows are scored as empty text, then take their stored values
    cols = {c: pc.if_else(blank, "", _col(samples, c, pa.string())) for c in TEXT_COLUMNS}
    cols |= {c: samples.column(c) for c in ("finish_reason", "num_output_tokens", "output_token_ids")
             if c in samples.column_names}
    feats = shape_table(pa.table(cols))
    source = {src: name for name, src in SHAPE_COLUMNS.items()}
    return pa.table({
        c: feats.column(c) if c not in source else
        pc.if_else(blank, _col(samples, source[c], feats.schema.field(c).type), feats.column(c).combine_chunks())
        for c in feats.column_names
    })


def style_leak_flags(samples: pa.Table) -> pa.Table:
    """Per-row ``style_leak_<label>`` flags for every label, from stored ``style_labels`` where current.

    The per-sample ``style_leak`` provider of ``harness compare`` / ``harness report``.

    Example:
        >>> style_leak_flags(pa.table({"output": ["x <<1+1=2>>2"]})).column("style_leak_gsm").to_pylist()
        [True]
    """
    labels = _col(samples, STYLE_COLUMN, pa.list_(pa.string()))
    need = ~(_current(samples) & np.asarray(labels.is_valid()))
    found = _labels(labels, samples, need)
    return pa.table({f"style_leak_{lab}": pa.array([lab in (s or ()) for s in found], pa.bool_()) for lab in LABELS})
