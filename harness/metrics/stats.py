"""Small statistics for evaluation metrics: intervals and paired tests (numpy only).

Every random procedure takes an explicit ``seed`` and builds its own
``numpy.random.Generator``; nothing touches global RNG state. Empty input is explicit:
interval functions return ``(nan, nan)`` and tests return ``p_value = 1.0`` with zero
counts, never a ``ZeroDivisionError``.

Example:
    >>> lo, hi = wilson_ci(7, 10)
    >>> round(lo, 4), round(hi, 4)
    (0.3968, 0.8922)
    >>> mcnemar([0, 0, 1, 1], [1, 1, 1, 0])
    (2, 1, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

NAN = float("nan")

# Bound on the (iterations x sample) index matrix materialised at once by the bootstraps.
_CHUNK_ELEMENTS = 4_000_000


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is sensible at
    ``k = 0`` or ``k = n``, which is common here (EOS rate 0.00 or 1.00).

    Args:
        k: successes, ``0 <= k <= n``.
        n: trials. ``n == 0`` gives ``(nan, nan)``.
        z: normal quantile (1.96 for a two-sided 95 % interval).

    Returns:
        ``(low, high)``.

    Example:
        >>> wilson_ci(0, 0)
        (nan, nan)
        >>> [round(x, 4) for x in wilson_ci(0, 10)]
        [0.0, 0.2775]
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_ci: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (NAN, NAN)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp rounding noise so k == 0 gives exactly 0.0 and k == n exactly 1.0.
    return (max(0.0, centre - half), min(1.0, centre + half))


def _t_cdf(t: float, df: float) -> float:
    """Student-t CDF by Simpson integration of the density from 0 to ``t`` (t >= 0)."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    x = np.linspace(0.0, t, 4001)  # even number of intervals for Simpson's rule
    f = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
    h = t / 4000
    area = h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    return 0.5 + float(area)


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution (``0.5 <= p < 1``), accurate to about 1e-9.

    Example:
        >>> round(t_quantile(0.975, 10), 3)
        2.228
    """
    if not 0.5 <= p < 1 or df <= 0:
        raise ValueError(f"t_quantile: need 0.5 <= p < 1 and df > 0, got p={p}, df={df}")
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def t_mean_ci(n: int, mean: float, std: float, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for a mean from summary moments (sample std, ``ddof=1``).

    Used where the moments come from a vectorised group-by, so no per-row values are
    needed. ``n == 0`` gives ``(nan, nan)``; ``n == 1`` gives ``(mean, mean)`` (no spread
    can be estimated, and the interval says so by having zero width).

    Example:
        >>> [round(x, 3) for x in t_mean_ci(11, 5.0, 1.0)]
        [4.328, 5.672]
    """
    if n <= 0:
        return (NAN, NAN)
    if n == 1 or not std > 0:
        return (float(mean), float(mean))
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return (mean - half, mean + half)


