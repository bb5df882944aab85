"""Tensor-parallel replicas (``--tp N``): one replica = N Ray actors running DeepSpeed AutoTP.

Each replica reserves one ``STRICT_PACK`` placement group of N bundles (``1/N`` CPU each on
CPU, 1 GPU each on GPU) and starts one :class:`TPRankWorker` per bundle. Rank 0 picks a
free port on 127.0.0.1; every rank joins a torch.distributed group (gloo on CPU, nccl on
GPU), loads the model and wraps it with ``deepspeed.init_inference(tensor_parallel=
{"tp_size": N}, replace_with_kernel_inject=False)``. DeepSpeed's CPU shm comm op is
disabled first (its JIT compile takes ~24 s and it segfaults in AutoTP on gVisor).

Every rank gets the same shard and runs the same ``HFEngine.generate`` (the rule expert
runs identically on every rank, since the all-reduced logits are identical); rank 0's
rows are returned. :class:`TPReplica` is the driver-side handle: it offers
``.run_shard.remote`` / ``.score.remote`` (sent to every rank, rank 0's ref returned),
``.resolution_tables.remote`` (rank 0 only) and ``.info.remote`` (every rank, fails as
soon as one does), so :class:`~harness.distributed.pool.ReplicaPool` works unchanged. A
rank whose collective call fails exits its process, so the gang dies as a unit and the
pool replaces it (the factory kills what is left of the old gang first).

Example:
    >>> factory = TPReplicaFactory(cfg, ray.cluster_resources(), 0.0, model_path, kwargs_fn)  # doctest: +SKIP
    >>> pool = ReplicaPool(factory, factory.n)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import traceback
from datetime import timedelta

import ray
from ray.util.placement_group import placement_group, remove_placement_group

from harness.deepspeed_compat import disable_shm_op
from harness.distributed.worker import ModelWorker
from harness.errors import HarnessError

log = logging.getLogger(__name__)

#: Seconds a rank waits for its peers (rendezvous and each collective).
TIMEOUT_S = int(os.environ.get("HARNESS_TP_TIMEOUT_S", "600"))


def _cuda_index() -> int:
    """The local CUDA index of this actor's Ray GPU (Ray usually narrows CUDA_VISIBLE_DEVICES to it)."""
    ids = [str(i) for i in ray.get_gpu_ids()]
    visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v]
    if ids and visible and ids[0] in visible:
        return visible.index(ids[0])
    return int(ids[0]) if ids and not visible else 0


