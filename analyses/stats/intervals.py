"""Every interval pivotlens draws, in one place and on :mod:`scipy.stats`.

* :func:`bootstrap_mean_interval`: percentile bootstrap of a mean (:func:`scipy.stats.bootstrap`,
  ``method="percentile"``, resamples drawn by ``numpy.random.default_rng(seed)``);
* :func:`percentile_interval`: the percentile interval of bootstrap replicates computed elsewhere
  (statistics that resample more than one array: clusters, whole metric aggregations, corpus chrF);
* :func:`bootstrap_indices`: the resamples of such a bootstrap, drawn as :func:`scipy.stats.bootstrap`
  draws them, so every bootstrap here resamples alike;
* :func:`wilson_interval`: Wilson score interval of a binomial proportion
  (:meth:`scipy.stats.binomtest` ``.proportion_ci(method="wilson")``);
* :func:`t_interval`: Student-t interval of a mean (:data:`scipy.stats.t`), for few observations;
* :func:`normal_interval`: normal interval ``mean ± z·std/√n`` (:data:`scipy.stats.norm`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def _alpha(level: float) -> float:
    return (1 - level) / 2


def percentile_interval(replicates: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of ``replicates`` (linear
    interpolation, as :func:`scipy.stats.bootstrap`'s percentile method); NaN when empty."""
    values = np.asarray(replicates, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [_alpha(level), 1 - _alpha(level)])
    return float(low), float(high)


def bootstrap_indices(n: int, n_boot: int, rng: np.random.Generator | int) -> np.ndarray:
    """``(n_boot, n)`` indices: ``n_boot`` resamples with replacement of ``n`` items, drawn from
    ``rng`` (a generator, or the seed of ``numpy.random.default_rng``) as
    :func:`scipy.stats.bootstrap` draws its resamples (``rng.integers(0, n, (n_boot, n))``), so
    :func:`bootstrap_mean_interval` and the bootstraps that resample indices themselves draw alike."""
    return np.random.default_rng(rng).integers(0, n, size=(n_boot, n))


def bootstrap_mean_interval(
    values: Sequence[float] | np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (``n_boot`` resamples with
    replacement, seeded); one value is its own interval, none gives NaN."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        value = float(data[0]) if data.size else float("nan")
        return value, value
    result = stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
    )
    # the same quantiles as scipy's, taken with np.quantile as every other interval here (scipy's
    # np.percentile at 100·alpha rounds differently in the last digit)
    return percentile_interval(result.bootstrap_distribution, level)


def wilson_interval(
    successes: Sequence[int] | np.ndarray | pd.Series, n: Sequence[int] | np.ndarray | pd.Series, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``successes / n``, elementwise; NaN where ``n`` is 0."""
    k_all = np.asarray(successes, dtype=int).ravel()
    n_all = np.asarray(n, dtype=int).ravel()
    low, high = np.full(k_all.shape, np.nan), np.full(k_all.shape, np.nan)
    for i, (k, trials) in enumerate(zip(k_all, n_all)):
        if trials > 0:
            ci = stats.binomtest(int(k), int(trials)).proportion_ci(confidence_level=level, method="wilson")
            low[i], high[i] = ci.low, ci.high
    shape = np.shape(successes)
    return low.reshape(shape), high.reshape(shape)


def t_interval(values: Sequence[float] | np.ndarray | pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean, ``(mean, low, high)``; a single value is its own
    interval."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def normal_interval(mean, std, n, *, level: float = 0.95, z: float | None = None):
    """``mean ± z·std/√n`` with ``z`` the normal quantile of ``level`` (1.95996... for 95%) unless
    given; elementwise over arrays and Series."""
    z = float(stats.norm.ppf(1 - _alpha(level))) if z is None else z
    half = z * std / np.sqrt(n)
    return mean - half, mean + half
