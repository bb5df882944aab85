"""The one schema module: Arrow schemas of ``samples``, ``metrics`` and ``runs``.

Every writer validates against these schemas and stamps each Parquet file with
``harness.schema_version`` metadata. Every reader goes through :func:`upgrade`, which
applies the :data:`MIGRATIONS` from the file's version up to :data:`SCHEMA_VERSION` and
then :func:`conform` (missing nullable columns become nulls). To change the schema: add
the column as nullable, bump :data:`SCHEMA_VERSION`, note it in :data:`HISTORY`, and add
a migration if old values must be rewritten (renames, unit changes).

Example:
    >>> import pyarrow as pa
    >>> t = conform(pa.table({"run_id": ["r1"], "metric": ["eos_rate"], "value": [0.5]}), "metrics")
    >>> t.schema.field("n").type
    DataType(int64)
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3

HISTORY: dict[int, str] = {
    1: "samples, metrics, runs as first released",
    2: "metrics.sample_id: per-sample metric rows (IFEval booleans, judge verdicts, similarity points)",
    3: "samples.engine, samples.max_new_tokens, samples.decoding_json, samples.prompt_truncated_tokens: "
       "what ran for each row; samples.domain: the task's style domain; metrics.filter: lm-eval's filter name as a column; one name per metric "
       "(harness/metrics/names.py): 'm,filter' -> m + filter, ifeval_prompt_level_* and judge_pref per-sample "
       "rows -> the measure's name, similarity_spearman_<domain> -> similarity_spearman, ifeval_echo_rate "
       "dropped (the echo_rate row of the same task and variant); samples.row_metrics_version, "
       "samples.shape_echo/shape_role_tag/shape_refusal/shape_distinct_2, samples.style_labels: per-row metrics "
       "scored at commit (harness/metrics/stored.py), NULL on older rows, which are scored on read",
}

SAMPLES = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),  # content key, unique per (model, prompt, variant, decoding)
        pa.field("task", pa.string(), nullable=False),
        pa.field("task_version", pa.string()),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("instruction", pa.string()),
        pa.field("prompt", pa.string()),  # the rendered prompt text fed to the tokenizer
        pa.field("output", pa.string()),
        pa.field("output_token_ids", pa.list_(pa.int32())),
        pa.field("num_prompt_tokens", pa.int32()),
        pa.field("num_output_tokens", pa.int32()),
        pa.field("finish_reason", pa.string()),  # eos | length | error
        pa.field("status", pa.string()),  # ok | error
        pa.field("error", pa.string()),
        pa.field("batch_size", pa.int32()),
        pa.field("gen_seconds", pa.float64()),  # wall time of the batch this row was in
        pa.field("replica", pa.string()),
        pa.field("shard_id", pa.int32()),
        pa.field("doc_json", pa.string()),
        # attribution trace (--trace): steps where the expert changed the argmax
        pa.field("flip_positions", pa.list_(pa.int32())),
        pa.field("flip_base_tokens", pa.list_(pa.int32())),
        pa.field("flip_chosen_tokens", pa.list_(pa.int32())),
        pa.field("flip_base_margins", pa.list_(pa.float32())),
        pa.field("flip_chosen_margins", pa.list_(pa.float32())),
        pa.field("flip_rules", pa.list_(pa.string())),
        # v3: what ran for this row (NULL on rows written before v3)
        pa.field("engine", pa.string()),  # hf | vllm | hf-tp
        pa.field("max_new_tokens", pa.int32()),  # the cap this row ran with
        pa.field("decoding_json", pa.string()),  # every decoding field that ran, JSON
        pa.field("prompt_truncated_tokens", pa.int32()),  # tokens dropped from the prompt's left (opt-in)
        pa.field("domain", pa.string()),  # the task's domain: (poetry, gsm, code, chess, recipe) or NULL
        # v3: per-row metrics scored once at commit (harness/metrics/stored.py); NULL -> scored on read
        pa.field("row_metrics_version", pa.int32()),
        pa.field("shape_echo", pa.bool_()),
        pa.field("shape_role_tag", pa.bool_()),
        pa.field("shape_refusal", pa.bool_()),
        pa.field("shape_distinct_2", pa.float64()),
        pa.field("style_labels", pa.list_(pa.string())),
    ],
    metadata={"harness.table": "samples", "harness.schema_version": str(SCHEMA_VERSION)},
)

METRICS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("task", pa.string()),
        pa.field("model", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("n", pa.int64()),
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("reference", pa.string()),  # variant/model the value is compared against, if any
        pa.field("details", pa.string()),  # JSON
        # v2: set on per-sample rows (one prompt's value); NULL on aggregate rows
        pa.field("sample_id", pa.string()),
        # v3: lm-eval's filter ("none", "strict-match", ...) as its own column, never in the metric name
        pa.field("filter", pa.string()),
    ],
    metadata={"harness.table": "metrics", "harness.schema_version": str(SCHEMA_VERSION)},
)

RUNS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("created_at", pa.string()),  # ISO-8601 UTC
        pa.field("finished_at", pa.string()),
        pa.field("status", pa.string()),  # running | finished | failed
        pa.field("model", pa.string()),
        pa.field("model_fingerprint", pa.string()),
        pa.field("tasks", pa.list_(pa.string())),
        pa.field("variants", pa.list_(pa.string())),
        pa.field("config_hash", pa.string()),
        pa.field("config_json", pa.string()),
        pa.field("versions_json", pa.string()),
        pa.field("expert_json", pa.string()),  # token-resolution tables per variant
        pa.field("timings_json", pa.string()),
        pa.field("num_samples", pa.int64()),
        pa.field("schema_version", pa.int32()),
    ],
    metadata={"harness.table": "runs", "harness.schema_version": str(SCHEMA_VERSION)},
)

TABLES: dict[str, pa.Schema] = {"samples": SAMPLES, "metrics": METRICS, "runs": RUNS}


def schema_for(table: str) -> pa.Schema:
    """Return the current schema of ``table`` (``samples``, ``metrics`` or ``runs``)."""
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; tables are {sorted(TABLES)}") from None


def conform(data: pa.Table, table: str) -> pa.Table:
    """Return ``data`` with exactly the current schema of ``table``.

    Missing nullable columns are filled with nulls (this is how files written under an
    older schema version are read); unknown columns raise, and so do missing
    non-nullable ones.
    """
    schema = schema_for(table)
    unknown = set(data.column_names) - set(schema.names)
    if unknown:
        raise ValueError(f"{table}: unknown columns {sorted(unknown)}")
    columns = []
    for f in schema:
        if f.name in data.column_names:
            columns.append(data.column(f.name).cast(f.type))
        elif f.nullable:
            columns.append(pa.nulls(data.num_rows, f.type))
        else:
            raise ValueError(f"{table}: missing required column {f.name!r}")
    return pa.Table.from_arrays(columns, schema=schema)


def from_rows(rows: list[dict], table: str) -> pa.Table:
    """Build a table of ``table``'s schema from row dicts (missing keys become null)."""
    schema = schema_for(table)
    unknown = {k for r in rows for k in r} - set(schema.names)
    if unknown:
        raise ValueError(f"{table}: unknown columns {sorted(unknown)}")
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def _v1_to_v2(data: pa.Table, table: str) -> pa.Table:
    """v2 only added the nullable ``metrics.sample_id``; :func:`conform` fills it."""
    return data


