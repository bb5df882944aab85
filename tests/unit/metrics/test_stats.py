"""Statistics against hand-computed values (numpy only, explicit generators)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics import stats


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # p = 0.7, z = 1.96: centre = (0.7 + 0.19208) / 1.38416, half = 1.96 * sqrt(0.021 + 0.009604) / 1.38416
        pytest.param(7, 10, 0.396774, 0.892211, id="7-of-10"),
        pytest.param(0, 10, 0.0, 0.277540, id="zero-successes"),  # (z^2/n) / (1 + z^2/n)
        pytest.param(10, 10, 0.722460, 1.0, id="all-successes"),
        pytest.param(50, 100, 0.403830, 0.596170, id="half"),
        pytest.param(1, 1, 0.206543, 1.0, id="single-trial"),
    ],
)
def test_wilson_ci_hand_values(k, n, low, high):
    lo, hi = stats.wilson_ci(k, n)
    assert lo == pytest.approx(low, abs=1e-6)
    assert hi == pytest.approx(high, abs=1e-6)


def test_wilson_ci_empty_is_nan():
    lo, hi = stats.wilson_ci(0, 0)
    assert math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (0, -1)], ids=["negative-k", "k-above-n", "negative-n"])
def test_wilson_ci_rejects_bad_counts(k, n):
    with pytest.raises(ValueError, match="0 <= k <= n"):
        stats.wilson_ci(k, n)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 1, 12.706205), (0.975, 2, 4.302653), (0.975, 10, 2.228139), (0.975, 100, 1.983972), (0.95, 5, 2.015048)],
    ids=["df1", "df2", "df10", "df100", "p95-df5"],
)
def test_t_quantile_matches_tables(p, df, expected):
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("n", "mean", "std", "expected"),
    [
        pytest.param(11, 5.0, 1.0, (5.0 - 2.228139 / math.sqrt(11), 5.0 + 2.228139 / math.sqrt(11)), id="n11"),
        pytest.param(1, 3.0, 0.0, (3.0, 3.0), id="single-value"),
        pytest.param(4, 2.0, 0.0, (2.0, 2.0), id="no-spread"),
    ],
)
def test_t_mean_ci(n, mean, std, expected):
    lo, hi = stats.t_mean_ci(n, mean, std)
    assert (lo, hi) == pytest.approx(expected, abs=1e-5)


def test_t_mean_ci_empty_is_nan():
    assert all(math.isnan(x) for x in stats.t_mean_ci(0, 0.0, 0.0))


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        pytest.param(10, 27, 0.247789, id="measurements-md-10-vs-17"),  # 2 * sum_{i<=10} C(27,i) / 2^27
        pytest.param(0, 5, 0.0625, id="0-of-5"),  # 2 / 32
        pytest.param(1, 5, 0.375, id="1-of-5"),  # 2 * 6 / 32
        pytest.param(3, 6, 1.0, id="balanced"),
        pytest.param(0, 0, 1.0, id="no-trials"),
        pytest.param(900, 2001, 7.656628e-06, id="large-n-log-space"),
    ],
)
def test_binom_two_sided_p(k, n, expected):
    assert stats.binom_two_sided_p(k, n) == pytest.approx(expected, rel=1e-5)


def test_mcnemar_counts_discordant_pairs():
    a = [1, 1, 0, 0, 1, 0, 1, 0]
    b = [1, 0, 1, 1, 1, 1, 1, 0]
    b01, b10, p = stats.mcnemar(a, b)
    assert (b01, b10) == (3, 1)
    assert p == pytest.approx(2 * (1 + 4) / 16)  # exact binomial, min count 1 of 4


def test_mcnemar_no_discordant_pairs():
    assert stats.mcnemar([True, False], [True, False]) == (0, 0, 1.0)


def test_mcnemar_length_mismatch():
    with pytest.raises(ValueError, match="differ in length"):
        stats.mcnemar([True], [True, False])


def test_sign_test_drops_ties():
    up, down, p = stats.sign_test([1, 2, 3, 4, 5], [2, 2, 4, 3, 6])
    assert (up, down) == (3, 1)
    assert p == pytest.approx(0.625)  # 2 * (1 + 4) / 16


def test_bootstrap_mean_ci_is_seeded_and_brackets_mean():
    x = np.arange(20, dtype=float)
    first = stats.bootstrap_mean_ci(x, iters=500, seed=3)
    assert first == stats.bootstrap_mean_ci(x, iters=500, seed=3)
    assert first != stats.bootstrap_mean_ci(x, iters=500, seed=4)
    assert first[0] < x.mean() < first[1]
    # The percentile interval is close to the normal one: 9.5 +- 1.96 * sd / sqrt(n).
    half = 1.96 * x.std() / math.sqrt(len(x))
    assert first[0] == pytest.approx(9.5 - half, abs=0.6)
    assert first[1] == pytest.approx(9.5 + half, abs=0.6)


def test_bootstrap_does_not_touch_global_rng():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    stats.bootstrap_mean_ci([1.0, 2.0, 3.0], iters=50, seed=0)
    stats.paired_bootstrap_delta([0, 1], [1, 1], iters=50, seed=0)
    assert np.random.random() == before


@pytest.mark.parametrize(
    "fn", [stats.bootstrap_mean_ci, lambda v: stats.paired_bootstrap_delta(v, v)], ids=["mean", "paired"]
)
def test_bootstrap_empty_is_nan(fn):
    assert all(math.isnan(x) for x in fn([]))


def test_bootstrap_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_mean_ci([1.0, float("nan")])


def test_paired_bootstrap_delta_sign_and_degenerate_interval():
    delta, lo, hi = stats.paired_bootstrap_delta([0, 0, 0, 0], [1, 1, 1, 1], iters=200, seed=1)
    assert (delta, lo, hi) == (1.0, 1.0, 1.0)
    delta, lo, hi = stats.paired_bootstrap_delta([1, 1, 0, 0, 1, 0], [1, 0, 1, 1, 1, 1], iters=2000, seed=0)
    assert delta == pytest.approx(2 / 6)
    assert lo < delta < hi


def test_paired_bootstrap_chunks_large_inputs():
    rng = np.random.default_rng(0)
    a = rng.random(50_000)
    delta, lo, hi = stats.paired_bootstrap_delta(a, a + 0.1, iters=200, seed=0)
    assert delta == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
