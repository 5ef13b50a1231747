"""Statistics of logit-lens tables (Wendler et al. 2024): per-layer means with 95% confidence
bands (the reference plots' "gaussian": mean ± 1.96·std/√n), and where the latent language peaks and where
the target overtakes it."""

from __future__ import annotations

from typing import cast

import numpy as np
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
    for key, unsorted in means.groupby(list(by)):
        group = unsorted.sort_values("layer")
        peak = group.iloc[group[latent].argmax()]
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


EXAMPLE_COLUMNS = {
    "example": "typical (curves nearest the mean curves), latent_leads (largest lead of the latent word over "
    "the target at any layer) or target_earliest (the target leads the latent word at the earliest layer)",
    "item": "run key of the prompt in the lens table",
    "layer": "the layer that chose it (where the latent lead is largest or the target first leads; -1 for typical)",
    "value": "the distance to the mean curves (typical) or P(latent) - P(target) at that layer",
}


def example_items(table: pd.DataFrame) -> pd.DataFrame:
    """Three prompts of one language's lens table to look at one by one (:data:`EXAMPLE_COLUMNS`);
    ``target_earliest`` is missing when the target never leads."""
    latent = latent_column(table)
    wide = table.pivot_table(index="item", columns="layer", values=["p_target", latent]).sort_index()
    lead = cast(pd.DataFrame, wide[latent] - wide["p_target"])  # [item, layer]: a column level selects a frame
    distance = cast(pd.Series, np.sqrt(((wide - wide.mean()) ** 2).sum(axis=1)))  # a ufunc keeps the Series
    typical = cast(str, distance.idxmin())  # items are run keys
    peaks = lead.max(axis=1)
    latent_item = cast(str, peaks.idxmax())
    rows = [
        {"example": "typical", "item": typical, "layer": -1, "value": float(distance[typical])},
        {
            "example": "latent_leads",
            "item": latent_item,
            "layer": int(lead.idxmax(axis=1)[latent_item]),
            "value": float(peaks[latent_item]),
        },
    ]
    target_leads = lead < 0
    if target_leads.to_numpy().any():
        first = target_leads.idxmax(axis=1)[target_leads.any(axis=1)]  # first layer where the target leads
        earliest = pd.DataFrame({"layer": first, "margin": [lead.at[item, layer] for item, layer in first.items()]})
        first_row = earliest.sort_values(["layer", "margin"]).iloc[0]
        rows.append(
            {
                "example": "target_earliest",
                "item": first_row.name,
                "layer": int(first_row["layer"]),
                "value": float(first_row["margin"]),
            }
        )
    return pd.DataFrame(rows, columns=list(EXAMPLE_COLUMNS))
