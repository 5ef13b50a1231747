"""Shared look of pivotlens figures: one palette and the 95% confidence band."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

PALETTE: list[str] = list(qualitative.Plotly)


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` -> ``rgba(r,g,b,alpha)`` (a translucent fill of a line's colour)."""
    color = hex_color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def panel(row: int, col: int) -> dict[str, Any]:
    """The ``row``/``col`` keywords that put a line of plotly's ``add_hline``/``add_vline`` in one
    subplot (those parameters are unannotated with default ``"all"``, so a type checker reads them as str)."""
    return {"row": row, "col": col}


def add_band(
    fig: go.Figure,
    x: Iterable,
    low: Iterable,
    high: Iterable,
    color: str,
    *,
    row: int | None = None,
    col: int | None = None,
    legendgroup: str | None = None,
) -> None:
    """A shaded confidence band between ``low`` and ``high`` (no legend entry, no hover)."""
    x, low, high = list(x), list(low), list(high)
    where = {"row": row, "col": col} if row is not None else {}
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=high + low[::-1],
            fill="toself",
            mode="lines",
            fillcolor=rgba(color, 0.18),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=legendgroup,
        ),
        **where,
    )


def add_curve(
    fig: go.Figure,
    data: pd.DataFrame,
    name: str,
    color: str,
    *,
    row: int | None = None,
    col: int | None = None,
    dash: str | None = None,
    show_legend: bool = True,
    y: str = "mean",
) -> None:
    """A per-layer mean (``layer``, ``y``) with its band (``ci_low``, ``ci_high``), one legend entry."""
    data = data.sort_values("layer")
    x = [int(v) for v in data["layer"]]
    where = {"row": row, "col": col} if row is not None else {}
    add_band(fig, x, data["ci_low"], data["ci_high"], color, row=row, col=col, legendgroup=name)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=data[y],
            name=name,
            mode="lines+markers",
            line={"color": color, "dash": dash},
            marker={"size": 5},
            legendgroup=name,
            showlegend=show_legend,
        ),
        **where,
    )
