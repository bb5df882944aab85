"""Task-level metrics computed from the rows' source documents.

Rows whose ``doc_json`` is in IFEval's schema (``instruction_id_list`` + ``kwargs``) are
scored with lm-eval's own checkers: the four aggregate numbers per (task, model, variant),
the same four on non-echo outputs, and per-sample rows (``sample_id`` set, same names) that
``harness compare`` pairs across variants. Tasks run through lm-eval (``lm_eval:NAME``)
already carry lm-eval's own rows for the four measures; for them only the non-echo numbers
are added (one name per measure, harness/metrics/names.py).

Example:
    >>> import pyarrow as pa
    >>> task_metric_rows(pa.table({"task": [], "model": [], "variant": [], "sample_id": [],
    ...                            "doc_json": [], "output": [], "status": []}), "r1")
    []
"""

from __future__ import annotations

import json

import pyarrow as pa

LM_EVAL_TASK_PREFIX = "lm_eval:"  # the runner's prefix for tasks scored by lm-eval


def _ifeval_groups(samples: pa.Table) -> dict[tuple[str, str, str], list[tuple[str, dict, str]]]:
    groups: dict[tuple[str, str, str], list[tuple[str, dict, str]]] = {}
    cols = ["task", "model", "variant", "sample_id", "doc_json", "output", "status"]
    for r in samples.select(cols).to_pylist():
        if r["status"] != "ok" or not r["doc_json"] or "instruction_id_list" not in r["doc_json"]:
            continue
        doc = json.loads(r["doc_json"])
        if isinstance(doc, dict) and "instruction_id_list" in doc and "kwargs" in doc:
            groups.setdefault((r["task"], r["model"], r["variant"]), []).append((r["sample_id"], doc, r["output"] or ""))
    return groups


def task_metric_rows(samples: pa.Table, run_id: str) -> list[dict]:
    """``metrics`` rows for every task whose documents a task-level metric understands."""
    groups = _ifeval_groups(samples)
    if not groups:
        return []
    from harness.metrics.ifeval import ifeval_metric_rows, score_ifeval

    rows: list[dict] = []
    for (task, model, variant), items in sorted(groups.items()):
        per = score_ifeval([doc for _, doc, _ in items], [out for _, _, out in items])
        rows += ifeval_metric_rows(per, run_id=run_id, task=task, model=model, variant=variant,
                                   sample_ids=[sid for sid, _, _ in items],
                                   lm_eval_scored=task.startswith(LM_EVAL_TASK_PREFIX))
    return rows
