"""Prompt formats: how an instruction becomes the text a model continues.

* ``tulu`` — the paper's format, ``<|user|>\\n{instruction}\\n<|assistant|>\\n``; the
  tokenizer adds BOS (paper-spec §1.2). Default for base models.
* ``tulu-ab`` — the same with Appendix B's tags, ``<|A|>\n{instruction}\n<|B|>\n`` (the
  paper's finetuning alternative; evaluate an ``<|A|>``/``<|B|>``-tuned model with it).
* ``hf`` — the model's own chat template (instruction-tuned models).

The rule expert needs no tag strings: it anchors on the user-content start and the
prompt's end that the rendering reports, so its rules line up with whichever tags the
format writes (:data:`TAGS` names them per format).

Each rendering reports the character offset where the user content starts, so the
rule expert's diversity rule can begin at the right token in any format.

Example:
    >>> p = render("tulu", "Name a fruit.")
    >>> p.text
    '<|user|>\\nName a fruit.\\n<|assistant|>\\n'
    >>> p.text[p.user_start_char:p.user_start_char + 4]
    'Name'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import HarnessError, did_you_mean
from harness.records import PromptItem

USER_TAG = "<|user|>"
ASSISTANT_TAG = "<|assistant|>"
TAGS = {"tulu": (USER_TAG, ASSISTANT_TAG), "tulu-ab": ("<|A|>", "<|B|>")}
"""(user tag, assistant tag) of each tag-based format."""
FORMATS = ("tulu", "tulu-ab", "hf")


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A prompt as text, plus where the user content begins.

    Attributes:
        text: the text to tokenize.
        user_start_char: offset in ``text`` of the instruction's first character.
        add_special_tokens: whether the tokenizer should add BOS itself (``tulu``) or the
            template already wrote it (``hf``).
    """

    text: str
    user_start_char: int
    add_special_tokens: bool


def render(fmt: str, instruction: str, tokenizer=None, *, user_tag: str | None = None,
           assistant_tag: str | None = None) -> RenderedPrompt:
    """Render ``instruction`` in prompt format ``fmt`` (``tulu``, ``tulu-ab`` or ``hf``).

    ``user_tag`` / ``assistant_tag`` override a tag format's own tags (finetuning configs).

    >>> render("tulu-ab", "Hi.").text
    '<|A|>\\nHi.\\n<|B|>\\n'
    """
    if fmt in TAGS:
        user_tag = user_tag or TAGS[fmt][0]
        assistant_tag = assistant_tag or TAGS[fmt][1]
        head = f"{user_tag}\n"
        return RenderedPrompt(f"{head}{instruction}\n{assistant_tag}\n", len(head), True)
    if fmt == "hf":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise HarnessError("prompt format 'hf': the model's tokenizer has no chat template (use --prompt-format tulu)")
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
        )
        start = text.rfind(instruction)
        if start < 0:
            raise HarnessError("prompt format 'hf': the chat template does not contain the instruction verbatim")
        return RenderedPrompt(text, start, False)
    raise HarnessError(f"unknown prompt format {fmt!r}{did_you_mean(fmt, FORMATS)}; formats: {', '.join(FORMATS)}")


def user_start_token(offsets: list[tuple[int, int]], user_start_char: int) -> int:
    """Index of the first token that covers a character at or after ``user_start_char``.

    ``offsets`` are the tokenizer's (start, end) character spans; special tokens have
    (0, 0) spans and are skipped.

    >>> user_start_token([(0, 0), (0, 2), (2, 3), (3, 8)], 3)
    3
    """
    for i, (start, end) in enumerate(offsets):
        if end > user_start_char and end > start:
            return i
    return len(offsets)


def encode_items(items: Sequence[PromptItem], prompt_format: str, tokenizer) -> list[dict]:
    """Render and tokenize prompts (every engine feeds the model these ids).

    Returns one dict per item: ``item``, ``text`` (the rendered prompt), ``ids`` and
    ``user_start`` (index of the first user-content token).
    """
    out = []
    for item in items:
        rp = render(prompt_format, item.instruction, tokenizer)
        enc = tokenizer(rp.text, add_special_tokens=rp.add_special_tokens, return_offsets_mapping=True)
        out.append({
            "item": item,
            "text": rp.text,
            "ids": enc["input_ids"],
            "user_start": user_start_token(enc["offset_mapping"], rp.user_start_char),
        })
    return out
