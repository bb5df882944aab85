"""The rules' arithmetic as plain functions (paper-spec §2.2-2.3), shared by both paths.

Everything here is scalar or per-token: the EOS ramp as a function of ``t`` (tokens
generated so far), the start rule's score of one vocabulary piece, and the canonical
order in which a rule score vector is assembled. The fast processor
(:mod:`harness.experts.processor`) and the reference path
(:mod:`harness.experts.reference`) both follow :data:`SUM_ORDER`, so their fp32 rule
scores are bit-identical.

Example:
    >>> from harness.experts.spec import EosRule, StartRule
    >>> eos_bonus(EosRule(), 1), eos_bonus(EosRule(), 249), eos_bonus(EosRule(), 250)
    (0.06, 14.94, 0.0)
    >>> [start_score(t, StartRule()) for t in (" Okay", "I", " the", "<0x0A>", "42")]
    [10.0, -3.0, 1.0, -1.0, 0.0]
"""

from __future__ import annotations

import math

import torch

from harness.experts.spec import EosRule, StartRule

RULE_NAMES = ("eos", "uniform", "diversity", "start")
"""Rule names as recorded in traces (``flip_rules``)."""

SUM_ORDER = ("uniform", "eos", "start", "diversity")
"""Order of the fp32 additions that build a rule vector ``r`` (starting from zeros)."""

# The paper's `score_string` punctuation list (open_instruct/combined_model.py), verbatim.
PUNCTUATION = ".,:;!?<>[]{}()\"'`~@#$%^&*-=+\\|/"


def eos_bonus(rule: EosRule, t: int) -> float:
    """EOS score after ``t`` generated tokens (paper-spec §2.2 rule 1).

    ``linear``: ``per_token * t`` for ``0 < t < until`` (the code's ``5 * t / 250 * 3``;
    the two agree exactly in fp32 for every ``t``), then 0 again (the drop-off at 250 is
    kept on purpose). ``exponential``: ``scale * (exp(rate * t) - 1)`` on the same range.
    ``fallback_after`` (off by default; the listing's dead ``+100`` branch) adds
    ``fallback_bonus`` once ``t > fallback_after``.

    >>> eos_bonus(EosRule(ramp="exponential", scale=1.0, rate=0.01), 100) == math.e - 1
    True
    """
    bonus = 0.0
    if 0 < t < rule.until:
        bonus = rule.per_token * t if rule.ramp == "linear" else rule.scale * (math.exp(rule.rate * t) - 1.0)
    if rule.fallback_after is not None and t > rule.fallback_after:
        bonus += rule.fallback_bonus
    return bonus


def _is_letter(c: str) -> bool:
    """The code's "letter" test: cased letters, CJK ideographs, Cyrillic, kana, Hangul."""
    return (c.isupper() or c.islower() or "\u4e00" <= c <= "\u9fff" or "\u0400" <= c <= "\u04ff"
            or "\u3040" <= c <= "\u30ff" or "\uac00" <= c <= "\ud7af")


def start_score(text: str, rule: StartRule) -> float:
    """Unweighted first-position score of one token, given its text (paper-spec §2.3).

    ``text`` is the token's surface text (``"▁Okay"`` -> ``" Okay"``), except that pieces
    starting with ``<`` (byte pieces ``<0x0A>``, specials ``<s>``) are passed raw, as the
    code scores raw pieces: they start with ``<`` and so count as punctuation (-1).

    Note:
        The rules are the code's, not a generalisation: exactly one leading space is
        stripped; only cased letters, CJK (U+4E00-9FFF), Cyrillic, kana and Hangul count
        as letters (Arabic or Devanagari score 0); only the code's punctuation list scores
        -1 (``_`` or ``…`` score 0).

    >>> start_score("  x", StartRule()), start_score("_", StartRule()), start_score("Я", StartRule())
    (0.0, 0.0, 1.0)
    """
    if text.startswith(" "):
        text = text[1:]
    if not text:
        return 0.0
    if text == "I":
        return rule.i_penalty
    if text == rule.agreement:
        return rule.agreement_bonus
    if _is_letter(text[0]):
        return rule.letter_bonus
    if text[0] in PUNCTUATION:
        return rule.punct_penalty
    return 0.0


# -- the rule arithmetic on tensors ------------------------------------------------------------
# One implementation, shared by the HF processor (harness.experts.processor, one ``t`` for the
# whole left-padded batch) and the vLLM processor (harness.engines.vllm_processor, one ``t``
# per request of the persistent batch). ``expert`` is a ResolvedExpert (duck-typed here to keep
# this module free of transformers): ``spec``, ``vocab_size``, ``start_first``,
# ``on(device) -> (uniform, start_first)`` and ``column_extras(t)``. Rows are in fp32.


def diversity_mode(expert) -> tuple[float, bool, bool]:
    """``(penalty, additive, multiplicative)`` of the expert's diversity rule (0, False, False if off)."""
    div = expert.spec.diversity
    if div is None:
        return 0.0, False, False
    return div.penalty, div.mode == "additive", div.mode == "multiplicative"


