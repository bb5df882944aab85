"""The rule expert as a vLLM V1 logits processor (offline ``LLM`` and ``vllm serve``).

Load it by class (``LLM(..., logits_processors=[RuleExpertLogitsProcessor])``) or by its
qualified name, which is what servers and Ray Data LLM take::

    vllm serve MODEL --logits-processors harness.engines.vllm_plugin:RuleExpertLogitsProcessor

Each request picks its expert through ``SamplingParams.extra_args`` (``vllm_xargs`` over
HTTP); see :mod:`harness.engines.rule_state` for the keys. The state and arithmetic live
in plain classes (:class:`~harness.engines.rule_state.BatchRules`,
:mod:`harness.experts.rules`), shared with the HF processor; this class only adapts
vLLM's interface.

Example:
    >>> from vllm import LLM, SamplingParams                                     # doctest: +SKIP
    >>> llm = LLM(path, logits_processors=[RuleExpertLogitsProcessor])           # doctest: +SKIP
    >>> llm.generate(prompt, SamplingParams(extra_args={"harness_expert": "rules"}))  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor

from harness.engines.rule_state import BatchRules
from harness.errors import HarnessError

QUALIFIED_NAME = "harness.engines.vllm_plugin:RuleExpertLogitsProcessor"


class RuleExpertLogitsProcessor(LogitsProcessor):
    """Adds each request's rule-expert scores to its row of the persistent batch."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        from transformers import AutoTokenizer

        model_config = vllm_config.model_config
        tokenizer = AutoTokenizer.from_pretrained(model_config.tokenizer)
        self.rules = BatchRules(tokenizer, model_config.get_vocab_size())

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams):
        from harness.engines.rule_state import EXPERT_ARG, expert_from_arg

        args = sampling_params.extra_args or {}
        if args.get(EXPERT_ARG) is not None:
            try:
                expert_from_arg(args[EXPERT_ARG])
            except HarnessError as exc:
                raise ValueError(str(exc)) from None

    def is_argmax_invariant(self) -> bool:
        return False  # the expert changes which token is greedy

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        self.rules.update(batch_update)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return self.rules.apply(logits)
