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
