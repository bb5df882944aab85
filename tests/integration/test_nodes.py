"""Node loss on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

Replicas are spread over both nodes (one ``SPREAD`` placement group); the second node is
killed after the first committed shard. With room left on the head node the lost replica
is restarted there; without room its replacement never starts and the head node's replica
does the rest. Either way every (prompt, variant) row is stored exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.config import RunConfig
from harness.run.runner import execute
from harness.store import read_table

SCRIPT = Path(__file__).with_name("multinode_run.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference_keys(tmp_path_factory, tiny_model_dir):
    store = tmp_path_factory.mktemp("reference")
    execute(RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 6,
                                          "max_new_tokens": 4, "batch_size": 1, "run_id": "r", "no_ray": True,
                                          "store": str(store)}), progress=False)
    return sorted(read_table(store, "samples").column("key").to_pylist())


@pytest.mark.slow
@pytest.mark.parametrize("cpus_per_node, outcome", [(2, "restarted"), (1, "shrunk")])
def test_node_lost_mid_run_finishes_on_the_other_node(cpus_per_node, outcome, reference_keys, harness_home, tmp_path):
    store = tmp_path / "store"
    hook = tmp_path / "hook"
    hook.mkdir()  # every shard pauses 1 s, so both replicas are busy when the node goes
    env = os.environ | {"PYTHONPATH": str(REPO), "HARNESS_HOME": str(harness_home), "HARNESS_TEST_FAULT_DIR": str(hook),
                        "HARNESS_TEST_FAULT_PAUSE": "generating=1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(store), str(cpus_per_node)], env=env, capture_output=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("RESULT ")]
    report = json.loads(lines[-1].split(" ", 1)[1])
    timings = report["timings"]
    started_on = {r["node"] for r in timings["replicas"]}
    assert len(started_on) == 2, "SPREAD should start one replica on each node"
    assert report["lost"] and report["lost"][0] in started_on
    keys = sorted(read_table(store, "samples").column("key").to_pylist())
    assert keys == reference_keys  # every row exactly once, none lost
    if outcome == "restarted":
        assert timings["replaced_replicas"] >= 1 and timings["dropped_replicas"] == 0
    else:  # the lost replica's bundle finds no room: the head node's replica did every later shard
        assert timings["replaced_replicas"] + timings["dropped_replicas"] >= 1
        assert len(timings["per_replica"]) == 2
    assert {p.name.split("-")[0] for p in hook.iterdir()} == {"loading", "generating"}
