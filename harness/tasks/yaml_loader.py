"""Load task YAML as plain data, remembering where every key came from.

This is a pure data loader (as lm-eval's ``_yaml_loader``): no task semantics, no code
execution. Mappings come back as :class:`LineDict`, which records the file and line of
each key, so later checks can say ``tasks/x.yaml:7: doc_to_text: ...``. ``include:``
merges the parent file first and lets local keys win; cycles are rejected. A
``!function utils.fn`` tag becomes a :class:`FunctionRef` placeholder, honoured only in
files under a trusted (user-named) directory and imported only when something calls
:meth:`FunctionRef.resolve`.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.yaml").write_text("task: demo\\ndoc_to_text: instruction\\n")
    >>> raw = load_yaml(d / "t.yaml")
    >>> raw["task"], raw.line("doc_to_text")
    ('demo', 2)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FUNC_RE = re.compile(r"^([A-Za-z_]\w*)\.([A-Za-z_]\w*)$")


def where(path: Path | str | None, line: int | None = None) -> str:
    """Format ``path:line`` for messages, relative to the working directory when shorter.

    >>> where("tasks/x.yaml", 3)
    'tasks/x.yaml:3'
    """
    if path is None:
        return "<python>"
    shown = str(path)
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            shown = rel
    except ValueError:  # different drive on Windows
        pass
    return f"{shown}:{line}" if line else shown


class LineDict(dict):
    """A ``dict`` that remembers the file and 1-based line of each of its keys."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.origins: dict[Any, tuple[Path, int]] = {}
        self.file: Path | None = None

    def line(self, key: Any) -> int | None:
        """The line ``key`` was written on, or ``None`` when unknown."""
        origin = self.origins.get(key)
        return origin[1] if origin else None

    def where(self, key: Any) -> str:
        """``file:line`` of ``key`` (the file alone when the key has no line)."""
        path, line = self.origins.get(key, (self.file, None))
        return where(path, line)


