"""The expert's arithmetic, checked against hand-computed numbers (paper-spec §2.2)."""

import math
from dataclasses import replace

import pytest
import torch

from harness.experts.processor import ResolvedExpert, RuleExpertProcessor, eos_bonus
from harness.experts.reference import _penalise, reference_rule_scores, reference_start_vector
from harness.experts.spec import DiversityRule, EosRule, ExpertSpec, StartRule, TokenDelta, paper_expert


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
        out = proc(ids, scores.clone())
        fresh = RuleExpertProcessor(ex, user_starts=[1, 2], prompt_length=4)(ids, scores)
        assert torch.allclose(out, fresh)
        ids = torch.cat([ids, out.argmax(-1, keepdim=True)], dim=1)


def test_combination_modes_agree_on_argmax():
    ex = _expert(uniform={2: -4.0, 3: 1.0})
    ids = torch.tensor([[1, 2, 3, 4, 5]] * 4)
    scores = torch.randn(4, 10) * 3
    add = RuleExpertProcessor(ex, [1] * 4, 3, combine="logit-add")(ids, scores.clone())
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


def test_eos_ramp_is_the_codes_expression_in_fp32():
    # code: score = max(0, scale * (t - 0) / (250 - 0)); vec[eos] = score * 3, for 0 < t < 250
    for t in range(0, 1100):
        code = max(0, 5 * (t - 0) / (250 - 0)) * 3 if 0 < t < 250 else 0.0
        assert torch.tensor(eos_bonus(EosRule(), t)) == torch.tensor(code), t


@pytest.mark.parametrize("options", ["eos-uniform-diversity", "eos-uniform", "eos-diversity", "eos-uniform-diversity-start",
                                     "eos-uniform-diversity-table8", "eos-uniform-diversity-prose"])
def test_dead_fallback_branch_is_off_unless_asked(options):
    rule = paper_expert(options).eos
    assert rule.fallback_after is None
    assert [eos_bonus(rule, t) for t in (249, 250, 1024, 1025, 5000)] == [pytest.approx(14.94), 0, 0, 0, 0]


def test_exponential_ramp():
    rule = EosRule(ramp="exponential", scale=0.5, rate=0.02, until=300)
    assert eos_bonus(rule, 0) == 0.0
    assert eos_bonus(rule, 100) == pytest.approx(0.5 * (math.exp(2.0) - 1))
    assert eos_bonus(rule, 299) > eos_bonus(rule, 298) > 0
    assert eos_bonus(rule, 300) == 0.0
    assert eos_bonus(replace(rule, fallback_after=400), 401) == 100.0


def _toy_expert(spec, tokenizer):
    spec = replace(spec, uniform=(TokenDelta("a", -4.0), TokenDelta("b", 1.0), TokenDelta("c", -5.0)))
    return ResolvedExpert.build(spec, tokenizer, vocab_size=12, eos_id=2)


@pytest.mark.parametrize("combine", ["logit-add", "logsoftmax-sum"])
@pytest.mark.parametrize("scope,mode", [("user", "additive"), ("response", "additive"), ("user", "multiplicative")])
def test_incremental_fast_path_equals_from_scratch_reference(combine, scope, mode, toy_tokenizer):
    """Bit-identical rule scores over 300 steps (past the EOS drop-off), ragged rows, start rule on."""
    spec = ExpertSpec("t", eos=EosRule(), diversity=DiversityRule(scope=scope, mode=mode),
                      start=StartRule(second=TokenDelta("b", 15.0), third=TokenDelta("a", -10.0)))
    ex = _toy_expert(spec, toy_tokenizer)
    start_first = reference_start_vector(ex, toy_tokenizer)
    gen = torch.Generator().manual_seed(0)
    ids = torch.tensor([[0, 0, 1, 4, 6, 2], [1, 8, 9, 4, 6, 2]])
    starts, prompt = [3, 1], 6
    proc = RuleExpertProcessor(ex, starts, prompt, combine=combine)
    for _ in range(300):
        scores = torch.randn(2, 12, generator=gen) * 3
        out = proc(ids, scores.clone())
        for b in range(2):
            row = ids[b].tolist()
            base = scores[b]
            if mode == "multiplicative":
                base = _penalise(base, ex, row, starts[b], prompt)
            r = reference_rule_scores(ex, row, starts[b], prompt, start_first)
            want = base + r if combine == "logit-add" else torch.log_softmax(base, -1) + torch.log_softmax(r, -1)
            if combine == "logit-add":
                assert torch.equal(out[b], want)
            else:
                assert torch.allclose(out[b], want, atol=1e-5)
        new = torch.randint(3, 12, (2, 1), generator=gen)  # never EOS (2)
        ids = torch.cat([ids, new], dim=1)


def test_start_rule_positions_and_inplace_switch(toy_tokenizer):
    spec = ExpertSpec("s", eos=EosRule(), start=StartRule(second=TokenDelta("!", 15.0), third=TokenDelta("\n", -10.0)))
    ex = _toy_expert(spec, toy_tokenizer)
    # pieces: <unk> <s> </s> a ▁I b ▁Okay c ▁the ! <0x0A> ▁.  ->  "<" -1, "I" -3, "Okay" +10, letters +1, "!" "." -1
    assert ex.start_first.tolist() == [-5.0, -5.0, -5.0, 5.0, -15.0, 5.0, 50.0, 5.0, 5.0, -5.0, -5.0, -5.0]
    ids = torch.tensor([[1, 3, 4]])
    proc = RuleExpertProcessor(ex, [1], 3, inplace=False)
    scores = torch.zeros(1, 12)
    out0 = proc(ids, scores)
    assert torch.equal(scores, torch.zeros(1, 12))  # inplace=False leaves the input alone
    assert torch.equal(out0[0], ex.uniform_bias + ex.start_first)
    out1 = proc(torch.tensor([[1, 3, 4, 6]]), torch.zeros(1, 12))[0]
    assert out1[9] == 15.0 and out1[2] == pytest.approx(0.06) and out1[6] == 0.0
    out2 = proc(torch.tensor([[1, 3, 4, 6, 9]]), torch.zeros(1, 12))[0]
    assert out2[10] == -10.0 and out2[9] == 0.0 and out2[2] == pytest.approx(0.12)
    out3 = proc(torch.tensor([[1, 3, 4, 6, 9, 10]]), torch.zeros(1, 12))[0]
    assert out3[10] == 0.0 and out3[2] == pytest.approx(0.18)
    inplace = torch.zeros(1, 12)
    RuleExpertProcessor(ex, [1], 3)(ids, inplace)
    assert torch.equal(inplace, out0)  # the default adds into the scores it is given


def test_table8_changes_only_what():
    code = {d.token: d.delta for d in paper_expert().uniform}
    t8 = {d.token: d.delta for d in paper_expert("eos-uniform-diversity-table8").uniform}
    assert code["What"] == -5.0 and t8["What"] == -3.0
    assert {k: v for k, v in code.items() if k != "What"} == {k: v for k, v in t8.items() if k != "What"}
