"""YAML mappings into typed dataclasses: one reader, one coercion, one-line errors.

Used by run configs, expert specs and finetuning configs (task YAML has its own loader with
``include:`` and ``!function``, in :mod:`harness.tasks.yaml_loader`).

:func:`read_yaml_mapping` parses a file that must hold a mapping. :func:`typed_fields`
checks a mapping's keys against a dataclass and converts each value to the field's
declared type; errors name the file, the field, the expected type and the value:

* ``int``: integers, whole floats and digit strings (``limit: "4"`` is 4);
* ``float``: numbers and numeric strings (PyYAML reads ``1e-5`` as a string);
* ``bool``: ``true/false``, ``yes/no``, ``on/off``, ``1/0`` (strings too, any case);
  anything else is an error (``no_ray: "no"`` is False, ``trace: "maybe"`` an error);
* ``str``: strings; numbers become their text (``replicas: 2``); booleans, lists and
  mappings are errors;
* ``tuple[str, ...]``: a list of scalars or a comma-separated string;
* ``X | None``: ``null`` or an ``X``; a nested dataclass: a mapping, checked the same way.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"; _ = p.write_text("limit: 2\\n")
    >>> read_yaml_mapping(p)
    {'limit': 2}
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo:
    ...     limit: int | None = None
    ...     trace: bool = False
    >>> typed_fields(Demo, {"limit": "4", "trace": "false"}, "demo.yaml")
    {'limit': 4, 'trace': False}
    >>> typed_fields(Demo, {"limit": [1]}, "demo.yaml")
    Traceback (most recent call last):
    ...
    harness.errors.HarnessError: demo.yaml: limit: expected an integer or null, got [1]
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from harness.errors import HarnessError, did_you_mean

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")
_INT = re.compile(r"[+-]?\d+")


def read_yaml_mapping(path: str | Path, what: str = "config file", *, allow_empty: bool = True) -> dict:
    """Parse ``path``; an empty file is ``{}`` when ``allow_empty``, anything but a mapping is an error."""
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"{path}: {what} not found")
    try:
        raw = yaml.safe_load(p.read_text("utf-8"))
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise HarnessError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if raw is None and allow_empty:
        return {}
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise HarnessError(f"{path}: {bad[0]!r}: setting names must be strings")
    return raw


def field_types(cls) -> dict[str, object]:
    """The resolved type of every field of dataclass ``cls`` (string annotations evaluated)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def describe(tp) -> str:
    """Human name of a type: ``an integer``, ``true or false``, ``a list of strings`` ...

    >>> describe(int | None)
    'an integer or null'
    """
    args = typing.get_args(tp)
    if _is_union(tp):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(describe(a) for a in rest) + (" or null" if len(rest) < len(args) else "")
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"a list of {_plural(args[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(tp) -> str:
    return {int: "integers", float: "numbers", str: "strings"}.get(tp, "mappings" if dataclasses.is_dataclass(tp) else str(tp))


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


class _Mismatch(Exception):
    """A value that does not fit the type (turned into a HarnessError by :func:`coerce`)."""


def _scalar(value, tp):
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
            return value.strip().lower() in TRUE
        raise _Mismatch
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return int(value.strip())
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _Mismatch
        try:
            out = float(value)
        except ValueError:
            raise _Mismatch from None
        if not math.isfinite(out):
            raise _Mismatch
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _Mismatch
    raise TypeError(f"typed_fields: unsupported field type {tp!r}")  # a programming error, not user input


def coerce(value, tp, where: str, nested: dict[type, Callable] | None = None):
    """Convert ``value`` to type ``tp``; ``where`` (``file: field``) prefixes the one-line error.

    ``nested`` maps a dataclass type to a builder ``(mapping, where) -> instance`` for
    dataclass fields that need more than :func:`typed_fields` (cross-field checks).

    >>> coerce("no", bool, "c.yaml: no_ray")
    False
    >>> coerce("a, b", tuple[str, ...], "c.yaml: tasks")
    ('a', 'b')
    """
    try:
        return _coerce(value, tp, where, nested or {})
    except _Mismatch:
        raise HarnessError(f"{where}: expected {describe(tp)}, got {value!r}") from None


def _coerce(value, tp, where: str, nested: dict):
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        for i, arg in enumerate(rest):
            try:
                return _coerce(value, arg, where, nested)
            except _Mismatch:
                if i == len(rest) - 1:
                    raise
        raise _Mismatch
    origin = typing.get_origin(tp)
    if origin is tuple:
        (inner, *_more) = typing.get_args(tp)
        if value is None:
            return ()
        if isinstance(value, str) and inner is str:
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if not isinstance(value, (list, tuple)):
            if dataclasses.is_dataclass(inner) and isinstance(value, dict):
                value = [value]  # one mapping where a list of them is expected
            else:
                raise _Mismatch
        return tuple(coerce(v, inner, f"{where}[{i}]", nested) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        if tp in nested:
            return nested[tp](value, where)
        return tp(**typed_fields(tp, value, where, nested=nested, section=True))
    if value is None:
        raise HarnessError(f"{where}: must not be empty (expected {describe(tp)})")
    return _scalar(value, tp)


def typed_fields(cls, raw: dict, source: str, *, skip: Iterable[str] = (), nested: dict[type, Callable] | None = None,
                 unknown: str = "unknown key", list_keys: bool = False, section: bool = False) -> dict:
    """Check ``raw``'s keys against dataclass ``cls`` and coerce each value to its field type.

    Returns the converted mapping (only the keys present in ``raw``). ``skip`` names
    fields that cannot be set from a file; an unknown key is an error naming ``source``,
    the key and the closest field (and every key when ``list_keys``). With ``section``,
    ``source`` is ``file: name`` and keys are reported as ``file: name.key``.
    """
    if not isinstance(raw, dict):
        raise HarnessError(f"{source}: expected a mapping, got {raw!r}")
    skip = set(skip)
    types_ = {k: v for k, v in field_types(cls).items() if k not in skip}
    out = {}
    for key, value in raw.items():
        where = f"{source}.{key}" if section else f"{source}: {key}"
        if key not in types_:
            keys = f"; keys: {', '.join(types_)}" if list_keys else ""
            raise HarnessError(f"{where}: {unknown}{did_you_mean(str(key), types_)}{keys}")
        out[key] = coerce(value, types_[key], where, nested)
    return out
