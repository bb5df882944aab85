"""Training examples, the response-only transformation, tokenisation and loss masking.

The template is the one in :mod:`harness.prompts` (``render("tulu", ...)``), so training and
evaluation read the same text. Masking follows paper-spec §1.3: labels are ``-100`` on
every user span (up to and including ``<|assistant|>\\n``); the response, its EOS and, in
multi-turn dialogs, the ``\\n`` after an earlier EOS carry loss. Spans are assigned by
token position: each run of text between EOS tokens is tokenised once with character
offsets, a token is trained when its first character lies in a trained span, and EOS is
appended as its id (never re-decoded or searched for as a string).

Example:
    >>> ex = Example("0", (("user", "Name a fruit."), ("assistant", "Apple.")))
    >>> response_only(ex).messages[0]
    ('user', '')
    >>> [(t, trained) for t, trained in pieces(response_only(ex), "response")][:2]
    [('<|user|>\\n\\n<|assistant|>\\n', False), ('Apple.', True)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.prompts import ASSISTANT_TAG, USER_TAG, render

IGNORE_INDEX = -100
#: Marks where the tokenizer's EOS id goes in :func:`pieces` output.
EOS = ("<EOS>", True)


@dataclass(frozen=True)
class Example:
    """One conversation: alternating ``("user", text)`` / ``("assistant", text)`` turns.

    Example:
        >>> Example("gsm-0", (("user", "1+1?"), ("assistant", "2"))).turns()
        [('1+1?', '2')]
    """

    id: str
    messages: tuple[tuple[str, str], ...]

    def turns(self) -> list[tuple[str, str]]:
        """(user, assistant) pairs; raises if the roles do not alternate user-first."""
        msgs = self.messages
        if not msgs or len(msgs) % 2:
            raise HarnessError(f"example {self.id}: expected user/assistant pairs, got {len(msgs)} messages")
        for i, (role, _) in enumerate(msgs):
            if role != ("user" if i % 2 == 0 else "assistant"):
                raise HarnessError(f"example {self.id}: message {i} has role {role!r}; roles must alternate user, assistant")
        return [(msgs[i][1], msgs[i + 1][1]) for i in range(0, len(msgs), 2)]


@dataclass
class Encoded:
    """Token ids and labels of one example (labels ``-100`` where no loss is taken)."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def num_trained(self) -> int:
        """Number of positions that carry loss."""
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


@dataclass
class EncodeStats:
    """Counts from :func:`encode_examples` (recorded in ``finetune.json``)."""

    examples: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_all_masked: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    dropped_ids: list[str] = field(default_factory=list)


def response_only(example: Example) -> Example:
    """Paper Eq. (2): every user message's content becomes the empty string.

    >>> response_only(Example("1", (("user", "Hi"), ("assistant", "Hello")))).messages
    (('user', ''), ('assistant', 'Hello'))
    """
    return Example(example.id, tuple((r, "" if r == "user" else c) for r, c in example.messages))


def pieces(example: Example, objective: str, *, user_tag: str = USER_TAG, assistant_tag: str = ASSISTANT_TAG,
           text_separator: str = "\n") -> list[tuple[str, bool]]:
    """The example as ``(text, trained)`` pieces, with :data:`EOS` where the EOS id goes.

    ``instruction`` and ``response`` render each turn with ``render("tulu", ...)`` (the
    user content stripped, as open-instruct does); ``response`` empties the user turns
    first. ``text`` joins every message with ``text_separator`` and trains on all of it.

    >>> pieces(Example("1", (("user", " Hi "), ("assistant", "Yo"))), "instruction")
    [('<|user|>\\nHi\\n<|assistant|>\\n', False), ('Yo', True), ('<EOS>', True)]
    """
    turns = example.turns()
    if objective == "text":
        return [(text_separator.join(c.strip() for pair in turns for c in pair), True), EOS]
    if objective == "response":
        turns = response_only(example).turns()
    elif objective != "instruction":
        raise HarnessError(f"unknown objective {objective!r}; objectives: instruction, response, text")
    out: list[tuple[str, bool]] = []
    for i, (user, assistant) in enumerate(turns):
        prompt = render("tulu", user.strip(), user_tag=user_tag, assistant_tag=assistant_tag).text
        out += [(prompt, False), (assistant.strip(), True), EOS]
        if i < len(turns) - 1:
            out.append(("\n", True))  # open-instruct trains the newline after an earlier EOS
    return out


