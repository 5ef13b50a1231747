"""PROM's regulation rule per language (Lee et al., PROM Sec. 2.3; spec section 2).

At layer ``n`` (PROM: n = 24 of 32, i.e. three quarters of the depth), compare the mean
logit-lens probability of the English word ``P_{n,e}`` with that of the target word
``P_{n,t}``: ``lambda = 0`` if mean P_{n,e} < mean P_{n,t} (no English pivot, so the pivoted
objective is switched off), else ``lambda0`` (PROM's 0.1). A percentile bootstrap interval on
the difference of means flags decisions that the data cannot make (interval containing 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analyses.stats.intervals import bootstrap_mean_interval
from analyses.stats.latent import latent_column, layer_curves, pivot_summary


def prom_layer(n_layers: int, fraction: float = 0.75) -> int:
    """0-based index of PROM's layer n: the ``round(fraction·L)``-th block (1-based), rounding
    half up; 24 -> 23 for L = 32, 14 -> 13 for L = 18, 23 -> 22 for L = 30."""
    return max(0, int(fraction * n_layers + 0.5) - 1)


def lambda_table(
    table: pd.DataFrame,
    *,
    layer: int | None = None,
    n_layers: int | None = None,
    lambda0: float = 0.1,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per language: ``lang, layer, n, mean_p_en, mean_p_target, diff_ci_low, diff_ci_high,
    pivot, lambda, borderline``. ``layer`` defaults to :func:`prom_layer` of the depth."""
    latent = latent_column(table)
    depth = n_layers or int(table["layer"].max()) + 1
    at = prom_layer(depth) if layer is None else layer
    rows = []
    for lang, group in table[table["layer"] == at].groupby("lang"):
        diff = (group[latent] - group["p_target"]).to_numpy()
        low, high = bootstrap_mean_interval(diff, n_boot=n_boot, seed=seed)
        mean_en, mean_target = float(group[latent].mean()), float(group["p_target"].mean())
        pivot = not mean_en < mean_target
        rows.append(
            {
                "lang": lang,
                "layer": at,
                "n": len(group),
                "mean_p_en": mean_en,
                "mean_p_target": mean_target,
                "diff_ci_low": low,
                "diff_ci_high": high,
                "pivot": pivot,
                "lambda": lambda0 if pivot else 0.0,
                "borderline": bool(low <= 0 <= high),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class LensResults:
    lens: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    lambdas: pd.DataFrame


def analyse(lens: pd.DataFrame, *, n_layers: int, layer: int | None = None, lambda0: float = 0.1) -> LensResults:
    return LensResults(
        lens=lens,
        curves=layer_curves(lens),
        summary=pivot_summary(lens),
        lambdas=lambda_table(lens, layer=layer, n_layers=n_layers, lambda0=lambda0),
    )
