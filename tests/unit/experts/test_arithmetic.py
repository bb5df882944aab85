"""The expert's arithmetic, checked against hand-computed numbers (paper-spec §2.2)."""

import pytest
import torch

from harness.experts.processor import ResolvedExpert, RuleExpertProcessor, eos_bonus
from harness.experts.spec import DiversityRule, EosRule, ExpertSpec, paper_expert


@pytest.mark.parametrize("t,expected", [(0, 0.0), (1, 0.06), (100, 6.0), (249, 14.94), (250, 0.0), (1000, 0.0)])
def test_eos_ramp_matches_code(t, expected):
    assert eos_bonus(EosRule(), t) == pytest.approx(expected)


def test_eos_fallback_is_opt_in():
    assert eos_bonus(EosRule(), 1025) == 0.0
    assert eos_bonus(EosRule(fallback_after=1024), 1025) == 100.0
    assert eos_bonus(EosRule(fallback_after=1024), 1024) == 0.0


def _expert(vocab=10, eos=9, uniform=None, diversity=True, scope="user"):
    spec = ExpertSpec("t", eos=EosRule(), diversity=DiversityRule(scope=scope) if diversity else None)
    ex = ResolvedExpert.build(spec, tokenizer=None, vocab_size=vocab, eos_id=eos)
    if uniform:
        ex.uniform_bias = torch.zeros(vocab)
        for i, d in uniform.items():
            ex.uniform_bias[i] = d
    return ex


def test_hand_computed_step():
    # row: [pad, pad, BOS, u0, u1, u1, tag | resp] ; user content starts at index 3
    # prompt length 7, two generated tokens -> t = 2, EOS bonus 0.12
    ex = _expert(uniform={3: -4.0, 5: 1.0})
    ids = torch.tensor([[0, 0, 1, 4, 5, 5, 6, 7, 3]])
    proc = RuleExpertProcessor(ex, user_starts=[3], prompt_length=7)
    out = proc(ids, torch.zeros(1, 10))[0]
    expected = torch.zeros(10)
    expected[3] += -4.0
    expected[5] += 1.0
    expected[9] += 0.12
    for seen in {4, 5, 6, 7, 3}:  # distinct ids from the user content on, once each
        expected[seen] -= 1.5
    assert torch.allclose(out, expected)


def test_response_scope_only_counts_generated_tokens():
    ex = _expert(scope="response")
    ids = torch.tensor([[1, 4, 5, 6, 7]])
    out = RuleExpertProcessor(ex, user_starts=[1], prompt_length=4)(ids, torch.zeros(1, 10))[0]
    assert out[7] == pytest.approx(-1.5) and out[4] == 0 and out[5] == 0


def test_left_padded_rows_keep_their_own_state():
    ex = _expert()
    # row 0 is padded by 2, row 1 not: the same user tokens start at different indices
    ids = torch.tensor([[0, 0, 4, 5], [2, 3, 4, 5]])
    out = RuleExpertProcessor(ex, user_starts=[2, 0], prompt_length=4)(ids, torch.zeros(2, 10))
    assert out[0, 2] == 0 and out[0, 3] == 0  # tokens before row 0's user start are not penalised
    assert out[1, 2] == pytest.approx(-1.5) and out[1, 3] == pytest.approx(-1.5)


def test_incremental_state_equals_fresh_processor():
    ex = _expert()
    torch.manual_seed(0)
    proc = RuleExpertProcessor(ex, user_starts=[1, 2], prompt_length=4)
    ids = torch.tensor([[1, 2, 3, 4], [0, 1, 5, 6]])
    for _ in range(5):
        scores = torch.randn(2, 10)
        out = proc(ids, scores)
        fresh = RuleExpertProcessor(ex, user_starts=[1, 2], prompt_length=4)(ids, scores)
        assert torch.allclose(out, fresh)
        ids = torch.cat([ids, out.argmax(-1, keepdim=True)], dim=1)


def test_combination_modes_agree_on_argmax():
    ex = _expert(uniform={2: -4.0, 3: 1.0})
    ids = torch.tensor([[1, 2, 3, 4, 5]] * 4)
    scores = torch.randn(4, 10) * 3
    add = RuleExpertProcessor(ex, [1] * 4, 3, combine="logit-add")(ids, scores)
    lss = RuleExpertProcessor(ex, [1] * 4, 3, combine="logsoftmax-sum")(ids, scores)
    assert torch.equal(add.argmax(-1), lss.argmax(-1))
    # they differ by a per-row constant only
    diff = add - lss
    assert torch.allclose(diff, diff[:, :1].expand_as(diff), atol=1e-5)


def test_multiplicative_diversity_follows_repetition_penalty():
    spec = ExpertSpec("m", diversity=DiversityRule(penalty=2.0, mode="multiplicative", scope="response"))
    ex = ResolvedExpert.build(spec, tokenizer=None, vocab_size=4, eos_id=3)
    out = RuleExpertProcessor(ex, [0], 1)(torch.tensor([[0, 1, 2]]), torch.tensor([[1.0, 4.0, -4.0, 1.0]]))
    assert out.tolist() == [[1.0, 2.0, -8.0, 1.0]]


def test_vocab_mismatch_is_an_error():
    ex = _expert(vocab=10)
    with pytest.raises(Exception, match="logits"):
        RuleExpertProcessor(ex, [0], 1)(torch.tensor([[1, 2]]), torch.zeros(1, 12))


def test_option_strings_select_rules():
    assert paper_expert("eos-uniform").diversity is None
    assert paper_expert("uniform-diversity").eos is None
    assert paper_expert("eos-diversity").uniform is None
    assert paper_expert("eos-uniform-diversity-start").start is not None
    what = {d.token: d.delta for d in paper_expert("eos-uniform-diversity-table8").uniform}["What"]
    assert what == -3.0
    assert paper_expert().eos.fallback_after is None
    assert paper_expert("eos-fallback").eos.fallback_after == 1024
    assert paper_expert("diversity-prose").diversity.scope == "response"