# v2 names of per-sample rows -> the measure's one name (v3)
_V2_PER_SAMPLE_NAMES = {"ifeval_prompt_level_strict_acc": "prompt_level_strict_acc",
                        "ifeval_prompt_level_loose_acc": "prompt_level_loose_acc", "judge_pref": "judge_win_rate"}


def _v3_metric_name(metric: str, filt: str | None, sample_id: str | None) -> tuple[str, str | None]:
    """(v3 name, filter) of a v2 metric row.

    >>> _v3_metric_name("prompt_level_strict_acc,none", None, None)
    ('prompt_level_strict_acc', 'none')
    >>> _v3_metric_name("judge_pref", None, "3"), _v3_metric_name("similarity_spearman_gsm", None, None)
    (('judge_win_rate', None), ('similarity_spearman', None))
    """
    if "," in metric and filt is None:
        metric, filt = metric.split(",", 1)
    if sample_id is not None and metric in _V2_PER_SAMPLE_NAMES:
        metric = _V2_PER_SAMPLE_NAMES[metric]
    if metric.startswith("similarity_spearman_"):
        metric = "similarity_spearman"
    return metric, filt


def _v2_to_v3(data: pa.Table, table: str) -> pa.Table:
    """Rewrite v2 metric names to v3's one name per measure (new nullable columns: :func:`conform`).

    Also drops ``ifeval_echo_rate`` (the same number as the ``echo_rate`` row) and the
    harness's own duplicates of measures lm-eval stored for the same ``lm_eval:`` task,
    variant and sample (v2 wrote IFEval twice), and nulls ``n`` on lm-eval ``inst_level_*``
    aggregate rows, where v2 stored prompts instead of instructions. Rows already named the
    v3 way pass unchanged, so this is also applied to v3 files written before the rename
    (see :func:`upgrade`).
    """
    if table != "metrics" or "metric" not in data.column_names or data.num_rows == 0:
        return data
    cols = data.column_names
    rows = data.to_pylist()
    for r in rows:
        old = r["metric"]
        r["metric"], filt = _v3_metric_name(old, r.get("filter"), r.get("sample_id"))
        if filt is not None:
            r["filter"] = filt
        if "," in old and r["metric"].startswith("inst_level") and r.get("sample_id") is None:
            r["n"] = None  # v2 stored lm-eval's document count here
    rows = [r for r in rows if r["metric"] != "ifeval_echo_rate"]  # a twin of echo_rate
    lm_eval = {(r.get("task"), r.get("variant"), r["metric"], r.get("sample_id")) for r in rows if r.get("filter")}
    kept = [r for r in rows
            if r.get("filter") or (r.get("task"), r.get("variant"), r["metric"], r.get("sample_id")) not in lm_eval]
    out_cols = cols if "filter" in cols else [*cols, "filter"]
    fields = [data.schema.field(c) if c in cols else METRICS.field("filter") for c in out_cols]
    return pa.Table.from_pylist([{c: r.get(c) for c in out_cols} for r in kept],
                                schema=pa.schema(fields, metadata=data.schema.metadata))


