"""Find tasks: YAML directories, Python registrations and third-party entry points.

Sources, all "named" (so their ``!function`` references are honoured):

1. the built-in ``tasks/`` directory at the repository root;
2. directories passed as ``tasks_dirs`` (``--tasks-dir``);
3. directories in ``HARNESS_TASKS_PATH`` (``os.pathsep``-separated);
4. entry points in the group ``harness.tasks``; each loads to a directory path, a list of
   ``TaskSpec``/``Task`` objects, or a callable returning one of those;
5. ``@register_task`` functions (``harness.tasks.builtin`` and anything imported earlier).

Indexing parses YAML as data and never runs task code. Two sources defining the same
name is an error naming both.

Example:
    >>> index = build_index()
    >>> "instructions-mini" in index.entries
    True
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.tasks import registry
from harness.tasks.spec import TaskSpec
from harness.tasks.task import Task
from harness.tasks.yaml_loader import load_yaml, where

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "harness.tasks"
ENV_VAR = "HARNESS_TASKS_PATH"
_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git"}


def builtin_tasks_dir() -> Path:
    """The repository's ``tasks/`` directory (next to the ``harness`` package)."""
    import harness

    return Path(harness.__file__).resolve().parent.parent / "tasks"


@dataclass(frozen=True)
class TaskEntry:
    """One indexed task: where it came from and what builds it.

    Attributes:
        name: the task name.
        kind: ``"yaml"``, ``"python"`` or ``"entry-point"``.
        origin: the YAML path, the registration site, or the entry point.
        spec: the parsed spec (YAML and spec-valued entries).
        obj: the factory (python) or the ``Task``/``TaskSpec`` (entry point).
    """

    name: str
    kind: str
    origin: str
    spec: TaskSpec | None = None
    obj: Any = None

    @property
    def tags(self) -> tuple[str, ...]:
        return (*self.spec.tag, *self.spec.group) if self.spec is not None else ()

    def load(self, data_path: Path | None = None) -> Task:
        """Build the :class:`Task`, reading ``data_path`` (``--data``) instead of its own data."""
        if self.spec is not None:
            return Task.from_spec(self.spec, data_path)
        if isinstance(self.obj, Task):
            return self.obj.with_data(data_path) if data_path is not None else self.obj
        factory = self.obj
        takes_data = "data_path" in inspect.signature(factory).parameters
        result = factory(data_path=data_path) if takes_data else factory()
        if isinstance(result, TaskSpec):
            task = Task.from_spec(result, data_path)
        elif isinstance(result, Task):
            task = result if takes_data or data_path is None else result.with_data(data_path)
        else:
            raise HarnessError(f"{self.origin}: task '{self.name}': factory returned "
                               f"{type(result).__name__}, expected Task or TaskSpec")
        if task.name != self.name:
            raise HarnessError(f"{self.origin}: task '{self.name}': factory returned a task named '{task.name}'")
        return task


@dataclass
class TaskIndex:
    """Every task visible with the given directories, by name."""

    entries: dict[str, TaskEntry] = field(default_factory=dict)
    dirs: list[Path] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def add(self, entry: TaskEntry) -> None:
        if entry.name in self.entries:
            other = self.entries[entry.name]
            raise HarnessError(f"{entry.origin}: task: '{entry.name}' is also defined at {other.origin}; "
                               "rename one of them")
        self.entries[entry.name] = entry

    def tags(self) -> dict[str, list[str]]:
        """``tag or group -> task names`` for every tag not shadowed by a task name."""
        out: dict[str, list[str]] = {}
        for entry in self.entries.values():
            for tag in entry.tags:
                if tag not in self.entries:
                    out.setdefault(tag, []).append(entry.name)
        return out

    def expand(self, name: str) -> list[str]:
        """``[name]`` for a task, its members for a tag/group; unknown -> close matches."""
        if name in self.entries:
            return [name]
        tags = self.tags()
        if name in tags:
            return sorted(tags[name])
        choices = [*self.entries, *tags]
        import difflib

        close = difflib.get_close_matches(name, choices, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        broken = f"; {len(self.broken)} task file(s) failed to load, first: {self.broken[0]}" if self.broken else ""
        raise HarnessError(f"unknown task '{name}'{hint}; known: {', '.join(sorted(choices))}{broken}")


def _split_env(value: str) -> list[Path]:
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def _entry_point_objects() -> list[tuple[str, Any]]:
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # very old signature
        eps = importlib.metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # type: ignore[union-attr]
    out = []
    for ep in eps:
        label = f"entry point {ep.name} = {ep.value}"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must name itself, not crash anonymously
            raise HarnessError(f"{label} (group {ENTRY_POINT_GROUP}): cannot load: "
                               f"{type(exc).__name__}: {exc}") from exc
        if callable(obj) and not isinstance(obj, type):
            obj = obj()
        out.append((label, obj))
    return out


def resolve_dirs(tasks_dirs: Iterable[Path | str] = ()) -> tuple[list[Path], list[tuple[str, Any]]]:
    """The named task directories (built-in, user, env, entry-point) and entry-point objects.

    Raises:
        HarnessError: a user or env directory that does not exist.
    """
    dirs: list[Path] = [builtin_tasks_dir()]
    for d in tasks_dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            raise HarnessError(f"--tasks-dir {d}: not a directory")
        dirs.append(path)
    for path in _split_env(os.environ.get(ENV_VAR, "")):
        if not path.is_dir():
            raise HarnessError(f"{ENV_VAR}: {path}: not a directory")
        dirs.append(path)
    objects: list[tuple[str, Any]] = []
    for label, obj in _entry_point_objects():
        if isinstance(obj, str | os.PathLike):
            path = Path(obj)
            if not path.is_dir():
                raise HarnessError(f"{label}: returned {obj!s}, which is not a directory")
            dirs.append(path)
        elif isinstance(obj, list | tuple) and all(isinstance(o, Task | TaskSpec) for o in obj):
            objects.extend((label, o) for o in obj)
        else:
            raise HarnessError(f"{label}: expected a directory path or a list of Task/TaskSpec, "
                               f"got {type(obj).__name__}")
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault(d.resolve(), d)
    return list(unique.values()), objects


def yaml_files(directory: Path) -> list[Path]:
    """Task YAML files under ``directory``, sorted, skipping caches and hidden dirs."""
    out = []
    for root, subdirs, files in os.walk(directory):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS and not d.startswith("."))
        out.extend(Path(root) / f for f in sorted(files) if f.endswith((".yaml", ".yml")))
    return out


