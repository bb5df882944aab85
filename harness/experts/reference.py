"""The reference path: the paper's formulation, slow and obviously correct.

Batch 1, no KV cache, a full forward pass over the whole sequence every step, and
``log_softmax(base) + log_softmax(r)`` (the paper code's ``CombinedCausalLM``), where the
rule vector ``r`` is rebuilt from zeros from the token list at every step: no
incremental state, no cached vectors, plain loops. Greedy, stopping at EOS.

It exists to verify the fast path (:class:`~harness.experts.processor.RuleExpertProcessor`
inside batched, cached ``generate``): both must yield identical tokens
(``tests/integration/test_reference_path.py``, ``tests/slow/test_gemma_reference.py``).
Only token-string resolution is shared with the fast path (a fact about the tokenizer).

Example:
    >>> ids = [1, 278, 308, 279, 202, 339, 299, 202, 278, 310, 279, 202]  # tiny tokenizer
    >>> paper_user_start(ids, tokenizer)                                 # doctest: +SKIP
    5
    >>> reference_generate(model, tokenizer, expert, ids, 5, max_new_tokens=8)  # doctest: +SKIP
    [202, 305, ...]
"""

from __future__ import annotations

import torch

from harness.errors import HarnessError
from harness.experts.anchors import last_tag_positions, tag_patterns
from harness.experts.processor import ResolvedExpert
from harness.experts.rules import eos_bonus, start_score
from harness.experts.tokens import bytelevel_surface, is_byte_level, sentencepiece_surface

USER_TAG = "\n<|user|>\n"


def paper_user_start(ids: list[int], tokenizer, tag: str = USER_TAG, min_match: int = 3) -> int | None:
    """Index just after the last ``<|user|>\\n`` tag in ``ids``, found as the paper's code does.

    The code matches the last five ids of ``tokenizer("\\n<|user|>\\n")`` (robust to how
    the tag's first character merges with what precedes it). Other tokenizers split the
    tag differently, so this takes the longest suffix of the tag's ids (at least
    ``min_match``) that occurs in ``ids``, and its last occurrence. ``None`` if none does.
    """
    tag_ids = tokenizer(tag, add_special_tokens=False)["input_ids"]
    for k in range(len(tag_ids), min_match - 1, -1):
        suffix = tag_ids[-k:]
        hits = [i + k for i in range(len(ids) - k + 1) if ids[i:i + k] == suffix]
        if hits:
            return hits[-1]
    return None


def reference_start_vector(expert: ResolvedExpert, tokenizer) -> torch.Tensor:
    """The start rule's weighted first-position scores, recomputed piece by piece."""
    rule = expert.spec.start
    surface = bytelevel_surface if is_byte_level(tokenizer) else sentencepiece_surface
    vec = torch.zeros(expert.vocab_size, dtype=torch.float32)
    for idx in range(min(expert.vocab_size, len(tokenizer))):
        piece = tokenizer.convert_ids_to_tokens(idx) or ""
        text = piece if piece.startswith("<") else (surface(piece) or piece)
        vec[idx] = start_score(text, rule) * rule.weight
    return vec


def reference_anchors(expert: ResolvedExpert, ids: list[int], user_start: int, prompt_length: int) -> tuple[int, int]:
    """``(user window start, response start)`` for ``ids``, from scratch.

    ``anchor: prompt``: ``(user_start, prompt_length)``. ``anchor: last-tag``: the ends of
    the last user and assistant tag matches after the prompt (the tags as the prompt
    spells them), else the prompt's positions.
    """
    if expert.spec.anchor != "last-tag":
        return user_start, prompt_length
    user_tag, assistant_tag = tag_patterns(expert.tags, ids[:prompt_length], user_start)
    return last_tag_positions(ids, prompt_length, user_start, user_tag, assistant_tag)


