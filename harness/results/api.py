"""Python API over a results store: runs, samples and metrics as Arrow, SQL through DuckDB.

Example:
    >>> import tempfile
    >>> from harness.store import Store
    >>> root = tempfile.mkdtemp()
    >>> _ = Store(root).write_samples("r1", 0, [{"run_id": "r1", "key": "k", "task": "t", "sample_id": "0",
    ...                                         "variant": "none", "model": "m", "output": "hi"}])
    >>> res = Results(root)
    >>> res.samples(run="r1").column("output").to_pylist()
    ['hi']
    >>> res.sql("select count(*) as n from samples").to_pylist()
    [{'n': 1}]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError, did_you_mean
from harness.store.query import connect, count_rows, read_table
from harness.store.schema import RUNS, TABLES

Names = str | Sequence[str] | None

RUNS_LISTING = RUNS.append(pa.field("n_samples", pa.int64()))


def _as_list(value: Names) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class Results:
    """A results store opened for reading.

    Args:
        root: the store directory (what ``harness run --store`` wrote).

    Raises:
        HarnessError: when ``root`` is not a directory.

    Tables come back as ``pyarrow.Table`` with the current schema (older files are
    upgraded on read). :meth:`sql` and :meth:`relation` use one DuckDB connection,
    a snapshot taken at its first use; :meth:`refresh` takes a new one.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise HarnessError(f"--store {root}: no results store there (run `harness run --store {root}` first)")
        self._con: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"Results({str(self.root)!r})"

    # ---- runs ---------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        """Every run id with a manifest or any committed table file, sorted."""
        ids = {p.stem for p in (self.root / "manifests").glob("*.json") if not p.name.startswith(".")}
        for table in TABLES:
            base = self.root / table
            if base.is_dir():
                ids.update(d.name.split("=", 1)[1] for d in base.iterdir() if d.is_dir() and d.name.startswith("run_id="))
        return sorted(ids)

    def check_run(self, run_id: str) -> str:
        """Return ``run_id`` if the store has it, else raise :class:`HarnessError`."""
        ids = self.run_ids()
        if run_id not in ids:
            listing = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "") if ids else "none"
            raise HarnessError(f"run {run_id!r}: not in store {self.root}{did_you_mean(run_id, ids)}; runs: {listing}")
        return run_id

    def runs(self) -> pa.Table:
        """One row per run: the ``runs`` table plus ``n_samples`` (committed sample rows).

        Runs with sample files but no ``runs`` row yet (a run still writing its first
        shards) appear with NULL provenance. Ordered by ``created_at`` then ``run_id``.
        An unreadable file is skipped with a warning naming it (other runs still list).
        A ``running`` run whose writer is gone (killed, machine restarted) is listed as
        ``interrupted``: ``harness resume RUN_ID`` continues it.
        """
        from harness.store.lock import RunLock

        stored = {r["run_id"]: r for r in read_table(self.root, "runs").to_pylist()}
        rows = []
        for rid in self.run_ids():
            row = stored.get(rid) or {"run_id": rid}
            if row.get("status") == "running" and RunLock(self.root, rid).writer_gone():
                row["status"] = "interrupted"
            shards = sorted((self.root / "samples" / f"run_id={rid}").glob("*.parquet"))
            row["n_samples"] = sum(count_rows(p) for p in shards if not p.name.startswith("."))
            rows.append(row)
        rows.sort(key=lambda r: (r.get("created_at") or "", r["run_id"]))
        return pa.Table.from_pylist([{f: r.get(f) for f in RUNS_LISTING.names} for r in rows], schema=RUNS_LISTING)

    # ---- tables -------------------------------------------------------------------------
    def _read(self, table: str, run: Names) -> pa.Table:
        runs = _as_list(run)
        if runs is None:
            return read_table(self.root, table)
        return pa.concat_tables([read_table(self.root, table, self.check_run(r)) for r in runs])

    @staticmethod
    def _filter(data: pa.Table, column: str, wanted: Names, *, strict: bool, what: str) -> pa.Table:
        values = _as_list(wanted)
        if values is None:
            return data
        if strict:
            present = sorted(v for v in pc.unique(data.column(column)).to_pylist() if v is not None)
            for v in values:
                if v not in present:
                    raise HarnessError(f"{what}: no {column} {v!r}{did_you_mean(v, present)}; "
                                       f"{column}s: {', '.join(present) or 'none'}")
        return data.filter(pc.is_in(data.column(column), value_set=pa.array(values, pa.string())))

    def samples(self, run: Names = None, task: Names = None, variant: Names = None) -> pa.Table:
        """Sample rows, optionally of some runs, tasks and variants.

        Raises:
            HarnessError: an unknown run id, or a task/variant the selected samples lack.
        """
        data = self._read("samples", run)
        what = f"run {run!r}" if run is not None else "samples"
        data = self._filter(data, "task", task, strict=True, what=what)
        return self._filter(data, "variant", variant, strict=True, what=what)

    def metrics(self, run: Names = None, task: Names = None, variant: Names = None, metric: Names = None) -> pa.Table:
        """Metric rows, optionally of some runs, tasks, variants and metric names.

        Filters on task, variant and metric are plain filters (an absent value gives an
        empty table); an unknown run id raises :class:`HarnessError`.
        """
        data = self._read("metrics", run)
        for column, wanted in (("task", task), ("variant", variant), ("metric", metric)):
            data = self._filter(data, column, wanted, strict=False, what="metrics")
        return data

    # ---- SQL ----------------------------------------------------------------------------
    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection with views ``samples``, ``metrics`` and ``runs``."""
        if self._con is None:
            self._con = connect(self.root)
        return self._con

    def refresh(self) -> None:
        """Drop the SQL snapshot so the next query sees files committed since."""
        self._con = None

    def sql(self, query: str) -> pa.Table:
        """Run DuckDB SQL over the views; errors become one-line :class:`HarnessError`."""
        try:
            rel = self.connection.sql(query)
        except duckdb.Error as exc:
            raise HarnessError(f"query: {str(exc).strip().splitlines()[0]}") from None
        if rel is None:
            raise HarnessError("query: the statement returned no rows (use SELECT)")
        try:
            return rel.to_arrow_table()
        except duckdb.Error as exc:
            raise HarnessError(f"query: {str(exc).strip().splitlines()[0]}") from None

    def relation(self, name: str) -> duckdb.DuckDBPyRelation:
        """A lazy DuckDB relation over view ``name`` (``samples``, ``metrics`` or ``runs``).

        >>> # res.relation("samples").filter("variant = 'rules'").aggregate("count(*)")
        """
        if name not in TABLES:
            raise HarnessError(f"relation: unknown table {name!r}{did_you_mean(name, TABLES)}; tables: {', '.join(TABLES)}")
        return self.connection.view(name)


def open_store(root: str | Path) -> Results:
    """Open a results store for reading (``harness.results.open`` is this function).

    >>> open_store("/nonexistent/store")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    harness.errors.HarnessError: --store /nonexistent/store: no results store there ...
    """
    return Results(root)
