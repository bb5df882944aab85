"""Response-shape metrics: EOS termination, length, echo, role-tag leak, distinct-n, refusal.

Base LMs prompted in the Tulu format tend to repeat the instruction, continue the
``<|user|>``/``<|assistant|>`` pattern and never stop (docs/measurements.md), so these
flags describe a run better than any adherence score. Each flag exists twice: a scalar
function on strings (the definition) and a vectorised version over an Arrow ``samples``
table (:func:`shape_table`), tested to agree row for row.

Definitions (docs/metrics.md has the rationale):

- *words(s)*: NFKC-normalise ``s``, lowercase ASCII letters, turn every ASCII
  punctuation and ASCII whitespace character into a space, split on spaces and drop
  empty pieces. *normalised(s)* is ``" ".join(words(s))``.
- *echo*: the output leaks a role tag, OR normalised(output) starts with the first
  :data:`ECHO_PREFIX_CHARS` characters of normalised(instruction) (only when those are at
  least :data:`ECHO_MIN_PREFIX_CHARS` long), OR the instruction has at least 5 words and
  at least half of its distinct word 5-grams occur in the output.
- *tokens* for distinct-n: the output split on ASCII whitespace (``" \\t\\n\\r\\f\\v"``).

Note:
    Only ASCII letters are lowercased, so the scalar and Arrow versions agree exactly
    (Python and Arrow lowercase a few non-ASCII letters differently). Vectorised bigram
    keys are exact; 5-gram keys are 64-bit hashes of word ids, compared only within a
    row, so a collision (probability below 1e-14 per row) could flip one echo flag.

Example:
    >>> echo("Write a poem about the sea.", "Write a poem about the sea. The sea is blue")
    True
    >>> role_tag_leak("Sure.\\n<|user|>\\nThanks")
    True
    >>> distinct_n("a b a b", 2)
    0.6666666666666666
"""

from __future__ import annotations

import re
import string
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.metrics import _arrow_text as T

ROLE_TAGS: tuple[str, ...] = ("<|user|>", "<|assistant|>")
ECHO_PREFIX_CHARS = 30
ECHO_MIN_PREFIX_CHARS = 8
ECHO_NGRAM = 5
ECHO_NGRAM_FRACTION = 0.5
REFUSAL_WINDOW = 200
REFUSAL_PHRASES: tuple[str, ...] = (
    "i can't",
    "i cannot",
    "i can not",
    "i'm sorry, but",
    "i am sorry, but",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "as an ai",
)
ASCII_WS = " \t\n\r\f\v"
CHUNK_ROWS = 65_536  # rows per block in the vectorised n-gram stages

# One byte map does all word normalisation after NFKC. ASCII bytes never occur inside a
# multi-byte UTF-8 sequence, so the same map applied to raw UTF-8 bytes (vectorised
# path) and to str characters (scalar path) gives identical text.
_WORD_MAP = {ord(c): " " for c in string.punctuation + ASCII_WS}
_WORD_MAP.update({ord(c): c.lower() for c in string.ascii_uppercase})
_WORD_LUT = np.arange(256, dtype=np.uint8)
for _code, _repl in _WORD_MAP.items():
    _WORD_LUT[_code] = ord(_repl)
_ASCII_LOWER = {ord(c): c.lower() for c in string.ascii_uppercase}
# Straight and curly apostrophes both match, so no replacement pass is needed.
_REFUSAL_RE = "|".join(re.escape(p).replace("'", "['\u2019]") for p in REFUSAL_PHRASES)
_ROLE_RE = "|".join(re.escape(t) for t in ROLE_TAGS)
_WS_SPLIT = re.compile("[" + re.escape(ASCII_WS) + "]+")


# ---------------------------------------------------------------------------- scalar


