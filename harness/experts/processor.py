"""The rule expert as a ``transformers`` logits processor, with per-row state.

The expert's score vector ``r`` is added to the base model's next-token logits
(``logit-add``) or combined as the paper's code does, ``log_softmax(base) +
log_softmax(r)`` (``logsoftmax-sum``). The two differ by a per-row constant, so greedy
tokens are identical; ``logit-add`` saves two softmaxes. All arithmetic is fp32, and
``r`` is assembled in :data:`harness.experts.rules.SUM_ORDER`, bit-identical to the
from-scratch :mod:`harness.experts.reference` path.

State is per row: the diversity rule's seen-token set starts at each row's own user
message (left padding differs per row), and ``t`` (tokens generated so far) is the
current length minus the padded prompt length, the same for every row. Under
``anchor: last-tag`` a row's ``t`` and window move when it generates a tag
(:class:`~harness.experts.anchors.TagAnchors`). Create one
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

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from harness.errors import HarnessError
from harness.experts.anchors import TagAnchors, tag_candidates
from harness.experts.rules import absorb, apply_rules, eos_bonus, penalise, rule_rows, scope_state, start_score
from harness.experts.spec import ExpertSpec, StartRule
from harness.experts.tokens import (Resolution, bytelevel_surface, check_llama2, is_byte_level, looks_like_llama2,
                                    resolve_token, sentencepiece_surface)
from harness.experts.trace import FlipTrace, top_rule

COMBINE_MODES = ("logit-add", "logsoftmax-sum")
__all__ = ["COMBINE_MODES", "ResolvedExpert", "RuleExpertProcessor", "eos_bonus", "start_vector"]


def start_vector(rule: StartRule, tokenizer, vocab_size: int) -> torch.Tensor:
    """Weighted first-position scores of the start rule over the vocabulary, (V,) fp32.

    Pieces starting with ``<`` (byte pieces, specials) are scored raw, every other piece
    by its surface text (see :func:`harness.experts.rules.start_score`); ids past the
    tokenizer's length (padded embedding rows) score 0.
    """
    surface = bytelevel_surface if is_byte_level(tokenizer) else sentencepiece_surface
    n = min(vocab_size, len(tokenizer))
    values = []
    for piece in tokenizer.convert_ids_to_tokens(list(range(n))):
        piece = piece or ""
        text = piece if piece.startswith("<") else (surface(piece) or piece)
        values.append(start_score(text, rule) * rule.weight)
    scores = torch.zeros(vocab_size, dtype=torch.float32)
    scores[:n] = torch.tensor(values, dtype=torch.float32)
    return scores


@dataclass
class ResolvedExpert:
    """An :class:`ExpertSpec` bound to one tokenizer and one model vocabulary size.

    Attributes:
        uniform_bias: (V,) fp32, the uniform deltas (zeros when the rule is off).
        start_first: (V,) fp32, the start rule's weighted first-position scores, or None.
        start_later: ``(id, delta)`` for the 2nd and 3rd response positions.
        tags: ``anchor: last-tag`` only: the formats' tags as token ids
            (:func:`harness.experts.anchors.tag_candidates`); empty otherwise.
    """

    spec: ExpertSpec
    vocab_size: int
    eos_id: int
    uniform_bias: torch.Tensor | None = None  # (V,) fp32
    start_first: torch.Tensor | None = None  # (V,) fp32
    start_later: tuple[tuple[int, float], ...] = ()  # (id, delta) for positions 1 and 2
    resolutions: list[Resolution] = field(default_factory=list)
    tags: dict = field(default_factory=dict)
    _on_device: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, spec: ExpertSpec, tokenizer, vocab_size: int, eos_id: int | None = None) -> ResolvedExpert:
        """Resolve token strings and check every id fits the model's vocabulary.

        Runs the Llama-2 id check when the spec asks for it (``check: llama2``) and,
        automatically, whenever the tokenizer is Llama-2's.
        """
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
        res = [resolve_token(tokenizer, token, f"{where}: {key}") for key, token in spec.token_fields()]
        n_uniform = len(spec.uniform or ())
        if spec.check == "llama2" or looks_like_llama2(tokenizer):
            if spec.check == "llama2" and not looks_like_llama2(tokenizer):
                raise HarnessError(f"{where}: check: llama2: the tokenizer is not Llama-2's (32,000 SentencePiece pieces)")
            check_llama2(res[:n_uniform], eos_id=eos_id, tokenizer=tokenizer, where=where)
        out = cls(spec, vocab_size, eos_id, resolutions=res)
        if spec.anchor == "last-tag":
            out.tags = tag_candidates(tokenizer)
        out.uniform_bias = torch.zeros(vocab_size, dtype=torch.float32)
        for r, d in zip(res[:n_uniform], spec.uniform or ()):
            out.uniform_bias[r.id] += d.delta
        if spec.start:
            out.start_first = start_vector(spec.start, tokenizer, vocab_size)
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

    def on(self, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(uniform_bias, start_first)`` on ``device``, copied once and cached."""
        key = str(device)
        if key not in self._on_device:
            sf = self.start_first.to(device) if self.start_first is not None else None
            self._on_device[key] = (self.uniform_bias.to(device), sf)
        return self._on_device[key]

    def anchors(self, prompt, user_start: int) -> TagAnchors | None:
        """Incremental ``last-tag`` anchors for one row (``None`` under ``anchor: prompt``)."""
        if self.spec.anchor != "last-tag":
            return None
        return TagAnchors.for_prompt(self.tags, [int(i) for i in prompt], user_start)

    def scope_name(self) -> str:
        """The diversity rule's scope (``user`` when the rule is off)."""
        return self.spec.diversity.scope if self.spec.diversity is not None else "user"

    def column_extras(self, t: int) -> dict[int, list[float]]:
        """Per-token additions at step ``t`` beyond the uniform deltas, in sum order.

        The EOS bonus, then the start rule's 2nd/3rd-position delta; the start rule's
        first-position vector is not included (it touches every id).
        """
        extras: dict[int, list[float]] = {}
        if self.spec.eos is not None:
            bonus = eos_bonus(self.spec.eos, t)
            if bonus != 0.0:
                extras.setdefault(self.eos_id, []).append(bonus)
        if self.start_later and t in (1, 2):
            idx, delta = self.start_later[t - 1]
            extras.setdefault(idx, []).append(delta)
        return extras


