"""Drive replicas over a queue of shards; replace a replica lost at any moment.

Every replica is *starting* (loading its model; its ``info()`` probe is pending) or
*ready*. Shards go only to ready replicas, at most ``depth`` in flight each (bounded
pending work); results are taken in completion order with ``ray.wait`` and handed to
``commit`` (which writes them atomically). When a replica dies — while loading, idle or
generating, its process killed or its node lost — its shards go back on the queue and the
replica is restarted after a back-off (``backoff_s``, doubling, at most ``max_restarts``
times per replica). A replica that has used up its restarts, or that does not come up
within ``start_timeout_s`` (its node is gone and nothing else fits), is dropped with a
warning and the run goes on with the others; with no replica left the run stops with one
line naming the model and the cause (exit 1), and ``harness resume`` continues it. A model
that cannot load at all (its ``__init__`` raised: bad files, bad config) stops the run at
once with one line naming the model and the error (exit 2). Rows are committed only by the
driver and only once per shard, so a row can never be written twice.

Example:
    >>> pool = ReplicaPool(make_worker, n=2, model="tiny")        # doctest: +SKIP
    >>> pool.wait_ready()                                          # doctest: +SKIP
    >>> pool.run(shards, variants, decoding, 8, commit=store_it)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, OutOfMemoryError, RayActorError, RayTaskError

from harness.distributed.worker import LOAD_FAILED
from harness.errors import HarnessError

log = logging.getLogger(__name__)
# a replica process that is gone: died, unreachable, or killed by Ray's memory monitor (restart it, requeue its shards)
_WORKER_LOST = (RayActorError, ActorDiedError, ActorUnavailableError, OutOfMemoryError)


class ReplicasLost(HarnessError):
    """No replica could be kept alive (out of memory, nodes lost): one line, exit 1."""

    exit_code = 1


def load_failure(exc: BaseException) -> str | None:
    """The one-line load error a worker's ``__init__`` raised, or None if it died otherwise.

    >>> load_failure(RuntimeError("ray::ModelWorker.__init__()\\nmodel m: " + LOAD_FAILED + "OSError: no weights"))
    'OSError: no weights'
    >>> load_failure(RuntimeError("The actor died unexpectedly")) is None
    True
    """
    for line in str(exc).splitlines():
        if LOAD_FAILED in line:
            return line.split(LOAD_FAILED, 1)[1].strip()
    return None


def _first_line(exc: BaseException) -> str:
    """``Type: first line``, or Ray's exit detail when a worker process died.

    >>> _first_line(RuntimeError("The actor died.\\n\\tpid: 7\\nWorker exit detail: killed (OOM). Some common causes"))
    'RuntimeError: worker process died: killed (OOM).'
    """
    text = str(exc).strip()
    detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes|$)", text, re.S)
    if detail:
        return f"{type(exc).__name__}: worker process died: {' '.join(detail.group(1).split())[:200]}"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class ReplicaPool:
    """A set of ``ModelWorker`` actors fed from one shard queue.

    Args:
        make_worker: ``(index) -> actor handle``; called again to replace a dead replica.
        n: number of replicas.
        depth: shards in flight per replica.
        max_retries: how often one shard may be retried after its worker died.
        max_restarts: how often one replica may be restarted before it is dropped.
        backoff_s: wait before the first restart of a replica; doubles with each restart.
        start_timeout_s: a replica still not loaded after this long is dropped.
        model: the model's name, for error messages.
        fits: ``(replicas) -> bool``: would that many replicas fit on the cluster as it is now?
            A lost replica is restarted only if so (after a node loss it is dropped instead).
    """

    def __init__(self, make_worker: Callable[[int], object], n: int, depth: int = 2, max_retries: int = 2,
                 max_restarts: int = 3, backoff_s: float = 0.5, start_timeout_s: float = 900.0, model: str = "model",
                 fits: Callable[[int], bool] = lambda n: True):
        self.make_worker = make_worker
        self.depth, self.max_retries, self.max_restarts = depth, max_retries, max_restarts
        self.backoff_s, self.start_timeout_s, self.model, self.fits = backoff_s, start_timeout_s, model, fits
        self.retries = 0
        self.replaced = 0
        self.dropped = 0
        self.workers: dict[int, object] = {}
        self.ready: dict[int, dict] = {}  # index -> info()
        self.starting: dict = {}  # info() ref -> (index, start time)
        self.restarts = {i: 0 for i in range(n)}
        for i in range(n):
            self._start(i)

    def _start(self, i: int) -> None:
        handle = self.make_worker(i)
        self.workers[i] = handle
        self.starting[handle.info.remote()] = (i, time.monotonic())

    def wait_ready(self) -> list[dict]:
        """Block until every replica has loaded its model (restarting lost ones); returns their info."""
        while self.starting:
            done, _ = ray.wait(list(self.starting), num_returns=1, timeout=1.0)
            if done:
                self._on_probe(done[0], {}, deque())
            self._check_start_timeouts({}, deque())
        return [self.ready[i] for i in sorted(self.ready)]

    def ask(self, call: Callable[[object], object]):
        """``ray.get(call(worker))`` on one ready replica, replacing replicas lost meanwhile."""
        while True:
            if not self.ready:
                self.wait_ready()
            i = min(self.ready)
            try:
                return ray.get(call(self.workers[i]))
            except _WORKER_LOST as exc:
                self._lost(i, exc, {}, deque())

    def map(self, shards: Sequence, submit: Callable[[object, object], object], commit: Callable[[dict], None]) -> None:
        """Run ``submit(worker, shard) -> ObjectRef`` for every shard (each has ``shard_id``)."""
        queue = deque((s, 0) for s in shards)
        in_flight: dict = {}  # ref -> (worker index, shard, attempts)
        while queue or in_flight:
            load = {i: 0 for i in self.ready}
            for j, _, _ in in_flight.values():
                load[j] = load.get(j, 0) + 1
            for i in list(self.ready):
                while queue and load[i] < self.depth:
                    shard, attempts = queue.popleft()
                    in_flight[submit(self.workers[i], shard)] = (i, shard, attempts)
                    load[i] += 1
            done, _ = ray.wait(list(in_flight) + list(self.starting), num_returns=1, timeout=1.0)
            self._check_start_timeouts(in_flight, queue)
            if not done:
                continue
            ref = done[0]
            if ref in self.starting:
                self._on_probe(ref, in_flight, queue)
                continue
            i, shard, attempts = in_flight.pop(ref)
            try:
                result = ray.get(ref)
            except _WORKER_LOST as exc:
                self._retry(queue, shard, attempts, exc)
                self._lost(i, exc, in_flight, queue)
                continue
            except RayTaskError as exc:
                self._retry(queue, shard, attempts, exc)
                continue
            commit(result)

    def _on_probe(self, ref, in_flight: dict, queue: deque) -> None:
        i, _ = self.starting.pop(ref)
        try:
            self.ready[i] = ray.get(ref)
        except (RayTaskError, *_WORKER_LOST) as exc:
            cause = load_failure(exc)
            if cause is None and isinstance(exc, RayTaskError) and not isinstance(exc.cause, _WORKER_LOST):
                cause = _first_line(exc.cause)  # raised while setting up (a --tp rank), not a lost process
            if cause is not None:
                raise HarnessError(f"model {self.model}: {LOAD_FAILED}{cause}") from None
            self._lost(i, exc, in_flight, queue, while_="loading")

    def _check_start_timeouts(self, in_flight: dict, queue: deque) -> None:
        now = time.monotonic()
        for ref, (i, t0) in list(self.starting.items()):
            if now - t0 > self.start_timeout_s:
                self.starting.pop(ref)
                self._drop(i, f"not loaded after {self.start_timeout_s:.0f} s (no room left on the cluster?)")

    def _retry(self, queue: deque, shard, attempts: int, exc: Exception) -> None:
        if attempts >= self.max_retries:
            raise ReplicasLost(
                f"shard {shard.shard_id} failed {attempts + 1} times (last: {_first_line(exc)}); giving up — "
                f"`harness resume` continues the run"
            )
        self.retries += 1
        log.warning("shard %s: retrying after %s", shard.shard_id, type(exc).__name__)
        queue.appendleft((shard, attempts + 1))

    def _lost(self, i: int, exc: BaseException, in_flight: dict, queue: deque, while_: str = "working") -> None:
        """Requeue replica ``i``'s other shards and restart it after a back-off (or drop it)."""
        if i not in self.workers:
            return
        for ref, (j, shard, attempts) in list(in_flight.items()):
            if j == i:
                in_flight.pop(ref)
                queue.appendleft((shard, attempts))
        self.ready.pop(i, None)
        _kill(self.workers.pop(i))
        if self.restarts[i] >= self.max_restarts:
            self._drop(i, f"died {self.restarts[i] + 1} times while {while_} (last: {_first_line(exc)})",
                       hint="out of memory?" if while_ == "loading" else "")
            return
        if not self.fits(len(self.workers) + 1):
            self._drop(i, f"died while {while_} ({_first_line(exc)}) and the cluster has no room left for it "
                          "(node lost?)")
            return
        delay = self.backoff_s * 2 ** self.restarts[i]
        log.warning("replica %d of %s died while %s (%s); restarting it in %.1f s", i, self.model, while_,
                    _first_line(exc), delay)
        time.sleep(delay)
        self.restarts[i] += 1
        self.replaced += 1
        self._start(i)

    def _drop(self, i: int, why: str, hint: str = "") -> None:
        """Give up replica ``i``; the run goes on with the others, or stops if none is left."""
        handle = self.workers.pop(i, None)
        if handle is not None:
            _kill(handle)
        self.ready.pop(i, None)
        self.dropped += 1
        if not self.workers:
            raise ReplicasLost(f"model {self.model}: no replica left — replica {i} {why}"
                               f"{'; ' + hint if hint else ''}; `harness resume` continues the run")
        log.warning("replica %d of %s %s; going on with %d replica(s)", i, self.model, why, len(self.workers))

    def shutdown(self) -> None:
        for w in self.workers.values():
            _kill(w)


def _kill(handle) -> None:
    try:
        handle.kill() if hasattr(handle, "kill") else ray.kill(handle)
    except Exception:  # noqa: BLE001 - already dead
        pass
