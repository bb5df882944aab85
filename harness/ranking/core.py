"""Response ranking (paper §4.2, Table 2): does the model prefer an instruction's own response?

For each instruction *i* with its real response *r_i*, draw ``k`` responses *r_j* of other
pairs uniformly at random (with replacement; *j = i* is possible, as in the paper's code,
unless ``exclude_self``) and compare

* **total** (the paper's Eq. 3): ``log p(r_i | i)`` vs ``log p(r_j | i)``, summed over the
  response tokens plus EOS;
* **mean** (what the paper's code computes, ``exp(-mean loss)``): the same log-probability
  divided by its number of tokens (response tokens plus EOS), a per-token geometric mean.

The capability rate is the fraction of the ``n·k`` differences (real − random) that are
``> 0`` (a self-draw gives 0, a failure), with a Wilson 95 % interval. Every distinct
(instruction, response) pair is scored once, in ONE ``backend.score`` call, so a Ray
replica pool batches them (longest pairs first, so batches are of similar length).

Example:
    >>> items = [("Name a fruit.", "An apple."), ("Count to 3.", "1, 2, 3.")]
    >>> out = rank(backend, items, variant, k=5, seed=0)             # doctest: +SKIP
    >>> sorted(out["total"])                                         # doctest: +SKIP
    ['ci_high', 'ci_low', 'n', 'rate', 'successes', 'ties']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import HarnessError
from harness.metrics.stats import wilson_ci


def draw_negatives(n: int, k: int, rng: np.random.Generator, exclude_self: bool = False) -> np.ndarray:
    """``(n, k)`` indices of random responses for each of ``n`` instructions.

    Args:
        n: number of (instruction, response) pairs.
        k: draws per instruction.
        rng: the explicit random generator (``numpy.random.default_rng(seed)``).
        exclude_self: never draw an instruction's own response (the paper does not exclude).

    >>> draw_negatives(3, 4, np.random.default_rng(0), exclude_self=True).shape
    (3, 4)
    """
    if exclude_self:
        if n < 2:
            raise HarnessError("ranking: --exclude-self needs at least 2 (instruction, response) pairs")
        draws = rng.integers(0, n - 1, size=(n, k))
        return draws + (draws >= np.arange(n)[:, None])
    return rng.integers(0, n, size=(n, k))


def _stat(diffs: np.ndarray) -> dict:
    wins = int((diffs > 0).sum())
    n = int(diffs.size)
    lo, hi = wilson_ci(wins, n)
    return {"rate": wins / n if n else float("nan"), "successes": wins, "n": n, "ties": int((diffs == 0).sum()),
            "ci_low": lo, "ci_high": hi}


def rank(backend, items: Sequence[tuple[str, str]], variant, k: int = 5, seed: int = 0,
         exclude_self: bool = False) -> dict:
    """Response-ranking capability of ``backend``'s model under ``variant``.

    Args:
        backend: anything with ``score(pairs, variant, add_eos=True)`` returning
            ``[{"logprob", "num_tokens", "is_greedy"}]`` in input order (the run backend).
        items: ``(instruction, real response)`` pairs.
        variant: the :class:`~harness.experts.variants.Variant` scored (``none``, ``rules``, ...).
        k: random responses per instruction (paper: 5).
        seed: seed of the ``numpy.random.Generator`` that draws them.
        exclude_self: never compare a response with itself.

    Returns:
        ``{"variant", "n_items", "k", "seed", "exclude_self", "self_draws", "draws"
        (n x k indices), "real_total", "real_mean", "real_tokens" (per item),
        "diff_total", "diff_mean" (n x k), "total" and "mean": {"rate", "successes",
        "n", "ties", "ci_low", "ci_high"}, "scored_pairs"}``.

    Example:
        >>> class Fake:   # log p = -(number of characters): shorter responses win
        ...     def score(self, pairs, variant, add_eos=False):
        ...         return [{"logprob": -float(len(r)), "num_tokens": len(r) + 1, "is_greedy": False} for _, r in pairs]
        >>> out = rank(Fake(), [("a", "x"), ("b", "yyyy")], None, k=2, seed=0, exclude_self=True)
        >>> out["total"]["rate"], out["total"]["n"]
        (0.5, 4)
    """
    n = len(items)
    if n == 0:
        raise HarnessError("ranking: no (instruction, response) pairs to rank")
    if k < 1:
        raise HarnessError(f"ranking: --k must be at least 1, got {k}")
    draws = draw_negatives(n, k, np.random.default_rng(seed), exclude_self)
    index: dict[tuple[int, int], int] = {}
    for i in range(n):
        for j in (i, *draws[i].tolist()):
            index.setdefault((i, j), len(index))
    pairs = [(items[i][0], items[j][1]) for (i, j) in index]
    # longest first, so each batch holds pairs of similar length (little padding)
    order = sorted(range(len(pairs)), key=lambda p: -(len(pairs[p][0]) + len(pairs[p][1])))
    sorted_scores = backend.score([pairs[p] for p in order], variant, add_eos=True)
    if len(sorted_scores) != len(pairs):
        raise RuntimeError(f"backend.score returned {len(sorted_scores)} scores for {len(pairs)} pairs")
    scores: list[dict] = [{}] * len(pairs)
    for p, s in zip(order, sorted_scores):
        scores[p] = s
    total = np.array([float(s["logprob"]) for s in scores])
    tokens = np.array([max(int(s["num_tokens"]), 1) for s in scores])
    mean = total / tokens
    real = np.array([index[(i, i)] for i in range(n)])
    neg = np.array([[index[(i, int(j))] for j in draws[i]] for i in range(n)])
    diff_total = total[real][:, None] - total[neg]
    diff_mean = mean[real][:, None] - mean[neg]
    return {
        "variant": getattr(variant, "name", variant), "n_items": n, "k": k, "seed": seed, "exclude_self": exclude_self,
        "self_draws": int((draws == np.arange(n)[:, None]).sum()), "draws": draws.tolist(),
        "real_total": total[real].tolist(), "real_mean": mean[real].tolist(), "real_tokens": tokens[real].tolist(),
        "diff_total": diff_total.tolist(), "diff_mean": diff_mean.tolist(),
        "total": _stat(diff_total), "mean": _stat(diff_mean), "scored_pairs": len(pairs),
    }
