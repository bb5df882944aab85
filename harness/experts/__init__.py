"""The rule expert (paper §6): specs as data, token resolution, the logits processor.

See docs/expert.md. ``parse_variants`` turns variant names into experts; a
:class:`ResolvedExpert` binds one to a tokenizer; :class:`RuleExpertProcessor` applies it
inside ``generate``; :func:`reference_generate` is the slow path that verifies it.

Example:
    >>> from harness.experts import parse_variants
    >>> [v.name for v in parse_variants(["none", "rules", "paper-table8"])]
    ['none', 'rules', 'paper-table8']
"""

from harness.experts.processor import ResolvedExpert, RuleExpertProcessor
from harness.experts.reference import reference_generate
from harness.experts.registry import expert_registry
from harness.experts.rules import eos_bonus
from harness.experts.spec import ExpertSpec, load_expert, paper_expert
from harness.experts.trace import FlipTrace
from harness.experts.variants import Variant, load_user_experts, parse_variant, parse_variants

__all__ = [
    "ExpertSpec", "FlipTrace", "ResolvedExpert", "RuleExpertProcessor", "Variant", "eos_bonus", "expert_registry",
    "load_expert", "load_user_experts", "paper_expert", "parse_variant", "parse_variants", "reference_generate",
]
