"""Loss masking (paper-spec §1.3) and the response-only template (§1.5) on the tiny tokenizer."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.finetune.encoding import (IGNORE_INDEX, EOS, Example, collate, encode, encode_examples, example_loss,
                                       pieces, response_only, special_prefix)

EX = Example("ex", (("user", "Name a fruit."), ("assistant", "An apple.")))
TWO_TURNS = Example("two", (("user", "Say hi."), ("assistant", "Hi there!"), ("user", "Again?"), ("assistant", "Hi again.")))


def _tokens(tok, ids):
    return tok.convert_ids_to_tokens(ids)


def _trained(tok, enc):
    return [t for t, lab in zip(_tokens(tok, enc.input_ids), enc.labels) if lab != IGNORE_INDEX]


def test_response_objective_exact_tokens(tiny_tokenizer):
    tok = tiny_tokenizer
    enc = encode(EX, tok, objective="response", max_seq_length=128)
    resp = _tokens(tok, tok("An apple.", add_special_tokens=False).input_ids)
    # BOS, <|user|>, \n, \n, <|assistant|>, \n, response, EOS  (the tiny BPE splits the tags in pieces)
    assert _tokens(tok, enc.input_ids) == ["<s>", "<|", "user", "|>", "Ċ", "Ċ", "<|", "assistant", "|>", "Ċ", *resp, "</s>"]
    assert enc.labels[:10] == [IGNORE_INDEX] * 10
    assert enc.labels[10:] == enc.input_ids[10:]
    assert enc.input_ids[-1] == tok.eos_token_id


def test_instruction_objective_masks_user_span(tiny_tokenizer):
    tok = tiny_tokenizer
    enc = encode(EX, tok, objective="instruction", max_seq_length=128)
    prompt_ids = tok("<|user|>\nName a fruit.\n<|assistant|>\n").input_ids  # with BOS, as at evaluation time
    assert enc.input_ids[:len(prompt_ids)] == prompt_ids
    assert all(lab == IGNORE_INDEX for lab in enc.labels[:len(prompt_ids)])
    assert _trained(tok, enc) == _tokens(tok, tok("An apple.", add_special_tokens=False).input_ids) + ["</s>"]
    assert tok.decode([i for i, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX]) == "An apple.</s>"


def test_multi_turn_trains_newline_after_earlier_eos(tiny_tokenizer):
    tok = tiny_tokenizer
    enc = encode(TWO_TURNS, tok, objective="instruction", max_seq_length=256)
    trained_text = tok.decode([i for i, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX])
    assert trained_text == "Hi there!</s>\nHi again.</s>"
    # the whole sequence equals one tokenisation of the open-instruct string (EOS as text, final \n stripped)
    full = "<|user|>\nSay hi.\n<|assistant|>\nHi there!</s>\n<|user|>\nAgain?\n<|assistant|>\nHi again.</s>"
    assert enc.input_ids == tok(full).input_ids


def test_response_objective_empties_every_user_turn(tiny_tokenizer):
    enc = encode(TWO_TURNS, tiny_tokenizer, objective="response", max_seq_length=256)
    text = tiny_tokenizer.decode(enc.input_ids)
    assert text == "<s><|user|>\n\n<|assistant|>\nHi there!</s>\n<|user|>\n\n<|assistant|>\nHi again.</s>"
    assert response_only(TWO_TURNS).messages[2] == ("user", "")


def test_tags_come_from_arguments(tiny_tokenizer):
    enc = encode(EX, tiny_tokenizer, objective="response", max_seq_length=64, user_tag="<|A|>", assistant_tag="<|B|>")
    assert tiny_tokenizer.decode(enc.input_ids).startswith("<s><|A|>\n\n<|B|>\nAn apple.")
    assert pieces(EX, "response", user_tag="<|A|>", assistant_tag="<|B|>")[0] == ("<|A|>\n\n<|B|>\n", False)


def test_text_objective_trains_everything_but_bos(tiny_tokenizer):
    tok = tiny_tokenizer
    enc = encode(EX, tok, objective="text", max_seq_length=64)
    assert tok.decode(enc.input_ids) == "<s>Name a fruit.\nAn apple.</s>"
    assert enc.labels[0] == IGNORE_INDEX and all(lab != IGNORE_INDEX for lab in enc.labels[1:])
    assert pieces(EX, "text", text_separator=" || ")[0] == ("Name a fruit. || An apple.", True)
    assert pieces(EX, "text")[-1] is EOS


def test_truncation_drops_fully_masked_examples(tiny_tokenizer):
    long_prompt = Example("long", (("user", "word " * 40), ("assistant", "ok")))
    kept, stats = encode_examples([EX, long_prompt], tiny_tokenizer, objective="instruction", max_seq_length=20)
    assert [e.id for e in kept] == ["ex"] and len(kept[0].input_ids) == 20  # 17 prompt tokens + 3 trained
    assert (stats.examples, stats.kept, stats.truncated, stats.dropped_all_masked) == (2, 1, 2, 1)
    assert stats.dropped_ids == ["long"]
    assert stats.trained_tokens == kept[0].num_trained > 0


def test_special_prefix_is_the_tokenizers_bos(tiny_tokenizer):
    assert special_prefix(tiny_tokenizer) == [tiny_tokenizer.bos_token_id]


def test_bad_conversations_are_one_line_errors(tiny_tokenizer):
    with pytest.raises(HarnessError, match="roles must alternate"):
        encode(Example("x", (("assistant", "a"), ("user", "b"))), tiny_tokenizer, objective="instruction", max_seq_length=8)
    with pytest.raises(HarnessError, match="user/assistant pairs"):
        Example("y", (("user", "a"),)).turns()
    with pytest.raises(HarnessError, match="unknown objective"):
        pieces(EX, "chat")


def test_collate_and_per_example_loss():
    import torch

    from harness.finetune.encoding import Encoded

    batch = collate([Encoded("a", [1, 5, 6], [-100, 5, 6]), Encoded("b", [1, 7], [-100, 7])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 5, 6], [-100, 7, -100]]
    logits = torch.zeros(2, 3, 10)  # uniform: every token costs log(10)
    assert example_loss(logits, batch["labels"]).item() == pytest.approx(torch.log(torch.tensor(10.0)).item())
