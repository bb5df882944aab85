"""Sample rows: the one place a ``samples`` row is assembled (its columns: :mod:`harness.store.schema`).

A row is built in two steps, both here:

1. :func:`engine_row`, inside every engine (HF, vLLM, the DeepSpeed TP gang), from what the
   engine knows: the prompt item, the variant, the generated token ids, timing, batch size,
   the engine's name and the decoding it ran; :func:`placed` adds the replica and shard.
2. :class:`RowFinisher`, on the driver, from what the run knows: run id, content key,
   the task's style domain, prompt tokens cut to fit the context, and stop strings
   (``until``) applied. Generated rows, sentinel re-generations and lm-eval bridge rows
   all pass through it.

Example:
    >>> from harness.records import DecodingParams, PromptItem
    >>> from harness.experts.variants import parse_variants
    >>> class Tok:
    ...     def decode(self, ids, skip_special_tokens=True): return " ".join(map(str, ids))
    >>> e = {"item": PromptItem("mini", "1", "0", "Say hi."), "text": "<|user|>\\nSay hi.\\n", "ids": [1, 2, 3]}
    >>> row = engine_row(e, parse_variants(["none"])[0], [7, 8, 2], tokenizer=Tok(), eos_id=2, model_name="m",
    ...                  seconds=0.1, batch_size=1, engine="hf", decoding=DecodingParams(max_new_tokens=3))
    >>> row["finish_reason"], row["num_output_tokens"], row["output"]
    ('eos', 3, '7 8 2')
    >>> finish = RowFinisher("r1", key_of=lambda r: "k-" + r["sample_id"], domains={("mini", "0"): "poetry"})
    >>> done = finish(row, DecodingParams(max_new_tokens=3))
    >>> done["run_id"], done["key"], done["domain"], done["prompt_truncated_tokens"]
    ('r1', 'k-0', 'poetry', 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.decoding import apply_until, decoding_json
from harness.records import DecodingParams, PromptItem


def engine_row(e: dict, variant, toks: list[int], *, tokenizer, eos_id: int | None, model_name: str,
               seconds: float, batch_size: int, engine: str, decoding: DecodingParams) -> dict:
    """What an engine knows of one generated pair: every column but the run's own (see :class:`RowFinisher`).

    ``e`` is an encoded prompt (:func:`harness.prompts.encode_items`: ``item``, ``text``, ``ids``).
    """
    item: PromptItem = e["item"]
    finished = bool(toks) and toks[-1] == eos_id
    return {
        "task": item.task, "task_version": item.task_version, "sample_id": item.sample_id,
        "variant": variant.name, "model": model_name, "instruction": item.instruction,
        "prompt": e["text"], "output": tokenizer.decode(toks, skip_special_tokens=True),
        "output_token_ids": toks, "num_prompt_tokens": len(e["ids"]), "num_output_tokens": len(toks),
        "finish_reason": "eos" if finished else "length", "status": "ok", "error": None,
        "batch_size": batch_size, "gen_seconds": seconds, "doc_json": item.doc_json,
        "engine": engine, "max_new_tokens": decoding.max_new_tokens, "decoding_json": decoding_json(decoding),
    }


def placed(rows: Sequence[dict], replica: str, shard_id: int) -> list[dict]:
    """The rows with the replica that made them and their shard (the worker's part)."""
    return [r | {"replica": replica, "shard_id": shard_id} for r in rows]


class RowFinisher:
    """Adds what the run knows to engine rows; one instance per run.

    Args:
        run_id: the run the rows belong to.
        key_of: ``row -> content key`` (the plan's keys; :func:`harness.run.plan.row_key` for lm-eval rows).
        domains: ``(task, sample_id) -> style domain`` (``samples.domain``).
        truncated: ``(task, sample_id) -> prompt tokens cut from the left`` to fit the context.
        tokenizer: ``() -> tokenizer``, called only when a stop string cuts a row (to re-count its ids).
    """

    def __init__(self, run_id: str, key_of: Callable[[dict], str], domains: dict | None = None,
                 truncated: dict | None = None, tokenizer: Callable[[], object] | None = None):
        self.run_id = run_id
        self.key_of = key_of
        self.domains = domains or {}
        self.truncated = truncated or {}
        self.tokenizer = tokenizer

    def __call__(self, row: dict, decoding: DecodingParams | None = None) -> dict:
        """Finish one row; ``decoding`` is what the row ran with (None: keep the row's own columns, lm-eval)."""
        if decoding is not None and decoding.until:
            row = apply_until(row, decoding.until, self.tokenizer() if self.tokenizer else None)
        pair = (row["task"], row["sample_id"])
        row = row | {"run_id": self.run_id, "key": self.key_of(row), "domain": self.domains.get(pair),
                     "prompt_truncated_tokens": self.truncated.get(pair, 0)}
        if decoding is not None:
            row |= {"max_new_tokens": decoding.max_new_tokens, "decoding_json": decoding_json(decoding)}
        return row
