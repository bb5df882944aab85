"""Read a YAML file that must hold a mapping, with one-line errors naming the file and line.

Used by run configs, expert specs and finetuning configs (task YAML has its own loader with
``include:`` and ``!function``, in :mod:`harness.tasks.yaml_loader`).

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"; _ = p.write_text("limit: 2\\n")
    >>> read_yaml_mapping(p)
    {'limit': 2}
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.errors import HarnessError


def read_yaml_mapping(path: str | Path, what: str = "config file", *, allow_empty: bool = True) -> dict:
    """Parse ``path``; an empty file is ``{}`` when ``allow_empty``, anything but a mapping is an error."""
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"{path}: {what} not found")
    try:
        raw = yaml.safe_load(p.read_text("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise HarnessError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if raw is None and allow_empty:
        return {}
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw
