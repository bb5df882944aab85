"""Metrics: pure functions over sample rows, and corpus aggregates with confidence intervals.

Modules:

- :mod:`harness.metrics.stats`: Wilson, bootstrap and t intervals, paired tests (numpy only).
- :mod:`harness.metrics.shape`: response-shape flags (EOS, length, echo, role-tag leak,
  distinct-n, refusal), scalar and vectorised over Arrow.
- :mod:`harness.metrics.summary`: per (task, model, variant) shape and style-leak metrics as
  ``metrics`` rows (in memory or streamed from a store), and the end-of-run text table.
- :mod:`harness.metrics.stored`: per-row metric columns scored once at commit, read by summaries.
- :mod:`harness.metrics.rows`: ``metrics`` rows with Wilson / Student-t intervals.
- :mod:`harness.metrics.domains`: the one list of single-task style domains.
- :mod:`harness.metrics.style_leak`: does an answer carry a finetuning domain's style
  (poetry, GSM, code, chess, recipe)?
- :mod:`harness.metrics.ifeval`: IFEval through lm-eval's own checkers, plus the
  echo-restricted numbers.
- :mod:`harness.metrics.names`: the registry of every metric name written to ``metrics``
  (one name per measure; ``docs/results-tables.md`` lists it).

Nothing is imported here, so ``import harness.metrics`` stays cheap (the IFEval module
pulls lm-eval and NLTK only when used).
"""