class TPRankWorker(ModelWorker):
    """One rank of a tensor-parallel replica; ``setup`` does the heavy lifting.

    Args:
        rank: this actor's rank in the gang.
        world: the gang size (``--tp``).
        model_path, model_name, prompt_format, dtype, device, combine, threads: as ``ModelWorker``.
    """

    def __init__(self, rank: int, world: int, model_path: str, *, model_name: str, prompt_format: str = "tulu",
                 dtype: str = "float32", device: str = "cpu", combine: str = "logit-add", threads: int | None = None,
                 trace: bool = False, engine: str = "hf"):
        # engine: always the HF generator (AutoTP gangs are an HF variant; config refuses --tp with vllm)
        self.rank, self.world, self.model_path = rank, world, model_path
        self.opts = dict(model_name=model_name, prompt_format=prompt_format, dtype=dtype, combine=combine, trace=trace)
        self.device_kind = "cuda" if device == "cuda" else "cpu"
        self.threads = threads
        self.generator = None
        self.setup_error: BaseException | None = None
        self.replica = f"{socket.gethostname()}:{os.getpid()}"

    def free_port(self) -> int:
        """A free TCP port on 127.0.0.1 (rank 0 only; the gang shares one node)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def setup(self, port: int) -> None:
        """Join the process group, load the model and shard it with AutoTP."""
        try:
            self._setup(port)
        except BaseException as exc:  # reported by info(), which the pool waits on
            self.setup_error = exc
            raise

    def _setup(self, port: int) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world), LOCAL_RANK=str(self.rank), LOCAL_SIZE=str(self.world))
        if self.device_kind == "cuda":
            torch.cuda.set_device(_cuda_index())
        else:
            disable_shm_op()
        import deepspeed
        from transformers import AutoModelForCausalLM

        from harness.engines.hf import HFEngine

        deepspeed.init_distributed(dist_backend="nccl" if self.device_kind == "cuda" else "gloo",
                                   auto_mpi_discovery=False, timeout=timedelta(seconds=TIMEOUT_S),
                                   rank=self.rank, world_size=self.world)
        dtype = getattr(torch, self.opts["dtype"])
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
        inject = self.device_kind == "cuda" and os.environ.get("HARNESS_TP_KERNEL_INJECT") == "1"
        engine = deepspeed.init_inference(model, tensor_parallel={"tp_size": self.world}, dtype=dtype,
                                          replace_with_kernel_inject=inject)
        self.generator = HFEngine(self.model_path, model=engine.module, device=self.device_kind, **self.opts)
        self.generator.engine_name = "hf-tp"  # samples.engine

    def info(self) -> dict:
        """Readiness probe: raises this rank's setup error, else where it runs."""
        if self.setup_error is not None:
            raise self.setup_error
        if self.generator is None:
            raise RuntimeError(f"tp rank {self.rank}: setup did not run")
        return {"replica": self.replica, "pid": os.getpid(), "device": str(self.generator.device),
                "rank": self.rank, "tp": self.world}

    def _collective(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException:  # peers are now out of step: end the gang, the pool replaces it
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)

    def run_shard(self, *args, **kwargs) -> dict:
        return self._collective(super().run_shard, *args, **kwargs)

    def score(self, *args, **kwargs) -> dict:
        return self._collective(super().score, *args, **kwargs)


RemoteTPRankWorker = ray.remote(max_restarts=0, max_task_retries=0)(TPRankWorker)


@ray.remote(num_cpus=0, max_retries=0)
def _gang_info(refs: list) -> dict:
    """Rank 0's info once every rank is ready; raises as soon as any rank failed."""
    pending, infos = list(refs), {}
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            infos[done[0]] = ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:  # the rank's own error, not Ray's wrapper
            raise (exc.cause or exc) from None
    first = infos[refs[0]]
    return first | {"ranks": [infos[r]["pid"] for r in refs]}


class _Remote:
    """Something with a ``.remote(...)`` like an actor method."""

    def __init__(self, fn):
        self.remote = fn


class _GangMethod:
    """Send one call to every rank (same arguments); return rank 0's ref."""

    def __init__(self, gang: TPReplica, name: str):
        self.gang, self.name = gang, name

    def remote(self, *args, **kwargs):
        refs = [getattr(a, self.name).remote(*args, **kwargs) for a in self.gang.ranks]
        return refs[0]


class TPReplica:
    """Driver-side handle of one gang, shaped like a ``ModelWorker`` actor handle."""

    def __init__(self, ranks: list):
        self.ranks = ranks

    def __getattr__(self, name: str) -> _GangMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _GangMethod(self, name)  # run_shard, score, ...: every rank, rank 0's ref

    @property
    def resolution_tables(self):
        return self.ranks[0].resolution_tables  # no collectives: rank 0 alone

    @property
    def info(self) -> _Remote:
        return _Remote(lambda: _gang_info.remote([a.info.remote() for a in self.ranks]))

    def kill(self) -> None:
        for a in self.ranks:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001 - already dead
                pass