class RuleExpertProcessor(LogitsProcessor):
    """Adds the rule expert's scores to a (left-padded) batch of next-token logits.

    Per step the work is one in-place ``(B, V)`` add of a cached per-row vector
    (uniform deltas minus the diversity penalty), a scatter for the new token, and fixes
    on at most two columns (the EOS ramp, the start rule's later positions).

    Args:
        expert: the :class:`ResolvedExpert`.
        user_starts: per row, the index (in the padded ``input_ids``) of the first token
            of the user message; the diversity rule's ``user`` scope starts there.
        prompt_length: padded prompt length; ``t = input_ids.shape[1] - prompt_length``.
        combine: ``logit-add`` or ``logsoftmax-sum``.
        trace: a :class:`~harness.experts.trace.FlipTrace` to record argmax flips in.
        inplace: add into ``scores`` (``generate`` hands each step a fresh fp32 copy).

    Note:
        With ``inplace=True`` the ``scores`` tensor passed in is modified; pass
        ``inplace=False`` if the caller keeps the raw logits (``output_logits``).
    """

    def __init__(self, expert: ResolvedExpert, user_starts: Sequence[int], prompt_length: int,
                 combine: str = "logit-add", trace: FlipTrace | None = None, inplace: bool = True):
        if combine not in COMBINE_MODES:
            raise HarnessError(f"combine mode {combine!r} is not one of {', '.join(COMBINE_MODES)}")
        self.expert = expert
        self.user_starts = list(user_starts)
        self.prompt_length = prompt_length
        self.combine = combine
        self.trace = trace
        self.inplace = inplace
        div = expert.spec.diversity
        self._penalty = div.penalty if div is not None else 0.0
        self._additive = div is not None and div.mode == "additive"
        self._multiplicative = div is not None and div.mode == "multiplicative"
        self.seen: torch.Tensor | None = None  # (B, V) bool: ids in the diversity scope so far
        self._steady: torch.Tensor | None = None  # (B, V) fp32: uniform - penalty * seen
        self._seen_upto = 0
        self.anchors: list[TagAnchors] | None = None  # per row, under anchor: last-tag

    # -- state ---------------------------------------------------------------------
    def _init_state(self, input_ids: torch.LongTensor) -> None:
        user_scope = self.expert.scope_name() == "user"
        starts = [self.user_starts[b] if user_scope else self.prompt_length for b in range(input_ids.shape[0])]
        if self.expert.spec.anchor == "last-tag":
            rows = input_ids.tolist()
            self.anchors = [self.expert.anchors(row[:self.prompt_length], self.user_starts[b]) for b, row in enumerate(rows)]
            for a, row in zip(self.anchors, rows):
                a.feed(row[self.prompt_length:], self.expert.scope_name())
            starts = [a.window(self.expert.scope_name()) for a in self.anchors]
        scopes = [input_ids[b, starts[b]:] for b in range(input_ids.shape[0])]
        self.seen, self._steady = scope_state(self.expert, scopes, input_ids.device)
        self._seen_upto = input_ids.shape[1]

    def _advance(self, input_ids: torch.LongTensor) -> None:
        if input_ids.shape[1] > self._seen_upto:
            new = input_ids[:, self._seen_upto:]  # (B, k), k = 1 under generate
            absorb(self.expert, self.seen, self._steady, new)
            if self.anchors is not None:
                scope = self.expert.scope_name()
                for b, tokens in enumerate(new.tolist()):
                    if self.anchors[b].feed(tokens, scope):  # a generated tag moved the window: rebuild the row
                        seen, steady = scope_state(self.expert, [input_ids[b, self.anchors[b].window(scope):]],
                                                   input_ids.device)
                        self.seen[b], self._steady[b] = seen[0], steady[0]
        self._seen_upto = input_ids.shape[1]

    def steps(self, length: int) -> list[int]:
        """Each row's ``t`` when the sequence is ``length`` long (per row under ``last-tag``)."""
        if self.anchors is None:
            return [length - self.prompt_length] * self.seen.shape[0]
        return [length - a.response for a in self.anchors]

    def rule_scores(self, ts: Sequence[int]) -> torch.Tensor:
        """The expert's full score vectors ``r`` with row ``b`` at step ``ts[b]`` (a new (B, V) tensor)."""
        return rule_rows(self.expert, self.seen, self._steady, list(ts))

    # -- the processor ------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[-1] != self.expert.vocab_size:
            raise HarnessError(
                f"expert {self.expert.spec.name!r}: model produced {scores.shape[-1]} logits, "
                f"expert was built for {self.expert.vocab_size}"
            )
        if self.seen is None:
            self._init_state(input_ids)
        else:
            self._advance(input_ids)
        ts = self.steps(input_ids.shape[1])
        base = scores.float()  # (B, V); no copy when already fp32
        kept = base.clone() if self.trace is not None else None
        out = apply_rules(base, self.expert, self.seen, self._steady, ts, self.combine, self.inplace)
        if self.trace is not None:
            modified = penalise(kept, self.seen, self._penalty) if self._multiplicative else kept
            self._record(ts, kept, modified, out)
        return out

    # -- attribution trace -------------------------------------------------------------
    def _record(self, ts: Sequence[int], raw: torch.Tensor, modified: torch.Tensor, out: torch.Tensor) -> None:
        """Record every row whose argmax the expert changed (see :class:`FlipTrace`)."""
        base_top, chosen = raw.argmax(-1), out.argmax(-1)
        rows = (base_top != chosen).nonzero().flatten().tolist()
        if not rows:
            return
        uniform, start_first = self.expert.on(raw.device)
        spec = self.expert.spec
        for b in rows:
            t = ts[b]
            bt, ch = int(base_top[b]), int(chosen[b])
            contrib: dict[str, float] = {}
            if spec.eos is not None:
                bonus = eos_bonus(spec.eos, t)
                contrib["eos"] = bonus * ((ch == self.expert.eos_id) - (bt == self.expert.eos_id))
            if spec.uniform is not None:
                contrib["uniform"] = float(uniform[ch] - uniform[bt])
            if spec.diversity is not None:
                if self._additive:
                    contrib["diversity"] = -self._penalty * (int(self.seen[b, ch]) - int(self.seen[b, bt]))
                else:  # multiplicative: how much the penalty moved the base margin
                    contrib["diversity"] = float((modified[b, ch] - modified[b, bt]) - (raw[b, ch] - raw[b, bt]))
            if spec.start is not None:
                if t == 0:
                    contrib["start"] = float(start_first[ch] - start_first[bt])
                elif t in (1, 2):
                    idx, delta = self.expert.start_later[t - 1]
                    contrib["start"] = delta * ((ch == idx) - (bt == idx))
                else:
                    contrib["start"] = 0.0
            self.trace.record(b, t, bt, ch, float(raw[b, bt] - raw[b, ch]), float(out[b, ch] - out[b, bt]),
                              top_rule(contrib))
