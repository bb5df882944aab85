"""Run one harness evaluation on a two-node ``ray.cluster_utils.Cluster`` and lose a node mid-run.

Used by ``test_nodes.py`` in a subprocess (a second Ray cluster cannot share the test
process with the session's). Every process of the cluster carries a marker that the
harness reaper kills when this script ends, however it ends.

Usage: ``python multinode_run.py STORE CPUS_PER_NODE`` — prints ``RESULT <json>`` with the
nodes the replicas started on and the run's timings.
"""

from __future__ import annotations

import json
import os
import sys


def main(store: str, cpus: float) -> None:
    from harness.distributed import reaper

    marker = reaper.new_marker()
    main.watchdog = reaper.start(marker)  # its pipe stays open until this process ends
    os.environ[reaper.MARKER_ENV] = marker
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": cpus, "num_gpus": 0, "object_store_memory": 100 * 2**20,
                                      "include_dashboard": False})
    doomed = cluster.add_node(num_cpus=cpus, num_gpus=0, object_store_memory=100 * 2**20)
    cluster.wait_for_nodes()
    reaper.tell(main.watchdog, cluster.head_node.get_session_dir_path())  # both nodes share it

    from harness.run.config import RunConfig
    from harness.run.runner import execute
    from harness.store import Store

    original = Store.write_samples
    removed = []

    def write_then_lose_node(self, run_id, shard_id, rows):
        path = original(self, run_id, shard_id, rows)
        if not removed:  # after the first committed shard, the second node goes away, hard
            cluster.remove_node(doomed, allow_graceful=False)
            removed.append(doomed.node_id)
        return path

    Store.write_samples = write_then_lose_node
    flags = {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 6, "max_new_tokens": 4,
             "batch_size": 1, "replicas": 2, "run_id": "r", "store": store, "threads": 1}
    execute(RunConfig.from_sources(None, flags), progress=False)
    timings = Store(store).read_manifest("r")["timings_json"]
    print("RESULT", json.dumps({"lost": removed, "timings": timings}), flush=True)
    import ray

    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
