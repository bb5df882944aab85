"""What a run records about where it came from: readable name parts and package versions.

Shared by every verb that writes a ``runs`` row (``harness run``, ``harness rank``).

Example:
    >>> slug("/models/My Model v2")
    'My-Model-v2'
    >>> sorted(package_versions())[:2]
    ['deepspeed', 'duckdb']
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Packages whose versions every ``runs`` row records (``versions_json``).
RECORDED_PACKAGES = ("harness", "torch", "transformers", "ray", "pyarrow", "duckdb", "lm_eval", "deepspeed", "vllm")


def slug(text: str) -> str:
    """A run-id-safe piece of ``text`` (a model name or path): letters, digits, ``_.-``, at most 40 chars."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).name if os.sep in text else text).strip("-._")[:40] or "model"


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`RECORDED_PACKAGES` (None when absent)."""
    import importlib.metadata as md

    out: dict[str, str | None] = {}
    for pkg in RECORDED_PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out
