"""Find lm-eval tasks by name, fast and offline, before anything runs.

The user's include dirs (``--tasks-dir``) are indexed first with
``include_defaults=False``, which is instant; lm-eval's ~14k built-in YAMLs are indexed
(several seconds, once per process) only for names not found there. Every leaf task must
read local files (``dataset_path: json|csv|parquet|...`` with existing ``data_files``,
or a local directory): the Hub is never contacted unless ``HARNESS_LMEVAL_ALLOW_HUB=1``.

Example:
    >>> res = resolve_tasks(["my_task"], [Path("my_tasks")])         # doctest: +SKIP
    >>> res.include_defaults                                           # doctest: +SKIP
    False
"""

from __future__ import annotations

import difflib
import glob
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.lmeval.local import LOCAL_TASKS, local_data

log = logging.getLogger(__name__)

ALLOW_HUB_ENV = "HARNESS_LMEVAL_ALLOW_HUB"
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas"}
_DEFAULT_INDEX: dict | None = None


@dataclass
class Resolution:
    """How the requested names will be loaded.

    Attributes:
        names: the requested lm-eval names (tasks, groups or tags), without ``lm_eval:``.
        include_dirs: the user's include dirs, in order (later ones override earlier).
        include_defaults: whether lm-eval's built-in tasks must be indexed too.
        local: bridge-local tasks and their ``--data`` files (``{"ifeval": PATH}``).
        leaves: requested name -> its leaf task names (itself for a plain task).
    """

    names: list[str]
    include_dirs: list[Path]
    include_defaults: bool = False
    local: dict[str, Path] = field(default_factory=dict)
    leaves: dict[str, list[str]] = field(default_factory=dict)


def default_index() -> dict:
    """lm-eval's built-in task index (built once per process; several seconds)."""
    global _DEFAULT_INDEX
    if _DEFAULT_INDEX is None:
        import lm_eval.tasks
        from lm_eval.tasks._index import TaskIndex

        _DEFAULT_INDEX = TaskIndex.build([Path(lm_eval.tasks.__file__).parent])
    return _DEFAULT_INDEX


def _user_index(dirs: list[Path]) -> dict:
    from lm_eval.tasks._index import TaskIndex

    return TaskIndex.build(dirs) if dirs else {}


def _close(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" (close: {', '.join(close)})" if close else ""


def _leaves(index: dict, name: str, seen: frozenset = frozenset()) -> list[tuple[str, object]]:
    """``(leaf name, Entry or inline cfg dict)`` of a task, group or tag."""
    from lm_eval.tasks._index import Kind

    entry = index.get(name)
    if entry is None or name in seen:
        return []
    seen = seen | {name}
    if entry.kind in (Kind.TASK, Kind.PY_TASK):
        return [(name, entry)]
    if entry.kind == Kind.TAG:
        return [(n, e) for n, e in index.items() if name in e.tags and e.kind in (Kind.TASK, Kind.PY_TASK)]
    out: list[tuple[str, object]] = []
    members = (entry.cfg or {}).get("task") or []
    for m in members if isinstance(members, list) else [members]:
        if isinstance(m, dict):
            out.append((str(m.get("task", name)), m))
        elif isinstance(m, str):
            out.extend(_leaves(index, m, seen))
    return out


def _files(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _files(v)]
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in _files(v)]
    return []


