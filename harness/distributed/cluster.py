"""Start or join a Ray cluster, and reserve replicas with placement groups.

A replica is one ``ModelWorker`` reserving ``{"CPU": c, "GPU": g}`` as one bundle of a
``SPREAD`` placement group (:func:`reserve`: replicas go to as many nodes as possible). Requests
are checked against the cluster's totals before anything starts: asking for more than
exists is a one-line error, never a silent hang.

Example:
    >>> plan_replicas("2", {"CPU": 4.0}, gpus_per_replica=0, cpus_per_replica=1)
    2
"""

from __future__ import annotations

import logging
import os

import ray
from ray.util.placement_group import placement_group, remove_placement_group

from harness.distributed import reaper
from harness.errors import HarnessError

log = logging.getLogger(__name__)


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Join ``address`` or start a private local cluster; returns True if we started Ray.

    An already-initialised Ray (tests, Ray jobs) is reused as it is. Inside a Ray job
    (``harness submit``, ``ray job submit``, a KubeRay RayJob) with no ``address``, the
    job's own cluster is joined: Ray Jobs sets ``RAY_ADDRESS`` to the cluster's GCS address
    and ``RAY_JOB_CONFIG_JSON_ENV_VAR`` for the entrypoint. A private cluster dies with this
    process (:func:`start_private`).
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if not address and os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]  # inside a Ray job: join the cluster that runs it
    if address:
        ray.init(address=address, log_to_driver=True)
        return True
    start_private(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, include_dashboard=False,
                  object_store_memory=512 * 2**20, log_to_driver=False)
    return True


_watchdogs: list = []  # the reaper pipes stay open as long as this driver lives


def start_private(**init_kwargs) -> str:
    """``ray.init("local", **init_kwargs)`` whose processes die with this driver; returns the marker.

    Every process of the new cluster inherits ``HARNESS_RAY_CLUSTER=<marker>`` and the watchdog
    learns the session directory; it (:mod:`harness.distributed.reaper`) SIGKILLs them when this
    process exits, however it exits.
    """
    marker = reaper.new_marker()
    watchdog = reaper.start(marker)
    _watchdogs.append(watchdog)
    os.environ[reaper.MARKER_ENV] = marker
    try:
        context = ray.init("local", **init_kwargs)
    finally:  # only the cluster's processes carry it, not what this driver starts later
        os.environ.pop(reaper.MARKER_ENV, None)
    reaper.tell(watchdog, context.address_info.get("session_dir", ""))
    return marker


def plan_replicas(replicas: str, totals: dict, gpus_per_replica: float, cpus_per_replica: float) -> int:
    """Number of replicas to start; ``auto`` fills the cluster's GPUs (or 1 on CPU)."""
    gpus, cpus = totals.get("GPU", 0.0), totals.get("CPU", 0.0)
    if replicas == "auto":
        n = int(gpus // gpus_per_replica) if gpus_per_replica else 1
        if n < 1:
            raise HarnessError(f"--replicas auto: each replica needs {gpus_per_replica:g} GPU(s); the cluster has {gpus:g}")
        return n
    n = int(replicas)
    if n * gpus_per_replica > gpus:
        raise HarnessError(
            f"--replicas {n}: needs {n * gpus_per_replica:g} GPU(s) ({gpus_per_replica:g} per replica); "
            f"the cluster has {gpus:g}"
        )
    if n * cpus_per_replica > cpus:
        raise HarnessError(f"--replicas {n}: needs {n * cpus_per_replica:g} CPU(s); the cluster has {cpus:g}")
    return n


def reserve(n: int, cpus: float, gpus: float, timeout_s: float = 120.0) -> list:
    """One ``SPREAD`` placement group of ``n`` bundles, replica ``i`` in bundle ``i``; returns ``[group]``.

    ``SPREAD`` puts the replicas on as many nodes as it can (a lost node takes as few as
    possible) and still packs them when there are fewer nodes than replicas; when a node
    dies, Ray re-places its bundles on the nodes left if they have room (``STRICT_*`` could
    refuse), and the pool restarts the lost replicas there.
    """
    bundle = {"CPU": cpus} | ({"GPU": gpus} if gpus else {})
    groups = [placement_group([dict(bundle) for _ in range(n)], strategy="SPREAD")]
    ready, _ = ray.wait([g.ready() for g in groups], num_returns=1, timeout=timeout_s)
    if not ready:
        for g in groups:
            remove_placement_group(g)
        raise HarnessError(f"could not reserve {n} replica(s) of {bundle} within {timeout_s:.0f} s; see `ray status`")
    return groups


def release(groups: list) -> None:
    for g in groups:
        try:
            remove_placement_group(g)
        except Exception:  # noqa: BLE001 - cluster may already be gone at shutdown
            log.debug("placement group already removed", exc_info=True)
