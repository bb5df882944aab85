"""Run ``harness run`` on a Ray cluster as a Ray job, and follow, list and stop those jobs.

This is the client side of ``harness submit`` and ``harness jobs``: it talks to the job
server on the head node (the dashboard, port 8265) through
:class:`ray.job_submission.JobSubmissionClient`. The job ships the working directory
(the repo, without ``.git``, virtualenvs, results and caches) and runs
``python -m harness.cli run ...`` there; inside the job ``harness run`` joins the cluster
that runs it (see :func:`harness.distributed.cluster.connect`).

Token auth (Ray >= 2.52 turns it on for new clusters): the token is read from
``RAY_AUTH_TOKEN``, else the file named by ``RAY_AUTH_TOKEN_PATH``, else, when
``RAY_AUTH_MODE=token``, Ray's default file ``~/.ray/auth_token``. It is sent as an HTTP
header only: never printed, logged, put in the runtime env, the entrypoint or the store.

Example:
    >>> env = build_runtime_env(".", env={"HF_HUB_OFFLINE": "1"})
    >>> env["working_dir"], env["env_vars"], ".git" in env["excludes"]
    ('.', {'HF_HUB_OFFLINE': '1'}, True)
    >>> resolve_address("10.0.0.5:8265")
    'http://10.0.0.5:8265'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from harness.errors import HarnessError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Patterns in .gitignore syntax, relative to the working dir ("/x" = only at its top).
EXCLUDES = (".git", ".venv", "venv", "/results", ".cache", "__pycache__", "*.pyc", ".pytest_cache",
            "*.egg-info", "/build", ".ipynb_checkpoints")
# Passed to the job when set here: where models live, offline switches, task and NLTK data.
PASS_ENV = ("HARNESS_HOME", "HARNESS_TASKS_PATH", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
            "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "NLTK_DATA", "TOKENIZERS_PARALLELISM")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def resolve_address(address: str | None = None) -> str:
    """The job server URL: ``address``, else ``$RAY_API_SERVER_ADDRESS``, else an http ``$RAY_ADDRESS``.

    Falls back to :data:`DEFAULT_ADDRESS`; ``HOST:PORT`` means ``http://HOST:PORT``.

    >>> resolve_address("http://head:8265/")
    'http://head:8265'
    """
    if not address:
        address = os.environ.get("RAY_API_SERVER_ADDRESS")
    if not address and os.environ.get("RAY_ADDRESS", "").startswith(("http://", "https://")):
        address = os.environ["RAY_ADDRESS"]  # inside a job RAY_ADDRESS is the GCS address: not ours
    address = (address or DEFAULT_ADDRESS).rstrip("/")
    if address.startswith("ray://"):
        raise HarnessError(f"--address {address}: give the job server (dashboard) URL, e.g. http://HEAD:8265")
    if "://" not in address:
        address = "http://" + address
    return address


def is_loopback(address: str) -> bool:
    """True when the job server (and so the job) runs on this machine.

    >>> is_loopback("http://127.0.0.1:8265"), is_loopback("http://10.1.2.3:8265")
    (True, False)
    """
    return (urlparse(address).hostname or "") in LOOPBACK


def _token() -> tuple[str | None, str]:
    """(token, where it came from). The token itself must never leave this module's headers."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise HarnessError(f"RAY_AUTH_TOKEN_PATH={path}: no such file")
        return p.read_text().strip(), "RAY_AUTH_TOKEN_PATH"
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        p = Path.home() / ".ray" / "auth_token"
        if p.is_file():
            return p.read_text().strip(), "~/.ray/auth_token"
    return None, "nowhere"


def _auth_error(address: str, exc: Exception, source: str) -> HarnessError:
    text = str(getattr(exc, "message", "") or exc)
    if source != "nowhere" and ("Authentication failed" in text or "403" in text):
        return HarnessError(f"{address}: the Ray cluster rejected the token from {source}; export the head's "
                            "token (`ray get-auth-token` on the head) as RAY_AUTH_TOKEN")
    return HarnessError(f"{address}: the Ray cluster requires token auth; export RAY_AUTH_TOKEN=<token> (print it "
                        "with `ray get-auth-token` on the head) or RAY_AUTH_TOKEN_PATH=<file>")


def _quiet_ray_client() -> None:
    """Ray's client logs every upload at INFO; keep them for ``harness -v`` only."""
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        return
    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk",
                 "ray._private.runtime_env.packaging", "ray._private.runtime_env.working_dir"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def job_server(address: str) -> Iterator:
    """A connected :class:`JobSubmissionClient`; its errors become one-line :class:`HarnessError`.

    >>> with job_server("http://127.0.0.1:9") as client:   # doctest: +SKIP
    ...     client.list_jobs()
    """
    try:
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:  # pragma: no cover - ray[default] is a dependency
        raise HarnessError(f"harness submit/jobs need ray[default]: pip install 'ray[default]' ({exc})") from None
    _quiet_ray_client()
    token, source = _token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        client = JobSubmissionClient(address, headers=headers)
        yield client
    except AuthenticationError as exc:
        raise _auth_error(address, exc, source) from None
    except HarnessError:
        raise
    except OSError as exc:  # ConnectionError, requests' connection errors, aiohttp's
        raise HarnessError(f"cannot reach the Ray job server at {address} ({type(exc).__name__}); is the head "
                           "running? (cluster/local-head.sh start, or `ray dashboard CLUSTER.yaml` for a cloud "
                           "cluster)") from None
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "does not exist" in first or "status code 404" in first:
            raise HarnessError(f"{address}: {first} (see `harness jobs list --address {address}`)") from None
        raise HarnessError(f"{address}: {first}") from None


