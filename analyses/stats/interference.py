"""Interference statistics: per-layer means of the gradient cosine over batch pairs, with 95%
intervals (the interference probe's table, :mod:`probes.interference`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analyses.stats.intervals import t_interval


def summarise_cosines(
    table: pd.DataFrame, scope: str = "layer", by: Sequence[str] = ("lang_a", "lang_b", "objective")
) -> pd.DataFrame:
    """Per group, layer and module of ``scope``: ``mean``, ``ci_low``, ``ci_high`` (95%) of the
    cosine over batch pairs, and ``n`` pairs."""
    data = table[table["scope"] == scope]
    if data.empty:
        raise ValueError(f"no rows of scope {scope!r}; the table has {sorted(table['scope'].unique())}")
    keys = [*by, "layer", "module"]
    rows = []
    for key, group in data.groupby(keys, sort=True, dropna=False):
        mean, low, high = t_interval(group["cosine"])  # few batch pairs: t, not 1.96
        rows.append({**dict(zip(keys, key)), "mean": mean, "ci_low": low, "ci_high": high, "n": len(group)})
    out = pd.DataFrame(rows)
    out["layer"] = out["layer"].astype("Int64")
    return out


def last_layer_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The last block's mean cosine and CI per group (PROM Fig. 2 reads the last layer)."""
    layers = summary[summary["layer"].notna()]
    last = int(np.max(layers["layer"]))
    return layers[layers["layer"] == last].reset_index(drop=True)


def fig2_setting(table: pd.DataFrame) -> pd.Series:
    """Name of the Fig. 2 setting of each row: target only, target + English, pivoted."""
    same = table["lang_a"] == table["lang_b"]
    plain = table["objective"] == "plain"
    return pd.Series(
        [
            "target only" if s else ("target + " + a if p else "pivoted")
            for s, p, a in zip(same, plain, table["lang_a"])
        ],
        index=table.index,
    )
