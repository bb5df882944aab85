"""The attribution trace on toy logits: what is recorded, and what is not."""

import pytest
import torch

from harness.experts.processor import ResolvedExpert, RuleExpertProcessor
from harness.experts.spec import DiversityRule, EosRule, ExpertSpec, StartRule, TokenDelta
from harness.experts.trace import COLUMNS, FlipTrace, empty_columns


@pytest.fixture
def expert(toy_tokenizer):
    spec = ExpertSpec("t", eos=EosRule(), uniform=(TokenDelta("a", -4.0), TokenDelta("b", 1.0)),
                      diversity=DiversityRule())
    return ResolvedExpert.build(spec, toy_tokenizer, vocab_size=12, eos_id=2)


def test_flip_is_recorded_with_margins_and_rule(expert):
    trace = FlipTrace(2)
    ids = torch.tensor([[1, 8, 8, 8, 8], [1, 8, 8, 8, 8]])  # prompt of 3, t = 2
    scores = torch.zeros(2, 12)
    scores[0, 3], scores[0, 7] = 2.0, 1.5  # row 0: base top "a" (3) loses 4 -> "c" (7) wins by 3.5
    scores[1, 7] = 10.0  # row 1: base top "c" by far, no flip
    out = RuleExpertProcessor(expert, [1, 1], 3, trace=trace)(ids, scores.clone())
    assert out[0].argmax() == 7 and out[1].argmax() == 7
    cols = trace.columns(0)
    assert cols["flip_positions"] == [2] and cols["flip_base_tokens"] == [3] and cols["flip_chosen_tokens"] == [7]
    assert cols["flip_base_margins"] == [pytest.approx(0.5)]
    assert cols["flip_chosen_margins"] == [pytest.approx(1.5 - (2.0 - 4.0))]
    assert cols["flip_rules"] == ["uniform"]
    assert trace.columns(1) == empty_columns()


def test_diversity_and_eos_attribution(expert):
    trace = FlipTrace(2)
    ids = torch.tensor([[1, 8, 8, 9, 5], [1, 8, 8, 9, 5]])  # "!" (9) and "b" (5) seen from index 1
    scores = torch.zeros(2, 12)
    scores[0, 9], scores[0, 10] = 1.0, 0.5  # "!" -1.5 -> "<0x0A>" (10) wins: diversity
    scores[1, 11], scores[1, 2] = 0.1, 0.0  # t = 2: EOS +0.12 beats a 0.1 lead: eos
    RuleExpertProcessor(expert, [1, 1], 3, trace=trace)(ids, scores)
    assert trace.columns(0)["flip_rules"] == ["diversity"] and trace.columns(0)["flip_chosen_tokens"] == [10]
    assert trace.columns(1)["flip_rules"] == ["eos"] and trace.columns(1)["flip_chosen_tokens"] == [2]


def test_start_rule_attribution_at_first_position(toy_tokenizer):
    expert = ResolvedExpert.build(ExpertSpec("s", eos=EosRule(), start=StartRule()), toy_tokenizer, 12, eos_id=2)
    trace = FlipTrace(1)
    scores = torch.zeros(1, 12)
    scores[0, 4] = 3.0  # base says "▁I"; the start rule says "▁Okay" (+50)
    RuleExpertProcessor(expert, [1], 3, trace=trace)(torch.tensor([[1, 8, 8]]), scores)
    assert trace.columns(0)["flip_chosen_tokens"] == [6] and trace.columns(0)["flip_rules"] == ["start"]


def test_columns_are_the_schema_columns():
    from harness.store.schema import SAMPLES

    assert set(COLUMNS) <= set(SAMPLES.names)
