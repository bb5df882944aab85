"""``ModelWorker``: the plain generator behind a Ray actor.

:class:`ModelWorker` is an ordinary class (usable in-process); :data:`RemoteModelWorker`
is the same class as a Ray actor (``ray list actors`` shows ``ModelWorker``). The model
is loaded in ``__init__``, inside the worker process, never shipped from the driver.

Example (in-process):
    >>> w = ModelWorker(model_path, model_name="tiny")              # doctest: +SKIP
    >>> out = w.run_shard(shard, variants, DecodingParams(), 8)     # doctest: +SKIP
    >>> sorted(out)                                                 # doctest: +SKIP
    ['replica', 'rows', 'seconds', 'shard_id', 'tokens']
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import ray

from harness.errors import HarnessError
from harness.experts.variants import Variant
from harness.records import DecodingParams, Shard
from harness.rows import placed

LOAD_FAILED = "cannot load the model: "
"""Marks the one-line error a worker raises when its model cannot load (the pool looks for it)."""


class ModelLoadError(HarnessError):
    """The model's files or config cannot be loaded: ``model NAME: cannot load the model: CAUSE``."""

FAULT_DIR_ENV = "HARNESS_TEST_FAULT_DIR"
FAULT_PAUSE_ENV = "HARNESS_TEST_FAULT_PAUSE"
"""Test hook: with ``HARNESS_TEST_FAULT_DIR=D`` a worker touches ``D/<moment>-<pid>`` when it
starts ``loading`` or ``generating`` a shard, then sleeps as ``HARNESS_TEST_FAULT_PAUSE`` says
(``loading=3,generating=1``, seconds), so a test can kill it at that moment. Unset: nothing
happens. The executor forwards both variables to the replicas it starts."""


def fault_point(moment: str) -> None:
    """Announce ``moment`` and pause, when the fault-injection test hook is set (see above)."""
    where = os.environ.get(FAULT_DIR_ENV)
    if not where:
        return
    Path(where, f"{moment}-{os.getpid()}").touch()
    pauses = dict(p.split("=", 1) for p in os.environ.get(FAULT_PAUSE_ENV, "").split(",") if "=" in p)
    time.sleep(float(pauses.get(moment, 0)))


class ModelWorker:
    """Loads one model replica (either engine) and generates shards of (prompt x variant) rows.

    ``engine`` is ``hf`` or ``vllm`` (:mod:`harness.engines`); ``cpu_ids`` binds a vLLM
    replica's threads to those cores (``"0"``, ``"2-3"``). ``self.generator`` holds the engine.
    """

    def __init__(self, model_path: str, *, model_name: str, prompt_format: str = "tulu", dtype: str = "float32",
                 device: str = "auto", combine: str = "logit-add", threads: int | None = None, trace: bool = False,
                 engine: str = "hf", cpu_ids: str | None = None, tp: int = 1):
        import torch

        fault_point("loading")
        if threads and engine == "hf":
            torch.set_num_threads(threads)
        from harness.engines import make_engine

        try:
            self.generator = make_engine(engine, model_path, model_name=model_name, prompt_format=prompt_format,
                                         dtype=dtype, device=device, combine=combine, trace=trace, threads=threads,
                                         cpu_ids=cpu_ids, **({"tensor_parallel_size": tp} if tp > 1 else {}))
        except Exception as exc:  # noqa: BLE001 - one line for the driver; the pool does not retry it
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelLoadError(f"model {model_name}: {LOAD_FAILED}{type(exc).__name__}: {first}") from None
        self.replica = f"{socket.gethostname()}:{os.getpid()}"

    def info(self) -> dict:
        """Where this replica runs (pid, device, engine, Ray node id) — also a readiness probe."""
        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        return {"replica": self.replica, "pid": os.getpid(), "device": str(self.generator.device),
                "engine": self.generator.engine_name, "node": node}

    def resolution_tables(self, variants: Sequence[Variant]) -> dict:
        return self.generator.resolution_tables(variants)

    def run_shard(self, shard: Shard, variants: Sequence[Variant], decoding: DecodingParams, batch_size: int) -> dict:
        """Generate every row of one shard; the driver commits them atomically."""
        fault_point("generating")
        start = time.perf_counter()
        rows = placed(self.generator.generate(list(shard.items), list(variants), decoding, batch_size),
                      self.replica, shard.shard_id)
        return {"shard_id": shard.shard_id, "rows": rows, "replica": self.replica,
                "seconds": time.perf_counter() - start, "tokens": sum(r["num_output_tokens"] for r in rows)}

    def score(self, shard_id: int, pairs: Sequence[tuple[str, str]], variant: Variant, add_eos: bool = False,
              batch_size: int = 8) -> dict:
        """Log-likelihoods of (instruction, continuation) pairs under ``variant`` (see harness.engines.scoring)."""
        from harness.engines.scoring import score_pairs

        start = time.perf_counter()
        scores = score_pairs(self.generator.scorer(), pairs, variant, add_eos=add_eos, batch_size=batch_size)
        return {"shard_id": shard_id, "rows": scores, "replica": self.replica,
                "seconds": time.perf_counter() - start, "tokens": sum(s["num_tokens"] for s in scores)}


RemoteModelWorker = ray.remote(max_restarts=0, max_task_retries=0)(ModelWorker)
