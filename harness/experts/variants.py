"""Variant names: which expert (if any) a generation runs with.

``none`` (the base model alone), ``rules`` (= ``rules:eos-uniform-diversity``),
``rules:<option string>``, ``ablations`` (none + full + each single-rule removal, the
paper's Table 4), a built-in preset (``paper-table8``, ``paper-start``, ...), the
``name:`` of an ``--expert`` YAML, or the path of an expert YAML file.

Any of them may carry its own decoding settings after ``@``: ``rules@max_new_tokens=8192``,
``none@max_new_tokens=512@do_sample=true@temperature=0.7``. The settings are not part of
the name (rows keep ``variant = "rules"``; ``samples.max_new_tokens`` records the cap), so
one run holds one setting per variant name. In a run config, ``variants:`` may list
mappings: ``{name: rules, max_new_tokens: 8192}`` (see :func:`variant_string`).

Example:
    >>> [v.name for v in parse_variants(["ablations"])]
    ['none', 'rules', 'rules:uniform-diversity', 'rules:eos-uniform', 'rules:eos-diversity']
    >>> parse_variant("paper-table8").expert.spec_hash() == parse_variant("rules:eos-uniform-diversity-table8").expert.spec_hash()
    True
    >>> v = parse_variant("rules@max_new_tokens=8192")
    >>> v.name, v.decoding
    ('rules', {'max_new_tokens': 8192})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.decoding import coerce_setting
from harness.errors import HarnessError, did_you_mean
from harness.experts.registry import RESERVED, expert_registry
from harness.experts.spec import FULL_OPTIONS, ExpertSpec, load_expert, paper_expert

ABLATIONS = ("none", "rules", "rules:uniform-diversity", "rules:eos-uniform", "rules:eos-diversity")


@dataclass(frozen=True, slots=True)
class Variant:
    """A named variant; ``expert`` is ``None`` for the base model alone.

    ``settings`` are the variant's own decoding settings as sorted (field, value) pairs
    (they override the task's and the run's; see :mod:`harness.decoding`).
    """

    name: str
    expert: ExpertSpec | None
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def decoding(self) -> dict[str, Any]:
        """The variant's own decoding settings as a dict."""
        return dict(self.settings)

    @property
    def label(self) -> str:
        """The name with its settings, as written in ``--variants`` (``rules@max_new_tokens=8192``)."""
        return self.name + "".join(f"@{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.settings)

    def spec_key(self) -> str:
        """What identifies the variant's behaviour (for content keys)."""
        return "none" if self.expert is None else self.expert.spec_hash()


def parse_settings(text: str, where: str = "--variants") -> tuple[tuple[str, Any], ...]:
    """``max_new_tokens=8192@do_sample=true`` -> sorted (field, value) pairs.

    >>> parse_settings("max_new_tokens=64@temperature=0.7")
    (('max_new_tokens', 64), ('temperature', 0.7))
    """
    out: dict[str, Any] = {}
    for part in text.split("@"):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise HarnessError(f"{where}: expected @FIELD=VALUE after the variant name, got {'@' + part!r}")
        if key in out:
            raise HarnessError(f"{where}: {key}: given twice")
        out[key] = coerce_setting(key, value.strip(), where)
    return tuple(sorted(out.items()))


def variant_string(mapping: dict, where: str) -> str:
    """A run config's ``{name: rules, max_new_tokens: 8192}`` as ``rules@max_new_tokens=8192``.

    >>> variant_string({"name": "none", "max_new_tokens": 512}, "cfg.yaml: variants[0]")
    'none@max_new_tokens=512'
    """
    if not isinstance(mapping.get("name"), str) or not mapping["name"].strip():
        raise HarnessError(f"{where}: name: required (a variant such as none, rules or rules:eos-uniform)")
    if "@" in mapping["name"]:
        raise HarnessError(f"{where}: name: give settings as keys of the mapping, not after '@'")
    settings = {k: coerce_setting(k, v, where) for k, v in mapping.items() if k != "name"}
    return Variant(mapping["name"].strip(), None, tuple(sorted(settings.items()))).label


def parse_variant(name: str, user_experts: dict[str, ExpertSpec] | None = None) -> Variant:
    """Parse one variant name (not ``ablations``), with optional ``@FIELD=VALUE`` settings."""
    name, sep, rest = name.strip().partition("@")
    name = name.strip()
    if sep:
        variant = parse_variant(name, user_experts)
        return Variant(variant.name, variant.expert, parse_settings(rest, f"--variants: {name}"))
    user_experts = user_experts or {}
    if name == "none":
        return Variant("none", None)
    if name == "rules":
        return Variant("rules", paper_expert(FULL_OPTIONS))
    if name.startswith("rules:"):
        options = name.split(":", 1)[1]
        return Variant(name, paper_expert(options))
    if name in user_experts:
        return Variant(name, user_experts[name])
    if name.endswith((".yaml", ".yml")):
        spec = load_expert(Path(name))
        return Variant(spec.name, spec)
    registry = expert_registry()
    if name in registry:
        return Variant(name, registry.get(name))
    known = [*RESERVED, *registry.names(), *user_experts]
    raise HarnessError(f"--variants: unknown variant {name!r}{did_you_mean(name, known)}; "
                       f"known: {', '.join(known)}, rules:<options>, FILE.yaml")


def parse_variants(names: list[str], user_experts: dict[str, ExpertSpec] | None = None) -> list[Variant]:
    """Expand ``ablations`` and parse each name; duplicates are dropped, order kept.

    ``ablations@max_new_tokens=64`` gives every ablation variant that setting. Two entries
    with one name but different settings are an error (rows are keyed by variant name).
    """
    expanded: list[str] = []
    for n in names:
        head, sep, rest = n.strip().partition("@")
        for part in (tuple(a + sep + rest for a in ABLATIONS) if head.strip() == "ablations" else (n.strip(),)):
            if part not in expanded:
                expanded.append(part)
    if not expanded:
        raise HarnessError("--variants: give at least one variant (e.g. none,rules)")
    out: list[Variant] = []
    for n in expanded:
        v = parse_variant(n, user_experts)
        same = next((o for o in out if o.name == v.name), None)
        if same is not None:
            if same.settings == v.settings:
                continue
            raise HarnessError(f"--variants: {v.name!r} is given twice with different settings "
                               f"({same.label} and {v.label}); a run holds one setting per variant")
        out.append(v)
    return out


def load_user_experts(paths: list[Path]) -> dict[str, ExpertSpec]:
    """Load ``--expert`` YAML files; each registers under its ``name:``.

    A name that is reserved, a built-in preset's, or another file's is an error naming
    the file and key.
    """
    registry = expert_registry(paths)
    return {s.name: s for s in (registry.get(n) for n in registry.names()) if s.source in {str(Path(p)) for p in paths}}
