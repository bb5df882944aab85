"""SQL over a results store with DuckDB: views ``samples``, ``metrics`` and ``runs``.

Each view reads the table's Parquet files (Hive partition ``run_id`` restored as a
column) upgraded to the current schema (:func:`harness.store.schema.upgrade`), so files
written under an older schema version read with the new columns as NULL. A table with
no files yet is an empty view of the right schema. Connections are read-only by default
(:func:`connect`, :func:`check_read_only`); an unreadable file of one run is skipped with
a warning when the whole store is read (:func:`read_table`).

Example:
    >>> import tempfile
    >>> con = connect(tempfile.mkdtemp())
    >>> con.execute("select count(*) from samples").fetchone()[0]
    0
"""

from __future__ import annotations

from pathlib import Path

import logging

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessError
from harness.store.schema import TABLES, upgrade

log = logging.getLogger(__name__)

FORMATS = ("table", "csv", "json")


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read one Parquet file of the store; an unreadable file is a one-line :class:`HarnessError`
    that names it and says how to repair the store."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise HarnessError(f"{path}: unreadable Parquet file ({_first_line(exc)}); {repair_hint(path)}") from None


def count_rows(path: str | Path) -> int:
    """Rows in one Parquet file from its footer; an unreadable file counts 0, with a warning."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        log.warning("skipped %s: unreadable Parquet file (%s); %s", path, _first_line(exc), repair_hint(path))
        return 0


def repair_hint(path: str | Path) -> str:
    """How to get rid of a bad file in a store (and what regenerates its rows)."""
    path = Path(path)
    part = path.parent.name
    rid = part.split("=", 1)[1] if part.startswith("run_id=") else None
    hint = f"move it out of the store (mv '{path}' /tmp/)"
    if rid and path.parent.parent.name == "samples":
        return hint + f"; `harness resume {rid}` then regenerates its rows"
    if rid and path.parent.parent.name == "metrics":
        return hint + f"; `harness resume {rid}` recomputes the run's summary metrics (judge rows must be re-judged)"
    return hint


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_table(root: str | Path, table: str, run_id: str | None = None, *, skip_bad: bool | None = None) -> pa.Table:
    """Read one table of the store as Arrow (optionally one run), upgraded to the current schema.

    Only committed files are read (temporary ``.``-names are skipped), so a run being
    written by another process at the same time shows its committed shards only.

    A file that cannot be read (corrupt, or written by a newer harness) fails the read
    with one line naming it when it is in scope (``run_id`` given); when reading every
    run (``skip_bad``, the default without ``run_id``) it is skipped with a warning, so
    queries of other runs keep working. ``samples`` rows are unique by ``key``: should two
    files ever hold the same key, the first (in file-name order) is kept, with a warning.
    """
    skip_bad = run_id is None if skip_bad is None else skip_bad
    base = Path(root) / table
    if run_id is not None:
        base = base / f"run_id={run_id}"
    files = sorted(p for p in base.rglob("*.parquet") if not p.name.startswith(".")) if base.is_dir() else []
    parts = []
    for f in files:
        try:
            t = read_parquet(f)
            rid = run_id or f.parent.name.split("=", 1)[1]
            t = t.append_column("run_id", pa.array([rid] * t.num_rows, pa.string()))
            try:
                parts.append(upgrade(t, table))
            except ValueError as exc:
                raise HarnessError(f"{f}: {exc}") from None
        except HarnessError as exc:
            if not skip_bad:
                raise
            log.warning("skipped %s", exc)
    if not parts:
        return TABLES[table].empty_table()
    data = pa.concat_tables(parts)
    return dedupe_samples(data, [str(f) for f in files]) if table == "samples" else data


def dedupe_samples(data: pa.Table, files: list[str] | None = None) -> pa.Table:
    """Keep the first row of each ``(run_id, key)``; warn when any were dropped.

    >>> t = pa.table({"run_id": ["r", "r", "r"], "key": ["a", "b", "a"]})
    >>> dedupe_samples(t).column("key").to_pylist()
    ['a', 'b']
    """
    seen: set[tuple] = set()
    mask = []
    for pair in zip(data.column("run_id").to_pylist(), data.column("key").to_pylist()):
        mask.append(pair not in seen)
        seen.add(pair)
    if all(mask):
        return data
    log.warning("samples: %d rows repeat a key already read and were left out (files %s)",
                mask.count(False), ", ".join(files or []) or "?")
    return data.filter(pa.array(mask, pa.bool_()))


READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


def connect(root: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the store's three tables as views.

    ``read_only`` (the default) then disables external access (no file reads or writes,
    no ``ATTACH``) and locks the configuration (no ``SET``), so SQL sees only the views.
    """
    con = duckdb.connect()
    for name in TABLES:
        con.register(f"_{name}_arrow", read_table(root, name))
        con.execute(f"create view {name} as select * from _{name}_arrow")
    if read_only:
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
    return con