def _has_v2_names(data: pa.Table) -> bool:
    """Whether a metrics table holds any name :func:`_v2_to_v3` would rewrite or drop."""
    names = set(data.column("metric").to_pylist()) if "metric" in data.column_names else set()
    return any("," in m or m in _V2_PER_SAMPLE_NAMES or m == "ifeval_echo_rate" or m.startswith("similarity_spearman_")
               for m in names)


# MIGRATIONS[v] turns a table written under version v into version v + 1.
MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3}


def file_version(schema: pa.Schema) -> int:
    """The schema version a Parquet file was written under (1 when unstamped).

    >>> file_version(pa.schema([pa.field("run_id", pa.string())], metadata={"harness.schema_version": "2"}))
    2
    """
    raw = (schema.metadata or {}).get(b"harness.schema_version")
    try:
        return int(raw) if raw is not None else 1
    except ValueError:
        raise ValueError(f"bad harness.schema_version metadata {raw!r}") from None


def upgrade(data: pa.Table, table: str, version: int | None = None) -> pa.Table:
    """Migrate ``data`` written under ``version`` (default: its metadata) to the current schema.

    Raises ``ValueError`` for files from a newer harness (``version > SCHEMA_VERSION``).

    >>> old = pa.table({"run_id": ["r1"], "metric": ["eos_rate"]})
    >>> upgrade(old, "metrics", version=1).schema.field("sample_id").type
    DataType(string)
    """
    version = file_version(data.schema) if version is None else version
    if version > SCHEMA_VERSION:
        raise ValueError(f"{table}: written under schema version {version}, newer than this harness's "
                         f"{SCHEMA_VERSION}; upgrade harness to read it")
    for v in range(version, SCHEMA_VERSION):
        data = MIGRATIONS[v](data, table)
    if version == SCHEMA_VERSION == 3 and table == "metrics" and _has_v2_names(data):
        data = _v2_to_v3(data, table)  # v3 files written before the one-name rename (v3 was unreleased then)
    return conform(data, table)
