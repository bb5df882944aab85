"""Variant names: which expert (if any) a generation runs with.

``none`` (the base model alone), ``rules`` (= ``rules:eos-uniform-diversity``),
``rules:<option string>``, ``ablations`` (none + full + each single-rule removal, the
paper's Table 4), a built-in preset (``paper-table8``, ``paper-start``, ...), the
``name:`` of an ``--expert`` YAML, or the path of an expert YAML file.

Example:
    >>> [v.name for v in parse_variants(["ablations"])]
    ['none', 'rules', 'rules:uniform-diversity', 'rules:eos-uniform', 'rules:eos-diversity']
    >>> parse_variant("paper-table8").expert.spec_hash() == parse_variant("rules:eos-uniform-diversity-table8").expert.spec_hash()
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, did_you_mean
from harness.experts.registry import RESERVED, expert_registry
from harness.experts.spec import FULL_OPTIONS, ExpertSpec, load_expert, paper_expert

ABLATIONS = ("none", "rules", "rules:uniform-diversity", "rules:eos-uniform", "rules:eos-diversity")


@dataclass(frozen=True, slots=True)
class Variant:
    """A named variant; ``expert`` is ``None`` for the base model alone."""

    name: str
    expert: ExpertSpec | None

    def spec_key(self) -> str:
        """What identifies the variant's behaviour (for content keys)."""
        return "none" if self.expert is None else self.expert.spec_hash()


def parse_variant(name: str, user_experts: dict[str, ExpertSpec] | None = None) -> Variant:
    """Parse one variant name (not ``ablations``)."""
    name = name.strip()
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
    """Expand ``ablations`` and parse each name; duplicates are dropped, order kept."""
    expanded: list[str] = []
    for n in names:
        for part in (ABLATIONS if n.strip() == "ablations" else (n,)):
            if part not in expanded:
                expanded.append(part)
    if not expanded:
        raise HarnessError("--variants: give at least one variant (e.g. none,rules)")
    return [parse_variant(n, user_experts) for n in expanded]


def load_user_experts(paths: list[Path]) -> dict[str, ExpertSpec]:
    """Load ``--expert`` YAML files; each registers under its ``name:``.

    A name that is reserved, a built-in preset's, or another file's is an error naming
    the file and key.
    """
    registry = expert_registry(paths)
    return {s.name: s for s in (registry.get(n) for n in registry.names()) if s.source in {str(Path(p)) for p in paths}}
