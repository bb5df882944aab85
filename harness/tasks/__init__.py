"""Tasks: YAML specs, Python registrations and prompt files turned into ``PromptItem`` s.

Public API:
    - :func:`load_tasks` -- tasks by name from the built-in ``tasks/``, ``--tasks-dir``,
      ``HARNESS_TASKS_PATH`` and entry points (group ``harness.tasks``).
    - :func:`load_prompt_file` -- a ``--prompts FILE.jsonl`` as the task ``prompts``.
    - :class:`Task`, :class:`TaskSpec`, :func:`register_task`,
      :class:`Registry`.

Example:
    >>> from harness.tasks import load_tasks
    >>> task = load_tasks(["instructions-mini"])[0]
    >>> item = task.items(limit=1)[0]
    >>> item.task, item.sample_id
    ('instructions-mini', 'mini-001')
"""

from harness.tasks.discovery import build_index, builtin_tasks_dir, load_tasks
from harness.tasks.registry import TASKS, Registry, register_task
from harness.tasks.spec import TaskSpec
from harness.tasks.task import Task, load_prompt_file

__all__ = [
    "TASKS",
    "Registry",
    "Task",
    "TaskSpec",
    "build_index",
    "builtin_tasks_dir",
    "load_prompt_file",
    "load_tasks",
    "register_task",
]
