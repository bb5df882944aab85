"""Plain records that cross room boundaries (tasks -> generation -> store).

Example:
    >>> item = PromptItem(task="mini", task_version="1", sample_id="0", instruction="Say hi.")
    >>> item.sample_id
    '0'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PromptItem:
    """One instruction to generate for.

    Attributes:
        task: registered task name (``instructions-mini``) or ``prompts`` for ``--prompts``.
        task_version: the task's ``metadata.version`` as a string.
        sample_id: the input's ``id`` when given, else its 0-based row index.
        instruction: the user message content, before any prompt format is applied.
        doc_json: the source row as JSON (metrics such as IFEval need its kwargs).
        reference: an optional reference answer (pairwise judges).
        domain: the task's single-task domain (``TaskSpec.domain``), stored as ``samples.domain``.
    """

    task: str
    task_version: str
    sample_id: str
    instruction: str
    doc_json: str = "{}"
    reference: str | None = None
    domain: str | None = None  # the task's ``domain:`` (poetry, gsm, code, chess, recipe) for style leak


@dataclass(frozen=True, slots=True)
class DecodingParams:
    """Decoding settings of one generation call (greedy by default).

    ``harness.decoding.resolve_decoding`` builds them per (task, variant); ``until`` holds
    stop strings (applied to the text after generation).
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    until: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """The fields that enter content keys (``until`` only when set, so older keys stay valid)."""
        d = {f: getattr(self, f) for f in ("max_new_tokens", "do_sample", "temperature", "top_p", "seed")}
        return d | ({"until": list(self.until)} if self.until else {})


@dataclass(frozen=True, slots=True)
class Shard:
    """A unit of work for one replica: some prompts (the caller names the variants to run them under)."""

    shard_id: int
    items: tuple[PromptItem, ...]
