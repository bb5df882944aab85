"""Response ranking (paper §4.2, Table 2): p(real response | instruction) vs random responses.

Public API:
    - :func:`rank` -- capability rates (total and per-token mean log-probability) with
      Wilson intervals, all pairs scored in one backend call.
    - :func:`draw_negatives` -- the random responses, from an explicit numpy Generator.
    - :func:`load_pairs`, :func:`truncate_responses` -- JSONL input.
    - ``harness rank`` (:mod:`harness.ranking.cli`) writes ``ranking_total`` and
      ``ranking_mean`` metric rows per variant.

Example:
    >>> from harness.ranking import draw_negatives
    >>> import numpy as np
    >>> draw_negatives(4, 5, np.random.default_rng(0)).shape
    (4, 5)
"""

from harness.ranking.core import draw_negatives, rank
from harness.ranking.data import RESPONSE_FIELDS, load_pairs, truncate_responses

__all__ = ["RESPONSE_FIELDS", "draw_negatives", "load_pairs", "rank", "truncate_responses"]
