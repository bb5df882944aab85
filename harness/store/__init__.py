"""Results store: one schema module, atomic Parquet writers, DuckDB views.

Example:
    >>> from harness.store import SCHEMA_VERSION
    >>> SCHEMA_VERSION >= 1
    True
"""

from harness.store.lock import RunLock
from harness.store.names import check_name
from harness.store.query import connect, format_table, read_table, run_query
from harness.store.schema import SCHEMA_VERSION, conform, from_rows, schema_for
from harness.store.writer import Store

__all__ = ["SCHEMA_VERSION", "RunLock", "Store", "check_name", "conform", "connect", "format_table", "from_rows",
           "read_table", "run_query", "schema_for"]
