"""`runs list` tells a live run from one whose writer died (status ``interrupted``)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from harness.results import open as open_results
from harness.run.lifecycle import RunIdentity, RunLifecycle
from harness.store import RunLock

IDENTITY = RunIdentity(model="m", model_fingerprint="fp", tasks=["t"], variants=["none"], config_hash="h")


def _status(root) -> dict:
    return {r["run_id"]: r["status"] for r in open_results(root).runs().to_pylist()}


def test_running_only_while_the_writer_lives(tmp_path):
    with RunLifecycle(tmp_path, "live", IDENTITY) as life:
        life.started()
        assert _status(tmp_path)["live"] == "running"  # the writer (this process) holds the lock
    # the lifecycle left normally without finish(): the writer is gone, the row still says running
    assert _status(tmp_path)["live"] == "interrupted"
    with RunLifecycle(tmp_path, "done", IDENTITY) as life:
        life.started()
        life.finish()
    assert _status(tmp_path)["done"] == "finished"


def test_a_killed_writer_is_interrupted_and_another_hosts_writer_is_not(tmp_path):
    with RunLifecycle(tmp_path, "r", IDENTITY) as life:
        life.started()
    lock = RunLock(tmp_path, "r")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.holder_path.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started_at": "t"}))
    assert _status(tmp_path)["r"] == "interrupted"  # SIGKILL leaves the holder record of a dead pid
    lock.holder_path.write_text(json.dumps({"pid": 1, "host": "another-node", "started_at": "t"}))
    assert _status(tmp_path)["r"] == "running"  # cannot tell from here: trust the row