def _bootstrap_means(x: np.ndarray, iters: int, rng: np.random.Generator) -> np.ndarray:
    """``iters`` means of resamples (with replacement) of ``x``, chunked to bound memory."""
    n = len(x)
    rows = max(1, _CHUNK_ELEMENTS // n)
    out = np.empty(iters, dtype=np.float64)
    for start in range(0, iters, rows):
        m = min(rows, iters - start)
        idx = rng.integers(0, n, size=(m, n))  # (m, n) resample indices
        out[start : start + m] = x[idx].mean(axis=1)
    return out


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, iters: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of ``values``.

    Args:
        values: 1-D numbers; NaN is not allowed (drop undefined rows first).
        iters: bootstrap resamples.
        seed: seed of the ``numpy.random.Generator`` used (same seed, same interval).
        level: coverage of the two-sided interval.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for empty input.

    Example:
        >>> bootstrap_mean_ci([2.0, 2.0, 2.0])
        (2.0, 2.0)
        >>> bootstrap_mean_ci([])
        (nan, nan)
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_mean_ci: values must be 1-D, got shape {x.shape}")
    if len(x) == 0:
        return (NAN, NAN)
    if np.isnan(x).any():
        raise ValueError("bootstrap_mean_ci: values contain NaN; drop undefined rows first")
    means = _bootstrap_means(x, iters, np.random.default_rng(seed))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def _paired(a, b, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as float arrays of one equal 1-D shape (paired observations)."""
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape or xa.ndim != 1:
        raise ValueError(f"{name}: a and b must be 1-D of equal length, got {xa.shape} and {xb.shape}")
    return xa, xb


def paired_bootstrap_delta(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    iters: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean paired difference ``mean(b - a)`` with a percentile bootstrap interval.

    ``a[i]`` and ``b[i]`` must score the same prompt (e.g. variant ``none`` and
    ``rules``), so prompts are resampled as pairs, which keeps prompt difficulty out of
    the interval. The sign convention is "from ``a`` to ``b``": positive means ``b`` is higher.

    Returns:
        ``(delta, low, high)``; ``(nan, nan, nan)`` for empty input.

    Example:
        >>> paired_bootstrap_delta([0, 1, 0, 1], [1, 1, 1, 1])
        (0.5, 0.0, 1.0)
    """
    xa, xb = _paired(a, b, "paired_bootstrap_delta")
    if len(xa) == 0:
        return (NAN, NAN, NAN)
    d = xb - xa
    if np.isnan(d).any():
        raise ValueError("paired_bootstrap_delta: values contain NaN; drop undefined pairs first")
    means = _bootstrap_means(d, iters, np.random.default_rng(seed))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(d.mean()), float(lo), float(hi))


def binom_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` fair-coin trials.

    ``p = min(1, 2 * P[X <= min(k, n - k)])`` for ``X ~ Binomial(n, 1/2)``, computed with
    exact integers (so it is exact for every ``n``, not only small ones). ``n == 0`` gives 1.0.

    Example:
        >>> round(binom_two_sided_p(10, 27), 4)
        0.2478
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"binom_two_sided_p: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 1.0
    m = min(k, n - k)
    if n <= 2000:
        # Exact rational 2 * tail / 2**n; int / int true division rounds correctly.
        return min(1.0, 2 * sum(math.comb(n, i) for i in range(m + 1)) / (1 << n))
    # Large n: the same sum in log space (lgamma), accurate to ~1e-12 relative.
    i = np.arange(m + 1, dtype=np.float64)
    log_pmf = np.array([math.lgamma(n + 1)]) - _lgamma(i + 1) - _lgamma(n - i + 1) - n * math.log(2)
    top = log_pmf.max()
    return min(1.0, 2 * math.exp(top) * float(np.exp(log_pmf - top).sum()))


def _lgamma(x: np.ndarray) -> np.ndarray:
    return np.array([math.lgamma(v) for v in x])


def _as_bool(x: Sequence[bool] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr.astype(bool)


def mcnemar(a_bool: Sequence[bool] | np.ndarray, b_bool: Sequence[bool] | np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar test for paired binary outcomes (e.g. pass/fail per prompt).

    Only discordant pairs matter: ``b01`` prompts fail under ``a`` and pass under ``b``,
    ``b10`` pass under ``a`` and fail under ``b``. Under H0 each discordant pair goes
    either way with probability 1/2, so the p-value is the exact two-sided binomial
    test of ``b01`` out of ``b01 + b10`` (exact for all counts; no chi-square
    approximation is used, which only matters for very large counts).

    Returns:
        ``(b01, b10, p_value)``; no discordant pairs gives ``p_value = 1.0``.

    Example:
        >>> mcnemar([True] * 5, [True] * 5)
        (0, 0, 1.0)
    """
    a = _as_bool(a_bool, "mcnemar: a_bool")
    b = _as_bool(b_bool, "mcnemar: b_bool")
    if a.shape != b.shape:
        raise ValueError(f"mcnemar: a_bool and b_bool differ in length ({len(a)} vs {len(b)})")
    b01 = int(np.sum(~a & b))
    b10 = int(np.sum(a & ~b))
    return (b01, b10, binom_two_sided_p(b01, b01 + b10))


def sign_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[int, int, float]:
    """Exact two-sided sign test on paired numbers; ties are dropped.

    Returns:
        ``(n_up, n_down, p_value)`` where ``n_up`` counts pairs with ``b > a``. For 0/1
        data this is the same test as :func:`mcnemar`.

    Example:
        >>> sign_test([1, 2, 3, 4], [2, 3, 4, 4])
        (3, 0, 0.25)
    """
    xa, xb = _paired(a, b, "sign_test")
    up = int(np.sum(xb > xa))
    down = int(np.sum(xb < xa))
    return (up, down, binom_two_sided_p(up, up + down))