def plan_gangs(replicas: str, tp: int, totals: dict, use_gpu: bool) -> tuple[int, float, float]:
    """``(replicas, CPUs per rank, GPUs per rank)`` for ``--tp``; raises if the gangs cannot fit.

    On CPU a replica keeps the 1 CPU a plain replica reserves, split into ``tp`` ranks of
    ``1/tp`` CPU (a rank asking for a whole CPU would not fit a 2-CPU test cluster).

    Example:
        >>> plan_gangs("1", 2, {"CPU": 2.0}, use_gpu=False)
        (1, 0.5, 0.0)
    """
    cpus, gpus = totals.get("CPU", 0.0), totals.get("GPU", 0.0)
    cpu_per_rank, gpu_per_rank = 1.0 / tp, (1.0 if use_gpu else 0.0)
    if replicas == "auto":
        n = int(gpus // tp) if use_gpu else 1
    else:
        n = int(replicas)
    if use_gpu and (n < 1 or n * tp > gpus):
        need = max(n, 1)
        raise HarnessError(f"--tp {tp}: {need} replica(s) need {need * tp} GPU(s) (one per rank); the cluster has {gpus:g}")
    if n * tp * cpu_per_rank > cpus + 1e-9:
        raise HarnessError(f"--tp {tp} --replicas {n}: needs {n * tp * cpu_per_rank:g} CPU(s) ({tp} ranks x "
                           f"{cpu_per_rank:g} CPU per replica); the cluster has {cpus:g}")
    return n, cpu_per_rank, gpu_per_rank


def reserve_gangs(n: int, tp: int, cpus: float, gpus: float, timeout_s: float = 120.0) -> list:
    """``n`` STRICT_PACK placement groups of ``tp`` bundles each (one node per gang)."""
    bundle = {"CPU": cpus} | ({"GPU": gpus} if gpus else {})
    groups = [placement_group([dict(bundle) for _ in range(tp)], strategy="STRICT_PACK") for _ in range(n)]
    ready, _ = ray.wait([g.ready() for g in groups], num_returns=n, timeout=timeout_s)
    if len(ready) < n:
        for g in groups:
            remove_placement_group(g)
        raise HarnessError(f"--tp {tp}: could not reserve {n} gang(s) of {tp} x {bundle} on one node "
                           f"within {timeout_s:.0f} s; see `ray status`")
    return groups


class TPReplicaFactory:
    """``make_worker`` for :class:`ReplicaPool` when ``--tp > 1``: reserves gangs, builds replicas.

    Args:
        cfg: the run config (``tp``, ``replicas``, ``threads``).
        totals: ``ray.cluster_resources()``.
        gpus: 1.0 when replicas use GPUs, else 0.0 (as the executor decided).
        model_path: the resolved HF dir.
        kwargs_fn: ``(threads, device) -> ModelWorker kwargs`` (the executor's ``_kwargs``).
    """

    def __init__(self, cfg, totals: dict, gpus: float, model_path: str, kwargs_fn):
        self.tp = int(cfg.tp)
        self.n, self.cpus, self.gpus = plan_gangs(str(cfg.replicas), self.tp, totals, bool(gpus))
        threads = cfg.threads or max(1, int(totals.get("CPU", 1)) // (self.n * self.tp))
        self.kwargs = kwargs_fn(threads, "cuda" if self.gpus else "cpu")
        self.model_path = model_path
        self.groups = reserve_gangs(self.n, self.tp, self.cpus, self.gpus)
        self.gangs: dict[int, TPReplica] = {}

    def __call__(self, i: int) -> TPReplica:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if i in self.gangs:  # a replacement: end what is left of the old gang first
            self.gangs.pop(i).kill()
        ranks = []
        for r in range(self.tp):
            strategy = PlacementGroupSchedulingStrategy(placement_group=self.groups[i], placement_group_bundle_index=r)
            actor = RemoteTPRankWorker.options(num_cpus=self.cpus, num_gpus=self.gpus, scheduling_strategy=strategy)
            ranks.append(actor.remote(r, self.tp, self.model_path, **self.kwargs))
        port = ranks[0].free_port.remote()
        for a in ranks:
            a.setup.remote(port)  # rendezvous on rank 0's port; info() waits for it
        self.gangs[i] = TPReplica(ranks)
        return self.gangs[i]