def build_index(tasks_dirs: Iterable[Path | str] = ()) -> TaskIndex:
    """Index every task visible from the built-in, user, env and entry-point sources.

    A YAML without a ``task`` key is an include-only template and is skipped. A file that
    fails to parse is logged and remembered in ``broken`` (named if a lookup then fails)
    so one bad user file does not hide every other task.
    """
    dirs, objects = resolve_dirs(tasks_dirs)
    index = TaskIndex(dirs=dirs)
    seen: set[Path] = set()
    for directory in dirs:
        for path in yaml_files(directory):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                raw = load_yaml(path, dirs)
                if "task" not in raw:
                    continue
                if not isinstance(raw["task"], str):
                    raise HarnessError(f"{raw.where('task')}: task: expected a name (group files "
                                       "listing tasks are not supported; use 'tag:' on each task)")
                spec = TaskSpec.from_dict(raw, source=path)
            except HarnessError as exc:
                log.info("skipping task file: %s", exc)  # lookups and `tasks list` name it (index.broken)
                index.broken.append(str(exc))
                continue
            index.add(TaskEntry(spec.task, "yaml", where(path, raw.line("task")), spec=spec))
    for label, obj in objects:
        spec = obj if isinstance(obj, TaskSpec) else None
        index.add(TaskEntry(obj.task if spec else obj.name, "entry-point", label, spec=spec, obj=obj))
    importlib.import_module("harness.tasks.builtin")
    tasks = registry.TASKS
    for name in tasks.names():
        index.add(TaskEntry(name, "python", tasks.origin(name), obj=tasks.get(name)))
    return index


def load_tasks(names: list[str], tasks_dirs: Iterable[Path] = (),
               data_overrides: Mapping[str, Path] | None = None) -> list[Task]:
    """Load tasks by name (or tag), in order, each at most once.

    Args:
        names: task names or tags, e.g. ``["instructions-mini", "ifeval"]``.
        tasks_dirs: extra directories of task YAML (``--tasks-dir``), added to the built-in
            ``tasks/``, ``HARNESS_TASKS_PATH`` and entry points.
        data_overrides: ``task name -> local data file`` (``--data NAME=PATH``).

    Returns:
        The tasks; their rows are read only when ``items()`` is called.

    Raises:
        HarnessError: unknown task (with close matches), a ``--data`` key that names no
            task, or a conflicting definition.

    Example:
        >>> [t.name for t in load_tasks(["instructions-mini"])]
        ['instructions-mini']
    """
    index = build_index(tasks_dirs)
    overrides = dict(data_overrides or {})
    for key in overrides:
        if key not in index.entries:
            index.expand(key)  # raises with close matches
            raise HarnessError(f"--data {key}=...: '{key}' is a tag; give --data per task")
    wanted: list[str] = []
    for name in names:
        for member in index.expand(name):
            if member not in wanted:
                wanted.append(member)
    for key in set(overrides) - set(wanted):
        log.debug("--data %s=%s: task not requested, ignored", key, overrides[key])
    return [index.entries[n].load(overrides.get(n)) for n in wanted]
