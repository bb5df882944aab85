"""Replicas lost at any moment (loading, idle, generating), models that cannot load, and a
private cluster that must die with its driver.

Kills are made deterministic with the worker's fault hook (``HARNESS_TEST_FAULT_DIR``,
``HARNESS_TEST_FAULT_PAUSE``): a replica touches ``<moment>-<pid>`` and pauses, and a
killer thread SIGKILLs that pid. Only processes this module started are ever killed.

The kill tests and the cannot-load test run under every engine in ``ENGINES``: vLLM replicas
are Ray actors holding an in-process vLLM engine (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) on the
head-size-32 tiny Llama of ``vllm_model.py``; their expected keys come from the run's plan.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from harness.cli import main
from harness.run.config import RunConfig
from harness.distributed.pool import ReplicaPool
from harness.distributed.reaper import marked_pids
from harness.run.plan import prepare
from harness.run.runner import execute
from harness.store import Store, read_table

sys.path.insert(0, str(Path(__file__).parent))
from vllm_model import build_vllm_tiny  # noqa: E402

ENGINES = ["hf", "vllm"]
"""Every generation engine the harness has; each kill test runs under each of them."""
ENGINE_FLAGS = {"hf": {}, "vllm": {"engine": "vllm"}}
"""Run flags per engine; the vllm runs also take the head-size-32 model (``vtiny``)."""

FLAGS = {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 4, "max_new_tokens": 4, "batch_size": 1,
         "replicas": 2, "run_id": "r"}


def _keys(store) -> list[str]:
    return sorted(read_table(store, "samples").column("key").to_pylist())


@pytest.fixture(scope="module")
def vtiny(tiny_model_dir, harness_home) -> Path:
    return build_vllm_tiny(tiny_model_dir, harness_home / "vllm-tiny")


def _flags(engine: str, request) -> dict:
    flags = FLAGS | ENGINE_FLAGS[engine]
    if engine == "vllm":
        flags["model"] = str(request.getfixturevalue("vtiny"))
    return flags


@pytest.fixture(scope="module")
def reference_keys(tmp_path_factory, tiny_model_dir):
    """Per engine: the keys of an undisturbed run (HF, generated in-process) or of its plan (vLLM)."""
    store = tmp_path_factory.mktemp("reference")
    execute(RunConfig.from_sources(None, FLAGS | {"store": str(store), "no_ray": True, "replicas": "1"}), progress=False)
    return {"hf": _keys(store)}


def _reference(engine: str, reference_keys, request, tmp_path) -> list[str]:
    """The keys a run must commit, each once (vLLM: the plan's keys; its rows carry exactly these)."""
    if engine not in reference_keys:
        cfg = RunConfig.from_sources(None, _flags(engine, request) | {"store": str(tmp_path / "plan")})
        reference_keys[engine] = sorted(prepare(cfg).keys.values())
        assert len(reference_keys[engine]) == len(reference_keys["hf"])
    return reference_keys[engine]


class Killer(threading.Thread):
    """SIGKILLs the first ``limit`` workers that announce ``moment`` in ``hook_dir``."""

    def __init__(self, hook_dir, moment: str, limit: int = 1):
        super().__init__(daemon=True)
        self.hook_dir, self.moment, self.limit = hook_dir, moment, limit
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and len(self.killed) < self.limit:
            for f in sorted(self.hook_dir.glob(f"{self.moment}-*")):
                pid = int(f.name.rsplit("-", 1)[1])
                if pid not in self.killed:
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
                    break
            time.sleep(0.05)


@pytest.fixture
def fault_hook(tmp_path, monkeypatch):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    monkeypatch.setenv("HARNESS_TEST_FAULT_DIR", str(hook_dir))
    return hook_dir


MOMENTS = ["loading", "idle", "generating"]


@pytest.mark.parametrize(("engine", "moment"), [pytest.param(e, m, id=f"{m}-{e}") for e in ENGINES for m in MOMENTS])
def test_replica_killed_at_any_moment_every_row_once(moment, engine, ray_cluster, reference_keys, fault_hook,
                                                    tmp_path, monkeypatch, request):
    want = _reference(engine, reference_keys, request, tmp_path)
    killer = None
    if moment == "idle":  # both replicas loaded, no shard sent yet: kill one of them
        ready = ReplicaPool.wait_ready
        idle_killed = []

        def wait_then_kill(self):
            infos = ready(self)
            if not idle_killed:  # the last replica: the pool finds it dead when it sends it a shard
                os.kill(infos[-1]["pid"], signal.SIGKILL)
                idle_killed.append(infos[-1]["pid"])
            return infos

        monkeypatch.setattr(ReplicaPool, "wait_ready", wait_then_kill)
    else:
        monkeypatch.setenv("HARNESS_TEST_FAULT_PAUSE", f"{moment}=1.5")
        killer = Killer(fault_hook, moment)
        killer.start()
    store = tmp_path / "store"
    execute(RunConfig.from_sources(None, _flags(engine, request) | {"store": str(store)}), progress=False)
    if killer:
        killer.stop.set()
        assert len(killer.killed) == 1
    else:
        assert len(idle_killed) == 1
    assert _keys(store) == want  # every (prompt, variant) row exactly once
    assert set(read_table(store, "samples").column("engine").to_pylist()) == {engine}
    timings = Store(store).read_manifest("r")["timings_json"]
    assert timings["replaced_replicas"] >= 1
    assert timings["dropped_replicas"] == 0


def test_replica_that_always_dies_while_loading_is_one_line_exit_1(ray_cluster, fault_hook, tmp_path, monkeypatch,
                                                                  capsys):
    """Like an out-of-memory kill at start-up: bounded restarts, then one line and exit 1.

    HF only: the kill lands at the ``loading`` hook, before either engine is built, so a vLLM
    run takes the same path (the ``loading-vllm`` case above kills a vLLM replica there too)."""
    monkeypatch.setenv("HARNESS_TEST_FAULT_PAUSE", "loading=2")
    killer = Killer(fault_hook, "loading", limit=1000)
    killer.start()
    try:
        code = main(["run", "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "2",
                     "--replicas", "1", "--store", str(tmp_path / "s"), "-q"])
    finally:
        killer.stop.set()
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "tiny-random-llama" in err and "died 4 times while loading" in err and "worker process died" in err, err
    assert len(killer.killed) == 4  # the first start and 3 restarts


CANNOT_LOAD = {"hf": "model tiny-random-llama: cannot load the model: SafetensorError",
               "vllm": "model broken-model: cannot load the model: SafetensorError"}


@pytest.mark.parametrize("engine", ENGINES)
def test_model_that_cannot_load_is_one_line_exit_2(engine, ray_cluster, tiny_model_dir, tmp_path, capsys, request):
    broken = tmp_path / "broken-model"
    shutil.copytree(request.getfixturevalue("vtiny") if engine == "vllm" else tiny_model_dir, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    capsys.readouterr()  # building the vLLM model's files may print progress bars
    code = main(["run", "--model", str(broken), "--engine", engine, "--tasks", "instructions-mini", "--limit", "2",
                 "--replicas", "2", "--store", str(tmp_path / "s"), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert CANNOT_LOAD[engine] in err, err
    assert not list((tmp_path / "s").glob("samples/**/*.parquet"))


DRIVER = """
import sys, time
from harness.distributed.cluster import connect
import ray
connect(None, 1)
ray.get(ray.remote(num_cpus=0.5)(lambda: 1).remote())  # a worker process too
print("up", flush=True)
time.sleep(600)
"""


def test_private_cluster_dies_with_its_sigkilled_driver(tmp_path):
    mark = uuid.uuid4().hex  # every process the driver starts inherits it; only they are ever killed
    env = os.environ | {"HARNESS_TEST_ORPHAN_MARK": mark, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().strip() == b"up"
        before = marked_pids(mark, env="HARNESS_TEST_ORPHAN_MARK")
        assert len(before) >= 5  # driver, reaper, gcs, raylet, agents, worker ...
        proc.send_signal(signal.SIGKILL)  # the driver alone, not its process group
        proc.wait()
        deadline = time.monotonic() + 20
        while marked_pids(mark, env="HARNESS_TEST_ORPHAN_MARK") and time.monotonic() < deadline:
            time.sleep(0.2)
        left = marked_pids(mark, env="HARNESS_TEST_ORPHAN_MARK")
        names = [open(f"/proc/{p}/cmdline", "rb").read()[:60] for p in left if os.path.exists(f"/proc/{p}")]
        assert not left, f"processes of the killed driver's cluster still alive: {names}"
    finally:
        for pid in marked_pids(mark, env="HARNESS_TEST_ORPHAN_MARK"):  # ours only, should there be any
            os.kill(pid, signal.SIGKILL)


def _toy_pool(ray, **kwargs) -> ReplicaPool:
    @ray.remote(num_cpus=0.1, max_restarts=0)
    class Toy:  # a replica without a model: square numbers, die on request
        def info(self):
            return {"pid": os.getpid()}

        def work(self, shard):
            if shard.die:
                os._exit(1)
            return {"shard_id": shard.shard_id, "rows": [shard.shard_id ** 2]}

    return ReplicaPool(lambda i: Toy.remote(), 2, backoff_s=0.01, model="toy", **kwargs)


class _Shard:
    def __init__(self, shard_id, die=False):
        self.shard_id, self.die = shard_id, die


def test_pool_shrinks_when_the_cluster_has_no_room_for_a_replacement(ray_cluster, caplog):
    pool = _toy_pool(ray_cluster, fits=lambda n: n <= 1)  # as after a node loss: one replica fits
    pool.wait_ready()
    died = []

    def submit(worker, shard):
        if shard.shard_id == 3 and not died:  # the first attempt kills its replica
            died.append(shard)
            return worker.work.remote(_Shard(3, die=True))
        return worker.work.remote(shard)

    results = {}
    pool.map([_Shard(n) for n in range(8)], submit, lambda r: results.__setitem__(r["shard_id"], r["rows"]))
    pool.shutdown()
    assert results == {n: [n * n] for n in range(8)}
    assert pool.dropped == 1 and pool.replaced == 0 and len(pool.workers) == 1
    assert "no room left" in caplog.text

