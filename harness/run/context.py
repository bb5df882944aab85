"""Does every prompt fit the model's context? Checked before anything is generated.

A prompt of ``n`` tokens (after the prompt format) with a cap of ``max_new_tokens`` needs
``n + max_new_tokens`` positions. :func:`fit_prompts` refuses the first prompt that does
not fit, in one line naming the task, sample id and the numbers, or — when the user opts
in with ``--truncate-prompts`` — drops tokens from the left of the instruction until it
fits (the prompt format's tags stay intact) and reports how many tokens each prompt
lost (the runner records it in ``samples.prompt_truncated_tokens``). A cap that leaves
no room for any prompt is refused either way.

Example:
    >>> from harness.records import PromptItem
    >>> class Words:                                     # a toy tokenizer: one token per word
    ...     def __call__(self, texts, add_special_tokens=True):
    ...         one = lambda t: list(range(len(t.split())))
    ...         return {"input_ids": [one(t) for t in texts] if isinstance(texts, list) else one(texts)}
    ...     def decode(self, ids, skip_special_tokens=True):
    ...         return " ".join(["w"] * len(ids))
    >>> item = PromptItem("demo", "1", "7", "a b c d e f")
    >>> fit_prompts([item], Words(), "tulu", context=8, max_new_tokens=4, model="toy")
    Traceback (most recent call last):
    ...
    harness.errors.HarnessError: task demo, sample 7: 8 prompt tokens + max_new_tokens 4 = 12 > 8, the context of toy; shorten the prompt, lower --max-new-tokens, or pass --truncate-prompts to cut prompts from the left
    >>> items, dropped = fit_prompts([item], Words(), "tulu", context=8, max_new_tokens=4, model="toy", truncate=True)
    >>> items[0].instruction, dropped
    ('w w', {('demo', '7'): 4})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.errors import HarnessError
from harness.prompts import render
from harness.records import PromptItem

#: Config attributes that hold a model's context length, in the order they are tried.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def context_length(model_path: str | Path) -> int | None:
    """The model's context length from its ``config.json`` (``None`` when it does not say)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(model_path))
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    for key in CONTEXT_KEYS:
        value = getattr(text, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _count(texts: list[str], tokenizer, add_special_tokens: bool) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]]


def _render_all(items: Sequence[PromptItem], tokenizer, prompt_format: str) -> tuple[list[str], bool]:
    rendered = [render(prompt_format, i.instruction, tokenizer) for i in items]
    return [r.text for r in rendered], (rendered[0].add_special_tokens if rendered else True)


def fit_prompts(items: Sequence[PromptItem], tokenizer, prompt_format: str, *, context: int,
                max_new_tokens: int | Callable[[PromptItem], int], model: str = "the model",
                truncate: bool = False) -> tuple[list[PromptItem], dict[tuple[str, str], int]]:
    """Check ``prompt tokens + max_new_tokens <= context`` for every item.

    ``max_new_tokens`` is one cap, or a function giving an item's largest cap (when caps
    differ by task or variant). Returns the items (left-truncated where needed and
    ``truncate``) and ``{(task, sample_id): tokens dropped}`` for the truncated ones.
    """
    cap_of = max_new_tokens if callable(max_new_tokens) else (lambda item: max_new_tokens)
    caps = [cap_of(item) for item in items]
    for item, cap in zip(items, caps):
        if cap >= context:
            raise HarnessError(f"max_new_tokens: {cap} (task {item.task}) leaves no room for a prompt in {context}, "
                               f"the context of {model}; use at most {context - 1} (less the prompt's length)")
    texts, special = _render_all(items, tokenizer, prompt_format)
    counts = _count(texts, tokenizer, special)
    over = [(i, n) for i, n in enumerate(counts) if n + caps[i] > context]
    if not over:
        return list(items), {}
    if not truncate:
        i, n = over[0]
        more = f" (and {len(over) - 1} more prompts)" if len(over) > 1 else ""
        raise HarnessError(
            f"task {items[i].task}, sample {items[i].sample_id}: {n} prompt tokens + max_new_tokens {caps[i]} = "
            f"{n + caps[i]} > {context}, the context of {model}{more}; shorten the prompt, lower "
            "--max-new-tokens, or pass --truncate-prompts to cut prompts from the left")
    out, dropped = list(items), {}
    for i, n in over:
        item = items[i]
        new = _truncate_left(item, n, context - caps[i], tokenizer, prompt_format, special, model)
        out[i] = new[0]
        dropped[(item.task, item.sample_id)] = n - new[1]
    return out, dropped


def _truncate_left(item: PromptItem, n: int, budget: int, tokenizer, prompt_format: str, special: bool,
                   model: str) -> tuple[PromptItem, int]:
    """Drop instruction tokens from the left until the rendered prompt fits ``budget``; returns (item, new count)."""
    ids = tokenizer(item.instruction, add_special_tokens=False)["input_ids"]
    drop = n - budget
    for _ in range(16):  # decode/re-encode may merge tokens differently: re-count and drop more if needed
        if drop >= len(ids):
            break
        text = tokenizer.decode(ids[drop:], skip_special_tokens=True)
        m = _count([render(prompt_format, text, tokenizer).text], tokenizer, special)[0]
        if m <= budget:
            return dataclasses.replace(item, instruction=text), m
        drop += m - budget
    raise HarnessError(f"task {item.task}, sample {item.sample_id}: even an empty instruction does not fit "
                       f"{budget} tokens (the context of {model} less max_new_tokens); lower --max-new-tokens")
