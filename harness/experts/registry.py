"""Named experts: the built-in presets (``presets/*.yaml``) plus user expert files.

A variant name that is not ``none``/``rules``/``rules:<options>`` is looked up here:
first the ``--expert FILE.yaml`` files (each registers under its ``name:``), then the
built-in presets by name (``--variants paper-table8``). Built on the shared
:class:`harness.tasks.registry.Registry`, so unknown names get close matches.

Example:
    >>> reg = expert_registry()
    >>> [n for n in reg.names() if n.startswith("paper")]
    ['paper', 'paper-as-written', 'paper-llama2', 'paper-start', 'paper-table8']
    >>> {d.token: d.delta for d in reg.get("paper-table8").uniform}["What"]
    -3.0
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.experts.spec import PRESETS, ExpertSpec, load_expert

if TYPE_CHECKING:  # pragma: no cover - typing only
    from harness.tasks.registry import Registry

RESERVED = ("none", "rules", "ablations")
"""Variant names that are not experts and can't be taken by one."""


def preset_paths() -> dict[str, Path]:
    """Built-in preset files by name (the file stem, equal to the file's ``name:``)."""
    return {p.stem: p for p in sorted(PRESETS.glob("*.yaml"))}


def expert_registry(paths: Sequence[str | Path] = ()) -> Registry[ExpertSpec]:
    """A registry of the built-in presets plus the expert files ``paths``.

    Raises a one-line :class:`HarnessError` naming the file and its ``name:`` key when a
    user expert reuses a reserved, preset or already-registered name.
    """
    from harness.tasks.registry import Registry  # the shared registry; imported on use

    reg: Registry[ExpertSpec] = Registry("expert")
    for name, path in preset_paths().items():
        spec = load_expert(path)
        if spec.name != name:
            raise HarnessError(f"{path}: name: {spec.name!r} must equal the file name {name!r}")
        reg.register(name, spec)
    for p in paths:
        spec = load_expert(Path(p))
        if spec.name in RESERVED or spec.name.startswith("rules:"):
            raise HarnessError(f"{p}: name: {spec.name!r} is reserved (none, rules, ablations, rules:<options>)")
        if spec.name in reg:
            raise HarnessError(f"{p}: name: {spec.name!r} is already taken by {reg.get(spec.name).source}")
        reg.register(spec.name, spec)
    return reg
