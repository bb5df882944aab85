"""``harness submit`` / ``harness jobs`` against a real loopback Ray head, and the cluster/ configs.

The head is ``cluster/local-head.sh start`` (``ray start --head --block`` on 127.0.0.1 only, its own
``--temp-dir`` and ports, 2 CPUs) with **token auth on**: ``RAY_AUTH_MODE=token`` and a random
``RAY_AUTH_TOKEN`` exist in the head's environment only. Token auth is what Ray 2.60 turns on for
new clusters, so this exercises the path users hit: the client sends the token from
``RAY_AUTH_TOKEN`` as a header, the job's driver inherits the cluster's token, a missing or wrong
token is a one-line error, and the token never shows up in the job's info, logs or the store.
The test process never sets ``RAY_AUTH_MODE`` (other tests' local ``ray.init`` stay untouched).
The module ends by stopping only that head (never ``ray stop``) and checking its processes are gone.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.distributed import jobs as J

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "cluster" / "local-head.sh"
BIN = Path(sys.executable).parent  # the job's `python` must be this interpreter (same packages)
RAY = str(BIN / "ray") if (BIN / "ray").exists() else shutil.which("ray") or ""
STATE: dict = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _marked_pids(head_dir: str) -> list[int]:
    """Live processes that inherited the head's marker HARNESS_LOCAL_HEAD=<dir>."""
    marker = f"HARNESS_LOCAL_HEAD={head_dir}".encode()
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if marker in (p / "environ").read_bytes().split(b"\0") and _alive(int(p.name)):
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def _head_cmd(verb: str, head: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), verb, "--dir", head["dir"], "--num-cpus", "2", "--object-store-mb", "256"]
                          if verb == "start" else [str(SCRIPT), verb, "--dir", head["dir"]],
                          env=head["env"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def head():
    if not RAY or not os.access(RAY, os.X_OK) or not shutil.which("setsid") or not Path("/proc/self/environ").exists():
        pytest.skip("needs the `ray` CLI, setsid and /proc (Linux)")
    head_dir = tempfile.mkdtemp(prefix="hj", dir="/tmp")  # short: Ray's unix socket paths must stay < 108 chars
    token = secrets.token_hex(16)
    port, dash = _free_port(), _free_port()
    env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "HEAD_PORT": str(port),
                        "DASHBOARD_PORT": str(dash), "RAY": RAY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    info = {"dir": head_dir, "env": env, "token": token, "url": f"http://127.0.0.1:{dash}", "dash": dash}
    started = _head_cmd("start", info)
    assert started.returncode == 0, started.stdout + started.stderr
    info["pid"] = int(Path(head_dir, "head.pid").read_text())
    yield info
    _head_cmd("stop", info)  # a no-op when test_stop_head_kills_only_its_processes already stopped it
    shutil.rmtree(head_dir, ignore_errors=True)


@pytest.fixture
def client_token(head, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", head["token"])  # the client side only; restored after each test
    return head["token"]


# ----------------------------------------------------------------------------------------------- end to end

def test_submit_wait_runs_harness_on_the_cluster(head, client_token, tiny_model_dir, tmp_path_factory, capsys):
    store = tmp_path_factory.mktemp("jobstore")
    model_files = {p: p.stat().st_mtime_ns for p in Path(tiny_model_dir).rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    rc = main(["submit", "--address", head["url"], "--wait", "--working-dir", str(REPO), "-q",
               "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "2",
               "--max-new-tokens", "8", "--store", str(store)])
    out = capsys.readouterr()
    assert rc == 0, out.out[-3000:] + out.err[-2000:]
    job_id = re.search(r"submitted job (\S+)", out.out).group(1)
    assert f"harness jobs logs {job_id} --follow --address {head['url']}" in out.out
    assert f"job {job_id}: SUCCEEDED" in out.out
    assert "Connected to Ray cluster" in out.out  # the driver joined the head; no private cluster
    assert {p: p.stat().st_mtime_ns for p in model_files} == model_files  # same HARNESS_HOME: no rebuild
    STATE.update(job_id=job_id, store=store, seconds=time.perf_counter() - t0, out=out.out + out.err)


def test_query_reads_the_jobs_rows(head, capsys):
    assert main(["query", "--store", str(STATE["store"]), "--format", "json",
                 "select variant, count(*) as n from samples group by variant order by variant"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert rows == [{"variant": "none", "n": 2}, {"variant": "rules", "n": 2}]


def test_jobs_list_status_logs(head, client_token, capsys):
    job_id, url = STATE["job_id"], head["url"]
    assert main(["jobs", "list", "--address", url]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(job_id))
    assert "SUCCEEDED" in line and "harness.cli run" in line
    assert main(["jobs", "status", job_id, "--address", url]) == 0
    status = capsys.readouterr().out
    assert status.startswith(f"{job_id}: SUCCEEDED") and "--store" in status
    assert main(["jobs", "logs", job_id, "--address", url]) == 0
    assert "4 sample rows" in capsys.readouterr().out
    assert main(["jobs", "status", "raysubmit_nope", "--address", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "harness jobs list" in err


def test_jobs_stop_a_running_job(head, client_token, capsys):
    with J.job_server(head["url"]) as client:
        job_id = client.submit_job(entrypoint="sleep 60")
        deadline = time.monotonic() + 20
        while str(client.get_job_status(job_id)) == "PENDING" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert str(client.get_job_status(job_id)) == "RUNNING"
    assert main(["jobs", "stop", job_id, "--address", head["url"], "--timeout", "20"]) == 0
    assert f"job {job_id}: STOPPED" in capsys.readouterr().out


def test_auth_errors_are_one_line(head, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token left by earlier Ray sessions
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert main(["jobs", "list", "--address", head["url"]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "export RAY_AUTH_TOKEN" in err
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    assert main(["submit", "--address", head["url"], "--tasks", "instructions-mini", "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rejected the token from RAY_AUTH_TOKEN" in err
    assert "not-the-token" not in err


def test_token_never_leaves_the_client(head, client_token):
    token = client_token
    with J.job_server(head["url"]) as client:
        info = client.get_job_info(STATE["job_id"])
        logs = client.get_job_logs(STATE["job_id"])
    shipped = json.dumps({"runtime_env": info.runtime_env, "entrypoint": info.entrypoint, "meta": info.metadata})
    assert "HARNESS_HOME" in shipped and token not in shipped and "RAY_AUTH" not in shipped
    assert token not in logs and token not in STATE["out"]
    for f in Path(STATE["store"]).rglob("*"):
        assert not f.is_file() or token.encode() not in f.read_bytes(), f


def test_stop_head_kills_only_its_processes(head):
    assert _marked_pids(head["dir"]), "the head's processes carry the marker"
    t0 = time.perf_counter()
    stopped = _head_cmd("stop", head)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert _marked_pids(head["dir"]) == []
    assert not _alive(head["pid"])  # `ray start --block` itself
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", head["dash"])) != 0  # the job server is gone
    assert time.perf_counter() - t0 < 30


# ------------------------------------------------------------------------------------------- no cluster

def test_bad_config_exits_2_before_contacting_a_cluster(tmp_path, capsys):
    dead = f"http://127.0.0.1:{_free_port()}"
    assert main(["submit", "--address", dead, "--tasks", "instructions-mini", "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert "limit" in err and "cannot reach" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [instructions-mini]\nlimt: 3\n")
    assert main(["submit", str(bad), "--address", dead]) == 2
    assert "limt: unknown setting" in capsys.readouterr().err


def test_unreachable_job_server_is_one_line(capsys):
    assert main(["jobs", "list", "--address", f"127.0.0.1:{_free_port()}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the Ray job server" in err


def test_dry_run_shows_entrypoint_and_runtime_env(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("tasks: [instructions-mini]\nlimit: 2\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "sekrit-token")
    monkeypatch.setenv("HARNESS_HOME", "/data/harness-home")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["submit", "run.yaml", "--address", "http://127.0.0.1:8265", "--model", "tiny-random-llama",
                 "--env", "EXTRA=1", "--replicas", "auto", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sekrit-token" not in out
    entry = shlex.split(re.search(r"entrypoint: (.*)", out).group(1))
    assert entry[:5] == ["python", "-m", "harness.cli", "run", "run.yaml"]
    assert "--address" not in entry and entry[entry.index("--replicas") + 1] == "auto"
    assert entry[entry.index("--store") + 1] == str(tmp_path / "results")  # loopback head: absolute path
    env = eval(re.search(r"runtime_env: (.*)", out).group(1))  # noqa: S307 - our own repr
    assert env["working_dir"] == str(tmp_path)
    assert env["env_vars"].items() >= {"HARNESS_HOME": "/data/harness-home", "HF_HUB_OFFLINE": "1", "EXTRA": "1"}.items()
    assert set(env["env_vars"]) <= set(J.PASS_ENV) | {"EXTRA"}
    assert {".git", ".venv", "/results", ".cache", "__pycache__"} <= set(env["excludes"]) and "pip" not in env
    assert main(["submit", "run.yaml", "--env", "RAY_AUTH_TOKEN", "--dry-run"]) == 2
    outside = tmp_path.parent / "outside.yaml"
    outside.write_text("tasks: [instructions-mini]\n")
    assert main(["submit", str(outside), "--dry-run"]) == 2
    assert "inside the shipped working dir" in capsys.readouterr().err


def test_working_dir_package_leaves_out_excluded_paths(tmp_path):
    from ray._private.runtime_env.packaging import create_package

    wd = tmp_path / "wd"
    for rel in (".git/HEAD", ".venv/bin/python", "results/samples/a.parquet", ".cache/x", "harness/__pycache__/a.pyc",
                "harness/cli.py", "tasks/results/keep.yaml", "pyproject.toml"):
        (wd / rel).parent.mkdir(parents=True, exist_ok=True)
        (wd / rel).write_text("x")
    zip_path = tmp_path / "pkg.zip"
    create_package(str(wd), zip_path, include_gitignore=False,
                   excludes=J.build_runtime_env(wd)["excludes"])
    names = {n.rstrip("/") for n in zipfile.ZipFile(zip_path).namelist()}
    assert {"harness/cli.py", "pyproject.toml", "tasks/results/keep.yaml"} <= names
    assert not [n for n in names if n.split("/")[0] in (".git", ".venv", "results", ".cache") or "__pycache__" in n]


def test_address_and_env_helpers(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # inside a job: the GCS address, not a URL
    assert J.resolve_address(None) == J.DEFAULT_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265/")
    assert J.resolve_address(None) == "http://head:8265"
    assert J.resolve_address("head:8265") == "http://head:8265"
    with pytest.raises(J.HarnessError):
        J.resolve_address("ray://head:10001")
    with pytest.raises(J.HarnessError):
        J.passthrough_env(["RAY_AUTH_MODE=token"])


# ------------------------------------------------------------------------------------------- cluster/ files

def test_cluster_files_are_valid_yaml():
    for f in sorted((REPO / "cluster").glob("*.yaml")):
        assert list(yaml.safe_load_all(f.read_text())), f
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "gcp-gpu.yaml"])
def test_cluster_launcher_configs_pass_rays_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / "cluster" / name).read_text())
    validate_config(prepare_config(raw))  # fills the provider's defaults, then checks ray-schema.json
    types = raw["available_node_types"]
    assert types[raw["head_node_type"]]["resources"]["GPU"] == 0
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] >= 1 for t in gpu)
    assert any('pip install -e ".[gpu]"' in c for c in raw["setup_commands"])
    assert all("RAY_AUTH_MODE=token" in c for c in raw["head_start_ray_commands"][1:] + raw["worker_start_ray_commands"][1:])
    assert "0.0.0.0" not in " ".join(raw["head_start_ray_commands"])


def test_kuberay_rayjob_manifest():
    from ray.runtime_env import RuntimeEnv

    docs = list(yaml.safe_load_all((REPO / "cluster" / "kuberay-rayjob.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    RuntimeEnv(**yaml.safe_load(spec["runtimeEnvYAML"]))
    argv = shlex.split(spec["entrypoint"])
    assert argv[:4] == ["python", "-m", "harness.cli", "run"]
    from harness.cli import build_parser
    from harness.run.config import RunConfig

    args = build_parser().parse_args(argv[3:])
    RunConfig.from_sources(args.config, {k: v for k, v in vars(args).items() if k not in ("func", "config")})
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token"
    tag = re.search(r"rayproject/ray:([\d.]+)-", (REPO / "cluster" / "Dockerfile").read_text()).group(1)
    assert cluster["rayVersion"] == tag
    for group in cluster["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] >= 1
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    volumes = cluster["headGroupSpec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == claim


def test_runtime_env_yaml_matches_submit():
    from ray.runtime_env import RuntimeEnv

    raw = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    RuntimeEnv(**raw)
    assert raw["excludes"] == list(J.EXCLUDES)
    assert not [k for k in raw.get("env_vars", {}) if k.startswith("RAY_AUTH")]
