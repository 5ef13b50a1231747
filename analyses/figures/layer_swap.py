"""Figures of the layer-swapping replay (Bandarkar et al., ICLR 2025): the zones of a swap, the
Table 1 accuracies with 95% bootstrap intervals, and the accuracy over the grid of swaps. Each
is a function of a table from :mod:`analyses.pipelines.layer_swap` or of swap configurations."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analyses.interventions.layer_swap import SwapConfig, zones

ZONE_VALUE = {"lang_bottom": 0.0, "transition_bottom": 0.5, "task": 1.0, "transition_top": 0.5, "lang_top": 0.0}
ZONE_TEXT = {"lang_bottom": "L", "transition_bottom": "t", "task": "T", "transition_top": "t", "lang_top": "L"}


def zones_figure(configs: Mapping[str, SwapConfig], n_layers: int, *, title: str | None = None) -> go.Figure:
    """One column per swap, layer on the vertical axis: language expert (L), transition (t), task
    expert (T); the colour is the task expert's share."""
    columns, shares, texts = [], [], []
    for label, config in configs.items():
        share, text = [0.0] * n_layers, [""] * n_layers
        for zone in zones(n_layers, config):
            w_task, w_lang = config.layer_weights(zone.name)
            for layer in range(zone.start, zone.end):
                share[layer], text[layer] = w_task / (w_task + w_lang), ZONE_TEXT[zone.name]
        columns.append(label)
        shares.append(share)
        texts.append(text)
    fig = go.Figure(
        go.Heatmap(
            z=list(map(list, zip(*shares))),
            x=columns,
            y=list(range(n_layers)),
            text=list(map(list, zip(*texts))),
            texttemplate="%{text}",
            colorscale=[[0, "#d62728"], [0.5, "#f2d8a7"], [1, "#1f77b4"]],
            zmin=0,
            zmax=1,
            colorbar={"title": "task share"},
            hovertemplate="%{x}, layer %{y}: task share %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or "Where each layer comes from (L: language expert, t: transition, T: task expert)",
        xaxis_title="swap",
        yaxis_title="layer (0-based block)",
        template="simple_white",
        width=max(420, 110 * len(columns) + 200),
        height=max(420, 22 * n_layers + 160),
    )
    return fig


def table1_figure(table1: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Accuracy per language and setting (Table 1 of the paper) with 95% bootstrap intervals."""
    fig = go.Figure()
    settings = list(dict.fromkeys(table1["setting"]))
    for i, setting in enumerate(settings):
        rows = table1[table1["setting"] == setting]
        fig.add_trace(
            go.Bar(
                x=rows["lang"],
                y=100 * rows["accuracy"],
                name=setting,
                marker_color=qualitative.D3[i % 10],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": 100 * (rows["ci_high"] - rows["accuracy"]),
                    "arrayminus": 100 * (rows["accuracy"] - rows["ci_low"]),
                },
                customdata=rows[["config", "n"]].to_numpy(),
                hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]}; n=%{customdata[1]})<extra>" + setting + "</extra>",
            )
        )
    n = int(table1["n"].max()) if len(table1) else 0
    fig.update_layout(
        barmode="group",
        template="simple_white",
        width=900,
        height=480,
        legend={"title": "setting"},
        title=title or f"Arithmetic accuracy in the target language (greedy, {n} problems, 95% bootstrap CI)",
        xaxis_title="target language",
        yaxis_title="accuracy (%)",
    )
    return fig


def grid_figure(grid: pd.DataFrame, *, suggestions: pd.DataFrame | None = None, title: str | None = None) -> go.Figure:
    """Per language, accuracy of every swap of the grid by bottom (rows) and top (columns), one
    panel per language (transitions as in the grid); the suggested swap is outlined."""
    parsed = grid.assign(
        **{k: grid["config"].str.extract(rf"{k}=(\d+)")[0].astype(int) for k in ("b", "u", "tb", "tu")}
    )
    langs = list(dict.fromkeys(parsed["lang"]))
    fig = make_subplots(rows=1, cols=len(langs), subplot_titles=langs, shared_yaxes=True)
    for col, lang in enumerate(langs, start=1):
        rows = parsed[parsed["lang"] == lang]
        table = rows.pivot_table(index="b", columns="u", values="accuracy", aggfunc="max")
        fig.add_trace(
            go.Heatmap(
                z=100 * table.to_numpy(),
                x=[f"u={u}" for u in table.columns],
                y=[f"b={b}" for b in table.index],
                colorscale="Viridis",
                zmin=100 * parsed["accuracy"].min(),
                zmax=100 * parsed["accuracy"].max(),
                texttemplate="%{z:.0f}",
                showscale=col == 1,
                colorbar={"title": "accuracy (%)"},
                hovertemplate="%{y} %{x}: %{z:.1f}%<extra>" + lang + "</extra>",
            ),
            row=1,
            col=col,
        )
        if suggestions is not None:
            pick = suggestions[suggestions["lang"] == lang]
            if len(pick):
                b, u = int(pick["bottom"].iloc[0]), int(pick["top"].iloc[0])
                accuracy = pick["suggestion_accuracy"].iloc[0] if "suggestion_accuracy" in pick else float("nan")
                fig.add_trace(
                    go.Scatter(
                        x=[f"u={u}"],
                        y=[f"b={b}"],
                        mode="markers+text",
                        name="suggested swap",
                        text=[f"{100 * accuracy:.0f}" if pd.notna(accuracy) else ""],
                        textfont={"color": "red"},
                        marker={"symbol": "square-open", "size": 34, "color": "red", "line": {"width": 3}},
                        showlegend=col == 1,
                    ),
                    row=1,
                    col=col,
                )
    rows_b = sorted(
        {int(b) for b in parsed["b"]}
        | set(suggestions["bottom"].astype(int) if suggestions is not None and len(suggestions) else [])
    )
    fig.update_yaxes(categoryorder="array", categoryarray=[f"b={b}" for b in rows_b])
    fig.update_layout(
        title=title or "Accuracy (%) of each swap (b bottom and u top layers from the language expert)",
        template="simple_white",
        width=max(480, 320 * len(langs)),
        height=460,
        legend={"orientation": "h", "y": -0.15, "x": 0},
    )
    return fig
