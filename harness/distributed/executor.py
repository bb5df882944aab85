"""Execution backends: in-process or Ray replicas, with a live progress bar.

:func:`open_backend` checks resources (joins or starts the cluster, plans replicas,
reserves placement groups) before the runner writes anything, so an impossible request
is a one-line error with the store untouched. ``backend.run`` then generates shards and
hands each result to ``commit``.

Example:
    >>> spec = BackendSpec.from_run(cfg, model, "tulu", variants)   # doctest: +SKIP
    >>> with open_backend(spec) as backend:                  # doctest: +SKIP
    ...     tables = backend.run(shards, commit)                 # generate and commit
    ...     scores = backend.score([("Say hi.", "Hi!")], variant)  # log-likelihoods
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from tqdm import tqdm

from harness.distributed.cluster import connect, plan_replicas, release, reserve
from harness.distributed.pool import ReplicaPool
from harness.distributed.spec import BackendSpec
from harness.distributed.worker import FAULT_DIR_ENV, FAULT_PAUSE_ENV, ModelWorker, RemoteModelWorker
from harness.errors import HarnessError
from harness.records import Shard

log = logging.getLogger(__name__)


class Progress:
    """Pairs done / total, tokens per second and live replicas on stderr."""

    def __init__(self, total_pairs: int, enabled: bool):
        self.bar = tqdm(total=total_pairs, unit="pair", desc="generate", disable=not enabled, dynamic_ncols=True)
        self.tokens = 0
        self.start = time.perf_counter()
        self.replicas: set[str] = set()

    def update(self, result: dict, retries: int = 0) -> None:
        self.tokens += result["tokens"]
        self.replicas.add(result["replica"])
        self.bar.update(len(result["rows"]))
        rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix(tok_s=f"{rate:.1f}", replicas=len(self.replicas), retries=retries)

    def close(self) -> None:
        self.bar.close()


@dataclass(frozen=True)
class _Chunk:
    shard_id: int
    pairs: tuple


class Backend:
    """Runs shards for one :class:`BackendSpec`; use as a context manager so replicas are released."""

    def __init__(self, spec: BackendSpec, progress: bool = True):
        self.spec = spec
        self.cfg = spec  # the cluster settings (no_ray, address, tp, replicas, threads, batch_size, ...)
        self.progress = progress
        self.timings: dict = {"per_replica": {}}
        self.groups: list = []
        self.pool: ReplicaPool | None = None
        self.worker: ModelWorker | None = None
        self.n = 1
        self.gpus = 0.0
        self._tables: dict = {}
        if not self.cfg.no_ray:
            self._reserve()

    def _reserve(self) -> None:
        import ray

        cfg = self.cfg
        connect(cfg.address, cfg.num_cpus)
        totals = ray.cluster_resources()
        if cfg.device == "cuda" and totals.get("GPU", 0) < 1:
            raise HarnessError("--device cuda: the Ray cluster has no GPUs")
        self.gpus = gpus_per_replica(cfg, totals)
        if cfg.tp > 1 and cfg.engine == "vllm" and not self.gpus:
            raise HarnessError(f"--tp {cfg.tp} --engine vllm: vLLM tensor parallelism needs GPUs and the Ray cluster has "
                               "none; on CPU --tp runs DeepSpeed AutoTP gangs (--engine hf)")
        if cfg.tp > 1 and cfg.engine != "vllm":  # --tp on HF: a gang of cfg.tp DeepSpeed AutoTP ranks (tensor_parallel.py)
            from harness.distributed.tensor_parallel import TPReplicaFactory

            self._make_worker = TPReplicaFactory(cfg, totals, self.gpus, cfg.model_path, cfg.worker_kwargs)
            self.n, self.groups = self._make_worker.n, self._make_worker.groups
            return
        self.n = plan_replicas(str(cfg.replicas), totals, self.gpus, 1.0)
        self.threads = cfg.threads or max(1, int(totals.get("CPU", os.cpu_count() or 1)) // self.n)
        self.groups = reserve(self.n, cpus=1.0, gpus=self.gpus)

    def _make_worker(self, i: int):
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        strategy = PlacementGroupSchedulingStrategy(placement_group=self.groups[0], placement_group_bundle_index=i)
        device = "cuda" if self.gpus else "cpu"
        options = dict(num_cpus=1.0, num_gpus=self.gpus, scheduling_strategy=strategy)
        hooks = {k: os.environ[k] for k in (FAULT_DIR_ENV, FAULT_PAUSE_ENV) if k in os.environ}
        if hooks:  # the fault-injection test hook (worker.fault_point) reaches the replicas
            options["runtime_env"] = {"env_vars": hooks}
        kwargs = self.spec.worker_kwargs(self.threads, device)
        if kwargs["engine"] == "vllm" and not self.gpus and self.cfg.address is None:
            kwargs["cpu_ids"] = cpu_slice(i, self.threads, os.cpu_count() or 1)
        return RemoteModelWorker.options(**options).remote(self.spec.model_path, **kwargs)

    def _fits(self, n: int) -> bool:
        """Would ``n`` plain replicas fit on the cluster's live nodes now (a node may be gone)?"""
        import ray

        if self.cfg.tp > 1 and self.cfg.engine != "vllm":
            return True  # gangs: the pool's start timeout is the backstop
        totals = ray.cluster_resources()
        return n * 1.0 <= totals.get("CPU", 0) and n * self.gpus <= totals.get("GPU", 0)

    def start(self) -> dict:
        """Load the model on every replica (once); returns the experts' resolution tables."""
        if self.worker is not None or self.pool is not None:
            return self._tables
        t0 = time.perf_counter()
        if self.cfg.no_ray:
            self.worker = ModelWorker(self.spec.model_path, **self.spec.worker_kwargs(self.cfg.threads, self.cfg.device))
            self._tables = self.worker.resolution_tables(self.spec.variants)
        else:
            self.pool = ReplicaPool(self._make_worker, self.n, model=self.spec.model_name, fits=self._fits)
            self.timings["replicas"] = self.pool.wait_ready()
            self._tables = self.pool.ask(lambda w: w.resolution_tables.remote(self.spec.variants))
        self.timings["load_seconds"] = time.perf_counter() - t0
        return self._tables

    def _map(self, shards, local_call, remote_call, on_result) -> None:
        self.start()
        if self.worker is not None:
            for shard in shards:
                on_result(local_call(self.worker, shard))
        else:
            try:
                self.pool.map(shards, remote_call, on_result)
            finally:
                self.timings["retries"] = self.pool.retries
                self.timings["replaced_replicas"] = self.pool.replaced
                self.timings["dropped_replicas"] = self.pool.dropped

    def run(self, shards, commit, variants=None, decoding=None) -> dict:
        """Generate ``shards`` and ``commit`` each result; returns the token-resolution tables."""
        variants = list(variants or self.spec.variants)
        decoding = decoding or self.cfg.decoding
        batch = self.cfg.batch_size
        bar = Progress(sum(len(s.items) for s in shards) * len(variants), self.progress)
        per_replica = self.timings["per_replica"]

        def on_result(result: dict) -> None:
            commit(result)
            bar.update(result, self.pool.retries if self.pool else 0)
            rep = per_replica.setdefault(result["replica"], {"shards": 0, "seconds": 0.0, "tokens": 0})
            rep["shards"] += 1
            rep["seconds"] += result["seconds"]
            rep["tokens"] += result["tokens"]

        try:
            self._map(shards, lambda w, s: w.run_shard(s, variants, decoding, batch),
                      lambda w, s: w.run_shard.remote(s, variants, decoding, batch), on_result)
        finally:
            bar.close()
        return self._tables

    def generate(self, items, variants, decoding) -> list[dict]:
        """Generate rows for ``items`` without committing them (lm-eval bridge)."""
        shards = [Shard(n, tuple(items[lo: lo + self.cfg.batch_size]))
                  for n, lo in enumerate(range(0, len(items), self.cfg.batch_size))]
        results: dict[int, list[dict]] = {}
        self.run(shards, lambda r: results.__setitem__(r["shard_id"], r["rows"]), variants, decoding)
        return [row for n in sorted(results) for row in results[n]]

    def score(self, pairs, variant, add_eos: bool = False, per_shard: int = 16) -> list[dict]:
        """Log-likelihood of (instruction, continuation) pairs under ``variant``, in input order."""
        chunks = [_Chunk(n, tuple(pairs[lo: lo + per_shard])) for n, lo in enumerate(range(0, len(pairs), per_shard))]
        batch = self.cfg.batch_size
        results: dict[int, list[dict]] = {}
        self._map(chunks, lambda w, c: w.score(c.shard_id, c.pairs, variant, add_eos, batch),
                  lambda w, c: w.score.remote(c.shard_id, c.pairs, variant, add_eos, batch),
                  lambda r: results.__setitem__(r["shard_id"], r["rows"]))
        return [row for n in sorted(results) for row in results[n]]

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()
        release(self.groups)

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gpus_per_replica(spec: BackendSpec, totals: dict) -> float:
    """GPUs in each replica's bundle: 0 on CPU, 1, or ``--tp`` for a vLLM replica that shards the model
    over its own GPUs (vLLM's multiprocessing executor inside the actor; docs/engines.md).

    >>> from harness.distributed.spec import BackendSpec
    >>> s = BackendSpec("m", "m", "tulu", engine="vllm", tp=2)
    >>> gpus_per_replica(s, {"GPU": 4.0}), gpus_per_replica(s, {}), gpus_per_replica(BackendSpec("m", "m", "tulu", tp=2), {"GPU": 4.0})
    (2.0, 0.0, 1.0)
    """
    if spec.device not in ("auto", "cuda") or totals.get("GPU", 0) < 1:
        return 0.0
    return float(spec.tp) if spec.engine == "vllm" and spec.tp > 1 else 1.0


def cpu_slice(replica: int, threads: int, cores: int) -> str | None:
    """Cores for replica ``replica`` of ``threads`` each on a ``cores``-core local machine (vLLM binding).

    ``None`` (no binding) when the slices would not fit, e.g. a replacement replica.

    >>> cpu_slice(0, 1, 2), cpu_slice(1, 1, 2), cpu_slice(1, 2, 4), cpu_slice(2, 1, 2)
    ('0', '1', '2-3', None)
    """
    lo, hi = replica * threads, (replica + 1) * threads - 1
    if hi >= cores:
        return None
    return str(lo) if lo == hi else f"{lo}-{hi}"


def open_backend(spec: BackendSpec, progress: bool = True) -> Backend:
    """Check resources and reserve replicas for ``spec`` (nothing is generated yet)."""
    return Backend(spec, progress)
