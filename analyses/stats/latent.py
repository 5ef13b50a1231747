"""Statistics of logit-lens tables (Wendler et al. 2024): per-layer means with 95% confidence
bands (spec 1.7, "gaussian": mean ± 1.96·std/√n), and where the latent language peaks and where
the target overtakes it."""

from __future__ import annotations

import pandas as pd

from analyses.stats.intervals import normal_interval


def latent_column(table: pd.DataFrame) -> str:
    """The ``p_<latent>`` column of a lens table (``p_en`` by default)."""
    latents = table["latent"].unique()
    if len(latents) != 1:
        raise ValueError(f"the table mixes latent languages {list(latents)}; select one first")
    return f"p_{latents[0]}"


def layer_curves(table: pd.DataFrame, by: tuple[str, ...] = ("lang",)) -> pd.DataFrame:
    """Long table: ``*by, layer, quantity, mean, ci_low, ci_high, n`` for ``p_target``,
    ``p_<latent>`` and ``entropy_bits``."""
    latent = latent_column(table)
    long = table.melt(id_vars=[*by, "layer"], value_vars=["p_target", latent, "entropy_bits"], var_name="quantity")
    stats = long.groupby([*by, "layer", "quantity"])["value"].agg(["mean", "std", "count"]).reset_index()
    # Wendler et al.'s band: mean ± 1.96 standard errors (their 1.96, not the exact 1.95996...)
    stats["ci_low"], stats["ci_high"] = normal_interval(stats["mean"], stats["std"].fillna(0), stats["count"], z=1.96)
    return stats.rename(columns={"count": "n"}).drop(columns="std")


def pivot_summary(table: pd.DataFrame, by: tuple[str, ...] = ("lang",)) -> pd.DataFrame:
    """Per group: the layer where the mean latent probability peaks, its value, and the first
    layer after the peak where the mean target probability exceeds it (``overtake_layer``; -1
    if it never does)."""
    latent = latent_column(table)
    means = table.groupby([*by, "layer"])[["p_target", latent]].mean().reset_index()
    rows = []
    for key, group in means.groupby(list(by)):
        group = group.sort_values("layer")
        peak = group.loc[group[latent].idxmax()]
        after = group[(group["layer"] >= peak["layer"]) & (group["p_target"] > group[latent])]
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,))),
                "latent_peak_layer": int(peak["layer"]),
                "latent_peak": float(peak[latent]),
                "overtake_layer": int(after["layer"].iloc[0]) if len(after) else -1,
                "final_p_target": float(group["p_target"].iloc[-1]),
                "final_latent": float(group[latent].iloc[-1]),
            }
        )
    return pd.DataFrame(rows)