def reference_rule_scores(expert: ResolvedExpert, ids: list[int], user_start: int, prompt_length: int,
                          start_first: torch.Tensor | None = None) -> torch.Tensor:
    """The rule vector ``r`` (V,) fp32 for the next token after ``ids``, from scratch.

    Sum order: uniform deltas, EOS bonus, start rule, minus the diversity penalty once
    per distinct id in scope (``ids[user_start:]`` or the generated ``ids[prompt_length:]``;
    under ``anchor: last-tag`` both starts come from :func:`reference_anchors`).
    ``start_first`` is :func:`reference_start_vector` (only read at the first position).
    """
    spec = expert.spec
    user_start, prompt_length = reference_anchors(expert, ids, user_start, prompt_length)
    t = len(ids) - prompt_length
    r = torch.zeros(expert.vocab_size, dtype=torch.float32)
    uniform_ids = [res.id for res in expert.resolutions[:len(spec.uniform or ())]]
    for idx, delta in zip(uniform_ids, spec.uniform or ()):
        r[idx] += delta.delta
    if spec.eos is not None:
        r[expert.eos_id] += eos_bonus(spec.eos, t)
    if spec.start is not None:
        later = expert.resolutions[len(uniform_ids):]
        if t == 0:
            r += start_first
        elif t == 1:
            r[later[0].id] += spec.start.second.delta
        elif t == 2:
            r[later[1].id] += spec.start.third.delta
    if spec.diversity is not None and spec.diversity.mode == "additive":
        scope = ids[user_start:] if spec.diversity.scope == "user" else ids[prompt_length:]
        for idx in sorted(set(scope)):
            r[idx] -= spec.diversity.penalty
    return r


def _penalise(logits: torch.Tensor, expert: ResolvedExpert, ids: list[int], user_start: int,
              prompt_length: int) -> torch.Tensor:
    """Multiplicative diversity: divide positive, multiply negative logits of seen ids."""
    div = expert.spec.diversity
    user_start, prompt_length = reference_anchors(expert, ids, user_start, prompt_length)
    scope = ids[user_start:] if div.scope == "user" else ids[prompt_length:]
    out = logits.clone()
    for idx in set(scope):
        out[idx] = logits[idx] / div.penalty if logits[idx] > 0 else logits[idx] * div.penalty
    return out


@torch.inference_mode()
def reference_generate(model, tokenizer, expert: ResolvedExpert | None, prompt_ids: list[int],
                       user_start: int | None = None, *, max_new_tokens: int, eos_id: int | None = None) -> list[int]:
    """Greedy generation the paper's way: batch 1, no cache, full forward each step.

    Args:
        model: a causal LM (its device is used).
        tokenizer: the model's tokenizer (start-rule pieces, tag matching).
        expert: the resolved expert, or ``None`` for the base model alone.
        prompt_ids: the prompt's token ids (BOS included, no padding).
        user_start: index of the first user-message token; ``None`` finds it by
            matching the user tag as the paper's code does (:func:`paper_user_start`).
        max_new_tokens: generation cap.
        eos_id: stop token (default: the expert's, else the tokenizer's).

    Returns:
        The generated ids, the EOS included when it was generated.
    """
    if user_start is None:
        user_start = paper_user_start(prompt_ids, tokenizer)
        if user_start is None:
            raise HarnessError("reference path: the prompt has no <|user|> tag; pass user_start")
    eos_id = eos_id if eos_id is not None else (expert.eos_id if expert is not None else tokenizer.eos_token_id)
    device = next(model.parameters()).device
    prompt_length = len(prompt_ids)
    start_first = reference_start_vector(expert, tokenizer) if expert is not None and expert.spec.start else None
    ids = list(prompt_ids)
    for _ in range(max_new_tokens):
        # logits_to_keep=1: only the last position's logits (the paper's code computed all of
        # them and used the last; same numbers, without T x V wasted work per step)
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False,
                       logits_to_keep=1).logits[0, -1].float().cpu()
        if expert is None:
            score = logits
        else:
            if expert.spec.diversity is not None and expert.spec.diversity.mode == "multiplicative":
                logits = _penalise(logits, expert, ids, user_start, prompt_length)
            r = reference_rule_scores(expert, ids, user_start, prompt_length, start_first)
            score = torch.log_softmax(logits, dim=-1) + torch.log_softmax(r, dim=-1)
        token = int(score.argmax())
        ids.append(token)
        if token == eos_id:
            break
    return ids[prompt_length:]
