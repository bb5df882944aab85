"""Run a plan's shards in-process or on Ray replicas, with a live progress bar.

Example:
    >>> expert_tables, timings = run_plan(plan, shards, commit)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time

from tqdm import tqdm

from harness.distributed.cluster import connect, plan_replicas, release, reserve
from harness.distributed.pool import ReplicaPool
from harness.distributed.worker import ModelWorker, RemoteModelWorker

log = logging.getLogger(__name__)


class Progress:
    """Prompts done / total and tokens per second on stderr."""

    def __init__(self, total_pairs: int, enabled: bool):
        self.bar = tqdm(total=total_pairs, unit="pair", desc="generate", disable=not enabled, dynamic_ncols=True)
        self.tokens = 0
        self.start = time.perf_counter()
        self.replicas: dict[str, int] = {}

    def update(self, result: dict) -> None:
        self.tokens += result["tokens"]
        self.replicas[result["replica"]] = self.replicas.get(result["replica"], 0) + 1
        self.bar.update(len(result["rows"]))
        rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix(tok_s=f"{rate:.1f}", replicas=len(self.replicas))

    def close(self) -> None:
        self.bar.close()


def _worker_kwargs(plan, threads: int | None) -> dict:
    cfg = plan.cfg
    return dict(model_name=plan.model.name, prompt_format=plan.prompt_format, dtype=cfg.dtype, device=cfg.device,
                combine=cfg.combine, threads=threads)


def run_plan(plan, shards, commit, *, progress: bool = True) -> tuple[dict, dict]:
    """Generate ``shards`` and hand each result to ``commit``; returns (expert tables, timings)."""
    cfg = plan.cfg
    total = sum(len(s.items) for s in shards) * len(plan.variants)
    bar = Progress(total, progress)
    timings: dict = {"per_replica": {}}

    def on_result(result: dict) -> None:
        commit(result)
        bar.update(result)
        rep = timings["per_replica"].setdefault(result["replica"], {"shards": 0, "seconds": 0.0, "tokens": 0})
        rep["shards"] += 1
        rep["seconds"] += result["seconds"]
        rep["tokens"] += result["tokens"]

    try:
        if cfg.no_ray:
            t0 = time.perf_counter()
            worker = ModelWorker(str(plan.model.path), **_worker_kwargs(plan, cfg.threads))
            timings["load_seconds"] = time.perf_counter() - t0
            tables = worker.resolution_tables(plan.variants)
            for shard in shards:
                on_result(worker.run_shard(shard, plan.variants, cfg.decoding, cfg.batch_size))
            return tables, timings
        return _run_on_ray(plan, shards, on_result, timings), timings
    finally:
        bar.close()


def _run_on_ray(plan, shards, on_result, timings: dict) -> dict:
    import ray

    cfg = plan.cfg
    connect(cfg.address, cfg.num_cpus)
    totals = ray.cluster_resources()
    gpus = 1.0 if (cfg.device in ("auto", "cuda") and totals.get("GPU", 0) >= 1) else 0.0
    if cfg.device == "cuda" and not gpus:
        from harness.errors import HarnessError

        raise HarnessError("--device cuda: the Ray cluster has no GPUs")
    n = plan_replicas(str(cfg.replicas), totals, gpus, 1.0)
    threads = cfg.threads or max(1, int(totals.get("CPU", os.cpu_count() or 1)) // n)
    groups = reserve(n, cpus=1.0, gpus=gpus)
    kwargs = _worker_kwargs(plan, threads) | ({"device": "cuda"} if gpus else {"device": "cpu"})

    def make_worker(i: int):
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        strategy = PlacementGroupSchedulingStrategy(placement_group=groups[i], placement_group_bundle_index=0)
        return RemoteModelWorker.options(num_cpus=1.0, num_gpus=gpus, scheduling_strategy=strategy).remote(
            str(plan.model.path), **kwargs)

    t0 = time.perf_counter()
    pool = ReplicaPool(make_worker, n)
    try:
        infos = pool.wait_ready()
        timings["load_seconds"] = time.perf_counter() - t0
        timings["replicas"] = infos
        tables = ray.get(next(iter(pool.workers.values())).resolution_tables.remote(plan.variants))
        pool.run(shards, plan.variants, cfg.decoding, cfg.batch_size, on_result)
        timings["retries"] = pool.retries
        timings["replaced_replicas"] = pool.replaced
        return tables
    finally:
        pool.shutdown()
        release(groups)
