"""Name -> object registries for tasks and metrics, built on one generic :class:`Registry`.

Components register where they are defined, with a decorator; a target may also be a lazy
``"module:attr"`` string that is imported on first lookup, so listing names never imports
a heavy backend. An unknown name raises :class:`UnknownNameError` (a ``HarnessError`` and a
``KeyError``) with the close matches; ``freeze()`` locks a registry once a run starts.

Example:
    >>> reg = Registry("colour")
    >>> @reg.register("red")
    ... def red():
    ...     return "#f00"
    >>> reg.get("red")()
    '#f00'
    >>> reg.get("rde")
    Traceback (most recent call last):
    ...
    harness.tasks.registry.UnknownNameError: unknown colour 'rde' (did you mean 'red'?); known: red
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from harness.errors import HarnessError
from harness.tasks.yaml_loader import where

if TYPE_CHECKING:  # pragma: no cover - typing only
    from harness.tasks.spec import TaskSpec
    from harness.tasks.task import Task

T = TypeVar("T")

"""A per-sample scorer: ``(doc, output) -> {"metric_name": value, ...}``."""

TaskFactory = Callable[..., "Task | TaskSpec"]
"""A task factory: ``() -> Task | TaskSpec``, optionally taking ``data_path: Path | None``."""


class UnknownNameError(HarnessError, KeyError):
    """A registry lookup for a name nobody registered."""

    __str__ = Exception.__str__  # KeyError would quote the message


class Registry(Generic[T]):
    """A named table of objects of one kind (tasks, metrics, ...).

    Args:
        kind: what the entries are, used in messages (``"task"`` -> ``unknown task 'x'``).

    Note:
        Registering the same name twice is an error naming both origins, unless it is
        the very same object (a module imported twice). Nothing registers after ``freeze()``.

    Example:
        >>> reg = Registry("metric")
        >>> reg.register("length", "builtins:len")
        'builtins:len'
        >>> reg.get("length")("abc")
        3
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._origins: dict[str, str] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T | str) -> T | str: ...

    def register(self, name: str, obj: Any = None) -> Any:
        """Register ``obj`` (or a lazy ``"module:attr"`` string) under ``name``.

        Called with only a name it returns a decorator that registers and returns its
        argument unchanged.
        """
        if not isinstance(name, str) or not name:
            raise HarnessError(f"{self.kind} registry: name must be a non-empty string, got {name!r}")
        if obj is None:
            def decorator(target: T) -> T:
                self._add(name, target)
                return target
            return decorator
        self._add(name, obj)
        return obj

    def _add(self, name: str, obj: Any) -> None:
        origin = _origin_of(obj)
        if name in self._entries:
            if self._entries[name] is obj or self._entries[name] == obj:
                return
            raise HarnessError(
                f"{origin}: {self.kind} '{name}' is already registered at {self._origins[name]}"
            )
        self._entries[name] = obj
        self._origins[name] = origin

    def get(self, name: str) -> T:
        """Return the object for ``name``, importing a lazy ``"module:attr"`` target."""
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        obj = self._entries[name]
        if isinstance(obj, str):
            obj = _import_target(obj, self.kind, name)
            self._entries[name] = obj
        return obj

    def unknown_message(self, name: str) -> str:
        """The message for an unknown ``name``: close matches first, then every name."""
        close = difflib.get_close_matches(name, list(self._entries), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        known = ", ".join(sorted(self._entries)) or "(none)"
        return f"unknown {self.kind} '{name}'{hint}; known: {known}"

    def origin(self, name: str) -> str:
        """Where ``name`` was registered (``file:line`` or the lazy target string)."""
        if name not in self._origins:
            raise UnknownNameError(self.unknown_message(name))
        return self._origins[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


def _origin_of(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    try:
        target = inspect.unwrap(obj)
        return where(inspect.getsourcefile(target), inspect.getsourcelines(target)[1])
    except (TypeError, OSError):
        return repr(obj)


def _import_target(target: str, kind: str, name: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise HarnessError(f"{kind} '{name}': lazy target {target!r} must look like 'module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HarnessError(f"{kind} '{name}': cannot import module '{module_name}': {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise HarnessError(f"{kind} '{name}': module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


TASKS: Registry[TaskFactory] = Registry("task")
"""Python-registered tasks: name -> factory returning a ``Task`` or ``TaskSpec``."""



def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Register a function returning a :class:`Task` or :class:`TaskSpec` as task ``name``.

    The factory may take a keyword ``data_path`` (``Path | None``): it receives the path
    given with ``--data name=PATH``. A factory returning a ``TaskSpec`` gets ``--data``
    applied for it and need not take the argument.

    Example:
        >>> from harness.tasks.task import Task
        >>> @register_task("doctest-hello")
        ... def hello():
        ...     return Task.from_rows("doctest-hello", [{"instruction": "Say hi."}])
        >>> TASKS.get("doctest-hello")().items()[0].instruction
        'Say hi.'
    """
    return TASKS.register(name)

