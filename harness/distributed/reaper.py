"""End a private Ray cluster's processes when the driver that started it dies.

``ray.init()`` starting a local cluster fate-shares the GCS and the raylet with the driver,
but the raylet's children (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) notice the
raylet's death, then block for up to 60 s trying to report it to the GCS that is already
gone (Ray 2.60, ``process_watcher.report_raylet_error_logs``). After a driver SIGKILL they
were found alive a minute later.

:func:`start` runs a tiny watchdog (``python -I reaper.py MARKER``) in its
own session. Every process of the private cluster inherits ``HARNESS_RAY_CLUSTER=MARKER``
from the driver's environment at ``ray.init``; the watchdog blocks on a pipe from the driver
and, when it closes (normal exit or SIGKILL alike), SIGKILLs every process still carrying
that marker. It never touches processes of other clusters, and never runs ``ray stop``.

Example:
    >>> marker = new_marker()
    >>> marker.startswith("harness-")
    True
    >>> marked_pids(marker)          # nothing carries a fresh marker
    []
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

MARKER_ENV = "HARNESS_RAY_CLUSTER"


def new_marker() -> str:
    """A marker unique to one private cluster."""
    return f"harness-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def marked_pids(marker: str, env: str = MARKER_ENV) -> list[int]:
    """Pids of live processes whose environment has ``env=marker`` (this process excluded)."""
    needle = f"{env}={marker}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def reap(marker: str, grace_s: float = 10.0) -> int:
    """SIGKILL every marked process until none is left (or ``grace_s`` passes); returns how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        pids = [p for p in marked_pids(marker) if not _is_zombie(p)]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        time.sleep(0.2)
    return len(killed)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def start(marker: str) -> subprocess.Popen:
    """Start the watchdog for ``marker``; the driver keeps the returned handle (its pipe) open."""
    env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}
    # run by path in isolated mode: the watchdog imports nothing from harness, so it needs no sys.path
    return subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), marker], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)


def main(argv: list[str]) -> int:
    marker = argv[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the driver's business
    sys.stdin.buffer.read()  # returns at EOF: the driver has exited or was killed
    reap(marker)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
