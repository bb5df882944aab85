"""(instruction, response) pairs for response ranking, from a JSONL file.

Example:
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
    >>> _ = p.write_text(json.dumps({"instruction": "Say hi.", "output": "Hi!"}) + "\\n")
    >>> load_pairs(p)
    ([('Say hi.', 'Hi!')], 'output')
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError

RESPONSE_FIELDS = ("reference_output", "response", "output")


def load_pairs(path: str | Path, field_instruction: str = "instruction", field_response: str | None = None,
               limit: int | None = None) -> tuple[list[tuple[str, str]], str]:
    """Read ``(instruction, response)`` pairs; returns them and the response field used.

    Args:
        path: a JSONL file, one object per line.
        field_instruction: the instruction field.
        field_response: the response field; ``None`` picks the first of
            :data:`RESPONSE_FIELDS` present in the first row.
        limit: keep the first ``limit`` rows.

    Raises:
        HarnessError: missing file, bad JSON (``file:line``), a missing or non-string field.
    """
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"--data {path}: file not found")
    if limit is not None and limit <= 0:
        raise HarnessError(f"--limit: must be a positive number of pairs, got {limit}")
    from harness.tasks.data import read_jsonl

    pairs: list[tuple[str, str]] = []
    data = read_jsonl(p)
    for row, loc in zip(data.rows, data.locs):
        if field_response is None:
            field_response = next((f for f in RESPONSE_FIELDS if f in row), None)
            if field_response is None:
                raise HarnessError(f"{loc}: no response field ({', '.join(RESPONSE_FIELDS)}); "
                                   f"pass --field-response (fields: {', '.join(sorted(row))})")
        for name in (field_instruction, field_response):
            if name not in row:
                raise HarnessError(f"{loc}: field {name!r} missing (fields: {', '.join(sorted(row))})")
            if not isinstance(row[name], str):
                raise HarnessError(f"{loc}: field {name!r} must be a string")
        pairs.append((row[field_instruction], row[field_response]))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise HarnessError(f"--data {path}: no rows")
    return pairs, field_response or ""


def truncate_responses(pairs: list[tuple[str, str]], tokenizer, max_tokens: int) -> tuple[list[tuple[str, str]], int]:
    """Cut each response to its first ``max_tokens`` tokens; returns pairs and how many were cut.

    >>> class Tok:  # one token per character
    ...     def __call__(self, text, add_special_tokens=False): return {"input_ids": list(text)}
    ...     def decode(self, ids): return "".join(ids)
    >>> truncate_responses([("i", "abcdef")], Tok(), 3)
    ([('i', 'abc')], 1)
    """
    out, cut = [], 0
    for instruction, response in pairs:
        ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        if len(ids) > max_tokens:
            response = tokenizer.decode(ids[:max_tokens])
            cut += 1
        out.append((instruction, response))
    return out, cut
