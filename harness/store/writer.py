"""Atomic writes into a results store.

Layout (Hive-partitioned by run, plain file names, so DuckDB globs just work)::

    STORE/samples/run_id=<id>/part-<shard>-<keys>.parquet   one file per committed shard
    STORE/metrics/run_id=<id>/part-0.parquet                 merged by key (:meth:`Store.merge_metrics`)
    STORE/runs/run_id=<id>/run.parquet                       one row: the run's provenance
    STORE/manifests/<id>.json                                written last
    STORE/.locks/<id>.lock                                   the run's writer lock (harness.store.lock)

A sample file is named by its content: ``<keys>`` is a hash of the sorted content keys
of its rows (``<shard>`` is only for people reading a listing). A re-planned ``resume``
that numbers its shards from 0 again therefore can never replace a committed file; the
same rows committed twice land in the same file name (idempotent). Run ids are checked
by :func:`harness.store.names.check_name` before any path is built from them.

Every file is written to a hidden, uniquely named temporary file in its final
directory, fsync-ed, and then ``os.replace``-d into place, so a crashed run never leaves
a half-written file that queries read. Readers ignore names starting with ``.``.
Different runs write disjoint directories and manifests, so several processes may
write different runs into one store at the same time (one writer per run).

Example:
    >>> import tempfile, pyarrow as pa
    >>> store = Store(tempfile.mkdtemp())
    >>> path = store.write_table("metrics", "r1", "part-0", from_rows([{"run_id": "r1", "metric": "x"}], "metrics"))
    >>> path.name
    'part-0.parquet'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.store.names import check_name
from harness.store.query import read_parquet, read_table
from harness.store.schema import SCHEMA_VERSION, conform, from_rows

__all__ = ["Store", "from_rows", "atomic_write_bytes", "metric_key", "shard_file_name"]

# the columns that identify a metric row; two rows with the same key are the same measurement
METRIC_KEY_COLUMNS = ("metric", "task", "model", "variant", "reference", "sample_id", "filter")


def metric_key(row: dict) -> tuple:
    """The identity of a metric row: its key columns plus ``details.source`` and ``details.judge``.

    >>> metric_key({"metric": "eos_rate", "variant": "rules", "details": '{"judge": "length"}'})
    ('eos_rate', None, None, 'rules', None, None, None, None, 'length')
    """
    try:
        details = json.loads(row.get("details") or "{}")
    except ValueError:
        details = {}
    if not isinstance(details, dict):
        details = {}
    return (*(row.get(c) for c in METRIC_KEY_COLUMNS), details.get("source"), details.get("judge"))


def shard_file_name(shard_id: int, keys: list[str]) -> str:
    """``part-<shard>-<hash of the sorted keys>``: a name no other set of rows can take.

    >>> shard_file_name(2, ["b", "a"]) == shard_file_name(2, ["a", "b"]) != shard_file_name(2, ["a"])
    True
    """
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:20]
    return f"part-{shard_id:06d}-{digest}"


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same dir + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class Store:
    """A results directory holding the ``samples``, ``metrics`` and ``runs`` tables."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def table_dir(self, table: str, run_id: str) -> Path:
        return self.root / table / f"run_id={check_name(run_id, 'run id')}"

    def manifest_path(self, run_id: str) -> Path:
        return self.root / "manifests" / f"{check_name(run_id, 'run id')}.json"

    def write_table(self, table: str, run_id: str, name: str, data: pa.Table) -> Path:
        """Validate ``data`` against the schema and write ``<table>/run_id=<id>/<name>.parquet``."""
        data = conform(data, table)
        # the partition column lives in the directory name (Hive style)
        data = data.drop_columns(["run_id"])
        path = self.table_dir(table, run_id) / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:
                pq.write_table(data, f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())  # the rename must never expose a file whose bytes are not on disk
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def write_samples(self, run_id: str, shard_id: int, rows: list[dict] | pa.Table) -> Path:
        """Commit one shard's rows (all or nothing) under a name made from their keys."""
        table = rows if isinstance(rows, pa.Table) else from_rows(rows, "samples")
        return self.write_table("samples", run_id, shard_file_name(shard_id, table.column("key").to_pylist()), table)

    def write_metrics(self, run_id: str, table: pa.Table) -> Path:
        """Replace the run's whole metrics table (prefer :meth:`merge_metrics`)."""
        return self.write_table("metrics", run_id, "part-0", table)

    def metrics_lock(self, run_id: str):
        """The lock every read-modify-write of a run's metrics table holds (judges use it too)."""
        from filelock import FileLock

        (self.root / "metrics").mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / "metrics" / f".run_id={check_name(run_id, 'run id')}.lock"))

    def merge_metrics(self, run_id: str, table: pa.Table | list[dict], identity=None) -> Path:
        """Merge ``table`` into the run's metrics: a new row replaces every stored row with its
        identity, every other stored row (judge verdicts, similarity points, lm-eval scores) is kept.

        ``identity``: ``row -> tuple``, default :func:`metric_key` (row by row); a coarser one
        replaces a whole group (a judge's re-run replaces all its rows for a variant).
        """
        identity = identity or metric_key
        new = conform(table if isinstance(table, pa.Table) else from_rows(table, "metrics"), "metrics")
        with self.metrics_lock(run_id):
            keys = {identity(r) for r in new.to_pylist()}
            old = read_table(self.root, "metrics", run_id) if self.table_dir("metrics", run_id).is_dir() else None
            kept = [r for r in old.to_pylist() if identity(r) not in keys] if old is not None else []
            merged = pa.concat_tables([from_rows(kept, "metrics"), new]) if kept else new
            return self.write_metrics(run_id, merged)

    def write_run(self, run_id: str, row: dict) -> Path:
        """Write the run's provenance row and then its manifest (last)."""
        row = {**row, "run_id": run_id, "schema_version": SCHEMA_VERSION}
        self.write_table("runs", run_id, "run", from_rows([row], "runs"))
        manifest = {k: (json.loads(v) if k.endswith("_json") and isinstance(v, str) else v) for k, v in row.items()}
        return atomic_write_bytes(self.manifest_path(run_id),
                                  json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())

    def read_manifest(self, run_id: str) -> dict | None:
        """The run's manifest, None when it has none; a corrupt one is a one-line error."""
        path = self.manifest_path(run_id)
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or not isinstance(manifest.get("config_json", {}), dict):
                raise ValueError("not a run manifest")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HarnessError(f"{path}: corrupt manifest ({str(exc).splitlines()[0]}); restore it from a backup, or "
                               f"delete it and re-run the run's config with --run-id {run_id} (committed rows are "
                               f"kept and only missing ones are generated)") from None
        return manifest

    def committed_shards(self, run_id: str) -> list[Path]:
        d = self.table_dir("samples", run_id)
        return sorted(p for p in d.glob("part-*.parquet")) if d.is_dir() else []

    def remove_temp_files(self, run_id: str) -> int:
        """Delete temporary files a killed writer of ``run_id`` left in its ``samples`` and
        ``runs`` dirs (call only while holding the run's writer lock); returns how many."""
        stale = [p for t in ("samples", "runs") for p in self.table_dir(t, run_id).glob(".*.tmp")]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def existing_keys(self, run_id: str) -> set[str]:
        """Content keys of every committed sample row of ``run_id`` (for resume)."""
        keys: set[str] = set()
        for p in self.committed_shards(run_id):
            keys.update(read_parquet(p, columns=["key"]).column("key").to_pylist())
        return keys
