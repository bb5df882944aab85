"""``anchor: last-tag``: a tag the model generates restarts ``t`` and moves the diversity window.

Hand-built histories on the tiny tokenizer, scored step by step by all three paths that
share the rule arithmetic: the HF processor, the vLLM state (``BatchRules``) and the
from-scratch reference. ``anchor: prompt`` on the same histories keeps the prompt's positions.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from harness.engines.rule_state import BatchRules, request_args
from harness.errors import HarnessError
from harness.experts.processor import ResolvedExpert, RuleExpertProcessor
from harness.experts.reference import reference_anchors, reference_rule_scores
from harness.experts.spec import DiversityRule, EosRule, ExpertSpec, expert_from_dict, paper_expert


@pytest.fixture(scope="module")
def tok():
    from harness.models.tiny import train_tiny_tokenizer

    return train_tiny_tokenizer()


def _ids(tok, text, special=False):
    return tok(text, add_special_tokens=special)["input_ids"]


def _prompt(tok, user="<|user|>", assistant="<|assistant|>"):
    ids = _ids(tok, f"{user}\nHi there.\n{assistant}\n", special=True)
    user_start = len(_ids(tok, f"{user}\n", special=True))
    return ids, user_start


def _three_paths(tok, spec, prompt, user_start, generated):
    """Score every step of ``generated`` with zero base logits; returns (hf, vllm, reference) lists of (V,) rows."""
    V = len(tok)
    ex = ResolvedExpert.build(spec, tok, V)
    proc = RuleExpertProcessor(ex, [user_start], len(prompt))
    rules = BatchRules(tok, V)
    out: list[int] = []
    rules.update(SimpleNamespace(added=[(0, SimpleNamespace(extra_args=request_args(spec, user_start)), list(prompt), out)],
                                 removed=[], moved=[]))
    hf, vl, ref = [], [], []
    for k in range(len(generated) + 1):
        ids = list(prompt) + list(generated[:k])
        hf.append(proc(torch.tensor([ids]), torch.zeros(1, V))[0])
        out[:] = generated[:k]
        vl.append(rules.apply(torch.zeros(1, V))[0])
        ref.append(reference_rule_scores(ex, ids, user_start, len(prompt)))
    return hf, vl, ref


def _tag(tok, tag):
    return _ids(tok, f"\n{tag}\n")


def test_generated_assistant_tag_restarts_the_eos_ramp(tok):
    prompt, user_start = _prompt(tok)
    text = _ids(tok, "Well")
    gen = text + _tag(tok, "<|assistant|>") + text
    eos = tok.eos_token_id
    for anchor, expect_t in (("last-tag", len(text)), ("prompt", len(gen))):
        spec = ExpertSpec("e", eos=EosRule(per_token=1.0, until=100), anchor=anchor)
        hf, vl, ref = _three_paths(tok, spec, prompt, user_start, gen)
        assert float(hf[-1][eos]) == float(expect_t)
        for a, b, c in zip(hf, vl, ref):
            assert torch.equal(a, b) and torch.equal(a, c)
    # right after the tag's last token the ramp is at 0 again
    spec = ExpertSpec("e", eos=EosRule(per_token=1.0, until=100), anchor="last-tag")
    hf, _, _ = _three_paths(tok, spec, prompt, user_start, gen)
    assert float(hf[len(text) + len(_tag(tok, "<|assistant|>"))][eos]) == 0.0


@pytest.mark.parametrize("scope", ["user", "response"])
def test_generated_tag_moves_the_diversity_window(tok, scope):
    prompt, user_start = _prompt(tok)
    before, after = _ids(tok, "Well"), _ids(tok, "x")
    tag = "<|user|>" if scope == "user" else "<|assistant|>"
    gen = before + _tag(tok, tag) + after
    for anchor in ("last-tag", "prompt"):
        spec = ExpertSpec("d", diversity=DiversityRule(penalty=1.5, scope=scope), anchor=anchor)
        hf, vl, ref = _three_paths(tok, spec, prompt, user_start, gen)
        for a, b, c in zip(hf, vl, ref):
            assert torch.equal(a, b) and torch.equal(a, c)
        penalised = set((hf[-1] == -1.5).nonzero().flatten().tolist())
        if anchor == "last-tag":
            assert penalised == set(after)  # only what follows the generated tag
        else:
            assert set(before) <= penalised and set(after) <= penalised


def test_ab_tags_are_matched_and_untagged_prompts_never_move(tok):
    prompt, user_start = _prompt(tok, "<|A|>", "<|B|>")
    gen = _ids(tok, "Well") + _tag(tok, "<|B|>") + _ids(tok, "x")
    ex = ResolvedExpert.build(ExpertSpec("e", eos=EosRule(), anchor="last-tag"), tok, len(tok))
    ids = prompt + gen
    assert reference_anchors(ex, ids, user_start, len(prompt))[1] == len(ids) - 1
    plain = _ids(tok, "Hi there.", special=True)  # no tags in the prompt: nothing to re-find
    assert reference_anchors(ex, plain + gen, 1, len(plain)) == (1, len(plain))


def test_anchor_field_parses_hashes_and_refuses_bad_values():
    base = ExpertSpec("e", eos=EosRule())
    assert replace(base, anchor="prompt").spec_hash() == base.spec_hash()  # old content keys unchanged
    assert replace(base, anchor="last-tag").spec_hash() != base.spec_hash()
    assert expert_from_dict({"name": "e", "eos": {}, "anchor": "last-tag"}).anchor == "last-tag"
    with pytest.raises(HarnessError, match=r"anchor: 'last_tag' is not one of prompt, last-tag.*did you mean"):
        expert_from_dict({"name": "e", "eos": {}, "anchor": "last_tag"})
    assert paper_expert().anchor == "last-tag"  # the code's behaviour; see presets/paper.yaml
    assert paper_expert("eos-uniform-diversity-fixed").anchor == "prompt"
    assert paper_expert("eos-uniform-diversity-fixed").spec_hash() != paper_expert().spec_hash()
