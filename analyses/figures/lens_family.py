"""The per-layer KL of each lens to the model's final distribution (Belrose et al. 2023, Fig. 1)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

_COLORS = {"logit": "#1f77b4", "linear": "#ff7f0e", "linear-en": "#9467bd", "tuned": "#2ca02c"}


def kl_figure(table: pd.DataFrame, *, title: str) -> go.Figure:
    """KL (bits, log scale) per layer: per lens the mean over languages as a line, the range over
    languages as a band. ``table`` is a ``lens-eval`` table."""
    fig = go.Figure()
    for lens, group in table.groupby("lens", sort=False):
        stats = group.groupby("layer")["kl_bits"].agg(["mean", "min", "max"]).reset_index()
        color = _COLORS.get(str(lens), "#7f7f7f")
        fig.add_trace(
            go.Scatter(
                x=list(stats["layer"]) + list(stats["layer"][::-1]),
                y=list(stats["max"]) + list(stats["min"][::-1]),
                fill="toself",
                line={"width": 0},
                fillcolor=color,
                opacity=0.15,
                hoverinfo="skip",
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(x=stats["layer"], y=stats["mean"], mode="lines+markers", name=str(lens), line={"color": color})
        )
    fig.update_layout(
        title=title,
        xaxis_title="layer",
        yaxis_title="KL(final || lens), bits",
        yaxis_type="log",
        template="simple_white",
        width=900,
        height=480,
    )
    return fig
