"""Token strings resolve per tokenizer; anything but exactly one token is an error."""

import pytest

from harness.errors import HarnessError
from harness.experts.processor import ResolvedExpert
from harness.experts.spec import load_expert, paper_expert
from harness.experts.tokens import LLAMA2_IDS, LLAMA2_STRINGS, Resolution, bytelevel_surface, check_llama2, resolve_tokens, sentencepiece_surface


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
    good = [Resolution(s, i, s) for s, i in zip(LLAMA2_STRINGS, LLAMA2_IDS)]
    check_llama2(good, eos_id=2)
    bad = good[:3] + [Resolution(" I", 1, "x")] + good[4:]
    with pytest.raises(HarnessError, match="' I' is 1, the paper's code uses 306") as err:
        check_llama2(bad, eos_id=3, where="experts/x.yaml")
    assert str(err.value).startswith("experts/x.yaml: llama2 check failed") and "EOS is 3" in str(err.value)


def test_unresolvable_token_names_file_and_key(tmp_path, tiny_tokenizer):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nuniform:\n  - {token: '!', delta: 1}\n  - {token: ' supercalifragilistic', delta: 2}\n")
    with pytest.raises(HarnessError, match=r"mine\.yaml\): uniform\[1\]\.token: token ' supercalifragilistic' is not a single token") as err:
        ResolvedExpert.build(load_expert(path), tiny_tokenizer, len(tiny_tokenizer))
    assert "\n" not in str(err.value)


def test_tokenizer_larger_than_model_is_refused(tiny_tokenizer):
    with pytest.raises(HarnessError, match="refusing to truncate"):
        ResolvedExpert.build(paper_expert(), tiny_tokenizer, vocab_size=len(tiny_tokenizer) - 1)


def test_resolution_table_is_recorded(tiny_tokenizer):
    table = ResolvedExpert.build(paper_expert(), tiny_tokenizer, vocab_size=len(tiny_tokenizer)).resolution_table()
    assert table["eos_id"] == tiny_tokenizer.eos_token_id
    assert [t["token"] for t in table["tokens"]][:3] == ["<", " <", "|"]
