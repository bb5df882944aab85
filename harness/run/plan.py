"""A run's plan: every input validated and resolved, each (prompt, variant) pair keyed; nothing written.

:func:`prepare` turns a :class:`~harness.run.config.RunConfig` into a :class:`Plan` (tasks and
prompts loaded, task fields checked, model resolved, engine chosen, every prompt checked
against the model's context, content keys computed) or raises one
:class:`~harness.errors.HarnessError` line; :func:`generation_groups` and :func:`make_shards`
cut the work that :mod:`harness.run.runner` then hands to the replicas.

Example:
    >>> from harness.records import PromptItem
    >>> [s.shard_id for s in make_shards([PromptItem("t", "1", str(i), "x" * i) for i in range(5)], 2, first_id=3)]
    [3, 4, 5]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.run.config import RunConfig
from harness.decoding import resolve_decoding
from harness.errors import HarnessError
from harness.experts.variants import Variant, load_user_experts, parse_variants
from harness.metrics.task_metrics import LM_EVAL_TASK_PREFIX
from harness.provenance import slug
from harness.records import DecodingParams, PromptItem, Shard
from harness.store.names import check_name

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
    from harness.run.config import check_reachable

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
    (:mod:`harness.run.context`), or are cut from the left on opt-in. Returns the (possibly
    truncated) items and the tokens dropped.
    """
    from transformers import AutoConfig, AutoTokenizer

    from harness.run.context import context_length, fit_prompts
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
    from harness.run.sentinel import choose

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


def generation_groups(plan: Plan, items: list[PromptItem], done: set[str] | frozenset = frozenset()
                      ) -> list[tuple[DecodingParams, list[Variant], list[PromptItem]]]:
    """(decoding, variants, items) groups: one generate call per distinct decoding.

    A prompt's variants with the same settings stay in one group (paired batches); a
    variant with its own cap runs in its own group. Pairs whose content key is in ``done``
    (already committed) are left out, so a resumed run generates only what is missing.
    """
    groups: dict[tuple, list[PromptItem]] = {}
    for item in items:
        by_decoding: dict[DecodingParams, list[Variant]] = {}
        for v in plan.variants:
            if plan.keys[(item.task, item.sample_id, v.name)] not in done:
                by_decoding.setdefault(plan.decoding_for(item, v), []).append(v)
        for decoding, variants in by_decoding.items():
            groups.setdefault((decoding, tuple(variants)), []).append(item)
    return [(d, list(vs), its) for (d, vs), its in groups.items()]


def make_shards(items: list[PromptItem], prompts_per_shard: int, first_id: int = 0) -> list[Shard]:
    """Longest prompts first, numbered from ``first_id``; every variant of a prompt runs in its shard (paired batches)."""
    ordered = sorted(items, key=lambda i: -len(i.instruction))
    return [Shard(first_id + n, tuple(ordered[lo: lo + prompts_per_shard]))
            for n, lo in enumerate(range(0, len(ordered), prompts_per_shard))]


def row_key(plan: Plan, row: dict) -> str:
    """Content key of a row that did not come from a PromptItem (lm-eval requests)."""
    item = PromptItem(row["task"], str(row.get("task_version") or ""), str(row["sample_id"]), row["instruction"])
    variant = next(v for v in plan.variants if v.name == row["variant"])
    return content_key(plan.model.fingerprint, plan.prompt_format, item, variant, plan.cfg, engine=plan.engine)
