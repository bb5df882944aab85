"""``harness run`` and ``resume``: task specs -> prompts -> replicas -> sample rows -> metrics -> tables.

:func:`~harness.run.plan.prepare` validates every input (config, tasks, data files,
variants, model) before anything is written, so bad input leaves the store untouched.
:func:`execute` then hands the plan to a :class:`~harness.run.lifecycle.RunLifecycle`
(writer lock, backend, ``runs`` row, exactly-once commits, metrics merge, manifest) and
generates only the (prompt, variant) rows whose content key is not yet in the store —
re-running the same config into the same store, or ``harness resume RUN_ID``, continues
an interrupted run. Rows are finished by :class:`harness.rows.RowFinisher`.

Example:
    >>> cfg = RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 2})
    >>> result = execute(cfg, progress=False)       # doctest: +SKIP
    >>> result.num_rows                              # doctest: +SKIP
    4
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from harness.distributed.spec import BackendSpec
from harness.errors import HarnessError
from harness.provenance import slug
from harness.rows import RowFinisher
from harness.run.config import RunConfig
from harness.run.lifecycle import RunIdentity, RunLifecycle
from harness.run.plan import LM_EVAL_PREFIX, Plan, generation_groups, make_shards, prepare, row_key
from harness.store import Store, read_table
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


def identity(plan: Plan) -> RunIdentity:
    """What the ``runs`` row says this run is (its config, the resolved prompt format, engine and model path)."""
    cfg = plan.cfg
    return RunIdentity(
        model=plan.model.name, model_fingerprint=plan.model.fingerprint,
        tasks=sorted({i.task for i in plan.items}), variants=[v.name for v in plan.variants],
        config_hash=cfg.output_hash(plan.model.fingerprint, plan.engine),
        config=cfg.to_dict() | {"prompt_format_resolved": plan.prompt_format, "model_path": str(plan.model.path),
                                "engine_resolved": plan.engine})


def backend_spec(plan: Plan) -> BackendSpec:
    """The backend's view of the plan: model, prompt format, variants, engine, cluster settings."""
    return BackendSpec.from_run(plan.cfg, plan.model, plan.prompt_format, plan.variants, plan.engine)


def row_finisher(plan: Plan) -> RowFinisher:
    """Finishes this plan's rows: run id, content key, domain, prompt truncation, stop strings."""
    keys = plan.keys

    def key_of(row: dict) -> str:
        return keys.get((row["task"], row["sample_id"], row["variant"])) or row_key(plan, row)

    return RowFinisher(plan.run_id, key_of, domains={(i.task, i.sample_id): i.domain for i in plan.items},
                       truncated=plan.truncated, tokenizer=_lazy_tokenizer(plan))


def execute(cfg: RunConfig, *, progress: bool = True) -> RunResult:
    """Run (or continue) a configured evaluation and return where its rows went."""
    from harness.models import sweep_specs

    if (sweep := sweep_specs(cfg.model)) is not None:  # a model spec naming several checkpoints: one run each
        return _execute_sweep(cfg, sweep, progress)
    plan = prepare(cfg)
    if plan.engine_note:  # stdout: stderr is kept for the one-line errors
        print(plan.engine_note, flush=True)
    with RunLifecycle(cfg.store, plan.run_id, identity(plan)) as life:
        return _generate_and_summarise(plan, life, progress)


def _generate_and_summarise(plan: Plan, life: RunLifecycle, progress: bool) -> RunResult:
    import pyarrow as pa

    from harness.metrics.summary import format_summary, summarize
    from harness.metrics.task_metrics import task_metric_rows
    from harness.run.sentinel import summary_line
    from harness.tasks.honoured import task_field_metrics

    cfg = plan.cfg
    todo = [i for i in plan.items if any(plan.keys[(i.task, i.sample_id, v.name)] not in life.seen for v in plan.variants)]
    done_tasks: set[str] = set()
    if life.seen and plan.lm_eval_tasks:  # only lm-eval tasks need the stored task names
        done_tasks = set(read_table(cfg.store, "samples", plan.run_id).column("task").to_pylist())
    lm_todo = [t for t in plan.lm_eval_tasks if t not in done_tasks]
    extra_metrics: list[dict] = []
    sentinel_rows: list[dict] = []
    samples = None
    finish = row_finisher(plan)

    if todo or lm_todo:
        log.info("run %s: %d of %d prompts to generate", plan.run_id, len(todo), len(plan.items))
        groups, next_shard = [], 0
        for decoding, variants, items in generation_groups(plan, todo, life.seen):
            shards = make_shards(items, cfg.batch_size, first_id=next_shard)
            next_shard += len(shards)
            groups.append((decoding, variants, shards))
        backend = life.start(backend_spec(plan), progress)  # resources checked, model loaded, then the runs row
        for decoding, variants, shards in groups:
            backend.run(shards, lambda result, d=decoding: life.commit_samples(
                result["shard_id"], [finish(r, d) for r in result["rows"]]), variants, decoding)
        if lm_todo:
            extra_metrics = _run_lm_eval(plan, life, lm_todo, next_shard, finish)
        samples = read_table(cfg.store, "samples", plan.run_id)  # every row committed: read once
        if cfg.sentinel > 0:
            sentinel_rows = run_sentinel(plan, backend, samples, finish)
    if samples is None:  # nothing generated now
        samples = read_table(cfg.store, "samples", plan.run_id)
    metrics = summarize(samples, plan.run_id, style=True)  # shape and style-leak rates per variant
    task_rows = task_metric_rows(samples, plan.run_id)  # e.g. IFEval on IFEval-schema documents
    if task_rows or extra_metrics:
        metrics = pa.concat_tables([metrics, from_rows(task_rows + extra_metrics, "metrics")])
    metrics = task_field_metrics(plan.tasks, samples, metrics, plan.run_id)
    if sentinel_rows:  # none generated now: the stored sentinel rows stay (merge by key)
        metrics = pa.concat_tables([metrics, from_rows(sentinel_rows, "metrics")])
    life.merge_metrics(metrics)  # rows of judge, similarity and earlier lm-eval passes survive
    metrics = read_table(cfg.store, "metrics", plan.run_id)
    life.finish(samples.num_rows)
    timings = life.timings()
    return RunResult(plan.run_id, Path(cfg.store), samples.num_rows, life.committed,
                     format_summary(metrics) + summary_line(metrics), timings, plan.engine)


def run_sentinel(plan: Plan, backend, samples, finish) -> list[dict]:
    """Re-generate a few committed pairs of ``samples`` (the run's table) alone and compare (:mod:`harness.run.sentinel`)."""
    from harness.run import sentinel

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


def _run_lm_eval(plan: Plan, life: RunLifecycle, tasks: list[str], first_shard: int, finish: RowFinisher) -> list[dict]:
    """Evaluate ``lm_eval:`` tasks through the bridge on the open backend; commit their rows, return metric rows."""
    from harness.lmeval import evaluate_tasks

    rows, metric_rows = evaluate_tasks([t[len(LM_EVAL_PREFIX):] for t in tasks], life.backend, plan)
    for n, task in enumerate(tasks):
        task_rows = [finish(r | {"task": task}) for r in rows if r["task"] == task[len(LM_EVAL_PREFIX):]]
        life.commit_samples(first_shard + n, task_rows)
    return [m | {"run_id": plan.run_id, "task": LM_EVAL_PREFIX + m["task"]} for m in metric_rows]


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
