"""Heatmaps of weight-change maps in the layout of Bandarkar et al.'s Figure 2 (seed 003): layer on
the vertical axis (0 at the bottom), the seven matrices across, one panel per expert, plus the
difference of two experts' maps. A function of tables from :func:`analyses.stats.weight_change.weight_change`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyses.stats.weight_change import MODULES, metric_label


def _grid(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"the table has no rows for metric {metric!r}; it has {sorted(table['metric'].unique())}")
    grid = rows.pivot_table(index="layer", columns="module", values="value", aggfunc="first")
    return grid.reindex(columns=[m for m in MODULES if m in grid.columns]).sort_index()


def weight_change_figure(
    maps: Mapping[str, pd.DataFrame],
    metric: str = "rel_frobenius",
    *,
    difference: tuple[str, str] | None = None,
    top_percent: float = 1.0,
    title: str | None = None,
    annotate: bool = True,
) -> go.Figure:
    """One heatmap panel per expert (``maps``: label -> weight-change table), on a shared colour
    scale from 0; with ``difference=(a, b)`` a last panel shows ``a − b`` on a diverging scale
    (red: ``a`` changed more, blue: ``b`` changed more)."""
    grids = {label: _grid(table, metric) for label, table in maps.items()}
    if difference is not None:
        missing = [label for label in difference if label not in grids]
        if missing:
            raise KeyError(f"difference names {missing}, which are not among the maps {list(grids)}")
    panels = list(grids) + ([f"{difference[0]} − {difference[1]}"] if difference else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, shared_yaxes=True, horizontal_spacing=0.06)
    zmax = max(float(np.nanmax(g.to_numpy())) for g in grids.values()) or 1.0
    text = "%{z:.2f}" if annotate else None
    colorbar_x = 1.0 if difference is None else (len(panels) - 1) / len(panels) - 0.04
    for col, (label, grid) in enumerate(grids.items(), start=1):
        fig.add_trace(
            go.Heatmap(
                z=grid.to_numpy(),
                x=list(grid.columns),
                y=[int(v) for v in grid.index],
                zmin=0,
                zmax=zmax,
                colorscale="Viridis",
                texttemplate=text,
                textfont={"size": 8},
                name=label,
                showscale=col == 1,
                colorbar={"title": metric, "x": colorbar_x, "len": 0.9},
                hovertemplate="layer %{y}, %{x}: %{z:.4f}<extra>" + label + "</extra>",
            ),
            row=1,
            col=col,
        )
    if difference is not None:
        first, second = grids[difference[0]], grids[difference[1]]
        diff = first.sub(second.reindex_like(first))
        bound = float(np.nanmax(np.abs(diff.to_numpy()))) or 1.0
        fig.add_trace(
            go.Heatmap(
                z=diff.to_numpy(),
                x=list(diff.columns),
                y=[int(v) for v in diff.index],
                zmin=-bound,
                zmax=bound,
                colorscale="RdBu_r",
                zmid=0,
                texttemplate=text,
                textfont={"size": 8},
                name="difference",
                colorbar={"title": "difference", "x": 1.0, "len": 0.9},
                hovertemplate="layer %{y}, %{x}: %{z:.4f}<extra>difference</extra>",
            ),
            row=1,
            col=len(panels),
        )
    n_layers = max(len(g) for g in grids.values())
    fig.update_yaxes(title_text="layer (0-based block)", row=1, col=1, dtick=1 if n_layers <= 40 else None)
    fig.update_xaxes(title_text="matrix")
    fig.update_layout(
        title=title or f"Weight change during fine-tuning: {metric} = {metric_label(metric, top_percent)}",
        template="simple_white",
        width=max(520, 330 * len(panels)),
        height=max(420, 24 * n_layers + 160),
    )
    return fig


def profile_figure(profiles: Mapping[str, pd.DataFrame], *, metric: str, title: str | None = None) -> go.Figure:
    """Per-layer change (size-weighted over the seven matrices, from
    :func:`analyses.stats.weight_change.change_profile`), one line per expert; layer on the vertical axis."""
    fig = go.Figure()
    for label, profile in profiles.items():
        profile = profile.sort_values("layer")
        fig.add_trace(go.Scatter(x=profile["value"], y=profile["layer"], mode="lines+markers", name=label))
    fig.update_layout(
        title=title or f"Weight change per layer ({metric}, size-weighted over q..down)",
        xaxis_title=metric,
        yaxis_title="layer (0-based block)",
        template="simple_white",
        width=520,
        height=520,
    )
    return fig
