"""PROM's lambda rule on constructed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyses.stats.latent import layer_curves, pivot_summary
from analyses.stats.prom_lambda import lambda_table, prom_layer


def _table(
    p_en: dict[str, list[float]], p_target: dict[str, list[float]], layer: int = 2, n_layers: int = 4
) -> pd.DataFrame:
    rows = []
    for lang, en_values in p_en.items():
        for i, (e, t) in enumerate(zip(en_values, p_target[lang])):
            for l in range(n_layers):
                on = l == layer
                rows.append(
                    {
                        "lang": lang,
                        "latent": "en",
                        "concept": f"c{i}",
                        "layer": l,
                        "p_en": e if on else 0.0,
                        "p_target": t if on else 1.0 - l / 10,
                        "entropy_bits": 1.0,
                    }
                )
    return pd.DataFrame(rows)


def test_prom_layer_is_three_quarters_of_depth():
    assert prom_layer(32) == 23  # PROM's n = 24 of 32, 1-based
    assert prom_layer(18) == 13 and prom_layer(30) == 22


def test_rule_and_borderline_flag():
    table = _table(
        {"xx": [0.6, 0.5, 0.7, 0.65] * 5, "yy": [0.1, 0.2, 0.1, 0.15] * 5, "zz": [0.3, 0.1, 0.5, 0.2] * 5},
        {"xx": [0.1, 0.2, 0.1, 0.1] * 5, "yy": [0.5, 0.6, 0.4, 0.5] * 5, "zz": [0.1, 0.5, 0.2, 0.3] * 5},
    )
    result = lambda_table(table, layer=2, lambda0=0.1).set_index("lang")
    assert result.loc["xx", "pivot"] and result.loc["xx", "lambda"] == 0.1 and not result.loc["xx", "borderline"]
    assert not result.loc["yy", "pivot"] and result.loc["yy", "lambda"] == 0.0
    assert result.loc["zz", "borderline"]  # mean difference 0: the data cannot decide
    assert result.loc["xx", "mean_p_en"] == np.mean([0.6, 0.5, 0.7, 0.65])
    assert (
        result.loc["xx", "diff_ci_low"]
        < result.loc["xx", "mean_p_en"] - result.loc["xx", "mean_p_target"]
        < result.loc["xx", "diff_ci_high"]
    )


def test_default_layer_follows_depth():
    table = _table({"xx": [0.5] * 4}, {"xx": [0.1] * 4}, layer=2, n_layers=4)
    assert lambda_table(table)["layer"].iloc[0] == prom_layer(4) == 2


def test_curves_and_summary():
    table = _table({"xx": [0.6, 0.4]}, {"xx": [0.1, 0.1]}, layer=1, n_layers=4)
    curves = layer_curves(table)
    row = curves[(curves["layer"] == 1) & (curves["quantity"] == "p_en")].iloc[0]
    assert row["mean"] == 0.5 and row["n"] == 2 and row["ci_low"] < 0.5 < row["ci_high"]
    summary = pivot_summary(table).iloc[0]
    assert summary["latent_peak_layer"] == 1 and summary["overtake_layer"] == 2
