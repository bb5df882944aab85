"""SQL over a results store with DuckDB: views ``samples``, ``metrics`` and ``runs``.

Each view reads the table's Parquet files (Hive partition ``run_id`` restored as a
column) upgraded to the current schema (:func:`harness.store.schema.upgrade`), so files
written under an older schema version read with the new columns as NULL. A table with
no files yet is an empty view of the right schema.

Example:
    >>> import tempfile
    >>> con = connect(tempfile.mkdtemp())
    >>> con.execute("select count(*) from samples").fetchone()[0]
    0
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from harness.errors import HarnessError
from harness.store.schema import TABLES, upgrade

FORMATS = ("table", "csv", "json")


def read_table(root: str | Path, table: str, run_id: str | None = None) -> pa.Table:
    """Read one table of the store as Arrow (optionally one run), upgraded to the current schema.

    Only committed files are read (temporary ``.``-names are skipped), so a run being
    written by another process at the same time shows its committed shards only.
    """
    base = Path(root) / table
    if run_id is not None:
        base = base / f"run_id={run_id}"
    files = sorted(str(p) for p in base.rglob("*.parquet") if not p.name.startswith(".")) if base.is_dir() else []
    if not files:
        return TABLES[table].empty_table()
    parts = []
    for f in files:
        t = ds.dataset(f, format="parquet").to_table()
        rid = run_id or Path(f).parent.name.split("=", 1)[1]
        t = t.append_column("run_id", pa.array([rid] * t.num_rows, pa.string()))
        try:
            parts.append(upgrade(t, table))
        except ValueError as exc:
            raise HarnessError(f"{f}: {exc}") from None
    return pa.concat_tables(parts)


def connect(root: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the store's three tables as views."""
    con = duckdb.connect()
    for name in TABLES:
        con.register(f"_{name}_arrow", read_table(root, name))
        con.execute(f"create view {name} as select * from _{name}_arrow")
    return con


def run_query(root: str | Path, sql: str) -> pa.Table:
    """Run ``sql`` against the store; SQL errors become :class:`HarnessError`."""
    if not Path(root).is_dir():
        raise HarnessError(f"--store {root}: no results store there (run `harness run --store {root}` first)")
    con = connect(root)
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise HarnessError(f"query: {first}") from None
    except AttributeError:
        raise HarnessError("query: the statement returned no rows (use SELECT)") from None


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
