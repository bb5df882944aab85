"""Where the rules anchor: the response start (``t``) and the diversity window, per row.

An expert's ``anchor`` says how the two positions are found (paper-spec §2.2):

* ``prompt`` — both come from the rendered prompt: ``t`` counts tokens after the prompt,
  the ``user`` diversity window starts at the instruction's first token. Tags the model
  generates change nothing.
* ``last-tag`` — the authors' code: at every step the *last* assistant tag's end is the
  response start and the *last* user tag's end starts the diversity window, over prompt
  plus generated tokens. A tag the model generates restarts the EOS ramp (and the start
  rule) or moves the window. Until the model generates a tag, ``last-tag`` equals
  ``prompt``.

A tag is matched by its token sequence. For each row it is the longest suffix (at least
:data:`MIN_MATCH` ids) of ``tokenizer("\\n" + tag + "\\n")`` that sits exactly where the
prompt puts that tag: the user tag ending at the instruction's first token, the
assistant tag ending the prompt (the paper's code matches the last five ids, robust to
how the tag's first character merges with what precedes it). The tags tried are the
prompt formats' own (``<|user|>``/``<|assistant|>``, ``<|A|>``/``<|B|>``); a prompt
with neither (``hf`` chat templates) has no pattern, and ``last-tag`` then behaves as
``prompt``. Only matches ending after the prompt move an anchor (a tag quoted inside
the instruction does not).

Example (token ids of the tiny test tokenizer: ``<|user|>\\n`` is 278 308 279 202):
    >>> a = TagAnchors(user_tag=(278, 308, 279, 202), assistant_tag=None, user=1, response=5, tail=[7, 202])
    >>> a.feed([278, 308, 279], "user"), a.feed([202], "user"), a.user, a.response
    (False, True, 9, 5)
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_MATCH = 3


def tag_candidates(tokenizer) -> dict[str, list[tuple[int, ...]]]:
    """``{"user": [ids, ...], "assistant": [ids, ...]}``: each format's tags, tokenized with newlines.

    >>> tag_candidates(None)
    {'user': [], 'assistant': []}
    """
    from harness.prompts import TAGS

    out: dict[str, list[tuple[int, ...]]] = {"user": [], "assistant": []}
    if tokenizer is None:
        return out
    for user, assistant in TAGS.values():
        for role, tag in (("user", user), ("assistant", assistant)):
            ids = tuple(tokenizer("\n" + tag + "\n", add_special_tokens=False)["input_ids"])
            if ids not in out[role]:
                out[role].append(ids)
    return out


def suffix_at(ids: Sequence[int], end: int, candidates: Sequence[tuple[int, ...]]) -> tuple[int, ...] | None:
    """The longest suffix (>= MIN_MATCH ids, or the whole tag if shorter) of a candidate ending at ``end``.

    >>> suffix_at([9, 278, 308, 279, 202, 5], 5, [(202, 278, 308, 279, 202)])
    (278, 308, 279, 202)
    """
    best: tuple[int, ...] | None = None
    for tag in candidates:
        for k in range(len(tag), min(MIN_MATCH, len(tag)) - 1, -1):
            if k <= end and tuple(ids[end - k:end]) == tag[-k:]:
                if best is None or k > len(best):
                    best = tag[-k:]
                break
    return best


def tag_patterns(candidates: dict, prompt: Sequence[int], user_start: int):
    """``(user_tag, assistant_tag)`` patterns of one row's prompt (``None`` where no tag is there)."""
    return (suffix_at(prompt, user_start, candidates.get("user", ())),
            suffix_at(prompt, len(prompt), candidates.get("assistant", ())))


class TagAnchors:
    """Incremental ``last-tag`` anchors of one row: fed the tokens as they are generated.

    Built at the end of the prompt (``response`` = prompt length); ``tail`` is the prompt's
    last ids (a tag may start inside the prompt, e.g. its newline).

    Attributes:
        user: index (in prompt + generated) where the ``user`` diversity window starts.
        response: index of the first response token; ``t = length - response``.
        length: tokens seen so far (prompt included).
    """

    def __init__(self, user_tag, assistant_tag, user: int, response: int, tail: Sequence[int]):
        self.user_tag = tuple(user_tag) if user_tag else None
        self.assistant_tag = tuple(assistant_tag) if assistant_tag else None
        self.user, self.response, self.length = user, response, response
        self._keep = max(len(self.user_tag or ()), len(self.assistant_tag or ()))
        self._tail = list(tail)[-self._keep:] if self._keep else []

    @classmethod
    def for_prompt(cls, candidates: dict, prompt: Sequence[int], user_start: int) -> TagAnchors:
        """Anchors at the prompt's positions, with the row's tag patterns."""
        user_tag, assistant_tag = tag_patterns(candidates, prompt, user_start)
        return cls(user_tag, assistant_tag, user_start, len(prompt), prompt)

    def window(self, scope: str) -> int:
        """Start of the diversity window: the user anchor (``user`` scope) or the response start."""
        return self.user if scope == "user" else self.response

    def feed(self, tokens: Sequence[int], scope: str) -> bool:
        """Take newly generated ``tokens``; True when the ``scope`` diversity window moved."""
        before = self.window(scope)
        for tok in tokens:
            self.length += 1
            if not self._keep:
                continue
            self._tail.append(int(tok))
            if len(self._tail) > self._keep:
                del self._tail[0]
            if self.assistant_tag and tuple(self._tail[-len(self.assistant_tag):]) == self.assistant_tag:
                self.response = self.length
            if self.user_tag and tuple(self._tail[-len(self.user_tag):]) == self.user_tag:
                self.user = self.length
        return self.window(scope) != before


def last_tag_positions(ids: Sequence[int], prompt_length: int, user_start: int, user_tag, assistant_tag):
    """``(user, response)`` anchors of ``ids`` from scratch: the last tag match ending after the prompt.

    The reference path's literal form of :class:`TagAnchors` (no state carried between steps).

    >>> last_tag_positions([1, 2, 5, 7, 8, 5, 7], 3, 1, (5, 7), (7, 8))
    (7, 5)
    """
    user, response = user_start, prompt_length
    for end in range(prompt_length + 1, len(ids) + 1):
        if assistant_tag and end >= len(assistant_tag) and tuple(ids[end - len(assistant_tag):end]) == tuple(assistant_tag):
            response = end
        if user_tag and end >= len(user_tag) and tuple(ids[end - len(user_tag):end]) == tuple(user_tag):
            user = end
    return user, response
