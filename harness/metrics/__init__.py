"""Metrics: pure functions over sample rows, and corpus aggregates with confidence intervals.

Modules:

- :mod:`harness.metrics.stats`: Wilson, bootstrap and t intervals, paired tests (numpy only).
- :mod:`harness.metrics.shape`: response-shape flags (EOS, length, echo, role-tag leak,
  distinct-n, refusal), scalar and vectorised over Arrow.
- :mod:`harness.metrics.summary`: per (task, model, variant) shape metrics as ``metrics`` rows,
  and the aligned text table printed at the end of a run.
- :mod:`harness.metrics.style_leak`: does an answer carry a finetuning domain's style
  (poetry, GSM, code, chess, recipe)?
- :mod:`harness.metrics.ifeval`: IFEval through lm-eval's own checkers, plus the
  echo-restricted numbers.
- :mod:`harness.metrics.names`: the registry of every metric name written to ``metrics``
  (one name per measure; ``docs/results-tables.md`` lists it).

Nothing is imported here, so ``import harness.metrics`` stays cheap (the IFEval module
pulls lm-eval and NLTK only when used).
"""
