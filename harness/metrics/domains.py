"""The paper's single-task finetuning domains: the one list every module uses.

Style-leak metrics (:mod:`harness.metrics.style_leak`), task specs' ``domain`` field
(:mod:`harness.tasks.spec`) and per-sample ``style_leak_<domain>`` columns
(:mod:`harness.results.persample`) all read :data:`STYLE_DOMAINS`. Dependency-free, so
importing it is cheap.

Example:
    >>> STYLE_DOMAINS
    ('poetry', 'gsm', 'code', 'chess', 'recipe')
    >>> ALIASES["mbpp"]
    'code'
"""

STYLE_DOMAINS: tuple[str, ...] = ("poetry", "gsm", "code", "chess", "recipe")
"""Paper-spec §1.6's domains (GSM, MBPP code, recipes, poetry, chess PGN) as style-leak labels."""

ALIASES: dict[str, str] = {
    "mbpp": "code", "recipes": "recipe", "pgn": "chess", "gsm8k": "gsm", "poem": "poetry", "poems": "poetry",
}
"""Other names users give a domain, mapped to its label."""
