"""Run ``lm_eval:`` tasks through the harness: lm-eval's metrics, our generator and store.

For each variant of the run, :func:`evaluate_tasks` calls ``lm_eval.simple_evaluate``
with a :class:`~harness.lmeval.model.HarnessLM` and turns its output into rows:

* one **sample row** per (document, variant): ``task`` = the requested lm-eval name,
  ``sample_id`` = lm-eval's ``doc_id`` (``"<subtask>/<doc_id>"`` for members of a
  requested group or tag), ``instruction`` = the request context, ``prompt`` = the
  rendered prompt, ``output`` = the stop-truncated response (for scored tasks: the
  highest-likelihood continuation), ``doc_json`` = the document;
* one **metric row** per lm-eval metric and filter: lm-eval's ``"prompt_level_strict_acc,none"``
  becomes ``metric = "prompt_level_strict_acc"``, ``filter = "none"`` (harness/metrics/names.py),
  with ``ci_low``/``ci_high`` = value ± 1.96·stderr when lm-eval reports a stderr, and
  per-sample rows (``sample_id`` set, same name and filter) for scalar per-document values.
  ``n`` counts what the value averages: documents, or for metrics whose per-document
  values are lists of booleans that lm-eval flattens (IFEval's ``inst_level_*``) the items.

The runner prefixes ``task`` with ``lm_eval:`` and adds ``run_id`` and ``key``.

Example:
    >>> samples, metrics = evaluate_tasks(["my_task"], backend, plan)     # doctest: +SKIP
    >>> metrics[0]["metric"], metrics[0]["filter"]                        # doctest: +SKIP
    ('exact_match', 'none')
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from harness.errors import HarnessError
from harness.lmeval.local import offline_nltk, write_local_tasks
from harness.lmeval.model import HarnessLM
from harness.lmeval.resolve import Resolution, resolve_tasks

log = logging.getLogger(__name__)

BOOTSTRAP_ITERS = 1000  # lm-eval bootstraps stderrs only for non-mean aggregations (f1, bleu, ...)


def _num(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None


def _json(obj) -> str:
    return json.dumps(obj, default=str, ensure_ascii=False, sort_keys=True)


def _task_manager(res: Resolution, local_dir: Path | None):
    from lm_eval.tasks import TaskManager

    paths = [str(p) for p in res.include_dirs] + ([str(local_dir)] if local_dir else [])
    return TaskManager(include_path=paths or None, include_defaults=res.include_defaults)


def _row_names(res: Resolution) -> dict[str, tuple[str, bool]]:
    """leaf task -> (requested name it is stored under, whether it is the name itself)."""
    out: dict[str, tuple[str, bool]] = {}
    for name, leaves in res.leaves.items():
        for leaf in leaves:
            out.setdefault(leaf, (name, leaf == name))
    return out


def _scored_row(lm: HarnessLM, recs: list[dict]) -> dict:
    from harness.prompts import render

    best = max(recs, key=lambda r: r["logprob"])
    try:
        prompt = render(lm.plan.prompt_format, recs[0]["context"], lm.tokenizer).text
    except Exception:  # noqa: BLE001 - the prompt text is informative only
        prompt = None
    return {"instruction": recs[0]["context"], "prompt": prompt, "output": best["continuation"],
            "output_token_ids": None, "num_output_tokens": best["num_tokens"], "finish_reason": None,
            "status": "ok", "error": None}


def _sample_rows(out: dict, lm: HarnessLM, names: dict[str, tuple[str, bool]]) -> list[dict]:
    rows: list[dict] = []
    versions = out.get("versions") or {}
    for leaf, examples in (out.get("samples") or {}).items():
        stored, is_self = names.get(leaf, (leaf, True))
        seen: set[int] = set()
        for ex in examples:
            doc_id = int(ex["doc_id"])
            if doc_id in seen:
                continue  # one row per document (lm-eval logs it once per filter)
            seen.add(doc_id)
            recs = lm.records.get((leaf, doc_id)) or []
            gen = [r["row"] for r in recs if r["kind"] == "generate"]
            if gen:
                g = gen[0]
                row = {k: g.get(k) for k in ("instruction", "prompt", "output", "output_token_ids", "num_prompt_tokens",
                                             "num_output_tokens", "finish_reason", "status", "error", "batch_size",
                                             "gen_seconds", "replica", "engine", "max_new_tokens", "decoding_json")}
            elif recs:
                row = _scored_row(lm, recs)
            else:
                args = ex.get("arguments") or [[""]]
                row = {"instruction": str(args[0][0]), "status": "error", "error": "no model output recorded"}
            row |= {"task": stored, "task_version": str(versions.get(leaf, "")),
                    "sample_id": str(doc_id) if is_self else f"{leaf}/{doc_id}",
                    "variant": lm.variant.name, "model": lm.plan.model.name, "doc_json": _json(ex.get("doc"))}
            rows.append(row)
    return rows


def _n(out: dict, name: str) -> int | None:
    ns = out.get("n-samples") or {}
    if name in ns:
        return int(ns[name].get("effective", ns[name].get("original", 0)))
    subs = (out.get("group_subtasks") or {}).get(name)
    if subs:
        counts = [_n(out, s) for s in subs]
        return sum(c for c in counts if c is not None) or None
    return None


def _list_counts(out: dict) -> dict[tuple[str, str, str], int]:
    """(leaf task, metric, filter) -> total items of per-document lists of booleans (IFEval's ``inst_level_*``).

    Such lists are flattened by their aggregation (``agg_inst_level_acc``), so the value
    averages their items. Other list/tuple values (``f1``'s ``(gold, pred)``, ``bleu``'s
    references) are corpus inputs and keep the document count.
    """
    counts: dict[tuple[str, str, str], int] = {}
    for leaf, examples in (out.get("samples") or {}).items():
        for ex in examples:
            for metric in ex.get("metrics") or []:
                v = ex.get(metric)
                if isinstance(v, list | tuple) and v and all(isinstance(x, bool) for x in v):
                    k = (leaf, metric, str(ex.get("filter")))
                    counts[k] = counts.get(k, 0) + len(v)
    return counts


def _metric_rows(out: dict, lm: HarnessLM, names: dict[str, tuple[str, bool]]) -> list[dict]:
    import lm_eval

    rows: list[dict] = []
    list_counts = _list_counts(out)
    versions = out.get("versions") or {}
    hib = out.get("higher_is_better") or {}
    for task, res in (out.get("results") or {}).items():
        for key, value in res.items():
            if "," not in key or "_stderr," in key or _num(value) is None:
                continue
            metric, filt = key.split(",", 1)
            se = _num(res.get(f"{metric}_stderr,{filt}"))
            lo, hi = (float(value) - 1.96 * se, float(value) + 1.96 * se) if se is not None else (None, None)
            details = {"source": "lm-eval", "lm_eval_version": getattr(lm_eval, "__version__", None),
                       "stderr": se, "task_version": versions.get(task),
                       "higher_is_better": (hib.get(task) or {}).get(metric), "n_shot": (out.get("n-shot") or {}).get(task),
                       "max_new_tokens_cap": lm.cfg.max_new_tokens, "prompt_format": lm.plan.prompt_format}
            n = list_counts.get((task, metric, filt), _n(out, task))
            rows.append({"task": task, "model": lm.plan.model.name, "variant": lm.variant.name, "metric": metric,
                         "filter": filt, "value": float(value), "n": n, "ci_low": lo, "ci_high": hi,
                         "details": _json(details)})
    for leaf, examples in (out.get("samples") or {}).items():
        stored, is_self = names.get(leaf, (leaf, True))
        for ex in examples:
            sid = str(ex["doc_id"]) if is_self else f"{leaf}/{ex['doc_id']}"
            for metric in ex.get("metrics") or []:
                v = ex.get(metric)
                if _num(v) is None:
                    continue
                info = {"kind": "bool" if isinstance(v, bool) else "number", "source": "lm-eval",
                        "higher_is_better": (hib.get(leaf) or {}).get(metric)}
                rows.append({"task": stored, "model": lm.plan.model.name, "variant": lm.variant.name,
                             "metric": metric, "filter": ex.get("filter"), "value": float(v), "n": 1,
                             "sample_id": sid, "details": _json(info)})
    return rows


def evaluate_tasks(names: list[str], backend, plan) -> tuple[list[dict], list[dict]]:
    """Evaluate lm-eval tasks for every variant of ``plan``; returns (sample rows, metric rows).

    Args:
        names: lm-eval task, group or tag names, without the ``lm_eval:`` prefix.
        backend: the run's backend (``generate`` and ``score``; Ray pool or in-process).
        plan: the runner's :class:`~harness.run.plan.Plan`; ``plan.cfg.limit`` limits
            documents per task, ``plan.cfg.data`` may give ``ifeval=PATH``.

    Raises:
        HarnessError: a task cannot be loaded or asks for a request type the harness
            cannot serve.
    """
    import lm_eval

    offline_nltk()
    cfg = plan.cfg
    res = resolve_tasks(names, [Path(d) for d in cfg.tasks_dirs], cfg.data_overrides())
    row_names = _row_names(res)
    samples: list[dict] = []
    metrics: list[dict] = []
    tokenizer = None
    with write_local_tasks(res.local) as local_dir:
        manager = _task_manager(res, local_dir)  # builds fresh Task objects on every load
        for variant in plan.variants:
            lm = HarnessLM(backend, variant, plan, tokenizer)
            try:
                out = lm_eval.simple_evaluate(
                    model=lm, tasks=list(names), task_manager=manager, limit=cfg.limit,
                    log_samples=True, bootstrap_iters=BOOTSTRAP_ITERS, apply_chat_template=False)
            except NotImplementedError as exc:
                raise HarnessError(f"--tasks {','.join('lm_eval:' + n for n in names)}: {exc}") from None
            except (KeyError, FileNotFoundError) as exc:
                raise HarnessError(f"--tasks {','.join('lm_eval:' + n for n in names)}: lm-eval could not load "
                                   f"the task: {str(exc).strip(chr(34) + chr(39))}") from None
            tokenizer = lm._tokenizer
            samples += _sample_rows(out, lm, row_names)
            metrics += _metric_rows(out, lm, row_names)
    return samples, metrics
