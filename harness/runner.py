"""``harness run``: task specs -> prompts -> replicas -> sample rows -> metrics -> tables.

:func:`prepare` validates every input (config, tasks, data files, variants, model)
before anything is written, so bad input leaves the store untouched. :func:`execute`
then generates only the (prompt, variant) rows whose content key is not yet in the
store — re-running the same config into the same store, or ``harness resume RUN_ID``,
continues an interrupted run.

Example:
    >>> cfg = RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 2})
    >>> result = execute(cfg, progress=False)       # doctest: +SKIP
    >>> result.num_rows                              # doctest: +SKIP
    4
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.experts.variants import Variant, load_user_experts, parse_variants
from harness.records import PromptItem, Shard
from harness.store import Store, read_table
from harness.store.schema import from_rows

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Everything validated and resolved, nothing written yet."""

    cfg: RunConfig
    run_id: str
    model: object  # harness.models.ResolvedModel
    prompt_format: str
    items: list[PromptItem]
    variants: list[Variant]
    lm_eval_tasks: tuple[str, ...] = ()  # ``lm_eval:NAME`` tasks, evaluated by lm-eval through the bridge
    engine: str = "hf"  # the engine that runs (``--engine auto`` resolved)
    engine_note: str = ""  # why ``auto`` did not pick vLLM
    keys: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (task, sample_id, variant) -> key


@dataclass
class RunResult:
    run_id: str
    store: Path
    num_rows: int
    generated: int
    summary: str
    timings: dict
    engine: str = "hf"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).name if os.sep in text else text).strip("-")[:40] or "model"


def content_key(model_fp: str, prompt_format: str, item: PromptItem, variant: Variant, cfg: RunConfig,
                engine: str = "hf") -> str:
    """Content key of one row: same inputs, same key, on any cluster and batch size.

    The engine is part of it (engines may differ at near-ties); ``hf`` keys are those of
    runs made before engines existed.
    """
    payload = [model_fp, prompt_format, item.task, item.task_version, item.sample_id, item.instruction,
               variant.spec_key(), cfg.decoding.as_dict(), cfg.combine, cfg.dtype]
    if engine != "hf":
        payload.append({"engine": engine})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


LM_EVAL_PREFIX = "lm_eval:"


def _load_items(cfg: RunConfig) -> tuple[list[PromptItem], list]:
    from harness.tasks import load_prompt_file, load_tasks

    native = [t for t in cfg.tasks if not t.startswith(LM_EVAL_PREFIX)]
    tasks = list(load_tasks(native, [Path(d) for d in cfg.tasks_dirs], cfg.data_overrides())) if native else []
    if cfg.prompts:
        tasks.append(load_prompt_file(Path(cfg.prompts)))
    items: list[PromptItem] = []
    for t in tasks:
        items.extend(t.items(cfg.limit))
    if not items and len(native) == len(cfg.tasks):
        raise HarnessError("no prompts to run: the selected tasks are empty")
    return items, tasks


def prepare(cfg: RunConfig) -> Plan:
    """Validate and resolve; raises :class:`HarnessError` before touching the store."""
    from harness.models import resolve

    items, tasks = _load_items(cfg)
    lm_eval_tasks = tuple(t for t in cfg.tasks if t.startswith(LM_EVAL_PREFIX))
    if lm_eval_tasks:
        from harness.lmeval import validate_tasks

        validate_tasks([t[len(LM_EVAL_PREFIX):] for t in lm_eval_tasks], [Path(d) for d in cfg.tasks_dirs],
                       data=cfg.data_overrides())
    variants = parse_variants(list(cfg.variants), load_user_experts([Path(p) for p in cfg.experts]))
    model = resolve(cfg.model)
    formats = {t.prompt_format for t in tasks if getattr(t, "prompt_format", None)}
    if cfg.prompt_format:
        prompt_format = cfg.prompt_format
    elif len(formats) == 1:
        prompt_format = formats.pop()
    elif len(formats) > 1:
        raise HarnessError(f"tasks ask for different prompt formats {sorted(formats)}; pass --prompt-format")
    else:
        prompt_format = model.default_prompt_format
    from harness.engines import choose_engine

    choice = choose_engine(cfg.engine, model.path, trace=cfg.trace, tp=cfg.tp, device=cfg.device)
    run_id = cfg.run_id or f"{_slug(model.name)}-{cfg.output_hash(model.fingerprint, choice.name)[:10]}"
    plan = Plan(cfg, run_id, model, prompt_format, items, variants, lm_eval_tasks, engine=choice.name,
                engine_note=choice.reason)
    for item in items:
        for v in variants:
            plan.keys[(item.task, item.sample_id, v.name)] = content_key(model.fingerprint, prompt_format, item, v, cfg,
                                                                         choice.name)
    if len(set(plan.keys.values())) != len(plan.keys):
        raise HarnessError("duplicate sample ids within a task: give every prompt a unique id")
    return plan


