"""The lm-eval bridge: run lm-eval tasks (``--tasks lm_eval:NAME``) on the harness.

lm-eval (0.4.13) builds the requests from its task YAMLs and computes its metrics; the
harness generates and scores them with the base model or the product of experts, on
Ray replicas or in-process, and writes lm-eval's per-document outputs and metrics into
the ``samples`` and ``metrics`` tables. Everything is offline: task data come from
local files named in the YAMLs (``--tasks-dir``), and IFEval from ``--data ifeval=PATH``.

Public API:
    - :func:`validate_tasks` -- fast one-line errors before a run writes anything.
    - :func:`evaluate_tasks` -- ``simple_evaluate`` per variant -> (sample rows, metric rows).
    - :class:`HarnessLM` -- lm-eval's ``LM`` served by a harness backend.

Example:
    >>> from harness.lmeval import validate_tasks
    >>> validate_tasks(["my_task"], [Path("my_tasks")])            # doctest: +SKIP
"""

from harness.lmeval.bridge import evaluate_tasks
from harness.lmeval.model import HarnessLM
from harness.lmeval.resolve import resolve_tasks, validate_tasks

__all__ = ["HarnessLM", "evaluate_tasks", "resolve_tasks", "validate_tasks"]
