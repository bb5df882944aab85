"""What a native run does with each task-YAML field, and the refusal of the rest.

A field a native ``harness run`` parses must change what it does, or be refused with one
line naming the file and field (``harness tasks validate`` and run start both call
:func:`check_native`):

* ``generation_kwargs`` -> the task's decoding defaults (:mod:`harness.decoding`);
* ``domain`` -> ``PromptItem.domain`` / ``samples.domain`` (style-leak rows use it);
* ``metric_list`` -> which metrics the run keeps for the task's rows
  (:func:`select_metrics`); without ``process_results`` each name must be one the
  harness computes (:func:`native_metric_names`);
* ``process_results`` -> called per ok row as lm-eval does (``fn(doc, [output])``) and
  aggregated per ``metric_list`` entry (:func:`process_results_rows`);
* ``task_alias``, ``doc_to_target``, ``training_split``, ``fewshot_split`` -> refused
  (a zero-shot generation run has no use for them; lm-eval tasks run through
  ``--tasks lm_eval:NAME`` keep them).

Example:
    >>> from harness.tasks import Task
    >>> check_native(Task.from_rows("demo", [{"instruction": "Hi."}], metric_list=({"metric": "eos_rate"},)))
    >>> check_native(Task.from_rows("demo", [{"instruction": "Hi."}], metric_list=({"metric": "bleu"},)))
    Traceback (most recent call last):
    ...
    harness.errors.HarnessError: demo: metric_list[0].metric: 'bleu' is not a metric native runs compute ...
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping

from harness.errors import HarnessError, did_you_mean
from harness.metrics.domains import STYLE_DOMAINS
from harness.tasks.yaml_loader import FunctionRef, where

NOT_HONOURED = {
    "task_alias": "display names are not used by native runs",
    "doc_to_target": "native runs generate and do not score targets; reference_field gives judges a reference",
    "training_split": "native runs read the test (or validation) split only",
    "fewshot_split": "native runs are zero-shot",
}
AGGREGATIONS = {"mean": statistics.fmean, "median": statistics.median}
ALWAYS_KEPT = ("error_rate",)


def native_metric_names() -> tuple[str, ...]:
    """Every metric name a native run can write for a task's rows."""
    from harness.metrics.ifeval import METRICS as IFEVAL
    from harness.metrics.summary import METRIC_ORDER

    return (*METRIC_ORDER, *IFEVAL, *(m + "_non_echo" for m in IFEVAL), "ifeval_echo_rate",
            *(f"style_leak_{d}" for d in STYLE_DOMAINS))


def _loc(task, key: str) -> str:
    spec = getattr(task, "spec", None)
    if spec is not None:
        return spec.where(key)
    return where(task.source) if task.source else task.name


def check_native(task) -> None:
    """Raise a one-line :class:`HarnessError` for a field a native run would not honour."""
    spec = task.spec
    if spec is not None:
        for key, why in NOT_HONOURED.items():
            if getattr(spec, key) is not None:
                raise spec.error(key, f"not supported by native runs ({why}); remove it, "
                                      f"or run the task through lm-eval with --tasks lm_eval:{task.name}")
    has_process = spec is not None and spec.process_results is not None
    known = native_metric_names()
    for i, entry in enumerate(task.metric_list):
        metric, agg = entry.get("metric"), entry.get("aggregation")
        name = f"metric_list[{i}]"
        if has_process:
            if not isinstance(metric, str):
                raise HarnessError(f"{_loc(task, 'metric_list')}: {name}.metric: expected a name of a "
                                   f"process_results key, got {metric}")
            if agg is not None and not isinstance(agg, FunctionRef) and agg not in AGGREGATIONS:
                raise HarnessError(f"{_loc(task, 'metric_list')}: {name}.aggregation: {agg!r} is not supported "
                                   f"by native runs (use {', '.join(AGGREGATIONS)} or a !function)")
            continue
        if not isinstance(metric, str) or metric not in known:
            raise HarnessError(f"{_loc(task, 'metric_list')}: {name}.metric: {metric!r} is not a metric native "
                               f"runs compute{did_you_mean(str(metric), known)} (see docs/tasks.md)")
        if agg is not None and agg != "mean":
            raise HarnessError(f"{_loc(task, 'metric_list')}: {name}.aggregation: the harness computes "
                               f"{metric} itself; only 'mean' (or no aggregation) is accepted, got {agg}")
    if has_process and not task.metric_list:
        raise spec.error("process_results", "needs a metric_list naming the keys to aggregate")