@dataclass(frozen=True)
class FunctionRef:
    """A ``!function module.name`` reference, resolved against the YAML's directory.

    Only a sibling module is allowed (``utils.process_results`` -> ``<yaml dir>/utils.py``),
    so a task never imports arbitrary code by name. Nothing is imported until
    :meth:`resolve`.

    Attributes:
        target: the tag's text, ``"utils.process_results"``.
        base_dir: the directory of the YAML that wrote it.
        file: that YAML file; ``line`` is the tag's line.
    """

    target: str
    base_dir: Path
    file: Path
    line: int

    @property
    def module_path(self) -> Path:
        return self.base_dir / f"{self.target.split('.')[0]}.py"

    def resolve(self) -> Any:
        """Import the sibling module and return the named function."""
        module_name, attr = self.target.split(".")
        path = self.module_path.resolve()
        key = "harness_task_code_" + hashlib.sha1(str(path).encode()).hexdigest()[:12] + f"_{module_name}"
        module = sys.modules.get(key)
        if module is None:
            spec = importlib.util.spec_from_file_location(key, path)
            if spec is None or spec.loader is None:
                raise HarnessError(f"{where(self.file, self.line)}: !function {self.target}: cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            try:
                spec.loader.exec_module(module)
            except Exception:
                del sys.modules[key]
                raise
        if not hasattr(module, attr):
            raise HarnessError(
                f"{where(self.file, self.line)}: !function {self.target}: {path.name} has no function '{attr}'"
            )
        return getattr(module, attr)

    def __str__(self) -> str:
        return f"!function {self.target}"


def _is_under(path: Path, dirs: Iterable[Path]) -> bool:
    rp = path.resolve()
    return any(rp.is_relative_to(d.resolve()) for d in dirs)


def _make_loader(path: Path, trusted: bool) -> type:
    class Loader(_Base):  # type: ignore[misc, valid-type]
        pass

    def construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        loader.flatten_mapping(node)
        out = LineDict()
        out.file = path
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise HarnessError(f"{where(path, line)}: mapping keys must be plain scalars, got {key!r}")
            if key in out:
                raise HarnessError(f"{where(path, line)}: {key}: duplicate key (first on line {out.line(key)})")
            out[key] = loader.construct_object(value_node, deep=True)
            out.origins[key] = (path, line)
        return out

    def construct_function(loader: Any, node: yaml.Node) -> FunctionRef:
        line = node.start_mark.line + 1
        text = str(loader.construct_scalar(node)).strip()
        if not trusted:
            raise HarnessError(
                f"{where(path, line)}: !function {text}: code is only run from task directories you name "
                "(the built-in tasks/, --tasks-dir, HARNESS_TASKS_PATH or an entry point); "
                "pass this file's directory with --tasks-dir"
            )
        match = _FUNC_RE.match(text)
        if not match:
            raise HarnessError(
                f"{where(path, line)}: !function {text!r}: expected 'module.function' naming a sibling "
                "module, e.g. '!function utils.process_results'"
            )
        ref = FunctionRef(text, path.parent, path, line)
        if not ref.module_path.is_file():
            raise HarnessError(
                f"{where(path, line)}: !function {text}: no file {match.group(1)}.py next to {path.name}"
            )
        return ref

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor("!function", construct_function)
    return Loader


def _load_one(path: Path, trusted: bool) -> LineDict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HarnessError(f"{where(path)}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{where(path)}: cannot read: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_make_loader(path, trusted))  # noqa: S506 - safe base loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        raise HarnessError(f"{where(path, line)}: invalid YAML: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise HarnessError(f"{where(path)}: invalid YAML: {exc}") from None
    if data is None:
        raise HarnessError(f"{where(path, 1)}: empty YAML file; a task needs at least 'task' and 'doc_to_text'")
    if not isinstance(data, LineDict):
        raise HarnessError(f"{where(path, 1)}: a task YAML must be a mapping, got {type(data).__name__}")
    return data


def load_yaml(path: Path, trusted_dirs: Iterable[Path] = (), *, _stack: tuple[Path, ...] = ()) -> LineDict:
    """Load one task YAML with its ``include:`` chain merged (local keys win).

    Args:
        path: the YAML file.
        trusted_dirs: directories the user named; ``!function`` is allowed only in files
            under one of them.

    Returns:
        The merged mapping; ``origins`` says for every key which file and line set it.

    Raises:
        HarnessError: ``file:line: ...`` for invalid YAML, a missing or cyclic include,
            duplicate keys, or a ``!function`` outside a trusted directory.
    """
    path = Path(path)
    trusted_dirs = tuple(trusted_dirs)
    resolved = path.resolve()
    if resolved in _stack:
        chain = " -> ".join(where(p) for p in (*_stack, resolved))
        raise HarnessError(f"{where(path)}: include: cycle {chain}")
    data = _load_one(path, _is_under(path, trusted_dirs))
    if "include" not in data:
        return data
    include = data["include"]
    if not isinstance(include, str) or not include:
        raise HarnessError(f"{data.where('include')}: include: expected a file path, got {include!r}")
    parent_path = Path(include).expanduser()
    if not parent_path.is_absolute():
        parent_path = path.parent / parent_path
    if not parent_path.is_file():
        raise HarnessError(f"{data.where('include')}: include: no such file '{parent_path}'")
    if parent_path.resolve() in (*_stack, resolved):
        chain = " -> ".join(where(p) for p in (*_stack, resolved, parent_path.resolve()))
        raise HarnessError(f"{data.where('include')}: include: cycle {chain}")
    parent = load_yaml(parent_path, trusted_dirs, _stack=(*_stack, resolved))
    merged = LineDict()
    merged.file = path
    for source in (parent, data):
        for key, value in source.items():
            if key == "include" and source is data:
                continue
            merged[key] = value
            merged.origins[key] = source.origins.get(key, (source.file, None))
    return merged
