"""The run lifecycle: a config becomes a plan, a plan becomes committed rows, metrics and a manifest.

    config.py (RunConfig) -> plan.py (prepare: validate, resolve, key) -> lifecycle.py
    (RunLifecycle: lock, backend, runs row, commits, metrics merge, manifest) <- runner.py
    (execute, resume, the lm-eval bridge's commits) ; sentinel.py ; context.py ; cli.py

Public API:
    - :func:`execute`, :func:`resume` -- ``harness run`` / ``harness resume`` in Python.
    - :class:`RunConfig`, :func:`prepare`, :class:`Plan` -- a run's settings and its validated plan.
    - :class:`RunLifecycle`, :class:`RunIdentity`, :func:`extend_run` -- for verbs that write runs.

Example:
    >>> from harness.run import RunConfig
    >>> RunConfig.from_sources(None, {"tasks": "instructions-mini", "limit": "4"}).limit
    4
"""

from harness.run.config import RunConfig
from harness.run.lifecycle import RunIdentity, RunLifecycle, extend_run
from harness.run.plan import Plan, prepare
from harness.run.runner import execute, resume

__all__ = ["Plan", "RunConfig", "RunIdentity", "RunLifecycle", "execute", "extend_run", "prepare", "resume"]
