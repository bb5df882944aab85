"""Variant names: which expert (if any) a generation runs with.

``none`` (the base model alone), ``rules`` (= ``rules:eos-uniform-diversity``),
``rules:<option string>``, ``ablations`` (none + full + each single-rule removal, the
paper's Table 4), or the name of a user-registered expert YAML.

Example:
    >>> [v.name for v in parse_variants(["ablations"])]
    ['none', 'rules', 'rules:uniform-diversity', 'rules:eos-uniform', 'rules:eos-diversity']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, did_you_mean
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
    known = ["none", "rules", "ablations", *user_experts]
    raise HarnessError(f"--variants: unknown variant {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}, rules:<options>")


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
    """Load expert YAML files; each registers under its ``name``."""
    out: dict[str, ExpertSpec] = {}
    for p in paths:
        spec = load_expert(Path(p))
        if spec.name in out or spec.name in ("none", "rules", "ablations") or spec.name.startswith("rules:"):
            raise HarnessError(f"{p}: name: {spec.name!r} is already taken")
        out[spec.name] = spec
    return out
