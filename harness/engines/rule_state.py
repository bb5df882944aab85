"""Per-request rule-expert state over vLLM's persistent batch (no vLLM import here).

vLLM V1 keeps a *persistent batch*: request ``i`` sits in row ``i`` of the logits until
it is removed or moved. :class:`BatchRules` follows that layout from the
``BatchUpdate`` records vLLM hands its logits processors (added, then removed, then
moved/swapped — the order of vLLM's own ``process_dict_updates``), keeps each request's
diversity scope incrementally (the live ``output_tok_ids`` list is read from where it was
last read; under ``anchor: last-tag`` each new token is also matched against the row's
tags, :class:`~harness.experts.anchors.TagAnchors`), and applies the rules to all rows of one expert at once through
:func:`harness.experts.rules.apply_rules` — the same arithmetic as the HF processor.

Per-request settings travel in ``SamplingParams.extra_args`` (see :func:`request_args`):
``harness_expert`` (a spec dict, a JSON string of one, or a variant name such as
``rules`` / ``rules:eos-uniform``), ``harness_user_start`` (index of the first user-message
token in the prompt ids; default: found from the ``<|user|>`` tag, else 0) and
``harness_combine`` (``logit-add`` or ``logsoftmax-sum``). Requests without
``harness_expert`` pass through untouched.

Example (a fake batch update; vLLM's BatchUpdate has the same fields):
    >>> from types import SimpleNamespace as NS
    >>> state = BatchRules(tokenizer, vocab_size=V, eos_id=eos)                      # doctest: +SKIP
    >>> params = NS(extra_args=request_args(parse_variant("rules").expert, 5))        # doctest: +SKIP
    >>> state.update(NS(added=[(0, params, prompt, out)], removed=[], moved=[]))      # doctest: +SKIP
    >>> logits = state.apply(logits)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from harness.errors import HarnessError
from harness.experts.anchors import TagAnchors
from harness.experts.cache import ExpertCache
from harness.experts.processor import COMBINE_MODES, ResolvedExpert
from harness.experts.rules import absorb, apply_rules, scope_state
from harness.experts.spec import ExpertSpec, expert_from_dict

EXPERT_ARG = "harness_expert"
USER_START_ARG = "harness_user_start"
COMBINE_ARG = "harness_combine"


def request_args(spec: ExpertSpec | None, user_start: int | None = None, combine: str = "logit-add") -> dict:
    """``SamplingParams.extra_args`` that select ``spec`` for one request (``{}`` for none)."""
    if spec is None:
        return {}
    out = {EXPERT_ARG: json.loads(json.dumps(spec.to_dict())), COMBINE_ARG: combine}  # plain lists and dicts
    if user_start is not None:
        out[USER_START_ARG] = int(user_start)
    return out


def expert_from_arg(value) -> ExpertSpec:
    """The spec named by an ``extra_args['harness_expert']`` value (dict, JSON string or variant name)."""
    if isinstance(value, ExpertSpec):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"extra_args.{EXPERT_ARG}: not valid JSON ({exc.msg})") from None
    if isinstance(value, dict):
        return expert_from_dict(value, f"extra_args.{EXPERT_ARG}")
    if isinstance(value, str):
        from harness.experts.variants import parse_variant

        variant = parse_variant(value)
        if variant.expert is None:
            raise HarnessError(f"extra_args.{EXPERT_ARG}: {value!r} has no expert (omit the argument instead)")
        return variant.expert
    raise HarnessError(f"extra_args.{EXPERT_ARG}: expected a spec mapping, JSON or a variant name, got {value!r}")


@dataclass
class _Request:
    expert: ResolvedExpert
    combine: str
    output: list[int]  # vLLM's live output list (appended to by the engine)
    seen: torch.Tensor  # (1, V) bool
    steady: torch.Tensor  # (1, V) fp32
    absorbed: int  # how much of ``output`` is in ``seen``/``steady``
    prompt: list[int]
    anchors: TagAnchors | None  # anchor: last-tag only; fed each new token

    def step(self) -> int:
        """``t``: tokens since the response start (the prompt's end, or the last generated assistant tag)."""
        if self.anchors is None:
            return len(self.output)
        return len(self.prompt) + len(self.output) - self.anchors.response


class BatchRules:
    """Rule-expert state for every request of a persistent batch.

    Args:
        tokenizer: the served model's tokenizer (token strings and the start rule resolve on it).
        vocab_size: logits width.
        eos_id: the EOS id the EOS rule rewards.
    """

    def __init__(self, tokenizer, vocab_size: int, eos_id: int | None = None):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_id = eos_id if eos_id is not None else tokenizer.eos_token_id
        self.requests: dict[int, _Request] = {}
        self.experts = ExpertCache(tokenizer, vocab_size, self.eos_id)

    # -- per-request settings ------------------------------------------------------------
    def resolved(self, spec: ExpertSpec) -> ResolvedExpert:
        return self.experts.spec(spec)

    def validate(self, extra_args: dict | None) -> None:
        """Raise :class:`HarnessError` (a ``ValueError``) when a request's expert arguments are bad."""
        self._settings(extra_args, None)

    def _settings(self, extra_args: dict | None, prompt: list[int] | None):
        args = extra_args or {}
        if args.get(EXPERT_ARG) is None:
            return None
        expert = self.resolved(expert_from_arg(args[EXPERT_ARG]))
        combine = args.get(COMBINE_ARG, "logit-add")
        if combine not in COMBINE_MODES:
            raise HarnessError(f"extra_args.{COMBINE_ARG}: {combine!r} is not one of {', '.join(COMBINE_MODES)}")
        start = args.get(USER_START_ARG)
        if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
            raise HarnessError(f"extra_args.{USER_START_ARG}: expected a token index >= 0, got {start!r}")
        if start is None and prompt is not None:
            from harness.experts.reference import paper_user_start

            start = paper_user_start(list(prompt), self.tokenizer) or 0
        return expert, combine, start or 0

    # -- BatchUpdate ---------------------------------------------------------------------
    def update(self, batch_update) -> None:
        """Follow one ``BatchUpdate``: added, then removed, then moved (as vLLM's own processors)."""
        if batch_update is None:
            return
        for index, params, prompt, output in batch_update.added:
            settings = self._settings(getattr(params, "extra_args", None), prompt)
            if settings is None:
                self.requests.pop(index, None)
                continue
            expert, combine, start = settings
            prompt = list(prompt or [])
            div = expert.spec.diversity
            scope = prompt[start:] if div is not None and div.scope == "user" else []
            seen, steady = scope_state(expert, [scope])
            self.requests[index] = _Request(expert, combine, output, seen, steady, 0, prompt,
                                            expert.anchors(prompt, start))
        for index in batch_update.removed:
            self.requests.pop(index, None)
        for a, b, direction in batch_update.moved:
            ra, rb = self.requests.pop(a, None), self.requests.pop(b, None)
            if ra is not None:
                self.requests[b] = ra
            if rb is not None and getattr(direction, "name", direction) == "SWAP":
                self.requests[a] = rb

    # -- logits ----------------------------------------------------------------------------
    @staticmethod
    def _absorb(req: _Request) -> None:
        """Fold the tokens generated since the last step into the request's seen-set (incremental)."""
        if len(req.output) <= req.absorbed:
            return
        tokens = req.output[req.absorbed:]
        absorb(req.expert, req.seen, req.steady, torch.tensor([tokens], dtype=torch.long))
        req.absorbed = len(req.output)
        scope = req.expert.scope_name()
        if req.anchors is not None and req.anchors.feed(tokens, scope):  # a generated tag moved the window
            history = req.prompt + req.output[:req.absorbed]
            req.seen, req.steady = scope_state(req.expert, [history[req.anchors.window(scope):]])

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Add each request's rule scores to its row of ``logits`` (num_requests, V), fp32."""
        if not self.requests:
            return logits
        if logits.shape[-1] != self.vocab_size:
            raise HarnessError(f"rule expert: model produced {logits.shape[-1]} logits, expected {self.vocab_size}")
        for index, req in self.requests.items():
            if index >= logits.shape[0]:
                continue
            self._absorb(req)
            row = logits[index: index + 1]  # a view: the rules are added in place, no gather or scatter
            base = row if row.dtype == torch.float32 else row.float()
            out = apply_rules(base, req.expert, req.seen.to(logits.device), req.steady.to(logits.device),
                              [req.step()], req.combine)
            if out.data_ptr() != row.data_ptr():  # logsoftmax-sum, the start rule's first step, non-fp32 logits
                row.copy_(out)
        return logits
