"""Figures of gradient interference (PROM Fig. 2: cosine per layer, 95% bands over batch pairs)
and of the pivot probability before and after fine-tuning (PROM Fig. 3). Each is a function of
a summary table from :mod:`analyses.pipelines.interference` or :func:`analyses.stats.latent.layer_curves`."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analyses.figures.style import add_curve, panel

PALETTE = qualitative.D3  # the interference figures keep their published colours


def group_label(row: pd.Series | dict) -> str:
    label = f"{row['lang_a']} vs {row['lang_b']}"
    return label if row["objective"] == "plain" else f"{label} ({row['objective']})"


def cosine_figure(summary: pd.DataFrame, *, title: str | None = None, pivot_layer: int | None = None) -> go.Figure:
    """Mean gradient cosine per block (``module = all``) for each (lang_a, lang_b, objective)
    (and ``model``, when the summary has that column), with 95% confidence bands over batch pairs."""
    data = summary[(summary["module"] == "all") & summary["layer"].notna()]
    fig = go.Figure()
    keys = (["model"] if "model" in data.columns else []) + ["lang_a", "lang_b", "objective"]
    for i, (key, group) in enumerate(data.groupby(keys, sort=False)):
        row = dict(zip(keys, key))
        label = f"{row['model']}: {group_label(row)}" if "model" in row else group_label(row)
        add_curve(fig, group, label, PALETTE[i % len(PALETTE)])
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    if pivot_layer is not None:
        fig.add_vline(x=pivot_layer, line_dash="dash", line_color="grey", annotation_text=f"n = {pivot_layer}")
    n = int(data["n"].max()) if len(data) else 0
    fig.update_layout(
        title=title or f"Gradient cosine between languages per layer (mean of {n} batch pairs, 95% CI)",
        xaxis_title="layer (0-based block)",
        yaxis_title="cosine(∇L_A, ∇L_B)",
        template="simple_white",
        width=900,
        height=520,
        legend={"title": "batch pair"},
    )
    return fig


def module_figure(
    summary: pd.DataFrame, lang_a: str, lang_b: str, objective: str = "plain", *, title: str | None = None
) -> go.Figure:
    """Heatmap of the mean cosine per block and module (q, k, v, o, gate, up, down, norms, all)."""
    data = summary[(summary["lang_a"] == lang_a) & (summary["lang_b"] == lang_b) & (summary["objective"] == objective)]
    data = data[data["layer"].notna()]
    grid = data.pivot_table(index="module", columns="layer", values="mean")
    order = [m for m in ("q", "k", "v", "o", "gate", "up", "down", "norms", "all") if m in grid.index]
    grid = grid.reindex(order + [m for m in grid.index if m not in order])
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=[int(c) for c in grid.columns],
            y=list(grid.index),
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": "mean cosine"},
        )
    )
    fig.update_layout(
        title=title
        or f"Gradient cosine per module, {group_label({'lang_a': lang_a, 'lang_b': lang_b, 'objective': objective})}",
        xaxis_title="layer (0-based block)",
        yaxis_title="module",
        template="simple_white",
        width=900,
        height=450,
    )
    return fig


def fig2_figure(summary: pd.DataFrame, *, title: str | None = None, pivot_layer: int | None = None) -> go.Figure:
    """PROM Fig. 2 layout: cosine per layer for the settings named in ``summary['setting']``
    (target only, target + English, pivoted), 95% bands; a second panel zooms on the last layers."""
    data = summary[(summary["module"] == "all") & summary["layer"].notna()]
    last = int(data["layer"].max())
    fig = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3], subplot_titles=("all layers", "last layers"))
    colors = {"target only": "#1f77b4", "pivoted": "#ff7f0e"}
    for setting, group in data.groupby("setting", sort=False):
        color = colors.get(str(setting), "#2ca02c")
        add_curve(fig, group, str(setting), color, row=1, col=1)
        add_curve(fig, group[group["layer"] >= last - 3], str(setting), color, row=1, col=2, show_legend=False)
    for col in (1, 2):
        fig.add_hline(y=0, line_dash="dot", line_color="grey", **panel(1, col))
    if pivot_layer is not None:
        fig.add_vline(
            x=pivot_layer, line_dash="dash", line_color="grey", **panel(1, 1), annotation_text=f"n = {pivot_layer}"
        )
    n = int(data["n"].max())
    fig.update_layout(
        title=title or f"PROM Fig. 2: gradient cosine per layer ({n} batch pairs, 95% CI)",
        template="simple_white",
        width=1000,
        height=500,
        legend={"title": "setting"},
    )
    fig.update_xaxes(title_text="layer (0-based block)")
    fig.update_yaxes(title_text="cosine(∇L_A, ∇L_B)", col=1)
    return fig


def pivot_probability_figure(curves: pd.DataFrame, *, lang: str, title: str | None = None) -> go.Figure:
    """PROM Fig. 3 layout: P(en) (solid) and P(target) (dashed) per layer, one color per model
    (``curves['model']``: before, after plain, after pivoted), 95% bands; from
    :func:`analyses.stats.latent.layer_curves` tables stacked with a ``model`` column."""
    data = curves[curves["lang"] == lang]
    latent = next(q for q in data["quantity"].unique() if q.startswith("p_") and q != "p_target")
    fig = go.Figure()
    for i, (model, group) in enumerate(data.groupby("model", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        add_curve(fig, group[group["quantity"] == latent], f"{model}: P({latent.removeprefix('p_')})", color)
        add_curve(fig, group[group["quantity"] == "p_target"], f"{model}: P({lang})", color, dash="dash")
    fig.update_layout(
        title=title or f"Pivoting behaviour before and after fine-tuning, target {lang} (95% CI)",
        xaxis_title="layer (0-based block)",
        yaxis_title="probability",
        template="simple_white",
        width=950,
        height=520,
    )
    fig.update_yaxes(rangemode="tozero")  # a small model's word probabilities stay far below 1
    return fig


def loss_figure(logs: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Training loss per step for each run (``logs['run']``), from fine-tuning logs."""
    fig = go.Figure()
    for i, (run, group) in enumerate(logs.dropna(subset=["loss"]).groupby("run", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=group["step"], y=group["loss"], name=f"{run}: loss", line={"color": color}))
        if "loss_target" in group and group["loss_target"].notna().any():
            fig.add_trace(
                go.Scatter(
                    x=group["step"], y=group["loss_target"], name=f"{run}: L_N,t", line={"color": color, "dash": "dash"}
                )
            )
    fig.update_layout(
        title=title or "Training loss",
        xaxis_title="step",
        yaxis_title="loss",
        template="simple_white",
        width=900,
        height=480,
    )
    return fig
