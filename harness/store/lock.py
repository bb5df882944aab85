"""One writer per run: an exclusive lock file under the store, naming its holder.

``harness run`` and ``harness resume`` hold :class:`RunLock` for ``STORE/.locks/<id>.lock``
from the first write of a run to its last. A second writer of the same run id (a second
``harness run`` of one config, a ``resume`` racing a live run) fails at once with one
line naming the holder (pid, host, start time) instead of generating rows twice.

The lock is an OS file lock (``flock``), so the kernel drops it when its holder dies,
even by ``SIGKILL``; the next writer takes it over and logs a warning naming the dead
holder. The holder's details live next to the lock in ``<id>.holder.json``.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> with RunLock(root, "r1") as lock:
    ...     RunLock(root, "r1").acquire()  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    harness.errors.HarnessError: run 'r1' is being written by pid ... on host ...
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from harness.errors import HarnessError
from harness.store.names import check_name

log = logging.getLogger(__name__)

LOCK_DIR = ".locks"


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """The writer lock of one run in one store (a context manager)."""

    def __init__(self, root: str | Path, run_id: str):
        self.run_id = check_name(run_id, "run id")
        self.dir = Path(root) / LOCK_DIR
        self.path = self.dir / f"{run_id}.lock"
        self.holder_path = self.dir / f"{run_id}.holder.json"
        self._lock: FileLock | None = None

    def holder(self) -> dict | None:
        """The recorded holder ``{"pid", "host", "started_at"}``, or None."""
        try:
            return json.loads(self.holder_path.read_text())
        except (OSError, ValueError):
            return None

    def writer_gone(self) -> bool:
        """True when the recorded writer is known to be dead: no holder recorded (a writer that
        finished removes its record, one that was killed leaves it), or a holder on this host
        whose pid is gone. A holder on another host counts as alive. Reads only; takes no lock."""
        h = self.holder()
        if h is None:
            return True
        return h.get("host") == socket.gethostname() and not pid_alive(int(h.get("pid", -1)))

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`HarnessError` naming the live holder."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            h = self.holder() or {}
            raise HarnessError(
                f"run {self.run_id!r} is being written by pid {h.get('pid', '?')} on host {h.get('host', '?')} "
                f"since {h.get('started_at', '?')} (lock {self.path}); wait for it to finish or stop it, "
                f"then `harness resume {self.run_id}`") from None
        self._lock = lock
        old = self.holder()
        if old and old.get("pid") != os.getpid():
            same_host = old.get("host") == socket.gethostname()
            state = "dead" if same_host and not pid_alive(int(old.get("pid", -1))) else "gone"
            log.warning("run %s: taking over the writer lock of pid %s on host %s (started %s, now %s)",
                        self.run_id, old.get("pid"), old.get("host"), old.get("started_at"), state)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": datetime.now(timezone.utc).isoformat()}
        tmp = self.holder_path.with_name(f".{self.holder_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(me))
        os.replace(tmp, self.holder_path)
        return self

    def release(self) -> None:
        if self._lock is not None:
            self.holder_path.unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
