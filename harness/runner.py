"""``harness run``: task specs -> prompts -> replicas -> sample rows -> metrics -> tables.

:func:`prepare` validates every input (config, tasks, data files, variants, model)
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

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.config import RunConfig
from harness.decoding import apply_until, decoding_json, resolve_decoding
from harness.errors import HarnessError
from harness.experts.variants import Variant, load_user_experts, parse_variants
from harness.metrics.task_metrics import LM_EVAL_TASK_PREFIX
from harness.provenance import package_versions, slug
from harness.records import DecodingParams, PromptItem, Shard
from harness.store import Store, read_table
from harness.store.lock import RunLock
from harness.store.names import check_name
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
    truncated: dict[tuple[str, str], int] = field(default_factory=dict)  # (task, sample_id) -> prompt tokens dropped
    task_decoding: dict[str, dict] = field(default_factory=dict)  # task -> its generation_kwargs
    tasks: list = field(default_factory=list)  # the native harness.tasks.Task objects

    def decoding_for(self, item: PromptItem, variant: Variant) -> DecodingParams:
        """What (item, variant) runs with: task defaults < explicit run settings < the variant's own."""
        return resolve_decoding(self.task_decoding.get(item.task, {}), self.cfg.explicit_decoding(), variant.decoding)


@dataclass
class RunResult:
    run_id: str
    store: Path
    num_rows: int
    generated: int
    summary: str
    timings: dict
    engine: str = "hf"


def content_key(model_fp: str, prompt_format: str, item: PromptItem, variant: Variant, cfg: RunConfig,
                decoding: DecodingParams | None = None, engine: str = "hf") -> str:
    """Content key of one row: same inputs, same key, on any cluster and batch size.

    ``decoding`` is what the row runs with (its cap, sampling, stop strings); default: the
    run-level settings. The engine is part of it (engines may differ at near-ties); ``hf``
    keys are those of runs made before engines existed.
    """
    decoding = decoding or cfg.decoding
    payload = [model_fp, prompt_format, item.task, item.task_version, item.sample_id, item.instruction,
               variant.spec_key(), decoding.as_dict(), cfg.combine, cfg.dtype]
    if engine != "hf":
        payload.append({"engine": engine})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


LM_EVAL_PREFIX = LM_EVAL_TASK_PREFIX  # one definition, in harness/metrics/task_metrics.py


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

    if cfg.run_id is not None:
        check_name(cfg.run_id, "--run-id")
    _check_resources(cfg)
    items, tasks = _load_items(cfg)
    check_task_fields(tasks)
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
    run_id = cfg.run_id or f"{slug(model.name)}-{cfg.output_hash(model.fingerprint, choice.name)[:10]}"
    plan = Plan(cfg, run_id, model, prompt_format, items, variants, lm_eval_tasks, engine=choice.name,
                engine_note=choice.reason, task_decoding={t.name: dict(t.generation_kwargs) for t in tasks},
                tasks=list(tasks))
    plan.items, plan.truncated = _check_model_inputs(plan)
    owners: dict[str, tuple[str, str, str]] = {}
    for item in plan.items:
        for v in variants:
            pair = (item.task, item.sample_id, v.name)
            key = plan.keys[pair] = content_key(model.fingerprint, prompt_format, item, v, cfg,
                                                plan.decoding_for(item, v), plan.engine)
            if key in owners:
                raise _duplicate(owners[key], pair)
            owners[key] = pair
    return plan


def _duplicate(first: tuple[str, str, str], second: tuple[str, str, str]) -> HarnessError:
    """Two (prompt, variant) pairs with one content key: the same expert twice, or a repeated sample id."""
    if first[:2] == second[:2]:
        return HarnessError(f"variants {first[2]!r} and {second[2]!r} are the same expert with the same settings; "
                            "keep one of them in --variants")
    return HarnessError(f"task {second[0]}: sample id {second[1]!r} appears twice (as sample {first[1]!r} too): "
                        "give every prompt a unique id")


def _check_resources(cfg: RunConfig) -> None:
    """What the flags ask of this machine or cluster, checked up front (one line, nothing written)."""
    from harness.config import check_reachable

    local = cfg.no_ray or not (cfg.address or os.environ.get("RAY_ADDRESS"))  # this machine's devices are the run's
    if cfg.device == "cuda" and local:
        import torch

        if not torch.cuda.is_available():
            raise HarnessError("--device cuda: this machine has no usable CUDA device (torch.cuda.is_available() is "
                               "False); use --device cpu or auto")
    if not cfg.no_ray:
        check_reachable(cfg.address)