def check_local_data(requested: str, leaf: str, entry) -> None:
    """Raise unless ``leaf``'s dataset is local files (or the Hub is explicitly allowed)."""
    cfg = entry if isinstance(entry, dict) else (entry.cfg or {})
    where = str(getattr(entry, "yaml_path", None) or f"lm_eval:{requested}")
    if "class" in cfg or cfg.get("custom_dataset") or getattr(getattr(entry, "kind", None), "name", "") == "PY_TASK":
        return  # Python-defined tasks load their own data
    path = cfg.get("dataset_path")
    if path is None:
        return  # lm-eval reports a missing dataset_path itself
    kwargs = cfg.get("dataset_kwargs") or {}
    if path in LOCAL_BUILDERS:
        files = _files(kwargs.get("data_files")) or _files(kwargs.get("data_dir"))
        if not files:
            raise HarnessError(f"{where}: dataset_kwargs.data_files: required with dataset_path: {path}")
        for f in files:
            if not glob.has_magic(f) and not Path(f).expanduser().exists():
                raise HarnessError(f"{where}: dataset_kwargs.data_files: {f} not found "
                                   f"(relative paths are read from the current directory, as in lm-eval)")
        return
    if Path(str(path)).expanduser().exists() or os.environ.get(ALLOW_HUB_ENV) == "1":
        return
    hint = f"pass --data {leaf}=PATH" if leaf in LOCAL_TASKS else "copy its YAML into a --tasks-dir with dataset_path: json and dataset_kwargs.data_files"
    raise HarnessError(f"lm_eval:{requested}: {where}: dataset_path {path!r} is on the Hugging Face Hub and the "
                       f"harness runs lm-eval offline; {hint} (docs/lm-eval.md), or set {ALLOW_HUB_ENV}=1")


def resolve_tasks(names: list[str], include_dirs: list[Path], data: Mapping[str, Path] | None = None) -> Resolution:
    """Check every name and decide how to load them.

    Args:
        names: lm-eval task, group or tag names (without ``lm_eval:``).
        include_dirs: the user's ``--tasks-dir`` directories.
        data: the run's ``--data NAME=PATH`` files, or ``None`` when unknown (then a
            bridge-local task such as ``ifeval`` is accepted without its data check).

    Raises:
        HarnessError: an unknown name (with close matches), a missing include dir or
            data file, or a task whose data would come from the Hub.
    """
    dirs = [Path(d).expanduser() for d in include_dirs]
    for d in dirs:
        if not d.is_dir():
            raise HarnessError(f"--tasks-dir {d}: not a directory")
    res = Resolution(list(names), dirs, local=local_data(names, data))
    index = _user_index(dirs)
    deferred = {n for n in names if n in LOCAL_TASKS and n not in index and data is None}
    for n in names:  # a bridge-local task without its --data file: say so without the slow index
        if n in LOCAL_TASKS and n not in index and n not in res.local and data is not None \
                and os.environ.get(ALLOW_HUB_ENV) != "1":
            raise HarnessError(f"--tasks lm_eval:{n}: lm-eval's {n} reads its data from the Hugging Face Hub and the "
                               f"harness runs lm-eval offline; pass --data {n}=PATH (a local jsonl, docs/lm-eval.md)")
    missing = [n for n in names if n not in res.local and n not in index and n not in deferred]
    if missing:
        defaults = default_index()
        unknown = [n for n in missing if n not in defaults]
        if unknown:
            where = f"--tasks-dir {', '.join(map(str, dirs))} or " if dirs else ""
            n = unknown[0]
            raise HarnessError(f"--tasks lm_eval:{n}: no lm-eval task, group or tag {n!r} in {where}lm-eval's "
                               f"built-in tasks{_close(n, list(index) + list(defaults))}")
        res.include_defaults = True
        index = {**defaults, **index}
    for name in names:
        if name in res.local or name in deferred:
            res.leaves[name] = [name]
            continue
        leaves = _leaves(index, name)
        if not leaves:
            raise HarnessError(f"--tasks lm_eval:{name}: names no runnable lm-eval task (an empty group or tag)")
        for leaf, entry in leaves:
            check_local_data(name, leaf, entry)
        res.leaves[name] = [leaf for leaf, _ in leaves]
    return res


def validate_tasks(names: list[str], include_dirs: list[Path], data: Mapping[str, Path] | None = None) -> None:
    """Raise :class:`HarnessError` (one line) unless every name is a runnable lm-eval task.

    Instant when every name is in ``include_dirs``; lm-eval's built-in index is read only
    for the others.

    Example:
        >>> validate_tasks(["no_such_task"], [Path("my_tasks")])      # doctest: +SKIP
        Traceback (most recent call last):
        harness.errors.HarnessError: --tasks lm_eval:no_such_task: no lm-eval task ...
    """
    resolve_tasks(names, include_dirs, data)
