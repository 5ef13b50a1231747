"""The interval module against direct computations: the formulas by hand, and the resampling the
hand-written bootstraps drew before (so committed tables reproduce)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analyses.stats.intervals import (
    bootstrap_indices,
    bootstrap_mean_interval,
    normal_interval,
    percentile_interval,
    t_interval,
    wilson_interval,
)


def test_wilson_matches_the_score_formula():
    k, n = np.array([8, 0, 30]), np.array([10, 5, 30])
    low, high = wilson_interval(k, n)
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert low == pytest.approx(centre - half, abs=1e-12) and high == pytest.approx(centre + half, abs=1e-12)
    empty_low, empty_high = wilson_interval(pd.Series([0]), pd.Series([0]))
    assert np.isnan(empty_low[0]) and np.isnan(empty_high[0])


def test_t_interval_by_hand():
    values = pd.Series([0.1, 0.3, 0.2, 0.5])
    mean, low, high = t_interval(values)
    half = stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2
    assert mean == pytest.approx(0.275) and low == pytest.approx(0.275 - half) and high == pytest.approx(0.275 + half)
    assert t_interval(pd.Series([0.4])) == (0.4, 0.4, 0.4)


@pytest.mark.parametrize("n", [2, 7, 50])
def test_bootstrap_draws_the_same_resamples_as_numpy_choice(n):
    x = np.random.default_rng(n).normal(size=n)
    means = np.random.default_rng(3).choice(x, size=(2000, n), replace=True).mean(1)
    expected = np.quantile(means, [0.025, 0.975])
    assert bootstrap_mean_interval(x, n_boot=2000, seed=3) == pytest.approx(tuple(expected), rel=1e-12, abs=1e-15)
    assert bootstrap_mean_interval([0.5]) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_mean_interval([]))


@pytest.mark.parametrize("n", [2, 17])
def test_index_bootstraps_draw_the_resamples_scipy_draws(n):
    """A bootstrap over indices (chrF, win/loss, the confusion metrics) resamples as
    :func:`scipy.stats.bootstrap` does: the mean over its resamples gives the same interval."""
    x = np.random.default_rng(n).normal(size=n)
    means = x[bootstrap_indices(n, 2000, 3)].mean(1)
    assert percentile_interval(means) == pytest.approx(bootstrap_mean_interval(x, n_boot=2000, seed=3), rel=1e-12)
    one = np.random.default_rng(5)  # a generator is drawn on, as a shared one across groups is
    first, second = bootstrap_indices(n, 4, one), bootstrap_indices(n, 4, one)
    assert np.array_equal(np.vstack([first, second]), np.random.default_rng(5).integers(0, n, size=(8, n)))
    assert bootstrap_indices(n, 0, 0).shape == (0, n)


def test_percentile_interval_is_the_order_statistic_at_exact_ranks():
    replicates = np.arange(1001, dtype=float)  # quantiles 0.025 and 0.975 fall on 25 and 975
    assert percentile_interval(replicates) == pytest.approx((25.0, 975.0), abs=1e-9)
    assert percentile_interval(replicates, level=0.9) == pytest.approx((50.0, 950.0))
    assert all(math.isnan(v) for v in percentile_interval([]))


def test_normal_interval_default_and_fixed_z():
    low, high = normal_interval(np.array([1.0]), np.array([1.0]), np.array([4]))
    assert low[0] == pytest.approx(1 - 0.5 * 1.959963984540054) and high[0] == pytest.approx(
        1 + 0.5 * 1.959963984540054
    )
    assert normal_interval(0.0, 1.0, 1, z=1.96) == (-1.96, 1.96)
