"""Atomic writes into a results store.

Layout (Hive-partitioned by run, plain file names, so DuckDB globs just work)::

    STORE/samples/run_id=<id>/part-<shard>.parquet   one file per committed shard
    STORE/metrics/run_id=<id>/part-0.parquet
    STORE/runs/run_id=<id>/run.parquet               one row: the run's provenance
    STORE/manifests/<id>.json                        written last

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

import json
import os
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness.store.schema import SCHEMA_VERSION, conform, from_rows

__all__ = ["Store", "from_rows", "atomic_write_bytes"]


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
        return self.root / table / f"run_id={run_id}"

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
        """Commit one shard's rows (all or nothing)."""
        table = rows if isinstance(rows, pa.Table) else from_rows(rows, "samples")
        return self.write_table("samples", run_id, f"part-{shard_id:06d}", table)

    def write_metrics(self, run_id: str, table: pa.Table) -> Path:
        return self.write_table("metrics", run_id, "part-0", table)

    def write_run(self, run_id: str, row: dict) -> Path:
        """Write the run's provenance row and then its manifest (last)."""
        row = {**row, "run_id": run_id, "schema_version": SCHEMA_VERSION}
        self.write_table("runs", run_id, "run", from_rows([row], "runs"))
        manifest = {k: (json.loads(v) if k.endswith("_json") and isinstance(v, str) else v) for k, v in row.items()}
        return atomic_write_bytes(self.root / "manifests" / f"{run_id}.json",
                                  json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())

    def read_manifest(self, run_id: str) -> dict | None:
        path = self.root / "manifests" / f"{run_id}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def committed_shards(self, run_id: str) -> list[Path]:
        d = self.table_dir("samples", run_id)
        return sorted(p for p in d.glob("part-*.parquet")) if d.is_dir() else []

    def existing_keys(self, run_id: str) -> set[str]:
        """Content keys of every committed sample row of ``run_id`` (for resume)."""
        keys: set[str] = set()
        for p in self.committed_shards(run_id):
            keys.update(pq.read_table(p, columns=["key"]).column("key").to_pylist())
        return keys
