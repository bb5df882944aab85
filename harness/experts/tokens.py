"""Resolve an expert's token strings to ids of a particular tokenizer.

Token strings are surface text (``" I"`` has a real leading space). Each vocabulary
piece is mapped to its surface text — SentencePiece's ``▁`` becomes a space and
``<0x0A>`` a newline; byte-level BPE pieces (``Ġ``, ``Ċ``) are mapped back to bytes —
and a string resolves to the piece whose surface equals it. A string that is not exactly
one token is an error, never a silent guess.

Example (tokenizer-free):
    >>> sentencepiece_surface("▁should"), sentencepiece_surface("<0x0A>")
    (' should', '\\n')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from harness.errors import HarnessError

# The ids the paper's code hard-codes for Llama-2 (paper-spec §2.2), in preset order.
LLAMA2_IDS = (29966, 529, 29989, 306, 29902, 1334, 5618, 881, 334, 448, 1678, 396, 444, 13, 29991)
LLAMA2_STRINGS = ("<", " <", "|", " I", "I", " We", "What", " should", " *", " -", "   ", " #", " ##", "\n", "!")
LLAMA2_BY_STRING = dict(zip(LLAMA2_STRINGS, LLAMA2_IDS))
LLAMA2_EOS = 2
# The code matches the last five ids of these strings to find the user and assistant turns.
LLAMA2_TAGS = {"\n<|user|>\n": (29989, 1792, 29989, 29958, 13), "\n<|assistant|>\n": (465, 22137, 29989, 29958, 13)}
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@dataclass(frozen=True, slots=True)
class Resolution:
    """One resolved token string: the id, its vocabulary piece, and any other candidates."""

    token: str
    id: int
    piece: str
    alternatives: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return {"token": self.token, "id": self.id, "piece": self.piece, "alternatives": list(self.alternatives)}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character table (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}


def sentencepiece_surface(piece: str) -> str | None:
    """Surface text of a SentencePiece piece (``None`` for a non-ASCII byte piece)."""
    m = _BYTE_PIECE.match(piece)
    if m:
        value = int(m.group(1), 16)
        return chr(value) if value < 128 else None
    return piece.replace("▁", " ")


def bytelevel_surface(piece: str) -> str | None:
    """Surface text of a byte-level BPE piece (``None`` when not valid UTF-8)."""
    try:
        return bytes(_BYTE_DECODER[c] for c in piece).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None


def is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return "ByteLevel" in repr(backend.decoder) or "ByteLevel" in repr(backend.pre_tokenizer)


@lru_cache(maxsize=8)
def _surface_index(tokenizer) -> dict[str, tuple[int, ...]]:
    surface = bytelevel_surface if is_byte_level(tokenizer) else sentencepiece_surface
    special = set(getattr(tokenizer, "all_special_ids", []))
    index: dict[str, list[int]] = {}
    for piece, idx in tokenizer.get_vocab().items():
        if idx in special:
            continue
        text = surface(piece)
        if text:
            index.setdefault(text, []).append(idx)
    return {k: tuple(sorted(v)) for k, v in index.items()}


def resolve_token(tokenizer, token: str, where: str = "expert") -> Resolution:
    """Resolve one surface string to exactly one vocabulary id."""
    candidates = _surface_index(tokenizer).get(token, ())
    if not candidates:
        pieces = tokenizer.tokenize(token)
        raise HarnessError(
            f"{where}: token {token!r} is not a single token of this tokenizer "
            f"(it splits into {pieces!r}); remove it or use a string that is one token"
        )
    # Prefer a regular piece over a byte-fallback piece (<0x0A>): it is what encoding emits.
    pieces = {i: tokenizer.convert_ids_to_tokens(i) for i in candidates}
    regular = [i for i in candidates if not _BYTE_PIECE.match(pieces[i])]
    chosen = (regular or list(candidates))[0]
    return Resolution(token, chosen, pieces[chosen], tuple(i for i in candidates if i != chosen))


def resolve_tokens(tokenizer, tokens: list[str], where: str = "expert") -> list[Resolution]:
    """Resolve every string; the first unresolvable one raises :class:`HarnessError`."""
    return [resolve_token(tokenizer, t, where) for t in tokens]


def looks_like_llama2(tokenizer) -> bool:
    """Whether ``tokenizer`` is the LLaMA-1/2 SentencePiece vocabulary (32,000 pieces).

    Checks the size and five landmark pieces (``<unk> <s> </s>``, ``<0x0A>`` at 13, a
    bare ``▁`` at 29871), which no other common vocabulary has in those places.
    """
    if tokenizer is None or len(tokenizer) != 32000:
        return False
    return tokenizer.convert_ids_to_tokens([0, 1, 2, 13, 29871]) == ["<unk>", "<s>", "</s>", "<0x0A>", "▁"]


def check_llama2(resolutions: list[Resolution], *, eos_id: int | None = None, tokenizer=None,
                 where: str = "expert") -> None:
    """Assert the ids of the paper's Llama-2 code (paper-spec §2.2, §5.2).

    Every resolved string that the paper's code hard-codes (the 15 uniform tokens) must
    have the code's id; with ``eos_id`` it must be 2; with ``tokenizer`` the last five ids
    of ``"\n<|user|>\n"`` and ``"\n<|assistant|>\n"`` must be the code's tag ids.
    Raises a one-line :class:`HarnessError` listing every mismatch.

    Example:
        >>> check_llama2([Resolution("What", 5618, "What"), Resolution(" What", 1724, "▁What")])
        >>> check_llama2([Resolution(" I", 1, "x")])
        Traceback (most recent call last):
        ...
        harness.errors.HarnessError: expert: llama2 check failed: ' I' is 1, the paper's code uses 306
    """
    bad = [f"{r.token!r} is {r.id}, the paper's code uses {LLAMA2_BY_STRING[r.token]}"
           for r in resolutions if r.token in LLAMA2_BY_STRING and r.id != LLAMA2_BY_STRING[r.token]]
    if eos_id is not None and eos_id != LLAMA2_EOS:
        bad.append(f"EOS is {eos_id}, the paper's code uses {LLAMA2_EOS}")
    if tokenizer is not None:
        for text, want in LLAMA2_TAGS.items():
            got = tuple(tokenizer(text, add_special_tokens=False)["input_ids"][-len(want):])
            if got != want:
                bad.append(f"tag {text!r} ends in {list(got)}, the paper's code matches {list(want)}")
    if bad:
        raise HarnessError(f"{where}: llama2 check failed: {'; '.join(bad)}")
