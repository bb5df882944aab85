"""``harness run``: task specs -> prompts -> replicas -> sample rows -> metrics -> tables.

:func:`~harness.plan.prepare` (in :mod:`harness.plan`) validates every input (config, tasks, data files, variants, model)
before anything is written, so bad input leaves the store untouched. :func:`execute`
then generates only the (prompt, variant) rows whose content key is not yet in the
store — re-running the same config into the same store, or ``harness resume RUN_ID``,
continues an interrupted run. One process writes a run at a time (the store's
:class:`~harness.store.lock.RunLock`); rows already committed are never written again,
and derived metrics (judge, similarity, lm-eval rows) survive re-runs
(:meth:`~harness.store.Store.merge_metrics`).

Example:
    >>> cfg = RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 2})
    >>> result = execute(cfg, progress=False)       # doctest: +SKIP
    >>> result.num_rows                              # doctest: +SKIP
    4
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.config import RunConfig
from harness.decoding import apply_until, decoding_json
from harness.errors import HarnessError
from harness.plan import LM_EVAL_PREFIX, Plan, generation_groups, make_shards, prepare, row_key
from harness.provenance import package_versions, slug
from harness.records import DecodingParams, Shard
from harness.store import Store, read_table
from harness.store.lock import RunLock
from harness.store.names import check_name
from harness.store.schema import from_rows

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    store: Path
    num_rows: int
    generated: int
    summary: str
    timings: dict
    engine: str = "hf"


def _run_row(plan: Plan, status: str, created: str, expert_tables: dict, timings: dict, n: int) -> dict:
    cfg = plan.cfg
    return {
        "created_at": created, "finished_at": datetime.now(timezone.utc).isoformat() if status != "running" else None,
        "status": status, "model": plan.model.name, "model_fingerprint": plan.model.fingerprint,
        "tasks": sorted({i.task for i in plan.items}), "variants": [v.name for v in plan.variants],
        "config_hash": cfg.output_hash(plan.model.fingerprint, plan.engine),
        "config_json": json.dumps(cfg.to_dict() | {"prompt_format_resolved": plan.prompt_format, "model_path": str(plan.model.path),
                                                   "engine_resolved": plan.engine}),
        "versions_json": json.dumps(package_versions()), "expert_json": json.dumps(expert_tables),
        "timings_json": json.dumps(timings), "num_samples": n,
    }


def execute(cfg: RunConfig, *, progress: bool = True) -> RunResult:
    """Run (or continue) a configured evaluation and return where its rows went."""
    from harness.models.deepspeed_source import sweep_specs

    if (sweep := sweep_specs(cfg.model)) is not None:  # deepspeed:PATH@all: one run per checkpoint tag
        return _execute_sweep(cfg, sweep, progress)
    plan = prepare(cfg)
    if plan.engine_note:  # stdout: stderr is kept for the one-line errors
        print(plan.engine_note, flush=True)
    fresh = not Path(cfg.store).exists()
    try:
        with RunLock(cfg.store, plan.run_id):  # one writer per run, from the first write to the last
            return _execute_locked(plan, progress)
    except BaseException:
        if fresh:  # failed before the first row (resources, model load): leave no store behind, only the lock was made
            _remove_if_only_our_lock(Path(cfg.store), plan.run_id)
        raise


def _remove_if_only_our_lock(root: Path, run_id: str) -> None:
    import shutil

    from harness.store.lock import LOCK_DIR

    locks = root / LOCK_DIR
    if (root.is_dir() and [p.name for p in root.iterdir()] == [LOCK_DIR]
            and [p.name for p in locks.iterdir()] == [f"{run_id}.lock"]):
        shutil.rmtree(root, ignore_errors=True)


def _execute_locked(plan: Plan, progress: bool) -> RunResult:
    import pyarrow as pa

    from harness.distributed.executor import open_backend
    from harness.metrics.stored import commit_columns
    from harness.metrics.summary import format_summary, summarize
    from harness.metrics.task_metrics import task_metric_rows
    from harness.tasks.honoured import task_field_metrics

    cfg = plan.cfg
    store = Store(cfg.store)
    store.remove_temp_files(plan.run_id)  # left by a killed writer; we hold the lock
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
    sentinel_rows: list[dict] = []
    samples = None
    seen = set(existing)  # every key committed so far: a row is written once, whatever the shard plan
    domains = {(i.task, i.sample_id): i.domain for i in plan.items}
    tokenizer = _lazy_tokenizer(plan)

    def committer(decoding: DecodingParams):
        def commit(result: dict) -> None:
            nonlocal generated
            rows = [finish_row(plan, r, decoding, domains, tokenizer) for r in result["rows"]]
            rows = [r for r in rows if r["key"] not in seen]
            if rows:
                rows = commit_columns(rows)  # per-row metrics scored once, read by every later summary
                store.write_samples(plan.run_id, result["shard_id"], rows)
                seen.update(r["key"] for r in rows)
            generated += len(rows)
        return commit

    if todo or lm_todo:
        log.info("run %s: %d of %d prompts to generate", plan.run_id, len(todo), len(plan.items))
        groups, next_shard = [], 0
        for decoding, variants, items in generation_groups(plan, todo):
            shards = [Shard(next_shard + s.shard_id, s.items, s.variants) for s in make_shards(items, variants, cfg.batch_size)]
            next_shard += len(shards)
            groups.append((decoding, variants, shards))
        with open_backend(plan, progress) as backend:  # resources are checked before anything is written
            expert_tables = backend.start()  # a model that cannot load leaves no runs row behind
            store.write_run(plan.run_id, _run_row(plan, "running", created, {}, {}, len(existing)))
            try:
                for decoding, variants, shards in groups:
                    backend.run(shards, committer(decoding), variants, decoding)
                if lm_todo:
                    extra_metrics, n_lm = _run_lm_eval(plan, backend, store, lm_todo, next_shard, seen)
                    generated += n_lm
                samples = read_table(cfg.store, "samples", plan.run_id)  # every row committed: read once
                if cfg.sentinel > 0:
                    sentinel_rows = run_sentinel(plan, backend, samples,
                                                 lambda r, d: finish_row(plan, r, d, domains, tokenizer))
            except BaseException:
                store.write_run(plan.run_id, _run_row(plan, "failed", created, {}, backend.timings, len(existing) + generated))
                raise
            timings = backend.timings
    if samples is None:  # nothing generated now
        samples = read_table(cfg.store, "samples", plan.run_id)
    metrics = summarize(samples, plan.run_id, style=True)  # shape and style-leak rates per variant
    task_rows = task_metric_rows(samples, plan.run_id)  # e.g. IFEval on IFEval-schema documents
    if task_rows or extra_metrics:
        metrics = pa.concat_tables([metrics, from_rows(task_rows + extra_metrics, "metrics")])
    metrics = task_field_metrics(plan.tasks, samples, metrics, plan.run_id)
    if sentinel_rows:  # none generated now: the stored sentinel rows stay (merge by key)
        metrics = pa.concat_tables([metrics, from_rows(sentinel_rows, "metrics")])
    store.merge_metrics(plan.run_id, metrics)  # rows of judge, similarity and earlier lm-eval passes survive
    metrics = read_table(cfg.store, "metrics", plan.run_id)
    timings["wall_seconds"] = time.perf_counter() - t0
    store.write_run(plan.run_id, _run_row(plan, "finished", created, expert_tables, timings, samples.num_rows))
    from harness.sentinel import summary_line

    return RunResult(plan.run_id, Path(cfg.store), samples.num_rows, generated,
                     format_summary(metrics) + summary_line(metrics), timings, plan.engine)


def run_sentinel(plan: Plan, backend, samples, finish) -> list[dict]:
    """Re-generate a few committed pairs of ``samples`` (the run's table) alone and compare (:mod:`harness.sentinel`)."""
    from harness import sentinel

    wanted = {v: k for k, v in plan.keys.items()}
    stored = {wanted[r["key"]]: r for r in samples.select(["key", "model", "output_token_ids", "batch_size"]).to_pylist()
              if r["key"] in wanted}
    return sentinel.check(plan, backend, stored, finish)


def _lazy_tokenizer(plan: Plan):
    """The model's tokenizer, loaded on first use (only stop strings need it on the driver)."""
    cache: list = []

    def get():
        if not cache:
            from transformers import AutoTokenizer

            cache.append(AutoTokenizer.from_pretrained(str(plan.model.path)))
        return cache[0]
    return get


def finish_row(plan: Plan, row: dict, decoding: DecodingParams, domains: dict, tokenizer) -> dict:
    """Add what the runner knows to a generated row: key, run id, decoding that ran, domain; cut at ``until``."""
    if decoding.until:
        row = apply_until(row, decoding.until, tokenizer())
    return row | {"run_id": plan.run_id, "key": plan.keys[(row["task"], row["sample_id"], row["variant"])],
                  "max_new_tokens": decoding.max_new_tokens, "decoding_json": decoding_json(decoding),
                  "domain": domains.get((row["task"], row["sample_id"])),
                  "prompt_truncated_tokens": plan.truncated.get((row["task"], row["sample_id"]), 0)}


def _execute_sweep(cfg: RunConfig, sweep: dict[str, str], progress: bool) -> RunResult:
    """One run per tag (``--run-id X`` becomes ``X-<tag>``); every tag is converted and checked first."""
    import pyarrow as pa

    from harness.metrics.summary import format_summary

    cfgs = [cfg.with_(model=spec, run_id=cfg.run_id and f"{cfg.run_id}-{slug(tag)}") for tag, spec in sweep.items()]
    for c in cfgs:
        prepare(c)  # a bad tag fails here, before any store write
    results = [execute(c, progress=progress) for c in cfgs]
    metrics = pa.concat_tables([read_table(cfg.store, "metrics", r.run_id) for r in results])
    timings = {r.run_id: r.timings for r in results} | {"wall_seconds": sum(r.timings.get("wall_seconds", 0.0) for r in results)}
    return RunResult(",".join(r.run_id for r in results), Path(cfg.store), sum(r.num_rows for r in results),
                     sum(r.generated for r in results), format_summary(metrics), timings, results[0].engine)


def _run_lm_eval(plan: Plan, backend, store: Store, tasks: list[str], first_shard: int,
                 seen: set[str]) -> tuple[list[dict], int]:
    """Evaluate ``lm_eval:`` tasks through the bridge; commit their new rows, return (metric rows, rows committed)."""
    from harness.lmeval import evaluate_tasks

    rows, metric_rows = evaluate_tasks([t[len(LM_EVAL_PREFIX):] for t in tasks], backend, plan)
    committed = 0
    for n, task in enumerate(tasks):
        task_rows = [r | {"task": task, "run_id": plan.run_id, "key": row_key(plan, r | {"task": task})}
                     for r in rows if r["task"] == task[len(LM_EVAL_PREFIX):]]
        task_rows = [r for r in task_rows if r["key"] not in seen]
        if task_rows:
            store.write_samples(plan.run_id, first_shard + n, task_rows)
            seen.update(r["key"] for r in task_rows)
            committed += len(task_rows)
    return [m | {"run_id": plan.run_id, "task": LM_EVAL_PREFIX + m["task"]} for m in metric_rows], committed


def resume(run_id: str, store: str | Path, *, progress: bool = True, **overrides) -> RunResult:
    """Continue ``run_id`` from its manifest: only missing rows are generated."""
    check_name(run_id, "resume: run id")
    manifest = Store(store).read_manifest(run_id)
    if manifest is None:
        raise HarnessError(f"resume: no run {run_id!r} in store {store} (see `harness runs list --store {store}`)")
    raw = dict(manifest["config_json"])
    raw.pop("prompt_format_resolved", None), raw.pop("model_path", None), raw.pop("engine_resolved", None)
    if overrides.get("no_ray"):  # resuming in-process: the run's own cluster settings no longer apply
        raw.update(address=None, num_cpus=None, replicas="1")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    raw.update(run_id=run_id, store=str(store))
    return execute(RunConfig.from_sources(None, raw), progress=progress)