def selected_metrics(task) -> set[str] | None:
    """Metric names ``task.metric_list`` keeps (``None``: keep all).

    A name also keeps its IFEval relatives (``_non_echo`` and the per-sample
    ``ifeval_<name>`` rows); ``error_rate`` is always kept.
    """
    if not task.metric_list:
        return None
    names = {e["metric"] for e in task.metric_list if isinstance(e.get("metric"), str)}
    return names | {n + "_non_echo" for n in names} | {"ifeval_" + n for n in names} | set(ALWAYS_KEPT)


def select_metrics(metrics, tasks):
    """Drop metric rows of tasks whose ``metric_list`` does not name them."""
    import pyarrow as pa

    keep_by_task = {t.name: selected_metrics(t) for t in tasks}
    if all(v is None for v in keep_by_task.values()):
        return metrics
    mask = [keep_by_task.get(task) is None or metric in keep_by_task[task]
            for task, metric in zip(metrics.column("task").to_pylist(), metrics.column("metric").to_pylist())]
    return metrics.filter(pa.array(mask, pa.bool_()))


def process_results_rows(task, samples, run_id: str) -> list[dict]:
    """lm-eval semantics for a task's ``process_results``: per ok row, then aggregated per entry."""
    spec = task.spec
    if spec is None or spec.process_results is None:
        return []
    fn = spec.process_results.resolve()
    groups: dict[tuple[str, str], list[dict]] = {}
    cols = ["task", "model", "variant", "doc_json", "output", "status"]
    for r in samples.select(cols).to_pylist():
        if r["task"] != task.name or r["status"] != "ok":
            continue
        result = fn(json.loads(r["doc_json"] or "{}"), [r["output"] or ""])
        if not isinstance(result, Mapping):
            raise spec.error("process_results", f"must return a mapping of metric -> value, got {type(result).__name__}")
        groups.setdefault((r["model"], r["variant"]), []).append(dict(result))
    rows = []
    for (model, variant), results in sorted(groups.items()):
        for entry in task.metric_list:
            metric, agg = entry["metric"], entry.get("aggregation") or "mean"
            values = [res[metric] for res in results if metric in res]
            if not values:
                raise spec.error("metric_list", f"{metric}: process_results returned no such key")
            value = agg.resolve()(values) if isinstance(agg, FunctionRef) else AGGREGATIONS[agg](map(float, values))
            rows.append({"run_id": run_id, "task": task.name, "model": model, "variant": variant, "metric": metric,
                         "value": float(value), "n": len(values),
                         "details": json.dumps({"source": "process_results", "aggregation": str(agg),
                                                "higher_is_better": entry.get("higher_is_better")})})
    return rows


def task_field_metrics(tasks, samples, metrics, run_id: str):
    """Honour the tasks' ``process_results`` and ``metric_list`` on a run's metric rows.

    A task's own ``process_results`` value wins over a built-in aggregate row of the same
    (task, variant, metric); when both agree (IFEval: the harness runs lm-eval's own
    checkers) the built-in row stays, as it carries a confidence interval. Then
    :func:`select_metrics` applies each ``metric_list``.
    """
    import pyarrow as pa

    from harness.store.schema import from_rows

    extra = {(r["task"], r["variant"], r["metric"]): r for t in tasks for r in process_results_rows(t, samples, run_id)}
    if extra:
        cols = [metrics.column(c).to_pylist() for c in ("task", "variant", "metric", "sample_id", "value")]
        agree = {(t, v, m) for t, v, m, sid, val in zip(*cols) if sid is None and (t, v, m) in extra
                 and val is not None and abs(val - extra[(t, v, m)]["value"]) < 1e-9}
        keep = [(t, v, m) not in extra or sid is not None or (t, v, m) in agree for t, v, m, sid, _ in zip(*cols)]
        new = [r for k, r in extra.items() if k not in agree]
        metrics = metrics.filter(pa.array(keep, pa.bool_()))
        if new:
            metrics = pa.concat_tables([metrics, from_rows(new, "metrics")])
    return select_metrics(metrics, tasks)