def _check_model_inputs(plan: Plan) -> tuple[list[PromptItem], dict[tuple[str, str], int]]:
    """Checks that need the model's tokenizer, done here so that they fail before any write.

    Every expert's token strings resolve (:class:`~harness.experts.processor.ResolvedExpert`);
    prompt tokens + the largest cap any variant runs a task with fit the model's context
    (:mod:`harness.context`), or are cut from the left on opt-in. Returns the (possibly
    truncated) items and the tokens dropped.
    """
    from transformers import AutoConfig, AutoTokenizer

    from harness.context import context_length, fit_prompts
    from harness.experts.processor import ResolvedExpert

    cfg, model, items, variants = plan.cfg, plan.model, plan.items, plan.variants
    experts = [v.expert for v in variants if v.expert is not None]
    if not items and not experts:
        return items, {}
    tokenizer = AutoTokenizer.from_pretrained(str(model.path))
    tokenizer.model_max_length = 2**62  # we compare lengths ourselves; no "longer than the maximum" warning
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # as the generator does
    text_cfg = AutoConfig.from_pretrained(str(model.path))
    vocab = getattr(text_cfg.get_text_config() if hasattr(text_cfg, "get_text_config") else text_cfg, "vocab_size", None)
    for expert in {e.spec_hash(): e for e in experts}.values():  # the worker re-checks against the real logits
        ResolvedExpert.build(expert, tokenizer, max(int(vocab or 0), len(tokenizer)), tokenizer.eos_token_id)
    limit = context_length(model.path)
    if limit is None or not items:
        if limit is None:
            log.warning("%s: config.json names no context length; prompt lengths are not checked", model.name)
        return items, {}
    def largest_cap(item: PromptItem) -> int:
        return max(plan.decoding_for(item, v).max_new_tokens for v in variants)

    return fit_prompts(items, tokenizer, plan.prompt_format, context=limit, max_new_tokens=largest_cap,
                       model=model.name, truncate=cfg.truncate_prompts)


def describe_plan(plan: Plan) -> str:
    """What ``harness run --dry-run`` prints: run id, model, format, pairs and each variant's decoding."""
    from harness.sentinel import choose

    lines = [f"run id:        {plan.run_id}", f"model:         {plan.model.name} ({plan.model.path})",
             f"prompt format: {plan.prompt_format}",
             f"tasks:         {', '.join(sorted({i.task for i in plan.items} | set(plan.lm_eval_tasks)))}",
             f"prompts:       {len(plan.items)}", f"pairs:         {len(plan.keys)} (prompt x variant)",
             f"sentinel:      {len(choose(list(plan.keys), plan.cfg.sentinel, plan.run_id))} pairs re-generated alone",
             "variants (decoding per task):"]
    for v in plan.variants:
        for task in sorted({i.task for i in plan.items}):
            item = next(i for i in plan.items if i.task == task)
            d = plan.decoding_for(item, v)
            how = "greedy" if not d.do_sample else f"sample T={d.temperature} top_p={d.top_p} seed={d.seed}"
            stop = f", until {list(d.until)}" if d.until else ""
            lines.append(f"  {v.label:<40} {task}: max_new_tokens {d.max_new_tokens}, {how}{stop}")
    return "\n".join(lines)


def check_task_fields(tasks) -> None:
    """Refuse task fields a native run would parse but not honour (one line: file + field)."""
    from harness.tasks.honoured import check_native

    for t in tasks:
        check_native(t)


def generation_groups(plan: Plan, items: list[PromptItem]) -> list[tuple[DecodingParams, list[Variant], list[PromptItem]]]:
    """(decoding, variants, items) groups: one generate call per distinct decoding.

    A prompt's variants with the same settings stay in one group (paired batches); a
    variant with its own cap runs in its own group.
    """
    groups: dict[tuple, list[PromptItem]] = {}
    for item in items:
        by_decoding: dict[DecodingParams, list[Variant]] = {}
        for v in plan.variants:
            by_decoding.setdefault(plan.decoding_for(item, v), []).append(v)
        for decoding, variants in by_decoding.items():
            groups.setdefault((decoding, tuple(variants)), []).append(item)
    return [(d, list(vs), its) for (d, vs), its in groups.items()]


def make_shards(items: list[PromptItem], variants: list[Variant], prompts_per_shard: int) -> list[Shard]:
    """Longest prompts first; all variants of a prompt in one shard (paired batches)."""
    ordered = sorted(items, key=lambda i: -len(i.instruction))
    names = tuple(v.name for v in variants)
    return [Shard(n, tuple(ordered[lo: lo + prompts_per_shard]), names)
            for n, lo in enumerate(range(0, len(ordered), prompts_per_shard))]


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
                if cfg.sentinel > 0:
                    sentinel_rows = run_sentinel(plan, backend, lambda r, d: finish_row(plan, r, d, domains, tokenizer))
                if lm_todo:
                    extra_metrics, n_lm = _run_lm_eval(plan, backend, store, lm_todo, next_shard, seen)
                    generated += n_lm
            except BaseException:
                store.write_run(plan.run_id, _run_row(plan, "failed", created, {}, backend.timings, len(existing) + generated))
                raise
            timings = backend.timings
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


def run_sentinel(plan: Plan, backend, finish) -> list[dict]:
    """Re-generate a few committed pairs alone and compare (see :mod:`harness.sentinel`)."""
    from harness import sentinel

    wanted = {v: k for k, v in plan.keys.items()}
    stored = {wanted[r["key"]]: r for r in read_table(plan.cfg.store, "samples", plan.run_id)
              .select(["key", "model", "output_token_ids", "batch_size"]).to_pylist() if r["key"] in wanted}
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


def row_key(plan: Plan, row: dict) -> str:
    """Content key of a row that did not come from a PromptItem (lm-eval requests)."""
    item = PromptItem(row["task"], str(row.get("task_version") or ""), str(row["sample_id"]), row["instruction"])
    variant = next(v for v in plan.variants if v.name == row["variant"])
    return content_key(plan.model.fingerprint, plan.prompt_format, item, variant, plan.cfg, engine=plan.engine)


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
