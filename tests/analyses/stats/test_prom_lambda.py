"""PROM's lambda rule on constructed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyses.stats.latent import layer_curves, pivot_summary
from analyses.stats.prom_lambda import (
    EMPTY_FLOOR,
    LAMBDA_COLUMNS,
    lambda_table,
    nearest_nonempty_layer,
    prom_layer,
    verdict,
)


def _table(
    p_en: dict[str, list[float]], p_target: dict[str, list[float]], layer: int = 2, n_layers: int = 4
) -> pd.DataFrame:
    rows = []
    for lang, en_values in p_en.items():
        for i, (e, t) in enumerate(zip(en_values, p_target[lang])):
            for at in range(n_layers):
                on = at == layer
                rows.append(
                    {
                        "lang": lang,
                        "latent": "en",
                        "concept": f"c{i}",
                        "layer": at,
                        "p_en": e if on else 0.0,
                        "p_target": t if on else 1.0 - at / 10,
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
    assert result.loc["xx", "mean_p_latent"] == np.mean([0.6, 0.5, 0.7, 0.65])
    assert (
        result.loc["xx", "diff_ci_low"]
        < result.loc["xx", "mean_p_latent"] - result.loc["xx", "mean_p_target"]
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


REQUIRED = (
    "lang, task, shots, layer, n, n_dropped_copy, n_dropped_degenerate, mean_p_latent, mean_p_target, "
    "diff_ci_low, diff_ci_high, pivot, lambda, borderline, decided"
).split(", ")


def test_columns_name_the_protocol_and_the_drops():
    table = _table({"xx": [0.6, 0.5] * 4}, {"xx": [0.1, 0.2] * 4}).assign(
        task="cloze",
        shots=5,
        src_lang="xx",
        n_dropped_copy=3,
        n_dropped_degenerate=1,
    )
    table["word_prob"] = np.where(table["concept"].isin(["c0", "c1", "c2", "c3"]), "chain", "prefix")
    result = lambda_table(table, layer=2)
    assert list(result.columns[: len(REQUIRED)]) == REQUIRED and list(result.columns) == list(LAMBDA_COLUMNS)
    row = result.iloc[0]
    assert (row["task"], row["shots"], row["src_lang"], row["n_dropped_copy"], row["n_dropped_degenerate"]) == (
        "cloze",
        5,
        "xx",
        3,
        1,
    )
    assert row["share_chain"] == 0.5 and row["decided"] and row["lambda"] == 0.1
    assert verdict(row) == "lambda = 0.1"


def test_empty_lens_abstains_and_names_the_nearest_layer_that_would_decide():
    # at layer 2 both means are ~1e-6; the target reaches the floor at layers 0, 1 and 3 (p_target = 1 - l/10)
    table = _table({"xx": [2e-6, 1e-6] * 5, "yy": [0.3, 0.2] * 5}, {"xx": [1e-7, 3e-7] * 5, "yy": [0.1, 0.1] * 5})
    result = lambda_table(table, layer=2).set_index("lang")
    empty = result.loc["xx"]
    assert np.isnan(empty["lambda"]) and empty["pivot"] is None and not empty["decided"]
    assert empty["nonempty_layer"] == 3  # 1 and 3 are equally near: the later one
    assert verdict(empty) == "undecided: the lens is empty at layer 2 (nearest non-empty layer: 3)"
    assert result.loc["yy", "decided"] and result.loc["yy", "lambda"] == 0.1
    # the same table with a floor below the means decides, with the point estimate of the rule
    assert lambda_table(table, layer=2, floor=1e-7).set_index("lang").loc["xx", "lambda"] == 0.1


def test_borderline_stays_borderline_and_is_not_decided():
    table = _table({"zz": [0.3, 0.1, 0.5, 0.2] * 5}, {"zz": [0.1, 0.5, 0.2, 0.3] * 5})
    row = lambda_table(table, layer=2).iloc[0]
    assert row["borderline"] and not row["decided"] and row["lambda"] in (0.0, 0.1)
    assert verdict(row).endswith("(borderline)")


def test_floor_must_be_positive_and_the_default_is_small():
    table = _table({"xx": [0.5] * 4}, {"xx": [0.1] * 4})
    with pytest.raises(ValueError, match="must be positive"):
        lambda_table(table, floor=0)
    assert 0 < EMPTY_FLOOR <= 1e-2


def test_nearest_nonempty_layer_without_any():
    means = pd.DataFrame({"p_en": [0.0, 0.0], "p_target": [0.0, 0.0]}, index=[0, 1])
    assert nearest_nonempty_layer(means, 1, 1e-3) == -1


def test_a_french_latent_is_named_as_such():
    """With ``--latent fr`` the lens table has ``p_fr``; the lambda table's column and figure say latent, not en."""
    from analyses.figures.latent import lambda_figure

    table = _table({"xx": [0.6, 0.5, 0.7, 0.65] * 5}, {"xx": [0.1, 0.2, 0.1, 0.1] * 5})
    table = table.rename(columns={"p_en": "p_fr"}).assign(latent="fr")
    row = lambda_table(table, layer=2).iloc[0]
    assert row["latent"] == "fr" and row["mean_p_latent"] == np.mean([0.6, 0.5, 0.7, 0.65])
    assert not any("en" in c.split("_") for c in lambda_table(table, layer=2).columns)
    assert lambda_figure(lambda_table(table, layer=2)).layout.yaxis.title.text == "mean P(fr) - mean P(target)"