def special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts in front of plain text itself (BOS for Llama/Gemma, none for OLMo).

    Training uses the tokenizer's own choice, as evaluation does (``add_special_tokens=True``).
    """
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    n = len(full)
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            n = start
            break
    return list(full[:n])


def encode(example: Example, tokenizer, *, objective: str, max_seq_length: int, user_tag: str = USER_TAG,
           assistant_tag: str = ASSISTANT_TAG, text_separator: str = "\n",
           prefix: list[int] | None = None) -> Encoded:
    """Tokenise ``example`` and build labels (``-100`` outside response + EOS), then truncate.

    Args:
        example: the conversation.
        tokenizer: a fast HF tokenizer (offsets are needed).
        objective: ``instruction``, ``response`` or ``text``.
        max_seq_length: keep at most this many tokens (labels are cut with them).
        user_tag, assistant_tag, text_separator: template settings.
        prefix: :func:`special_prefix` of the tokenizer (computed when ``None``).

    Returns:
        :class:`Encoded`; its labels may be all ``-100`` after truncation (callers drop it).

    Example:
        >>> enc = encode(ex, tok, objective="response", max_seq_length=64)   # doctest: +SKIP
        >>> tok.convert_ids_to_tokens(enc.input_ids)[:7]                      # doctest: +SKIP
        ['<s>', '<|', 'user', '|>', 'Ċ', 'Ċ', '<|']
    """
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise HarnessError("finetune: the tokenizer has no EOS token; training needs one to mark the response end")
    if not getattr(tokenizer, "is_fast", False):
        raise HarnessError("finetune: a fast tokenizer (with offset mapping) is required")
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    ids, labels = list(prefix), [IGNORE_INDEX] * len(prefix)
    text, spans = "", []

    def flush() -> None:
        nonlocal text, spans
        if text:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            for tok, (start, _end) in zip(enc["input_ids"], enc["offset_mapping"]):
                ids.append(tok)
                labels.append(tok if any(a <= start < b for a, b in spans) else IGNORE_INDEX)
        text, spans = "", []

    for piece in pieces(example, objective, user_tag=user_tag, assistant_tag=assistant_tag,
                        text_separator=text_separator):
        if piece is EOS:
            flush()
            ids.append(eos_id)
            labels.append(eos_id)
            continue
        chunk, trained = piece
        if trained and chunk:
            spans.append((len(text), len(text) + len(chunk)))
        text += chunk
    flush()
    return Encoded(example.id, ids[:max_seq_length], labels[:max_seq_length])


def encode_examples(examples, tokenizer, *, objective: str, max_seq_length: int, user_tag: str = USER_TAG,
                    assistant_tag: str = ASSISTANT_TAG, text_separator: str = "\n") -> tuple[list[Encoded], EncodeStats]:
    """Encode many examples; those left with no trained token after truncation are dropped and counted.

    Example:
        >>> kept, stats = encode_examples(exs, tok, objective="instruction", max_seq_length=8)  # doctest: +SKIP
        >>> stats.dropped_all_masked                                                             # doctest: +SKIP
        1
    """
    prefix = special_prefix(tokenizer)
    stats, kept = EncodeStats(), []
    for ex in examples:
        stats.examples += 1
        full = encode(ex, tokenizer, objective=objective, max_seq_length=10**9, user_tag=user_tag,
                      assistant_tag=assistant_tag, text_separator=text_separator, prefix=prefix)
        enc = Encoded(full.id, full.input_ids[:max_seq_length], full.labels[:max_seq_length])
        if len(full.input_ids) > max_seq_length:
            stats.truncated += 1
        if enc.num_trained == 0:
            stats.dropped_all_masked += 1
            stats.dropped_ids.append(ex.id)
            continue
        kept.append(enc)
        stats.kept += 1
        stats.tokens += len(enc.input_ids)
        stats.trained_tokens += enc.num_trained
    return kept, stats


def collate(batch: list[Encoded], pad_id: int) -> dict:
    """Right-pad a micro-batch: ``input_ids``, ``attention_mask``, ``labels`` as torch tensors."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def example_loss(logits, labels):
    """Mean over examples of each example's mean token loss (paper-spec §1.3, ``reduce_loss mean``).

    With one example per micro-batch (the paper's setting) this is the usual token mean.
    """
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    tok = F.cross_entropy(shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE_INDEX, reduction="none")
    counts = (shift_labels != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    return (tok.sum(dim=1) / counts).mean()
