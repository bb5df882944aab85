"""The rule expert as a ``transformers`` logits processor, with per-row state.

The expert's score vector ``r`` is added to the base model's next-token logits
(``logit-add``) or combined as the paper's code does, ``log_softmax(base) +
log_softmax(r)`` (``logsoftmax-sum``). The two differ by a per-row constant, so greedy
tokens are identical; ``logit-add`` saves two softmaxes. All arithmetic is fp32.

State is per row: the diversity rule's seen-token mask starts at each row's own user
message (left padding differs per row), and ``t`` (tokens generated so far) is the
current length minus the padded prompt length, the same for every row. Create one
processor per ``generate`` call.

Example:
    >>> import torch
    >>> from harness.experts.spec import DiversityRule, ExpertSpec
    >>> spec = ExpertSpec("div", diversity=DiversityRule(penalty=1.5))
    >>> ex = ResolvedExpert.build(spec, tokenizer=None, vocab_size=5, eos_id=4)
    >>> proc = RuleExpertProcessor(ex, user_starts=[1], prompt_length=3)
    >>> proc(torch.tensor([[0, 2, 3]]), torch.zeros(1, 5)).tolist()
    [[0.0, 0.0, -1.5, -1.5, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from harness.errors import HarnessError
from harness.experts.spec import EosRule, ExpertSpec
from harness.experts.tokens import Resolution, bytelevel_surface, is_byte_level, resolve_tokens, sentencepiece_surface

COMBINE_MODES = ("logit-add", "logsoftmax-sum")


def eos_bonus(rule: EosRule, t: int) -> float:
    """EOS score after ``t`` generated tokens (paper-spec §2.2 rule 1).

    >>> eos_bonus(EosRule(), 0), eos_bonus(EosRule(), 100), eos_bonus(EosRule(), 250)
    (0.0, 6.0, 0.0)
    """
    bonus = 0.0
    if 0 < t < rule.until:
        bonus = rule.per_token * t if rule.ramp == "linear" else rule.scale * (math.exp(rule.rate * t) - 1.0)
    if rule.fallback_after is not None and t > rule.fallback_after:
        bonus += rule.fallback_bonus
    return bonus


def _start_scores(spec_start, tokenizer, vocab_size: int) -> torch.Tensor:
    """First-position scores of the start rule over the vocabulary (paper-spec §2.3)."""
    surface = bytelevel_surface if is_byte_level(tokenizer) else sentencepiece_surface
    scores = torch.zeros(vocab_size, dtype=torch.float32)
    for idx in range(min(vocab_size, len(tokenizer))):
        piece = tokenizer.convert_ids_to_tokens(idx) or ""
        text = piece if piece.startswith("<") else (surface(piece) or piece)
        text = text.lstrip(" ")
        if text == spec_start.agreement:
            s = spec_start.agreement_bonus
        elif text == "I":
            s = spec_start.i_penalty
        elif text and text[0].isalpha():
            s = spec_start.letter_bonus
        elif text and not text[0].isalnum() and not text[0].isspace():
            s = spec_start.punct_penalty
        else:
            s = 0.0
        scores[idx] = s * spec_start.weight
    return scores


@dataclass
class ResolvedExpert:
    """An :class:`ExpertSpec` bound to one tokenizer and one model vocabulary size."""

    spec: ExpertSpec
    vocab_size: int
    eos_id: int
    uniform_bias: torch.Tensor | None = None  # (V,) fp32
    start_first: torch.Tensor | None = None  # (V,) fp32
    start_later: tuple[tuple[int, float], ...] = ()  # (id, delta) for positions 1 and 2
    resolutions: list[Resolution] = field(default_factory=list)

    @classmethod
    def build(cls, spec: ExpertSpec, tokenizer, vocab_size: int, eos_id: int | None = None) -> ResolvedExpert:
        """Resolve token strings and check every id fits the model's vocabulary."""
        where = f"expert {spec.name!r} ({spec.source})"
        if eos_id is None:
            eos_id = tokenizer.eos_token_id
        if eos_id is None or not 0 <= eos_id < vocab_size:
            raise HarnessError(f"{where}: EOS id {eos_id} is outside the model's vocabulary of {vocab_size}")
        if tokenizer is not None and len(tokenizer) > vocab_size:
            raise HarnessError(
                f"{where}: tokenizer has {len(tokenizer)} tokens but the model only {vocab_size} logits; "
                "refusing to truncate (the paper's code silently does)"
            )
        res = resolve_tokens(tokenizer, spec.token_strings(), where) if spec.token_strings() else []
        out = cls(spec, vocab_size, eos_id, resolutions=res)
        n_uniform = len(spec.uniform or ())
        if spec.uniform:
            bias = torch.zeros(vocab_size, dtype=torch.float32)
            for r, d in zip(res[:n_uniform], spec.uniform):
                bias[r.id] += d.delta
            out.uniform_bias = bias
        if spec.start:
            out.start_first = _start_scores(spec.start, tokenizer, vocab_size)
            later = res[n_uniform:]
            out.start_later = ((later[0].id, spec.start.second.delta), (later[1].id, spec.start.third.delta))
        return out

    def resolution_table(self) -> dict:
        """What each token string became; recorded in every run manifest."""
        return {
            "expert": self.spec.name,
            "spec": self.spec.to_dict(),
            "spec_hash": self.spec.spec_hash(),
            "eos_id": self.eos_id,
            "vocab_size": self.vocab_size,
            "tokens": [r.as_dict() for r in self.resolutions],
        }

    def static_scores(self, t: int, device) -> torch.Tensor:
        """Row-independent scores at step ``t``: uniform deltas, EOS ramp, start rule."""
        r = torch.zeros(self.vocab_size, dtype=torch.float32, device=device)
        if self.uniform_bias is not None:
            r += self.uniform_bias.to(device)
        if self.spec.eos is not None:
            r[self.eos_id] += eos_bonus(self.spec.eos, t)
        if self.start_first is not None:
            if t == 0:
                r += self.start_first.to(device)
            elif t in (1, 2):
                idx, delta = self.start_later[t - 1]
                r[idx] += delta
        return r


