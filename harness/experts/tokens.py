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


def check_llama2(resolutions: list[Resolution]) -> None:
    """Assert the paper's 15 uniform-rule tokens resolved to the Llama-2 ids of its code."""
    got = tuple(r.id for r in resolutions)
    if got != LLAMA2_IDS:
        diff = [f"{r.token!r}: {r.id} != {want}" for r, want in zip(resolutions, LLAMA2_IDS) if r.id != want]
        raise HarnessError(f"llama2 check: resolved ids differ from the paper's: {'; '.join(diff) or got}")
