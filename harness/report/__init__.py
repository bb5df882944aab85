"""Reports of a run: ``report.md`` with PNG plots (``harness report RUN --out DIR``).

Example:
    >>> from harness.report import build_report
    >>> callable(build_report)
    True
"""

from harness.report.build import build_report

__all__ = ["build_report"]