def words(text: str) -> list[str]:
    """Normalised words of ``text`` (see the module docstring).

    Example:
        >>> words("Write  a POEM, about \\u2460 cats!")
        ['write', 'a', 'poem', 'about', '1', 'cats']
    """
    return [w for w in unicodedata.normalize("NFKC", text).translate(_WORD_MAP).split(" ") if w]


def normalised(text: str) -> str:
    """``" ".join(words(text))``: lowercase, punctuation-free, single-spaced."""
    return " ".join(words(text))


def eos_terminated(finish_reason: str | None) -> bool:
    """True when generation stopped on the EOS token (``finish_reason == "eos"``)."""
    return finish_reason == "eos"


def output_tokens(num_output_tokens: int | None, output_token_ids: list[int] | None = None) -> int | None:
    """Output length in tokens: ``num_output_tokens``, else ``len(output_token_ids)``, else None."""
    if num_output_tokens is not None:
        return int(num_output_tokens)
    return None if output_token_ids is None else len(output_token_ids)


def role_tag_leak(output: str, tags: tuple[str, ...] = ROLE_TAGS) -> bool:
    """True when the output contains a chat role tag (the model continues the dialogue).

    Example:
        >>> role_tag_leak("Paris.<|assistant|>")
        True
    """
    return any(t in output for t in tags)


def _ngrams(ws: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def echo_prefix(instruction: str, output: str) -> bool:
    """The output starts by repeating the instruction's first 30 normalised characters."""
    p = normalised(instruction)[:ECHO_PREFIX_CHARS]
    return len(p) >= ECHO_MIN_PREFIX_CHARS and normalised(output).startswith(p)


def echo_ngram_fraction(instruction: str, output: str, n: int = ECHO_NGRAM) -> float | None:
    """Share of the instruction's distinct word n-grams found in the output (None if < n words).

    Example:
        >>> echo_ngram_fraction("one two three four five six", "x one two three four five")
        0.5
    """
    gi = _ngrams(words(instruction), n)
    if not gi:
        return None
    return len(gi & _ngrams(words(output), n)) / len(gi)


def echo(instruction: str | None, output: str) -> bool:
    """True when the output repeats the instruction or leaks a role tag (module docstring).

    ``instruction=None`` (no instruction recorded) checks the role tag only.

    Example:
        >>> echo("What is the capital of France?", "Paris.")
        False
    """
    if role_tag_leak(output):
        return True
    if not instruction:
        return False
    if echo_prefix(instruction, output):
        return True
    frac = echo_ngram_fraction(instruction, output)
    return frac is not None and frac >= ECHO_NGRAM_FRACTION


def whitespace_tokens(text: str) -> list[str]:
    """``text`` split on ASCII whitespace, without empty pieces."""
    return [t for t in _WS_SPLIT.split(text) if t]


def distinct_n(text: str, n: int) -> float | None:
    """Distinct-n: unique n-grams / total n-grams over whitespace tokens.

    Returns None (undefined, not 0) when the text has fewer than ``n`` tokens, so empty
    outputs do not drag a mean towards 0; summaries report how many rows were defined.

    Example:
        >>> distinct_n("the cat the cat", 2), distinct_n("", 2)
        (0.6666666666666666, None)
    """
    if n < 1:
        raise ValueError(f"distinct_n: n must be >= 1, got {n}")
    toks = whitespace_tokens(text)
    total = len(toks) - n + 1
    if total <= 0:
        return None
    return len(_ngrams(toks, n)) / total


def refusal(output: str) -> bool:
    """True when the first 200 characters (after leading whitespace) contain a refusal phrase.

    Matching ignores ASCII case and treats ``’`` as ``'``. Phrases: :data:`REFUSAL_PHRASES`.

    Example:
        >>> refusal("I’m sorry, but I cannot help with that."), refusal("Sure! Here it is.")
        (True, False)
    """
    head = output.lstrip(ASCII_WS)[:REFUSAL_WINDOW].translate(_ASCII_LOWER).replace("\u2019", "'")
    return any(p in head for p in REFUSAL_PHRASES)


# ---------------------------------------------------------------------------- vectorised


def _column(table: pa.Table, name: str, typ: pa.DataType) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, typ)
    col = table.column(name)
    return (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).cast(typ)


