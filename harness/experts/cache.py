"""Experts resolved once per tokenizer: every engine's cache of :class:`ResolvedExpert`.

Resolving an expert walks the whole vocabulary (token strings for the fixed biases, the
diversity rule's pieces), so each engine keeps one :class:`ExpertCache` keyed by the
spec's hash.

Example:
    >>> cache = ExpertCache(tokenizer=None, vocab_size=8, eos_id=1)
    >>> cache.tables([])
    {}
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.experts.processor import ResolvedExpert
from harness.experts.spec import ExpertSpec


class ExpertCache:
    """``ExpertSpec`` -> :class:`ResolvedExpert` against one tokenizer, built on first use."""

    def __init__(self, tokenizer, vocab_size: int, eos_id: int | None):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_id = eos_id
        self._resolved: dict[str, ResolvedExpert] = {}

    def spec(self, spec: ExpertSpec) -> ResolvedExpert:
        """The resolved form of ``spec`` (cached by its hash)."""
        key = spec.spec_hash()
        if key not in self._resolved:
            self._resolved[key] = ResolvedExpert.build(spec, self.tokenizer, self.vocab_size, self.eos_id)
        return self._resolved[key]

    def variant(self, variant) -> ResolvedExpert | None:
        """A :class:`~harness.experts.variants.Variant`'s expert, ``None`` for the base model alone."""
        return None if variant.expert is None else self.spec(variant.expert)

    def tables(self, variants: Sequence) -> dict[str, dict]:
        """Token-resolution tables of every expert variant, for the run manifest."""
        return {v.name: self.variant(v).resolution_table() for v in variants if v.expert is not None}
