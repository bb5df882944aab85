"""End a private Ray cluster's processes when the driver that started it dies.

``ray.init()`` starting a local cluster fate-shares the GCS and the raylet with the driver,
but the raylet's children (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) notice the
raylet's death, then block for up to 60 s trying to report it to the GCS that is already
gone (Ray 2.60, ``process_watcher.report_raylet_error_logs``). After a driver SIGKILL they
were found alive a minute later.

:func:`start` runs a tiny watchdog (``python -I reaper.py MARKER``) in its own session. It
blocks on a pipe from the driver and, when the pipe closes (normal exit or SIGKILL alike),
SIGKILLs every process of that cluster, found two ways: the environment marker
``HARNESS_RAY_CLUSTER=MARKER`` that every process inherits from the driver at ``ray.init``,
and the cluster's session directory (the driver sends it with :func:`tell`) in a process's
command line or open files. The second is needed because ``setproctitle`` (the agents'
``ray::...`` titles) can overwrite the start of a process's environment block. It never
touches other clusters' processes, and never runs ``ray stop``.

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


def _other_pids():
    """Pids of the live processes in /proc, this one excluded."""
    me = os.getpid()
    return (int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != me)


def marked_pids(marker: str, env: str = MARKER_ENV) -> list[int]:
    """Pids of live processes whose environment has ``env=marker`` (this process excluded)."""
    needle = f"{env}={marker}".encode()
    pids = []
    for pid in _other_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(pid)
        except OSError:  # gone, or not ours to read
            continue
    return pids


def pids_using(dirs: list[str]) -> list[int]:
    """Pids of live processes (this one excluded) with one of ``dirs`` in their command line or open files."""
    needles = [d.rstrip("/") + "/" for d in dirs if d]
    if not needles:
        return []
    pids = []
    for pid in _other_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            targets = [cmdline]
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    targets.append(os.readlink(f"/proc/{pid}/fd/{fd}") + "/")
                except OSError:
                    continue
        except OSError:
            continue
        if any(n in t for t in targets for n in needles):
            pids.append(pid)
    return pids


def reap(marker: str, dirs: list[str] = (), grace_s: float = 10.0, settle_s: float = 2.0, spare: int = 0) -> int:
    """SIGKILL the cluster's processes until none has been seen for ``settle_s`` (at most ``grace_s``).

    ``spare``: a pid never to kill (the driver, should it still be exiting after 30 s).
    """
    killed: set[int] = set()
    start = time.monotonic()
    quiet_since = start
    while time.monotonic() - start < grace_s:
        pids = sorted((set(marked_pids(marker)) | set(pids_using(list(dirs)))) - {spare})
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        live = [p for p in pids if _alive(p)]
        _log(f"scan: marked {pids}, still alive {live}")
        if live:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle_s:
            break
        time.sleep(0.2)
    return len(killed)


def _alive(pid: int) -> bool:
    """Not gone and not a zombie (a zombie's environ reads empty, so it is no longer 'marked')."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except (OSError, IndexError):
        return True


def _log(line: str) -> None:
    path = os.environ.get("HARNESS_REAPER_LOG")  # debugging aid: where the watchdog says what it did
    if path:
        with open(path, "a") as f:
            f.write(f"{time.time():.2f} {os.getpid()} {line}\n")


def tell(watchdog: subprocess.Popen, session_dir: str) -> None:
    """Send the cluster's session directory to its watchdog."""
    watchdog.stdin.write(session_dir.encode() + b"\n")
    watchdog.stdin.flush()


def start(marker: str) -> subprocess.Popen:
    """Start the watchdog for ``marker``; the driver keeps the returned handle (its pipe) open."""
    env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}
    # run by path in isolated mode: the watchdog imports nothing from harness, so it needs no sys.path
    return subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), marker], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)


def main(argv: list[str]) -> int:
    marker = argv[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the driver's business
    driver = os.getppid()
    _log(f"watching {marker} for driver {driver}")
    dirs = [line.decode().strip() for line in sys.stdin.buffer]  # ends at EOF: the driver has exited or was killed
    deadline = time.monotonic() + 30  # a normal exit closes the pipe first, then runs ray.shutdown()
    while _alive(driver) and os.getppid() == driver and time.monotonic() < deadline:
        time.sleep(0.1)
    _log(f"driver gone; session dirs {dirs}")
    _log(f"killed {reap(marker, dirs, spare=driver)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