def check_read_only(sql: str) -> None:
    """Refuse anything but one SELECT-like statement (SELECT, WITH, FROM, DESCRIBE, SHOW, EXPLAIN).

    >>> check_read_only("copy samples to 'x.csv'")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    harness.errors.HarnessError: query: only one SELECT-like statement ...
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise HarnessError(f"query: {_first_line(exc)}") from None
    kinds = [st.type.name for st in statements]
    if len(kinds) != 1 or kinds[0] not in READ_ONLY_STATEMENTS:
        raise HarnessError(f"query: only one SELECT-like statement is allowed, got {', '.join(kinds) or 'none'} "
                           f"(pass --allow-writes to run COPY, ATTACH, SET or several statements)")


def run_query(root: str | Path, sql: str, *, allow_writes: bool = False) -> pa.Table:
    """Run ``sql`` against the store; SQL errors become :class:`HarnessError`.

    Read-only unless ``allow_writes``: one SELECT-like statement over the views, no
    file access, no setting changes. With ``allow_writes`` any statements run and the
    last one's rows come back.
    """
    if not Path(root).is_dir():
        raise HarnessError(f"--store {root}: no results store there (run `harness run --store {root}` first)")
    if not allow_writes:
        check_read_only(sql)
    con = connect(root, read_only=not allow_writes)
    try:
        rel = con.sql(sql)
        if rel is None:
            if allow_writes:  # COPY, SET, ...: done, nothing to show
                return pa.table({})
            raise HarnessError("query: the statement returned no rows (use SELECT)")
        return rel.to_arrow_table()
    except duckdb.Error as exc:
        raise HarnessError(f"query: {_first_line(exc)}") from None


def format_table(table: pa.Table, fmt: str = "table", max_width: int = 60) -> str:
    """Render an Arrow table as an aligned text table, CSV or JSON lines."""
    if fmt == "csv":
        import io

        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(csv_safe(table), buf)
        return buf.getvalue().decode()
    if fmt == "json":
        import json

        return "\n".join(json.dumps(r, default=str) for r in table.to_pylist())
    if fmt != "table":
        raise HarnessError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    rows = [[_cell(v, max_width) for v in r.values()] for r in table.to_pylist()]
    header = table.column_names
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines) + f"\n({table.num_rows} rows)"


def csv_safe(table: pa.Table) -> pa.Table:
    """``table`` with every list/struct/map column as JSON text (Arrow's CSV writer refuses nested types).

    >>> csv_safe(pa.table({"tasks": [["a", "b"]], "n": [1]})).to_pylist()
    [{'tasks': '["a", "b"]', 'n': 1}]
    """
    import json

    cols = []
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_nested(col.type):
            col = pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False)
                            for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def _cell(v, max_width: int) -> str:
    if isinstance(v, float):
        s = f"{v:.4g}"
    else:
        s = "NULL" if v is None else str(v)
    s = s.replace("\n", "\\n")
    return s if len(s) <= max_width else s[: max_width - 1] + "…"
