"""Read, compare and export a results store.

``harness.results.open(store)`` returns a :class:`Results` with ``runs()``,
``samples(...)``, ``metrics(...)`` (Arrow tables), ``sql(query)`` and ``relation(name)``
(DuckDB). :func:`compare_variants` and :func:`compare_runs` give paired deltas with
bootstrap intervals and McNemar tests; :func:`export_text` writes AlpacaEval, JSONL or CSV.

Example:
    >>> import tempfile
    >>> import harness.results
    >>> res = harness.results.open(tempfile.mkdtemp())
    >>> res.runs().num_rows
    0
"""

from harness.results.api import Results, open_store
from harness.results.compare import Comparison, Flip, MetricDelta, Side, compare, compare_runs, compare_variants
from harness.results.export import FORMATS as EXPORT_FORMATS
from harness.results.export import export_text
from harness.results.persample import MetricInfo, per_sample_values, register_provider

open = open_store  # noqa: A001  (harness.results.open(store), like io.open for stores)

__all__ = ["EXPORT_FORMATS", "Comparison", "Flip", "MetricDelta", "MetricInfo", "Results", "Side", "compare",
           "compare_runs", "compare_variants", "export_text", "open", "open_store", "per_sample_values",
           "register_provider"]
