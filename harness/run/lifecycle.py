"""One run's life in a store, the same for every verb that makes or extends a run.

    validate -> plan -> start backend -> generate/score -> commit -> summarise -> manifest

``harness run`` and ``resume`` (:mod:`harness.run.runner`, the lm-eval bridge's rows
included) and ``harness rank`` (:mod:`harness.ranking.cli`) validate and plan first, then
hand the rest to a :class:`RunLifecycle`; ``harness judge`` and ``similarity`` add metrics
to a finished run with :func:`extend_run`. The lifecycle owns the writer lock, the
``runs`` row and manifest (``running`` -> ``finished`` or ``failed``), exactly-once sample
commits and the metrics merge, so no verb re-implements them.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> identity = RunIdentity(model="m", model_fingerprint="fp", tasks=["t"], variants=["none"],
    ...                        config_hash="abc", config={"verb": "doctest"})
    >>> row = {"run_id": "r1", "key": "k0", "task": "t", "sample_id": "0", "variant": "none", "model": "m",
    ...        "output": "hi", "output_token_ids": [5]}
    >>> with RunLifecycle(root, "r1", identity) as life:   # no backend: rows from anywhere
    ...     life.started()
    ...     life.commit_samples(0, [row])
    ...     life.commit_samples(1, [row])   # the same key again: not written twice
    ...     life.finish()
    1
    0
    >>> from harness.store import Store
    >>> m = Store(root).read_manifest("r1")
    >>> m["status"], m["num_samples"]
    ('finished', 1)
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.provenance import package_versions
from harness.store import Store
from harness.store.lock import LOCK_DIR, RunLock
from harness.store.names import check_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunIdentity:
    """What the ``runs`` row says a run is (the lifecycle adds status, times, versions, timings)."""

    model: str
    model_fingerprint: str
    tasks: list[str]
    variants: list[str]
    config_hash: str
    config: dict = field(default_factory=dict)


class RunLifecycle:
    """The writer of one run id: lock, backend, ``runs`` row, sample commits, metrics merge, manifest.

    Use as a context manager. Inside it: :meth:`start` (opens a backend, loads the model,
    writes the ``running`` row) or :meth:`started` (no backend), then :meth:`commit_samples`
    and :meth:`merge_metrics` as work completes, then :meth:`finish`. An exception inside
    writes a ``failed`` row (once started), releases the replicas and the lock, and removes
    a store that this run created and that holds nothing but its lock.

    Args:
        store: the results directory.
        run_id: a run name (:func:`harness.store.names.check_name`).
        identity: the run's model, tasks, variants and config (:class:`RunIdentity`).
    """

    def __init__(self, store: str | Path, run_id: str, identity: RunIdentity):
        self.root = Path(store)
        self.run_id = check_name(run_id, "run id")
        self.identity = identity
        self.store = Store(self.root)
        self.backend = None
        self.seen: set[str] = set()
        self.committed = 0  # rows committed by this writer
        self._lock = RunLock(self.root, self.run_id)
        self._fresh = not self.root.exists()
        self._status: str | None = None
        self._t0 = time.perf_counter()
        self.created = datetime.now(timezone.utc).isoformat()  # or the manifest's, on entry
        self.tables: dict = {}  # the experts' token-resolution tables (``runs.expert_json``)
        self.previous = 0  # rows committed before this writer

    # -- entering and leaving ------------------------------------------------------------
    def __enter__(self) -> RunLifecycle:
        self._lock.acquire()  # one writer per run, from the first write to the last
        try:
            manifest = self.store.read_manifest(self.run_id) or {}
            self.created = manifest.get("created_at") or self.created
            self.tables = manifest.get("expert_json") or {}
            self.store.remove_temp_files(self.run_id)  # left by a killed writer; we hold the lock
            self.seen = set(self.store.existing_keys(self.run_id))
        except BaseException:
            self._lock.release()
            raise
        self.previous = len(self.seen)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and self._status == "running":
                self._write_run("failed")
        finally:
            try:
                if self.backend is not None:
                    self.backend.close()
            finally:
                self._lock.release()
                if exc_type is not None and self._fresh:
                    self._remove_if_only_our_lock()

    # -- the stages ----------------------------------------------------------------------
    def start(self, spec, progress: bool = True):
        """Check resources, load the model on every replica, write the ``running`` row; returns the backend.

        ``spec`` is a :class:`~harness.distributed.spec.BackendSpec`. A model that cannot
        load leaves no ``runs`` row behind.
        """
        from harness.distributed.executor import open_backend

        self.backend = open_backend(spec, progress)  # resources are checked before anything is written
        self.tables = self.backend.start() or self.tables
        self.started()
        return self.backend

    def started(self) -> None:
        """Write the ``running`` row (:meth:`start` does it for you)."""
        self._write_run("running")

    def commit_samples(self, shard_id: int, rows: list[dict]) -> int:
        """Write the rows whose key is not committed yet (one atomic shard file); returns how many.

        Each row gets its per-row metric columns here (:func:`harness.metrics.stored.commit_columns`),
        so every later summary reads them instead of re-scoring text.
        """
        from harness.metrics.stored import commit_columns

        rows = [r for r in rows if r["key"] not in self.seen]
        if not rows:
            return 0
        self.store.write_samples(self.run_id, shard_id, commit_columns(rows))
        self.seen.update(r["key"] for r in rows)
        self.committed += len(rows)
        return len(rows)

    def merge_metrics(self, table, identity: Callable[[dict], tuple] | None = None) -> Path:
        """Merge ``table`` into the run's metrics (:meth:`harness.store.Store.merge_metrics`)."""
        return self.store.merge_metrics(self.run_id, table, identity=identity)

    def finish(self, num_samples: int | None = None) -> None:
        """Write the ``finished`` row and manifest (last); ``num_samples`` defaults to the keys committed."""
        self._write_run("finished", num_samples)

    def elapsed(self) -> float:
        """Seconds since this lifecycle was made."""
        return time.perf_counter() - self._t0

    def timings(self) -> dict:
        """The backend's timings (load, per replica, retries) plus ``wall_seconds`` so far."""
        return dict(self.backend.timings if self.backend is not None else {}) | {"wall_seconds": self.elapsed()}

    # -- helpers ---------------------------------------------------------------------------
    def _write_run(self, status: str, num_samples: int | None = None) -> None:
        ident = self.identity
        timings = self.timings()
        self.store.write_run(self.run_id, {
            "created_at": self.created,
            "finished_at": None if status == "running" else datetime.now(timezone.utc).isoformat(),
            "status": status, "model": ident.model, "model_fingerprint": ident.model_fingerprint,
            "tasks": list(ident.tasks), "variants": list(ident.variants), "config_hash": ident.config_hash,
            "config_json": json.dumps(ident.config), "versions_json": json.dumps(package_versions()),
            "expert_json": json.dumps(self.tables if status != "running" else {}),
            "timings_json": json.dumps(timings if status != "running" else {}),
            "num_samples": len(self.seen) if num_samples is None else num_samples,
        })
        self._status = status

    def _remove_if_only_our_lock(self) -> None:
        """A run that failed before its first row (resources, model load) leaves no store behind."""
        root, locks = self.root, self.root / LOCK_DIR
        if (root.is_dir() and [p.name for p in root.iterdir()] == [LOCK_DIR]
                and [p.name for p in locks.iterdir()] == [f"{self.run_id}.lock"]):
            shutil.rmtree(root, ignore_errors=True)


class RunExtension:
    """Adds derived metrics (judge verdicts, similarity points) to a run that exists; see :func:`extend_run`."""

    def __init__(self, store: str | Path, run_id: str):
        from harness.results.api import Results

        self.root = Path(store)
        self.run_id = Results(self.root).check_run(run_id)

    def merge_metrics(self, table, identity: Callable[[dict], tuple] | None = None) -> Path:
        """Merge under the metrics lock that ``harness run``'s own merge holds too."""
        return Store(self.root).merge_metrics(self.run_id, table, identity=identity)


def extend_run(store: str | Path, run_id: str) -> RunExtension:
    """The run ``run_id`` of ``store``, opened to add metrics (one line naming the runs when it is missing)."""
    return RunExtension(store, run_id)
