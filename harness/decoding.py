"""Decoding settings: one place that decides what each (prompt, variant) row runs with.

Three layers, later ones win field by field:

1. the task's ``generation_kwargs`` (``max_gen_toks``, ``until``, ``do_sample``,
   ``temperature``, ``top_p``) — the task's decoding defaults;
2. explicit run settings (``--max-new-tokens``, a run config's ``max_new_tokens:`` …);
3. the variant's own settings (``rules@max_new_tokens=8192`` or a ``variants:`` mapping).

A field nobody sets takes :class:`~harness.records.DecodingParams`' default (cap 256,
greedy). Under greedy decoding ``temperature`` and ``top_p`` do nothing, so they are
normalised to 1.0 and do not change content keys. ``until`` stop strings are applied
after generation (text cut at the earliest one; under greedy decoding the tokens before
the cut are the ones a stopped generation would have produced).

Example:
    >>> d = resolve_decoding({"max_gen_toks": 512}, {}, {})
    >>> d.max_new_tokens, d.do_sample
    (512, False)
    >>> resolve_decoding({"max_gen_toks": 512}, {"max_new_tokens": 64}, {"max_new_tokens": 8192}).max_new_tokens
    8192
    >>> resolve_decoding({}, {}, {}).max_new_tokens
    256
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.errors import HarnessError, did_you_mean
from harness.records import DecodingParams
from harness.yaml_io import coerce

TASK_KEYS = {"max_gen_toks": "max_new_tokens", "until": "until", "do_sample": "do_sample",
             "temperature": "temperature", "top_p": "top_p"}
"""Task ``generation_kwargs`` key -> :class:`DecodingParams` field."""
VARIANT_TYPES = {"max_new_tokens": int, "do_sample": bool, "temperature": float, "top_p": float, "seed": int}
VARIANT_KEYS = tuple(VARIANT_TYPES)
"""Decoding fields a variant may set for itself."""


def coerce_setting(key: str, value: Any, where: str) -> Any:
    """Check (and convert from text) one per-variant decoding setting.

    >>> coerce_setting("max_new_tokens", "8192", "--variants")
    8192
    >>> coerce_setting("do_sample", "true", "--variants")
    True
    """
    if key not in VARIANT_KEYS:
        raise HarnessError(f"{where}: {key}: not a decoding setting{did_you_mean(key, VARIANT_KEYS)}; "
                           f"settings: {', '.join(VARIANT_KEYS)}")
    expected = {"max_new_tokens": "a positive integer", "seed": "an integer", "do_sample": "true or false",
                "temperature": "a number >= 0", "top_p": "a number in (0, 1]"}[key]
    try:  # the typed loader's conversions (harness.yaml_io), then each setting's range
        out = coerce(value, VARIANT_TYPES[key], f"{where}: {key}")
    except HarnessError:
        out = None
    in_range = out is not None and {"max_new_tokens": lambda v: v > 0, "temperature": lambda v: v >= 0,
                                    "top_p": lambda v: 0 < v <= 1}.get(key, lambda v: True)(out)
    if not in_range:
        raise HarnessError(f"{where}: {key}: expected {expected}, got {value!r}")
    return out


def task_decoding(generation_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A task's ``generation_kwargs`` as :class:`DecodingParams` fields.

    >>> task_decoding({"max_gen_toks": 512, "until": ["\\n\\n"]})
    {'max_new_tokens': 512, 'until': ('\\n\\n',)}
    """
    out = {}
    for key, value in (generation_kwargs or {}).items():
        field = TASK_KEYS[key]  # TaskSpec validated the keys
        out[field] = tuple(value) if field == "until" else value
    return out


def resolve_decoding(task: Mapping[str, Any], explicit: Mapping[str, Any],
                     variant: Mapping[str, Any]) -> DecodingParams:
    """Task defaults (``generation_kwargs``) < explicit run settings < the variant's settings."""
    merged = {**task_decoding(task), **{k: v for k, v in explicit.items() if v is not None}, **variant}
    params = DecodingParams(**merged)
    if not params.do_sample:  # greedy: temperature and top_p do nothing; keep keys stable
        params = DecodingParams(params.max_new_tokens, False, 1.0, 1.0, params.seed, params.until)
    elif params.temperature <= 0:
        raise HarnessError(f"decoding: temperature must be > 0 when do_sample is true, got {params.temperature}")
    return params


def decoding_json(params: DecodingParams) -> str:
    """``samples.decoding_json``: every decoding field that ran.

    >>> decoding_json(DecodingParams(max_new_tokens=8))
    '{"do_sample": false, "max_new_tokens": 8, "seed": 0, "temperature": 1.0, "top_p": 1.0, "until": []}'
    """
    d = params.as_dict() | {"until": list(params.until)}
    return json.dumps(d, sort_keys=True)


def truncate_at(text: str, until) -> tuple[str, bool]:
    """Cut ``text`` at the earliest ``until`` string; returns (text, was_cut).

    >>> truncate_at("Paris.\\nQ: next", ["\\nQ:", "</s>"])
    ('Paris.', True)
    >>> truncate_at("Paris.", [])
    ('Paris.', False)
    """
    cut = min((i for i in (text.find(s) for s in until if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def trim_ids(ids: list[int], text: str, tokenizer) -> list[int]:
    """The shortest prefix of ``ids`` whose decoded text covers ``text``."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(ids[:mid], skip_special_tokens=True)) >= len(text):
            hi = mid
        else:
            lo = mid + 1
    return list(ids[:lo])


def apply_until(row: dict, until, tokenizer) -> dict:
    """Cut a generated row at its first stop string (``finish_reason`` becomes ``stop``)."""
    text, cut = truncate_at(row.get("output") or "", until)
    if not cut:
        return row
    ids = trim_ids(row["output_token_ids"], text, tokenizer) if tokenizer is not None else row["output_token_ids"]
    return row | {"output": text, "output_token_ids": ids, "num_output_tokens": len(ids), "finish_reason": "stop"}
