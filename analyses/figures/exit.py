"""Figures of layer-wise exit accuracy and early exit (plotly), each a function of a table from
``analyses.stats.early_exit``: accuracy per layer (AdaInfer Fig. 1), features per layer (AdaInfer
Fig. 3) and the accuracy/FLOPs trade-off of the exit strategies (AdaInfer Tables 2, 3)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyses.figures.style import PALETTE, add_band, panel
from analyses.stats.early_exit import VARIANTS, summarise_exits
from probes.inputs.tasks import TASKS


def _facets(tasks: list[str], title: str, x_title: str, y_title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=tasks, shared_yaxes=True, horizontal_spacing=0.04)
    fig.update_layout(
        title=title,
        template="plotly_white",
        width=360 * len(tasks) + 160,
        height=430,
        legend={"title": None},
        margin={"t": 90},
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, col=1)
    return fig


def accuracy_by_layer_figure(layers: pd.DataFrame, metric: str = "accuracy") -> go.Figure:
    """Accuracy per layer, one panel per task, one line per language, 95% Wilson bands (AdaInfer Fig. 1).

    ``metric`` is ``accuracy`` (top-1 over the full vocabulary) or ``accuracy_options`` (among the
    answers; the dotted line is chance).
    """
    tasks = sorted(layers["task"].unique())
    model, shots = layers["model"].iloc[0], int(layers["shots"].iloc[0])
    what = "top-1 over the full vocabulary" if metric == "accuracy" else "top-1 among the answer tokens"
    fig = _facets(tasks, f"Logit-lens accuracy per layer ({what}): {model}, {shots}-shot", "layer", "accuracy")
    langs = sorted(layers["lang"].unique())
    for col, task in enumerate(tasks, start=1):
        for i, lang in enumerate(langs):
            rows = layers[(layers["task"] == task) & (layers["lang"] == lang)].sort_values("layer")
            if rows.empty:
                continue
            color = PALETTE[i % len(PALETTE)]
            add_band(fig, rows["layer"], rows[f"{metric}_low"], rows[f"{metric}_high"], color, row=1, col=col)
            fig.add_trace(
                go.Scatter(
                    x=rows["layer"],
                    y=rows[metric],
                    mode="lines+markers",
                    name=lang,
                    legendgroup=lang,
                    showlegend=col == 1,
                    line={"color": color},
                    marker={"size": 4},
                ),
                row=1,
                col=col,
            )
        if metric == "accuracy_options" and task in TASKS:
            fig.add_hline(y=1 / len(TASKS[task].answers), line={"dash": "dot", "color": "grey"}, **panel(1, col))
    fig.update_yaxes(range=[0, 1.02])
    return fig


def features_by_layer_figure(features: pd.DataFrame) -> go.Figure:
    """Mean gap and top probability per layer with 95% bands, one panel per task (AdaInfer Fig. 3)."""
    tasks = sorted(features["task"].unique())
    model = features["model"].iloc[0]
    fig = _facets(
        tasks, f"AdaInfer features per layer (mean over items and languages): {model}", "layer", "probability"
    )
    for col, task in enumerate(tasks, start=1):
        for i, feature in enumerate(sorted(features["feature"].unique())):
            rows = features[(features["task"] == task) & (features["feature"] == feature)].sort_values("layer")
            color = PALETTE[i % len(PALETTE)]
            add_band(fig, rows["layer"], rows["low"], rows["high"], color, row=1, col=col)
            fig.add_trace(
                go.Scatter(
                    x=rows["layer"],
                    y=rows["mean"],
                    mode="lines",
                    name=feature,
                    legendgroup=feature,
                    showlegend=col == 1,
                    line={"color": color},
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(range=[0, 1.02])
    return fig


def tradeoff_figure(static: pd.DataFrame, strategies: pd.DataFrame) -> go.Figure:
    """Accuracy against FLOPs (% of the forward pass), one panel per task: the static exit at each
    layer (line, 95% band) and each adaptive strategy (marker, 95% interval), pooled over languages."""
    tasks = sorted(static["task"].unique())
    model, variant = static["model"].iloc[0], static["variant"].iloc[0]
    fig = _facets(
        tasks,
        f"Early exit: accuracy vs FLOPs ({variant} variant, test items): {model}",
        "FLOPs (% of the forward pass)",
        "accuracy",
    )
    names = [s for s in strategies["strategy"].unique()]
    for col, task in enumerate(tasks, start=1):
        curve = static[static["task"] == task].sort_values("layer")
        add_band(fig, curve["flops_ratio"], curve["accuracy_low"], curve["accuracy_high"], "#7f7f7f", row=1, col=col)
        fig.add_trace(
            go.Scatter(
                x=curve["flops_ratio"],
                y=curve["accuracy"],
                mode="lines",
                name="static exit at layer l",
                legendgroup="static",
                showlegend=col == 1,
                line={"color": "#7f7f7f"},
                text=[f"layer {layer}" for layer in curve["layer"]],
            ),
            row=1,
            col=col,
        )
        for i, name in enumerate(names):
            row = strategies[(strategies["task"] == task) & (strategies["strategy"] == name)]
            if row.empty:
                continue
            r = row.iloc[0]
            fig.add_trace(
                go.Scatter(
                    x=[r["flops_ratio"]],
                    y=[r["accuracy"]],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker={"size": 10, "color": PALETTE[i % len(PALETTE)], "symbol": i % 12},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [r["accuracy_high"] - r["accuracy"]],
                        "arrayminus": [r["accuracy"] - r["accuracy_low"]],
                    },
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(range=[0, 1.02])
    return fig


def exit_figures(tables: dict[str, pd.DataFrame]) -> dict[str, go.Figure]:
    """The figures of an exit analysis from its tables (``layers``, ``features``, ``static``, ``exits``)."""
    layers, features, static, exits = tables["layers"], tables["features"], tables["static"], tables["exits"]
    figures = {
        "accuracy_by_layer": accuracy_by_layer_figure(layers, "accuracy"),
        "accuracy_options_by_layer": accuracy_by_layer_figure(layers, "accuracy_options"),
        "features_by_layer": features_by_layer_figure(features[features["feature"].isin(["gap", "top_prob"])]),
    }
    intra = exits[exits["setting"] == "intra-task"]
    for variant in VARIANTS:
        per_task = summarise_exits(intra[intra["variant"] == variant], ["strategy", "model", "task"])
        figures[f"tradeoff_{variant.replace('+', '_')}"] = tradeoff_figure(
            static[static["variant"] == variant], per_task
        )
    return figures
