"""Attribution trace: the steps where the expert changed the greedy choice (beyond the paper).

For every generated position ``t`` where ``argmax(base) != argmax(base + r)``, a
:class:`FlipTrace` keeps the base model's top token, the chosen token, two margins and
the rule that pushed hardest towards the flip. :class:`~harness.engines.hf.HFEngine`
turns it into the ``flip_*`` list columns of the ``samples`` table (``--trace``).

* ``base_margin`` = base logit of the base top-1 minus base logit of the chosen token
  (>= 0: how far the expert had to move the choice);
* ``chosen_margin`` = combined score of the chosen token minus combined score of the base
  top-1 (> 0 unless a tie broke by index);
* ``rule`` = the rule whose score difference ``r_rule[chosen] - r_rule[base_top]`` is
  largest (``eos``, ``uniform``, ``diversity`` or ``start``).

With sampling, ``chosen`` is still the combined argmax, which the sampler may not pick.

Example:
    >>> tr = FlipTrace(batch_size=2)
    >>> tr.record(0, 3, 17, 2, 0.5, 1.25, "eos")
    >>> tr.columns(0)["flip_rules"], tr.columns(1)["flip_positions"]
    (['eos'], [])
    >>> tr.columns(0, n_tokens=3)["flip_positions"]  # flips past the row's end are dropped
    []
"""

from __future__ import annotations

COLUMNS = ("flip_positions", "flip_base_tokens", "flip_chosen_tokens", "flip_base_margins",
           "flip_chosen_margins", "flip_rules")


def top_rule(contributions: dict[str, float]) -> str:
    """The rule with the largest contribution to the flip (first listed wins ties).

    >>> top_rule({"eos": 0.0, "uniform": 5.0, "diversity": 1.5})
    'uniform'
    """
    return max(contributions, key=lambda k: contributions[k])


class FlipTrace:
    """Per-row lists of argmax flips, filled by :class:`RuleExpertProcessor` each step.

    Args:
        batch_size: rows in the batch (one list per row).
    """

    def __init__(self, batch_size: int):
        self.rows: list[list[tuple[int, int, int, float, float, str]]] = [[] for _ in range(batch_size)]

    def record(self, row: int, position: int, base_token: int, chosen_token: int, base_margin: float,
               chosen_margin: float, rule: str) -> None:
        """Add one flip of ``row`` at generated position ``position``."""
        self.rows[row].append((position, base_token, chosen_token, base_margin, chosen_margin, rule))

    def columns(self, row: int, n_tokens: int | None = None) -> dict[str, list]:
        """The six ``flip_*`` columns of one row, keeping positions ``< n_tokens``."""
        flips = [f for f in self.rows[row] if n_tokens is None or f[0] < n_tokens]
        return {name: [f[i] for f in flips] for i, name in enumerate(COLUMNS)}


def empty_columns() -> dict[str, list]:
    """The ``flip_*`` columns of a row generated without an expert (``none``)."""
    return {name: [] for name in COLUMNS}