def _words_list(arr: pa.Array) -> pa.Array:
    """Vectorised :func:`words`: one list of normalised words per row."""
    return T.split_ascii_whitespace(T.map_bytes(pc.utf8_normalize(arr, "NFKC"), _WORD_LUT))


def _echo_vectorised(instr: pa.Array, output: pa.Array, role: np.ndarray) -> np.ndarray:
    """Vectorised :func:`echo`; n-gram work is done only for rows not already decided.

    Instructions repeat across rows (variants, models), so their words are computed once
    per distinct instruction and gathered by index.
    """
    enc = instr.dictionary_encode()
    ids = enc.indices.to_numpy(zero_copy_only=False)
    wd = _words_list(enc.dictionary)  # words of each distinct instruction
    prefix_d = pc.utf8_slice_codeunits(pc.binary_join(wd, T.SPACE), 0, ECHO_PREFIX_CHARS)
    plen = pc.utf8_length(prefix_d).to_numpy(zero_copy_only=False)[ids]
    n_words = pc.fill_null(pc.list_value_length(wd), 0).to_numpy(zero_copy_only=False)[ids]
    out = role.copy()
    todo = np.flatnonzero(~role & ((plen >= ECHO_MIN_PREFIX_CHARS) | (n_words >= ECHO_NGRAM)))
    if len(todo) == 0:
        return out
    wo = _words_list(output.take(pa.array(todo)))
    # 30 normalised characters lie within the first 30 words, so join only those.
    head = pc.binary_join(pc.list_slice(wo, 0, ECHO_PREFIX_CHARS), T.SPACE)
    pre = T.starts_with_rowwise(pc.fill_null(head, ""), prefix_d.take(pa.array(ids[todo])))
    pre &= plen[todo] >= ECHO_MIN_PREFIX_CHARS
    out[todo] = pre
    rest = np.flatnonzero(~pre & (n_words[todo] >= ECHO_NGRAM))  # positions within todo
    if len(rest) == 0:
        return out
    li, lo = wd.take(pa.array(ids[todo[rest]])), wo.take(pa.array(rest))
    ci, co = T.encode(li, lo)
    ri, pi, ki = T.ngram_keys(li, ci, ECHO_NGRAM)
    ro, po, ko = T.ngram_keys(lo, co, ECHO_NGRAM)
    d_i, found = T.segment_overlap(ri, pi, ki, ro, po, ko, len(rest))
    out[todo[rest]] = (d_i > 0) & (found >= ECHO_NGRAM_FRACTION * d_i)
    return out


def _distinct_vectorised(output: pa.Array, n: int) -> pa.Array:
    """Vectorised :func:`distinct_n` (null where the row has fewer than ``n`` tokens)."""
    toks = T.split_ascii_whitespace(output)
    (codes,) = T.encode(toks)
    rows, pos, keys = T.ngram_keys(toks, codes, n)
    uniq = T.segment_distinct(rows, pos, keys, len(output))
    total = pc.fill_null(pc.list_value_length(toks), 0).to_numpy(zero_copy_only=False).astype(np.int64) - n + 1
    value = uniq / np.maximum(total, 1)
    return pa.array(value, mask=total <= 0, type=pa.float64())


def _refusal_vectorised(output: pa.Array) -> np.ndarray:
    """Vectorised :func:`refusal`: a cheap case-insensitive scan, then the exact rule on hits."""
    # Unicode case-insensitive matching of the whole text finds a superset of the rows the
    # exact rule (ASCII lowercase, first 200 characters) accepts; only those are re-checked.
    maybe = pc.match_substring_regex(output, _REFUSAL_RE, ignore_case=True)
    hits = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
    out = np.zeros(len(output), dtype=bool)
    if len(hits):
        head = pc.utf8_ltrim(output.take(pa.array(hits)), characters=ASCII_WS)
        head = pc.ascii_lower(pc.utf8_slice_codeunits(head, 0, REFUSAL_WINDOW))
        out[hits] = pc.match_substring_regex(head, _REFUSAL_RE).to_numpy(zero_copy_only=False)
    return out