def make_shards(items: list[PromptItem], variants: list[Variant], prompts_per_shard: int) -> list[Shard]:
    """Longest prompts first; all variants of a prompt in one shard (paired batches)."""
    ordered = sorted(items, key=lambda i: -len(i.instruction))
    names = tuple(v.name for v in variants)
    return [Shard(n, tuple(ordered[lo: lo + prompts_per_shard]), names)
            for n, lo in enumerate(range(0, len(ordered), prompts_per_shard))]


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("harness", "torch", "transformers", "ray", "pyarrow", "duckdb", "lm_eval", "deepspeed"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _run_row(plan: Plan, status: str, created: str, expert_tables: dict, timings: dict, n: int) -> dict:
    cfg = plan.cfg
    return {
        "created_at": created, "finished_at": datetime.now(timezone.utc).isoformat() if status != "running" else None,
        "status": status, "model": plan.model.name, "model_fingerprint": plan.model.fingerprint,
        "tasks": sorted({i.task for i in plan.items}), "variants": [v.name for v in plan.variants],
        "config_hash": cfg.output_hash(plan.model.fingerprint, plan.engine),
        "config_json": json.dumps(cfg.to_dict() | {"prompt_format_resolved": plan.prompt_format, "model_path": str(plan.model.path),
                                                   "engine_resolved": plan.engine}),
        "versions_json": json.dumps(_versions()), "expert_json": json.dumps(expert_tables),
        "timings_json": json.dumps(timings), "num_samples": n,
    }


def execute(cfg: RunConfig, *, progress: bool = True) -> RunResult:
    """Run (or continue) a configured evaluation and return where its rows went."""
    from harness.distributed.executor import open_backend
    from harness.metrics.summary import format_summary, summarize
    from harness.metrics.task_metrics import task_metric_rows
    from harness.models.deepspeed_source import sweep_specs

    if (sweep := sweep_specs(cfg.model)) is not None:  # deepspeed:PATH@all: one run per checkpoint tag
        return _execute_sweep(cfg, sweep, progress)
    plan = prepare(cfg)
    if plan.engine_note:  # stdout: stderr is kept for the one-line errors
        print(plan.engine_note, flush=True)
    store = Store(cfg.store)
    existing = store.existing_keys(plan.run_id)
    todo = [i for i in plan.items if any(plan.keys[(i.task, i.sample_id, v.name)] not in existing for v in plan.variants)]
    done_tasks: set[str] = set()
    if existing and plan.lm_eval_tasks:  # only lm-eval tasks need the stored task names
        done_tasks = set(read_table(cfg.store, "samples", plan.run_id).column("task").to_pylist())
    lm_todo = [t for t in plan.lm_eval_tasks if t not in done_tasks]
    manifest = store.read_manifest(plan.run_id) or {}
    created = manifest.get("created_at") or datetime.now(timezone.utc).isoformat()
    t0 = time.perf_counter()
    generated = 0
    expert_tables: dict = manifest.get("expert_json") or {}
    timings: dict = {}
    extra_metrics: list[dict] = []
    next_shard = len(store.committed_shards(plan.run_id))

    def commit(result: dict) -> None:
        nonlocal generated
        rows = [r | {"run_id": plan.run_id, "key": plan.keys[(r["task"], r["sample_id"], r["variant"])]} for r in result["rows"]]
        store.write_samples(plan.run_id, result["shard_id"], rows)
        generated += len(rows)

    if todo or lm_todo:
        log.info("run %s: %d of %d prompts to generate", plan.run_id, len(todo), len(plan.items))
        shards = [Shard(next_shard + s.shard_id, s.items, s.variants) for s in make_shards(todo, plan.variants, cfg.batch_size)]
        with open_backend(plan, progress) as backend:  # resources are checked before anything is written
            store.write_run(plan.run_id, _run_row(plan, "running", created, {}, {}, len(existing)))
            try:
                expert_tables = backend.start()
                backend.run(shards, commit)
                if lm_todo:
                    extra_metrics = _run_lm_eval(plan, backend, store, lm_todo, next_shard + len(shards))
            except BaseException:
                store.write_run(plan.run_id, _run_row(plan, "failed", created, {}, backend.timings, len(existing) + generated))
                raise
            timings = backend.timings
    samples = read_table(cfg.store, "samples", plan.run_id)
    metrics = summarize(samples, plan.run_id)
    task_rows = task_metric_rows(samples, plan.run_id)  # e.g. IFEval on IFEval-schema documents
    if task_rows:
        import pyarrow as pa

        metrics = pa.concat_tables([metrics, from_rows(task_rows, "metrics")])
    if extra_metrics or (not lm_todo and plan.lm_eval_tasks):
        metrics = _merge_metrics(cfg.store, plan.run_id, metrics, extra_metrics)
    store.write_metrics(plan.run_id, metrics)
    timings["wall_seconds"] = time.perf_counter() - t0
    store.write_run(plan.run_id, _run_row(plan, "finished", created, expert_tables, timings, samples.num_rows))
    return RunResult(plan.run_id, Path(cfg.store), samples.num_rows, generated, format_summary(metrics), timings,
                     plan.engine)


def _execute_sweep(cfg: RunConfig, sweep: dict[str, str], progress: bool) -> RunResult:
    """One run per tag (``--run-id X`` becomes ``X-<tag>``); every tag is converted and checked first."""
    import pyarrow as pa

    from harness.metrics.summary import format_summary

    cfgs = [cfg.with_(model=spec, run_id=cfg.run_id and f"{cfg.run_id}-{_slug(tag)}") for tag, spec in sweep.items()]
    for c in cfgs:
        prepare(c)  # a bad tag fails here, before any store write
    results = [execute(c, progress=progress) for c in cfgs]
    metrics = pa.concat_tables([read_table(cfg.store, "metrics", r.run_id) for r in results])
    timings = {r.run_id: r.timings for r in results} | {"wall_seconds": sum(r.timings.get("wall_seconds", 0.0) for r in results)}
    return RunResult(",".join(r.run_id for r in results), Path(cfg.store), sum(r.num_rows for r in results),
                     sum(r.generated for r in results), format_summary(metrics), timings, results[0].engine)


def _run_lm_eval(plan: Plan, backend, store: Store, tasks: list[str], first_shard: int) -> list[dict]:
    """Evaluate ``lm_eval:`` tasks through the bridge; commit their rows, return metric rows."""
    from harness.lmeval import evaluate_tasks

    rows, metric_rows = evaluate_tasks([t[len(LM_EVAL_PREFIX):] for t in tasks], backend, plan)
    for n, task in enumerate(tasks):
        task_rows = [r | {"task": task, "run_id": plan.run_id, "key": row_key(plan, r | {"task": task})}
                     for r in rows if r["task"] == task[len(LM_EVAL_PREFIX):]]
        if task_rows:
            store.write_samples(plan.run_id, first_shard + n, task_rows)
    return [m | {"run_id": plan.run_id, "task": LM_EVAL_PREFIX + m["task"]} for m in metric_rows]


def row_key(plan: Plan, row: dict) -> str:
    """Content key of a row that did not come from a PromptItem (lm-eval requests)."""
    item = PromptItem(row["task"], str(row.get("task_version") or ""), str(row["sample_id"]), row["instruction"])
    variant = next(v for v in plan.variants if v.name == row["variant"])
    return content_key(plan.model.fingerprint, plan.prompt_format, item, variant, plan.cfg, plan.engine)


def _merge_metrics(store_root, run_id: str, summary, extra: list[dict]):
    """Keep lm-eval's metric rows across resumes: new extra rows, else the ones stored before."""
    import pyarrow as pa

    if not extra:
        old = read_table(store_root, "metrics", run_id)
        from_lm_eval = [bool(d) and json.loads(d).get("source") == "lm-eval" for d in old.column("details").to_pylist()]
        extra_table = old.filter(pa.array(from_lm_eval, pa.bool_()))
    else:
        extra_table = from_rows(extra, "metrics")
    return pa.concat_tables([summary, extra_table])


def resume(run_id: str, store: str | Path, *, progress: bool = True, **overrides) -> RunResult:
    """Continue ``run_id`` from its manifest: only missing rows are generated."""
    manifest = Store(store).read_manifest(run_id)
    if manifest is None:
        raise HarnessError(f"resume: no run {run_id!r} in store {store} (see `harness runs list --store {store}`)")
    raw = dict(manifest["config_json"])
    raw.pop("prompt_format_resolved", None), raw.pop("model_path", None), raw.pop("engine_resolved", None)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    raw.update(run_id=run_id, store=str(store))
    return execute(RunConfig.from_sources(None, raw), progress=progress)