def scope_state(expert, scopes, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(seen, steady)`` for token-id lists ``scopes`` (one list per row).

    ``seen`` (n, V) bool marks the ids in each row's diversity scope (all False when the
    rule is off); ``steady`` (n, V) fp32 is the rule vector away from special columns:
    the uniform deltas minus the additive penalty on seen ids.
    """
    penalty, additive, _ = diversity_mode(expert)
    uniform, _ = expert.on(device)
    seen = torch.zeros(len(scopes), expert.vocab_size, dtype=torch.bool, device=device)
    if expert.spec.diversity is not None:
        for b, ids in enumerate(scopes):
            if len(ids):
                seen[b, torch.as_tensor(ids, dtype=torch.long, device=device)] = True
    steady = uniform.expand(len(scopes), -1).clone()
    if additive:
        steady[seen] -= penalty
    return seen, steady


def absorb(expert, seen: torch.Tensor, steady: torch.Tensor, new: torch.Tensor) -> None:
    """Add newly generated ids ``new`` (n, k) to the rows' scope, in place (incremental)."""
    if expert.spec.diversity is None or new.numel() == 0:
        return
    penalty, additive, _ = diversity_mode(expert)
    seen.scatter_(1, new, True)
    if additive:
        uniform, _ = expert.on(seen.device)
        steady.scatter_(1, new, uniform[new] - penalty)


def penalise(base: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Multiplicative diversity: divide positive, multiply negative logits of seen ids (new tensor)."""
    return torch.where(seen, torch.where(base > 0, base / penalty, base * penalty), base)


def _columns(expert, ts, seen: torch.Tensor, uniform: torch.Tensor):
    """``(idx, rows, value)`` for every column that some row's step ``t`` touches beyond ``steady``.

    ``value`` (len(rows),) is the exact rule score there: the uniform delta, then each extra
    (EOS bonus, start rule's later positions) in sum order, minus the penalty when seen.
    """
    penalty, additive, _ = diversity_mode(expert)
    cache: dict[int, dict[int, list[float]]] = {}
    for t in set(ts):
        cache[t] = expert.column_extras(t)
    per_row = [cache[t] for t in ts]
    for idx in sorted({i for extras in per_row for i in extras}):
        rows = [b for b, extras in enumerate(per_row) if idx in extras]
        width = max(len(per_row[b][idx]) for b in rows)
        value = uniform[idx].expand(len(rows))
        for k in range(width):
            add = [per_row[b][idx][k] if k < len(per_row[b][idx]) else 0.0 for b in rows]
            value = value + torch.tensor(add, dtype=torch.float32, device=uniform.device)
        rows_t = torch.tensor(rows, dtype=torch.long, device=uniform.device)
        if additive:
            value = torch.where(seen[rows_t, idx], value - penalty, value)
        yield idx, rows_t, value


def rule_rows(expert, seen: torch.Tensor, steady: torch.Tensor, ts) -> torch.Tensor:
    """The expert's full score vectors ``r`` (n, V) for rows at steps ``ts`` (a new tensor)."""
    penalty, additive, _ = diversity_mode(expert)
    uniform, start_first = expert.on(seen.device)
    r = steady.clone()
    if start_first is not None:
        first = [b for b, t in enumerate(ts) if t == 0]
        if first:
            rf = (uniform + start_first).expand(len(first), -1).clone()
            if additive:
                rf[seen[first]] -= penalty
            r[first] = rf
    for idx, rows, value in _columns(expert, ts, seen, uniform):
        r[rows, idx] = value
    return r


def apply_rules(base: torch.Tensor, expert, seen: torch.Tensor, steady: torch.Tensor, ts,
                combine: str = "logit-add", inplace: bool = True) -> torch.Tensor:
    """Join the expert to base logits ``base`` (n, V) fp32; row ``b`` is at step ``ts[b]``.

    ``logit-add``: ``base + r``; ``logsoftmax-sum``: ``log_softmax(base) + log_softmax(r)``
    (the paper code). Multiplicative diversity rescales ``base`` first. Away from the start
    rule's first position this is one (n, V) add of ``steady`` plus fixes on at most three
    columns. With ``inplace`` the result may be written into ``base``.

    Example:
        >>> from harness.experts.processor import ResolvedExpert
        >>> from harness.experts.spec import DiversityRule, ExpertSpec
        >>> ex = ResolvedExpert.build(ExpertSpec("d", diversity=DiversityRule()), None, vocab_size=4, eos_id=3)
        >>> seen, steady = scope_state(ex, [[1], []])
        >>> apply_rules(torch.zeros(2, 4), ex, seen, steady, [0, 0]).tolist()
        [[0.0, -1.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    penalty, _, multiplicative = diversity_mode(expert)
    if multiplicative:
        base = penalise(base, seen, penalty)
    if combine == "logsoftmax-sum" or (expert.start_first is not None and 0 in ts):
        r = rule_rows(expert, seen, steady, ts)
        if combine == "logsoftmax-sum":
            return torch.log_softmax(base, dim=-1) + torch.log_softmax(r, dim=-1)
        return base.add_(r) if inplace else base + r
    uniform, _ = expert.on(base.device)
    fixes = [(idx, rows, base[rows, idx] + value) for idx, rows, value in _columns(expert, ts, seen, uniform)]
    out = base.add_(steady) if inplace else base + steady
    for idx, rows, col in fixes:
        out[rows, idx] = col
    return out
