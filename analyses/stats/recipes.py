"""Statistics of a recipe comparison inside each model: lens curves, pivots, lambdas and
interference per model, recipe and language."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analyses.stats.interference import summarize
from analyses.stats.latent import layer_curves, pivot_summary
from analyses.stats.prom_lambda import lambda_table


# ---- inside the model -----------------------------------------------------------------------
@dataclass
class ModelInternals:
    curves: pd.DataFrame  # lens curves with 95% bands, per model and language
    pivots: pd.DataFrame  # where P(en) peaks and P(target) overtakes, per model and language
    lambdas: pd.DataFrame  # PROM's rule at layer n, per model and language
    interference: pd.DataFrame  # cosine(target, en) per layer, 95% bands over batch pairs


def inside_tables(
    lens: pd.DataFrame, inter: pd.DataFrame, *, n_layers: int, n_boot: int = 1000, seed: int = 0
) -> ModelInternals:
    """Lens curves, pivots, lambdas (at layer n of ``n_layers``) and interference summaries per
    model and recipe, from the stacked lens and interference tables of every model."""
    by = ("model", "recipe", "lang")
    lambdas = [
        lambda_table(g, n_layers=n_layers, n_boot=n_boot, seed=seed).assign(model=str(m), recipe=str(r))
        for (m, r), g in lens.groupby(["model", "recipe"], sort=False)
    ]
    return ModelInternals(
        curves=layer_curves(lens, by=by),
        pivots=pivot_summary(lens, by=by),
        lambdas=pd.concat(lambdas, ignore_index=True),
        interference=summarize(inter, scope="layer", by=("model", "recipe", "lang_a", "lang_b", "objective")),
    )