class RuleExpertProcessor(LogitsProcessor):
    """Adds the rule expert's scores to a (left-padded) batch of next-token logits.

    Args:
        expert: the :class:`ResolvedExpert`.
        user_starts: per row, the index (in the padded ``input_ids``) of the first token
            of the user message; the diversity rule's ``user`` scope starts there.
        prompt_length: padded prompt length; ``t = input_ids.shape[1] - prompt_length``.
        combine: ``logit-add`` or ``logsoftmax-sum``.
    """

    def __init__(self, expert: ResolvedExpert, user_starts: Sequence[int], prompt_length: int,
                 combine: str = "logit-add"):
        if combine not in COMBINE_MODES:
            raise HarnessError(f"combine mode {combine!r} is not one of {', '.join(COMBINE_MODES)}")
        self.expert = expert
        self.user_starts = list(user_starts)
        self.prompt_length = prompt_length
        self.combine = combine
        self.seen: torch.Tensor | None = None  # (B, V) bool
        self._seen_upto = 0

    def _update_seen(self, input_ids: torch.LongTensor) -> torch.Tensor:
        batch, length = input_ids.shape
        if self.seen is None:
            scope_user = self.expert.spec.diversity.scope == "user"
            self.seen = torch.zeros(batch, self.expert.vocab_size, dtype=torch.bool, device=input_ids.device)
            for b in range(batch):
                start = self.user_starts[b] if scope_user else self.prompt_length
                self.seen[b, input_ids[b, start:]] = True
        elif length > self._seen_upto:
            self.seen.scatter_(1, input_ids[:, self._seen_upto:length], True)
        self._seen_upto = length
        return self.seen

    def rule_scores(self, input_ids: torch.LongTensor, device) -> torch.Tensor:
        """The expert's additive scores ``r`` for this step, shape (B, V)."""
        t = input_ids.shape[1] - self.prompt_length
        r = self.expert.static_scores(t, device).expand(input_ids.shape[0], -1)
        div = self.expert.spec.diversity
        if div is not None and div.mode == "additive":
            r = r - div.penalty * self._update_seen(input_ids).float()
        return r

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[-1] != self.expert.vocab_size:
            raise HarnessError(
                f"expert {self.expert.spec.name!r}: model produced {scores.shape[-1]} logits, "
                f"expert was built for {self.expert.vocab_size}"
            )
        base = scores.float()  # (B, V)
        div = self.expert.spec.diversity
        if div is not None and div.mode == "multiplicative":
            seen = self._update_seen(input_ids)
            base = torch.where(seen, torch.where(base > 0, base / div.penalty, base * div.penalty), base)
        r = self.rule_scores(input_ids, base.device)
        if self.combine == "logsoftmax-sum":
            return torch.log_softmax(base, dim=-1) + torch.log_softmax(r, dim=-1)
        return base + r
