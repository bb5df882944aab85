"""Failures: a worker killed mid-run, a driver killed mid-run, impossible resource asks."""

import os
import signal
import subprocess
import sys
import time

import pytest

from harness.cli import main
from harness.run.config import RunConfig
from harness.errors import HarnessError
from harness.distributed.cluster import plan_replicas
from harness.run.runner import execute, resume
from harness.store import Store, read_table

FLAGS = {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 6, "max_new_tokens": 6, "batch_size": 1}


def _pairs(store):
    t = read_table(store, "samples")
    return sorted(zip(t.column("key").to_pylist(), t.column("output").to_pylist()))


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory, tiny_model_dir):
    store = tmp_path_factory.mktemp("reference")
    execute(RunConfig.from_sources(None, FLAGS | {"store": str(store), "no_ray": True, "run_id": "r"}), progress=False)
    return store


def test_worker_killed_mid_run_every_row_exactly_once(ray_cluster, reference_store, tmp_path, monkeypatch):
    killed = []
    original = Store.write_samples

    def write_then_kill(self, run_id, shard_id, rows):
        path = original(self, run_id, shard_id, rows)
        if not killed:  # after the first committed shard, SIGKILL the worker process that made it
            pid = int(rows[0]["replica"].rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return path

    monkeypatch.setattr(Store, "write_samples", write_then_kill)
    result = execute(RunConfig.from_sources(None, FLAGS | {"store": str(tmp_path), "run_id": "r"}), progress=False)
    assert killed
    samples = read_table(tmp_path, "samples")
    assert samples.num_rows == 12 == len(set(samples.column("key").to_pylist()))
    assert _pairs(tmp_path) == _pairs(reference_store)
    timings = Store(tmp_path).read_manifest("r")["timings_json"]
    assert timings["retries"] >= 1 and timings["replaced_replicas"] == 1
    assert result.num_rows == 12


def test_driver_sigkill_then_resume_equals_uninterrupted(tmp_path, harness_home):
    flags = ["--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "30", "--max-new-tokens", "24",
             "--batch-size", "1", "--run-id", "r"]
    reference = tmp_path / "reference"
    execute(RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 30,
                                          "max_new_tokens": 24, "batch_size": 1, "run_id": "r", "no_ray": True,
                                          "store": str(reference)}), progress=False)
    store = tmp_path / "killed"
    argv = [sys.executable, "-m", "harness.cli", "run", *flags, "--store", str(store), "-q", "--num-cpus", "1"]
    env = os.environ | {"HARNESS_HOME": str(harness_home)}
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shard_dir = store / "samples" / "run_id=r"
    deadline = time.time() + 120
    while time.time() < deadline and not (shard_dir.is_dir() and any(shard_dir.glob("part-*.parquet"))):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray daemons it started
    proc.wait()
    partial = read_table(store, "samples").num_rows
    assert 0 < partial < 60, "the kill should land mid-run"
    resume("r", store, progress=False, no_ray=True)
    assert _pairs(store) == _pairs(reference)


def test_more_gpus_than_exist_is_a_one_line_error(ray_cluster, capsys, tmp_path):
    with pytest.raises(HarnessError, match="needs 2 GPU"):
        plan_replicas("2", {"CPU": 2.0, "GPU": 1.0}, gpus_per_replica=1, cpus_per_replica=1)
    code = main(["run", "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "1",
                 "--device", "cuda", "--store", str(tmp_path / "s"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "no usable CUDA device" in err and err.count("\n") == 1  # checked in prepare(), before Ray
    assert not (tmp_path / "s" / "samples").exists()
