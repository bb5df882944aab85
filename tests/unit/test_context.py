"""Prompt tokens + cap against the model's context: refused in one line, or cut from the left on opt-in."""

from __future__ import annotations

import pytest

from harness.run.context import context_length, fit_prompts
from harness.errors import HarnessError
from harness.prompts import render
from harness.records import PromptItem


def _n(tok, text: str) -> int:
    rp = render("tulu", text, tok)
    return len(tok(rp.text, add_special_tokens=rp.add_special_tokens)["input_ids"])


def test_context_length_from_config(tiny_model_dir):
    assert context_length(tiny_model_dir) == 2048


def test_fitting_prompts_pass_unchanged(tiny_tokenizer):
    items = [PromptItem("t", "1", str(i), f"Say hi {i}.") for i in range(3)]
    out, dropped = fit_prompts(items, tiny_tokenizer, "tulu", context=2048, max_new_tokens=256)
    assert out == items and dropped == {}


def test_refusal_names_task_sample_and_numbers(tiny_tokenizer):
    long = PromptItem("mytask", "1", "s9", "lorem ipsum " * 400)
    n = _n(tiny_tokenizer, long.instruction)
    items = [PromptItem("mytask", "1", "ok", "hi"), long, long]
    with pytest.raises(HarnessError) as err:
        fit_prompts(items, tiny_tokenizer, "tulu", context=512, max_new_tokens=64, model="tiny")
    msg = str(err.value)
    assert msg.startswith(f"task mytask, sample s9: {n} prompt tokens + max_new_tokens 64 = {n + 64} > 512, the context of tiny")
    assert "(and 1 more prompts)" in msg and "--truncate-prompts" in msg and "\n" not in msg


def test_cap_beyond_context_is_refused_even_with_truncation(tiny_tokenizer):
    with pytest.raises(HarnessError, match=r"max_new_tokens: 4096 \(task t\) leaves no room for a prompt in 2048"):
        fit_prompts([PromptItem("t", "1", "0", "hi")], tiny_tokenizer, "tulu", context=2048, max_new_tokens=4096,
                    truncate=True)


@pytest.mark.parametrize("budget", [40, 100, 300])
def test_left_truncation_keeps_the_end_and_the_tags(tiny_tokenizer, budget):
    words = " ".join(f"w{i}" for i in range(500))
    item = PromptItem("t", "1", "long", words)
    short = PromptItem("t", "1", "short", "hi")
    out, dropped = fit_prompts([short, item], tiny_tokenizer, "tulu", context=budget + 16, max_new_tokens=16,
                               truncate=True)
    n_before, n_after = _n(tiny_tokenizer, words), _n(tiny_tokenizer, out[1].instruction)
    assert out[0] == short and n_after <= budget
    assert dropped == {("t", "long"): n_before - n_after} and n_before - n_after > 0
    assert words.endswith(out[1].instruction.strip()) and out[1].instruction.strip().endswith("w499")
    assert n_after >= budget - 4  # drops what it must, not much more
    assert render("tulu", out[1].instruction, tiny_tokenizer).text.startswith("<|user|>\n")


def test_template_alone_too_long(tiny_tokenizer):
    with pytest.raises(HarnessError, match="even an empty instruction does not fit"):
        fit_prompts([PromptItem("t", "1", "0", "a b c d e f g")], tiny_tokenizer, "tulu", context=10, max_new_tokens=8,
                    truncate=True)


def test_caps_per_item(tiny_tokenizer):
    items = [PromptItem("short-cap", "1", "a", "word " * 100), PromptItem("long-cap", "1", "b", "word " * 100)]
    n = _n(tiny_tokenizer, items[0].instruction)
    caps = {"short-cap": 8, "long-cap": 400}
    with pytest.raises(HarnessError, match=f"task long-cap, sample b: {n} prompt tokens \\+ max_new_tokens 400"):
        fit_prompts(items, tiny_tokenizer, "tulu", context=n + 300, max_new_tokens=lambda i: caps[i.task])
    out, dropped = fit_prompts(items, tiny_tokenizer, "tulu", context=n + 300, max_new_tokens=lambda i: caps[i.task],
                               truncate=True)
    assert out[0] == items[0] and list(dropped) == [("long-cap", "b")]
    assert _n(tiny_tokenizer, out[1].instruction) + 400 <= n + 300
