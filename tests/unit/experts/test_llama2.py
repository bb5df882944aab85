"""The paper's Llama-2 ids, checked on the offline Llama-2 tokenizer (tests/data/llama2_tokenizer)."""

import pytest
import torch

from harness.errors import HarnessError
from harness.experts.processor import ResolvedExpert, RuleExpertProcessor, start_vector
from harness.experts.reference import paper_user_start
from harness.experts.registry import preset_paths
from harness.experts.spec import load_expert, paper_expert
from harness.experts.tokens import LLAMA2_IDS, LLAMA2_TAGS, looks_like_llama2, resolve_tokens
from harness.prompts import render, user_start_token

PAPER_IDS = (29966, 529, 29989, 306, 29902, 1334, 5618, 881, 334, 448, 1678, 396, 444, 13, 29991)


@pytest.mark.parametrize("text,ids", [
    ("grabbed", [1, 2646, 1327, 287]),
    ("           grabbed", [1, 9651, 2646, 1327, 287]),
    (" \n", [1, 259, 13]),
    ("ax\n####\nboo", [1, 4853, 13, 4136, 13, 833, 29877]),
    ("🦙", [1, 29871, 243, 162, 169, 156]),
], ids=["word", "spaces", "space-newline", "merge-order", "byte-fallback"])
def test_fixture_reproduces_llama_tokenizer_js(llama2_tokenizer, text, ids):
    assert llama2_tokenizer(text)["input_ids"] == ids


def test_paper_strings_resolve_to_the_codes_ids(llama2_tokenizer):
    res = resolve_tokens(llama2_tokenizer, list(paper_expert().token_strings()))
    assert tuple(r.id for r in res) == PAPER_IDS == LLAMA2_IDS
    assert [r.piece for r in res] == ["<", "▁<", "|", "▁I", "I", "▁We", "What", "▁should", "▁*", "▁-", "▁▁▁",
                                      "▁#", "▁##", "<0x0A>", "!"]


def test_what_without_space_is_not_space_what(llama2_tokenizer):
    # the code penalises 5618 "What" (sentence start after a newline), not 1724 "▁What"
    ex = ResolvedExpert.build(paper_expert(), llama2_tokenizer, 32000)
    assert ex.uniform_bias[5618] == -5.0 and ex.uniform_bias[1724] == 0.0
    t8 = ResolvedExpert.build(paper_expert("eos-uniform-diversity-table8"), llama2_tokenizer, 32000)
    assert t8.uniform_bias[5618] == -3.0
    assert torch.count_nonzero(ex.uniform_bias != t8.uniform_bias) == 1


def test_tag_suffixes_are_the_codes(llama2_tokenizer):
    for text, want in LLAMA2_TAGS.items():
        assert tuple(llama2_tokenizer(text, add_special_tokens=False)["input_ids"][-5:]) == want


def test_llama2_preset_and_auto_check_pass(llama2_tokenizer):
    assert looks_like_llama2(llama2_tokenizer)
    ResolvedExpert.build(load_expert(preset_paths()["paper-llama2"]), llama2_tokenizer, 32000)
    ResolvedExpert.build(paper_expert("eos-uniform-diversity-start"), llama2_tokenizer, 32000)


def test_auto_check_catches_a_wrong_eos(llama2_tokenizer):
    with pytest.raises(HarnessError, match="EOS is 1, the paper's code uses 2"):
        ResolvedExpert.build(paper_expert(), llama2_tokenizer, 32000, eos_id=1)


def test_llama2_check_refuses_other_tokenizers(tiny_tokenizer):
    assert not looks_like_llama2(tiny_tokenizer)
    spec = load_expert(preset_paths()["paper-llama2"])
    with pytest.raises(HarnessError, match=r"paper-llama2\.yaml.*check: llama2: the tokenizer is not Llama-2's"):
        ResolvedExpert.build(spec, tiny_tokenizer, len(tiny_tokenizer))


def _paper_score_string(s):
    """The paper code's `score_string` (fe1c2d8), transcribed: agreements = ["Okay"] -> +10."""
    if s == "▁":
        return 0
    if s[0] == "▁":
        s = s[1:]
    if s == "I":
        return -3
    if s in ["Okay"]:
        return 10
    if s[0].isupper():
        return 1
    elif s[0].islower() or ("\u4e00" <= s[0] <= "\u9fff"):
        return 1
    elif "\u0400" <= s[0] <= "\u04FF" or "\u3040" <= s[0] <= "\u30FF" or "\uAC00" <= s[0] <= "\uD7AF":
        return 1
    elif s[0] in ".,:;!?<>[]{}()\"'`~@#$%^&*-=+\\|/":
        return -1
    else:
        return 0


def test_start_rule_equals_the_codes_scoring_on_every_llama2_piece(llama2_tokenizer):
    spec = paper_expert("eos-uniform-diversity-start").start
    ours = start_vector(spec, llama2_tokenizer, 32000)
    inverse = {v: k for k, v in llama2_tokenizer.get_vocab().items()}
    paper = torch.tensor([_paper_score_string(inverse[i]) * 5.0 for i in range(32000)])
    assert torch.equal(ours, paper)
    assert ours[20419] == 50.0  # "▁Okay"
    assert ours[1] == ours[2] == ours[13] == -5.0  # <s>, </s>, <0x0A> begin with "<"


def test_diversity_covers_instruction_and_assistant_tag(llama2_tokenizer):
    rp = render("tulu", "What is 2+2?")
    enc = llama2_tokenizer(rp.text, return_offsets_mapping=True)
    ids = enc["input_ids"]
    start = user_start_token(enc["offset_mapping"], rp.user_start_char)
    assert start == paper_user_start(ids, llama2_tokenizer) == 7  # <s> ▁< | user | > \n | What
    ex = ResolvedExpert.build(paper_expert(), llama2_tokenizer, 32000)
    r = RuleExpertProcessor(ex, [start], len(ids))(torch.tensor([ids]), torch.zeros(1, 32000))[0]
    assert r[29966] == -5.5 and r[29989] == -5.5  # "<" and "|" of the assistant tag: -4 - 1.5
    assert r[13] == pytest.approx(-0.5)  # newline: +1 - 1.5
    assert r[5618] == -6.5  # "What" of the instruction: -5 - 1.5
    assert r[338] == -1.5 and r[22137] == -1.5  # "▁is" (instruction), "istant" (tag)
    assert r[529] == -4.0 and r[1792] == 0.0  # "▁<" and "user" of the user tag are not in scope
    assert r[1] == 0.0  # BOS is not in scope
