"""Token strings resolve per tokenizer; anything but exactly one token is an error."""

import pytest

from harness.errors import HarnessError
from harness.experts.processor import ResolvedExpert
from harness.experts.spec import paper_expert
from harness.experts.tokens import LLAMA2_IDS, Resolution, bytelevel_surface, check_llama2, resolve_tokens, sentencepiece_surface


@pytest.mark.parametrize("piece,surface", [("▁I", " I"), ("▁▁▁", "   "), ("<0x0A>", "\n"), ("What", "What"), ("<0xE2>", None)])
def test_sentencepiece_surface(piece, surface):
    assert sentencepiece_surface(piece) == surface


@pytest.mark.parametrize("piece,surface", [("ĠI", " I"), ("Ċ", "\n"), ("ĠĠĠ", "   "), ("!", "!")])
def test_bytelevel_surface(piece, surface):
    assert bytelevel_surface(piece) == surface


def test_paper_tokens_resolve_on_tiny_tokenizer(tiny_tokenizer):
    spec = paper_expert()
    res = resolve_tokens(tiny_tokenizer, spec.token_strings())
    assert len(res) == 15
    for r in res:  # each id decodes back to its string
        assert tiny_tokenizer.decode([r.id]) == r.token


def test_multi_token_string_is_an_error(tiny_tokenizer):
    with pytest.raises(HarnessError, match="not a single token"):
        resolve_tokens(tiny_tokenizer, ["supercalifragilistic"], where="experts/x.yaml")


def test_llama2_check_reports_mismatches():
    good = [Resolution(str(i), i, str(i)) for i in LLAMA2_IDS]
    check_llama2(good)
    bad = good[:3] + [Resolution(" I", 1, "x")] + good[4:]
    with pytest.raises(HarnessError, match="' I': 1 != 306"):
        check_llama2(bad)


def test_tokenizer_larger_than_model_is_refused(tiny_tokenizer):
    with pytest.raises(HarnessError, match="refusing to truncate"):
        ResolvedExpert.build(paper_expert(), tiny_tokenizer, vocab_size=len(tiny_tokenizer) - 1)


def test_resolution_table_is_recorded(tiny_tokenizer):
    table = ResolvedExpert.build(paper_expert(), tiny_tokenizer, vocab_size=len(tiny_tokenizer)).resolution_table()
    assert table["eos_id"] == tiny_tokenizer.eos_token_id
    assert [t["token"] for t in table["tokens"]][:3] == ["<", " <", "|"]
