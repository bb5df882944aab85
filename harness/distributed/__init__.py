"""Ray execution: cluster connection, replica placement, the ModelWorker actor, the shard pool.

Example:
    >>> from harness.distributed import plan_replicas
    >>> plan_replicas("1", {"CPU": 2.0}, 0, 1)
    1
"""

from harness.distributed.cluster import connect, plan_replicas, release, reserve
from harness.distributed.pool import ReplicaPool
from harness.distributed.worker import ModelWorker, RemoteModelWorker

__all__ = ["ModelWorker", "RemoteModelWorker", "ReplicaPool", "connect", "plan_replicas", "release", "reserve"]
