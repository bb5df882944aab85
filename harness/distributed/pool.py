"""Drive replicas over a queue of shards; retry a shard whose worker died.

The driver keeps at most ``depth`` shards in flight per replica (bounded pending work),
takes results in completion order with ``ray.wait``, and hands each one to ``commit``
(which writes it atomically). A shard whose worker dies is put back on the queue, up to
``max_retries`` times, and the dead replica is replaced. Since rows are committed only
by the driver and only once per shard, a row can never be written twice.

Example:
    >>> pool = ReplicaPool(make_worker, n=2)                     # doctest: +SKIP
    >>> pool.run(shards, variants, decoding, 8, commit=store_it)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from harness.errors import HarnessError
from harness.records import DecodingParams, Shard

log = logging.getLogger(__name__)
_WORKER_LOST = (RayActorError, ActorDiedError, ActorUnavailableError)


class ReplicaPool:
    """A set of ``ModelWorker`` actors fed from one shard queue.

    Args:
        make_worker: ``(index) -> actor handle``; called again to replace a dead replica.
        n: number of replicas.
        depth: shards in flight per replica.
        max_retries: how often one shard may be retried after its worker died.
    """

    def __init__(self, make_worker: Callable[[int], object], n: int, depth: int = 2, max_retries: int = 2):
        self.make_worker = make_worker
        self.workers = {i: make_worker(i) for i in range(n)}
        self.depth = depth
        self.max_retries = max_retries
        self.retries = 0
        self.replaced = 0

    def wait_ready(self) -> list[dict]:
        """Block until every replica has loaded its model; returns their info."""
        try:
            return ray.get([w.info.remote() for w in self.workers.values()])
        except RayTaskError as exc:
            raise HarnessError(f"a replica failed to load the model: {exc.cause!r}") from None

    def run(self, shards: Sequence[Shard], variants, decoding: DecodingParams, batch_size: int,
            commit: Callable[[dict], None]) -> None:
        """Generate every shard (``ModelWorker.run_shard``) and commit each result."""
        self.map(shards, lambda w, s: w.run_shard.remote(s, variants, decoding, batch_size), commit)

    def map(self, shards: Sequence, submit: Callable[[object, object], object], commit: Callable[[dict], None]) -> None:
        """Run ``submit(worker, shard) -> ObjectRef`` for every shard (each has ``shard_id``)."""
        queue = deque((s, 0) for s in shards)
        in_flight: dict = {}  # ref -> (worker index, shard, attempts)
        load = {i: 0 for i in self.workers}
        while queue or in_flight:
            for i in list(self.workers):
                while queue and load[i] < self.depth:
                    shard, attempts = queue.popleft()
                    ref = submit(self.workers[i], shard)
                    in_flight[ref] = (i, shard, attempts)
                    load[i] += 1
            done, _ = ray.wait(list(in_flight), num_returns=1)
            ref = done[0]
            i, shard, attempts = in_flight.pop(ref)
            load[i] -= 1
            try:
                result = ray.get(ref)
            except _WORKER_LOST as exc:
                self._retry(queue, shard, attempts, exc)
                if i in self.workers:
                    self._replace(i, in_flight, queue, load)
                continue
            except RayTaskError as exc:
                self._retry(queue, shard, attempts, exc)
                continue
            commit(result)

    def _retry(self, queue: deque, shard, attempts: int, exc: Exception) -> None:
        if attempts >= self.max_retries:
            raise HarnessError(
                f"shard {shard.shard_id} failed {attempts + 1} times (last: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); giving up — `harness resume` continues the run"
            )
        self.retries += 1
        log.warning("shard %s: retrying after %s", shard.shard_id, type(exc).__name__)
        queue.appendleft((shard, attempts + 1))

    def _replace(self, i: int, in_flight: dict, queue: deque, load: dict) -> None:
        """Requeue the dead replica's other shards and start a fresh replica."""
        for ref, (j, shard, attempts) in list(in_flight.items()):
            if j == i:
                in_flight.pop(ref)
                queue.appendleft((shard, attempts))
        old = self.workers.pop(i)
        try:
            ray.kill(old)
        except Exception:  # noqa: BLE001 - already dead
            pass
        self.workers[i] = self.make_worker(i)
        load[i] = 0
        self.replaced += 1
        log.warning("replica %d died; started a replacement", i)

    def shutdown(self) -> None:
        for w in self.workers.values():
            try:
                ray.kill(w)
            except Exception:  # noqa: BLE001
                pass
