"""The rule expert (paper §6): specs as data, token resolution, the logits processor.

Example:
    >>> from harness.experts import parse_variants
    >>> [v.name for v in parse_variants(["none", "rules"])]
    ['none', 'rules']
"""

from harness.experts.processor import ResolvedExpert, RuleExpertProcessor, eos_bonus
from harness.experts.spec import ExpertSpec, load_expert, paper_expert
from harness.experts.variants import Variant, load_user_experts, parse_variant, parse_variants

__all__ = [
    "ExpertSpec", "ResolvedExpert", "RuleExpertProcessor", "Variant", "eos_bonus", "load_expert",
    "load_user_experts", "paper_expert", "parse_variant", "parse_variants",
]
