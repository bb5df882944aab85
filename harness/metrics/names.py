"""Every metric name the harness writes into ``metrics``: one name per measure.

The naming convention (schema v3):

* A measure has **one** name whatever produced it: the harness's IFEval scorer and
  lm-eval's IFEval both write ``prompt_level_strict_acc``.
* lm-eval's filter (``none``, ``strict-match``, ...) goes in the ``filter`` column, never in
  the name (lm-eval's own ``"acc,none"`` key is split). Rows the harness computes itself
  have ``filter`` NULL.
* Per-sample rows carry the measure's own name with ``sample_id`` set; aggregate rows
  have ``sample_id`` NULL. No ``ifeval_``/``_pref`` style prefixes mark per-sample rows.
* A measure is stored once: IFEval's echo share is the run's ``echo_rate`` of that task and
  variant, not a second ``ifeval_echo_rate``.
* ``n`` counts the unit the value is averaged over: prompts for ``prompt_level_*``,
  instructions for ``inst_level_*`` (also on a per-sample row: the prompt's
  instructions), prompts/rows for everything else (1 on per-sample rows).
* ``style_leak_<domain>`` is a family: one name per style-leak domain (a fixed list).
  Free-form qualifiers (the similarity domain, the judge, the baseline) go in
  ``reference``/``details``, not in the name.

lm-eval tasks other than IFEval write the metric names of their own task YAML
(``exact_match``, ``acc``, ...); those are the task's, not the harness's, and are not
listed here.

:data:`METRIC_NAMES` is the registry; ``docs/results-tables.md`` lists each name once
(a test keeps the two equal), and :func:`is_known` checks a concrete name.

Example:
    >>> is_known("style_leak_gsm"), is_known("prompt_level_strict_acc,none")
    (True, False)
    >>> METRIC_NAMES["inst_level_strict_acc"].unit
    'instructions'
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.metrics.style_leak import LABELS as STYLE_DOMAINS


@dataclass(frozen=True)
class MetricName:
    """One registered metric name: who writes it, what ``n`` counts, whether per-sample rows exist."""

    name: str
    producer: str
    unit: str  # what n counts
    per_sample: bool
    meaning: str


IFEVAL_MEASURES = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")
NON_ECHO_SUFFIX = "_non_echo"


_IFEVAL_MEANING = {
    "prompt_level_strict_acc": "share of prompts whose every instruction is followed (lm-eval's strict check)",
    "inst_level_strict_acc": "share of instructions followed, pooled over prompts (strict check)",
    "prompt_level_loose_acc": "as prompt_level_strict_acc with lm-eval's loose check (markdown and first/last "
                              "line removed)",
    "inst_level_loose_acc": "as inst_level_strict_acc with the loose check",
}


def _unit(measure: str) -> str:
    return "instructions" if measure.startswith("inst_level") else "prompts"


_ENTRIES = [
    MetricName("eos_rate", "harness run (summary)", "rows", False, "share of outputs that ended with EOS"),
    MetricName("mean_output_tokens", "harness run (summary)", "rows", False, "mean generated tokens"),
    MetricName("echo_rate", "harness run (summary)", "rows", False, "share of outputs that repeat the instruction"),
    MetricName("role_tag_rate", "harness run (summary)", "rows", False, "share of outputs with a leaked role tag"),
    MetricName("distinct_2", "harness run (summary)", "rows", False, "mean distinct-bigram ratio"),
    MetricName("refusal_rate", "harness run (summary)", "rows", False, "share of refusals"),
    MetricName("error_rate", "harness run (summary)", "rows", False, "share of rows whose generation failed"),
    *(MetricName(m, "IFEval (harness scorer or lm-eval)", _unit(m), True, _IFEVAL_MEANING[m]) for m in IFEVAL_MEASURES),
    *(MetricName(m + NON_ECHO_SUFFIX, "IFEval (harness scorer)", _unit(m), False,
                 f"{m} restricted to outputs that do not echo the prompt") for m in IFEVAL_MEASURES),
    MetricName("style_leak_<domain>", "harness run (style leak)", "rows", False,
               "share of outputs in a finetuning domain's style; domains: " + ", ".join(STYLE_DOMAINS)),
    MetricName("judge_win_rate", "harness judge", "prompts", True,
               "mean P(treatment better) over prompts, ties 1/2 (per-sample rows: that prompt's P)"),
    MetricName("judge_lc_win_rate", "harness judge", "prompts", False,
               "AlpacaEval length-controlled win rate (alpaca_eval's GLM) from the same judgements"),
    MetricName("similarity_xy", "harness similarity", "prompts", True,
               "per prompt: y of the paper's §5.2 scatter (x in details)"),
    MetricName("similarity_spearman", "harness similarity", "prompts", False,
               "Spearman correlation of the §5.2 scatter; the domain is in reference (domain:<domain>)"),
    MetricName("ranking_total", "harness rank", "comparisons", False, "response ranking by total log-probability (Eq. 3)"),
    MetricName("ranking_mean", "harness rank", "comparisons", False, "response ranking by per-token mean log-probability"),
]

METRIC_NAMES: dict[str, MetricName] = {e.name: e for e in _ENTRIES}
IFEVAL_NAMES = (*IFEVAL_MEASURES, *(m + NON_ECHO_SUFFIX for m in IFEVAL_MEASURES))


def expand(name: str) -> list[str]:
    """Concrete names of a registry entry (``<domain>`` families expand to every domain).

    >>> expand("style_leak_<domain>")[:2]
    ['style_leak_poetry', 'style_leak_gsm']
    """
    if name.endswith("<domain>"):
        return [name.replace("<domain>", d) for d in STYLE_DOMAINS]
    return [name]


def all_names() -> list[str]:
    """Every concrete metric name the harness itself writes."""
    return [n for e in _ENTRIES for n in expand(e.name)]


def is_known(name: str) -> bool:
    """Whether ``name`` is a registered (concrete) metric name."""
    return name in set(all_names())


__all__ = ["IFEVAL_MEASURES", "IFEVAL_NAMES", "METRIC_NAMES", "MetricName", "NON_ECHO_SUFFIX", "all_names", "expand",
           "is_known"]