def shape_table(samples: pa.Table, distinct: int = 2) -> pa.Table:
    """Per-row shape flags for a ``samples`` table, vectorised (Arrow + numpy).

    Args:
        samples: rows in the ``samples`` schema; uses ``output``, ``instruction``,
            ``finish_reason``, ``num_output_tokens`` and ``output_token_ids`` when present.
            A null output is treated as ``""``, a null instruction as "no instruction".
        distinct: ``n`` of the distinct-n column.

    Returns:
        One row per input row (same order): ``eos`` (bool), ``output_tokens`` (int64,
        null when unknown), ``echo``, ``role_tag``, ``refusal`` (bool) and
        ``distinct_{n}`` (float64, null below ``n`` tokens). Every row is scored;
        filtering on ``status`` is the caller's job.

    Example:
        >>> t = pa.table({"instruction": ["Say hi."], "output": ["Hi! <|user|>"], "finish_reason": ["eos"]})
        >>> shape_table(t).to_pylist()[0]["role_tag"]
        True
    """
    output = pc.fill_null(_column(samples, "output", pa.large_string()), "")
    instr = pc.fill_null(_column(samples, "instruction", pa.large_string()), "")
    eos = pc.fill_null(pc.equal(_column(samples, "finish_reason", pa.string()), "eos"), False)
    ntok = _column(samples, "num_output_tokens", pa.int64())
    if "output_token_ids" in samples.column_names:
        ids_len = pc.list_value_length(_column(samples, "output_token_ids", pa.list_(pa.int32())))
        ntok = pc.coalesce(ntok, ids_len.cast(pa.int64()))
    # One regex pass (RE2 skips ahead to '<') is ~10x cheaper than a substring pass per tag.
    role = pc.match_substring_regex(output, _ROLE_RE).to_numpy(zero_copy_only=False)
    # The n-gram stages run in row blocks: their temporaries grow with the block, and
    # small working sets are much faster than one huge allocation (measured ~3x at 1M rows).
    echo_parts, distinct_parts = [], []
    for start in range(0, len(output), CHUNK_ROWS):
        out_c, instr_c = output.slice(start, CHUNK_ROWS), instr.slice(start, CHUNK_ROWS)
        echo_parts.append(_echo_vectorised(instr_c, out_c, role[start : start + CHUNK_ROWS]))
        distinct_parts.append(_distinct_vectorised(out_c, distinct))
    return pa.table(
        {
            "eos": eos,
            "output_tokens": ntok,
            "echo": pa.array(np.concatenate(echo_parts) if echo_parts else np.zeros(0, bool)),
            "role_tag": pa.array(role),
            f"distinct_{distinct}": pa.concat_arrays(distinct_parts) if distinct_parts else pa.array([], pa.float64()),
            "refusal": pa.array(_refusal_vectorised(output)),
        }
    )


def shape_row(
    instruction: str | None,
    output: str | None,
    finish_reason: str | None = None,
    num_output_tokens: int | None = None,
    distinct: int = 2,
    output_token_ids: list[int] | None = None,
) -> dict:
    """Scalar twin of one :func:`shape_table` row (the reference the tests compare to).

    Example:
        >>> shape_row("Say hi.", "Hi!", "eos", 2)["eos"]
        True
    """
    out = output or ""
    return {
        "eos": eos_terminated(finish_reason),
        "output_tokens": output_tokens(num_output_tokens, output_token_ids),
        "echo": echo(instruction, out),
        "role_tag": role_tag_leak(out),
        f"distinct_{distinct}": distinct_n(out, distinct),
        "refusal": refusal(out),
    }
