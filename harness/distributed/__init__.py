"""Ray execution: cluster connection, replica placement, the ModelWorker actor, the shard pool.

Sub-modules are imported on first use, so ``harness --help`` does not pay for torch and ray.

Example:
    >>> from harness.distributed import plan_replicas
    >>> plan_replicas("1", {"CPU": 2.0}, 0, 1)
    1
"""

import importlib

_EXPORTS = {"connect": "cluster", "plan_replicas": "cluster", "release": "cluster", "reserve": "cluster",
            "ReplicaPool": "pool", "ReplicasLost": "pool", "ModelWorker": "worker", "RemoteModelWorker": "worker"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.distributed.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.distributed' has no attribute {name!r}")