def passthrough_env(extra: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Env vars for the job: :data:`PASS_ENV` set here, plus ``NAME`` or ``NAME=VALUE`` items.

    >>> passthrough_env(["HARNESS_HOME=/data/h"])["HARNESS_HOME"]
    '/data/h'
    """
    env = {k: os.environ[k] for k in PASS_ENV if os.environ.get(k)}
    for item in extra:
        name, eq, value = item.partition("=")
        if not name or not name.replace("_", "").isalnum():
            raise HarnessError(f"--env {item!r}: expected NAME or NAME=VALUE")
        if name.upper().startswith("RAY_AUTH"):
            raise HarnessError(f"--env {name}: Ray auth settings are never shipped in a job; the cluster's "
                               "nodes already hold their token")
        if not eq:
            if name not in os.environ:
                raise HarnessError(f"--env {name}: not set in this shell (use --env {name}=VALUE)")
            value = os.environ[name]
        env[name] = value
    return env


def build_runtime_env(working_dir: str | Path, env: dict[str, str] | None = None, pip: list[str] | None = None,
                      excludes: list[str] | tuple[str, ...] = ()) -> dict:
    """The job's runtime env: the working dir minus :data:`EXCLUDES`, env vars, optional pip.

    >>> build_runtime_env("/repo", pip=["vllm"])["pip"]
    ['vllm']
    """
    runtime_env: dict = {"working_dir": str(working_dir), "excludes": list(dict.fromkeys([*EXCLUDES, *excludes]))}
    if env:
        runtime_env["env_vars"] = dict(env)
    if pip:
        runtime_env["pip"] = list(pip)
    return runtime_env


def ship_path(value: str, working_dir: Path) -> tuple[str, bool]:
    """A path from the command line as the job sees it: (path, shipped inside the working dir).

    Relative paths are read from the current directory here and, when they lie inside the
    working dir, rewritten relative to it (the job's current directory).

    >>> ship_path("/elsewhere/p.jsonl", Path("/repo"))
    ('/elsewhere/p.jsonl', False)
    """
    p = Path(value).expanduser()
    absolute = p if p.is_absolute() else Path.cwd() / p
    try:
        return absolute.resolve().relative_to(working_dir.resolve()).as_posix(), True
    except ValueError:
        return str(absolute.resolve()) if not p.is_absolute() else value, False


def submit(client, entrypoint: str, runtime_env: dict, *, submission_id: str | None = None,
           metadata: dict[str, str] | None = None) -> str:
    """Submit ``entrypoint``; returns the submission id (``raysubmit_...`` unless given)."""
    return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id,
                             metadata=metadata or None)


def wait_until_done(client, job_id: str, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
    """Poll the job's status until it ends (or ``timeout_s``); returns the last status."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job_id))
        if status in TERMINAL or (deadline is not None and time.monotonic() > deadline):
            return status
        time.sleep(poll_s)


def follow(client, job_id: str, out=None) -> str:
    """Stream the job's logs to ``out`` (stdout) until it ends; returns its final status."""
    out = out or sys.stdout

    async def _tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    try:
        asyncio.run(_tail())
    except RuntimeError as exc:  # the log stream closed early; the job may still be running
        print(f"harness: log stream ended early ({str(exc).splitlines()[0]}); waiting for the job",
              file=sys.stderr)
    return wait_until_done(client, job_id)


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _duration(info) -> str:
    if not info.start_time:
        return "-"
    end = info.end_time or time.time() * 1000
    return f"{(end - info.start_time) / 1000:.0f}s"


def format_jobs(jobs: list) -> str:
    """One line per job, oldest first: id, status, start, duration, entrypoint."""
    rows = [("SUBMISSION_ID", "STATUS", "STARTED", "TOOK", "ENTRYPOINT")]
    for j in sorted(jobs, key=lambda j: j.start_time or 0):
        entry = j.entrypoint if len(j.entrypoint) <= 70 else j.entrypoint[:67] + "..."
        rows.append((j.submission_id or j.job_id or "-", str(j.status), _when(j.start_time), _duration(j), entry))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows)


def format_status(info) -> str:
    """A few lines about one job: status and message, times, entrypoint."""
    lines = [f"{info.submission_id or info.job_id}: {info.status}" + (f" ({info.message})" if info.message else ""),
             f"  started {_when(info.start_time)}, ended {_when(info.end_time)}, took {_duration(info)}",
             f"  entrypoint: {info.entrypoint}"]
    if getattr(info, "driver_exit_code", None) not in (None, 0):
        lines.append(f"  driver exit code: {info.driver_exit_code}")
    return "\n".join(lines)
