"""Figures of the instruction-data recipe comparison (PLUG, Zhang et al. 2023; docs/methods/plug-recipes.md): answer
language and chrF per model with 95% intervals, the Table 1 win/loss bars, and, side by side
with the base model, the gradient cosine per layer and PROM's lambda decision. Each is a
function of a table from :mod:`analyses.pipelines.recipes`."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyses.figures.interference import PALETTE, loss_figure, pivot_probability_figure
from analyses.figures.style import add_curve
from analyses.stats.recipes import ModelInternals


def _variant_label(model: str, recipe: str, variant: str) -> str:
    if recipe != "plug":
        return model
    return f"{model} ({'with pivot part' if variant == 'full' else 'pivot part stripped'})"


def scores_figure(comparison: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """LPR (left) and corpus chrF (right) per target language, one bar per model and variant
    (PLUG with and without its pivot part), 95% bootstrap intervals."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("line-level pass rate (LPR)", "chrF vs reference"))
    groups = comparison.groupby(["model", "recipe", "variant"], sort=False)
    for i, ((model, recipe, variant), group) in enumerate(groups):
        color = PALETTE[i % len(PALETTE)]
        label = _variant_label(str(model), str(recipe), str(variant))
        for col, (value, scale) in enumerate((("lpr", 100.0), ("chrf", 1.0)), start=1):
            fig.add_trace(
                go.Bar(
                    x=group["lang"],
                    y=scale * group[value],
                    name=label,
                    marker_color=color,
                    legendgroup=label,
                    showlegend=col == 1,
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": scale * (group[f"{value}_high"] - group[value]),
                        "arrayminus": scale * (group[value] - group[f"{value}_low"]),
                    },
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        barmode="group",
        template="simple_white",
        width=1100,
        height=480,
        legend={"title": "model"},
        title=title or "Answers to held-out instructions: language (LPR) and chrF per recipe (95% CI)",
    )
    fig.update_yaxes(title_text="LPR (%)", range=[0, 105], col=1)
    fig.update_yaxes(title_text="chrF", col=2)
    fig.update_xaxes(title_text="target language")
    return fig


def win_loss_figure(pairs: pd.DataFrame, reference: str, *, title: str | None = None) -> go.Figure:
    """Table 1 as bars: for each language and baseline, the share of instructions the
    ``reference`` model (label or recipe) wins, ties and loses; the judge is named in the title."""
    data = pairs[(pairs["model_a"] == reference) | (pairs["recipe_a"] == reference)]
    labels = [f"{lang}: {a} vs. {b}" for lang, a, b in zip(data["lang"], data["model_a"], data["model_b"])]
    fig = go.Figure()
    for value, color in (("win", "#2ca02c"), ("tie", "#c7c7c7"), ("loss", "#d62728")):
        fig.add_trace(
            go.Bar(
                y=labels,
                x=data[value],
                name=f"{value} %",
                orientation="h",
                marker_color=color,
                text=[f"{v:.0f}" for v in data[value]],
                textposition="inside",
            )
        )
    judge, margin = data["judge"].iloc[0], data["tie_margin"].iloc[0]
    fig.update_layout(
        barmode="stack",
        template="simple_white",
        width=1000,
        height=max(400, 28 * len(labels)),
        title=title or f"Pairwise win/loss (judge: {judge}; tie if |Δ| ≤ {margin:g})",
        xaxis_title="% of held-out instructions",
        yaxis={"autorange": "reversed"},
    )
    return fig


def cosine_by_model_figure(
    summary: pd.DataFrame, lang: str, *, pivot: str = "en", title: str | None = None
) -> go.Figure:
    """Gradient cosine between ``lang`` and ``pivot`` batches per layer, one curve per model,
    95% bands over batch pairs (a summary from :func:`analyses.stats.interference.summarize` with a
    ``model`` column)."""
    data = summary[(summary["lang_a"] == pivot) & (summary["lang_b"] == lang) & (summary["module"] == "all")]
    data = data[data["layer"].notna()]
    fig = go.Figure()
    for i, (model, group) in enumerate(data.groupby("model", sort=False)):
        add_curve(fig, group, str(model), PALETTE[i % len(PALETTE)])
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    fig.update_traces(mode="lines", selector={"fill": "toself"})  # bands: no markers on their outline
    n = int(data["n"].max()) if len(data) else 0
    fig.update_layout(
        title=title
        or f"Interference {lang} vs {pivot}: gradient cosine per layer per recipe ({n} batch pairs, 95% CI)",
        xaxis_title="layer (0-based block)",
        yaxis_title=f"cosine(∇L_{pivot}, ∇L_{lang})",
        template="simple_white",
        width=900,
        height=500,
        legend={"title": "model"},
    )
    return fig


def lambda_by_model_figure(lambdas: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """PROM's rule per model and language: mean P(en) − mean P(target) at layer n with its
    bootstrap 95% interval; above 0 the model pivots through English (lambda kept)."""
    fig = go.Figure()
    for i, (model, group) in enumerate(lambdas.groupby("model", sort=False)):
        diff = group["mean_p_en"] - group["mean_p_target"]
        fig.add_trace(
            go.Scatter(
                x=group["lang"],
                y=diff,
                mode="markers",
                name=model,
                marker={
                    "size": 10,
                    "color": PALETTE[i % len(PALETTE)],
                    "symbol": ["circle" if p else "x" for p in group["pivot"]],
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": group["diff_ci_high"] - diff,
                    "arrayminus": diff - group["diff_ci_low"],
                },
            )
        )
    fig.add_hline(y=0, line_dash="dash", line_color="grey")
    layer = int(lambdas["layer"].iloc[0])
    fig.update_layout(
        scattermode="group",
        template="simple_white",
        width=900,
        height=480,
        legend={"title": "model"},
        title=title or f"PROM rule at layer {layer} per recipe (circle: pivot, lambda > 0; x: lambda = 0; 95% CI)",
        xaxis_title="target language",
        yaxis_title="mean P(en) − mean P(target)",
    )
    return fig


def recipe_figures(
    comparison: pd.DataFrame,
    pairs: pd.DataFrame,
    *,
    reference: str | None = "plug",
    logs: pd.DataFrame | None = None,
    inside: ModelInternals | None = None,
) -> dict[str, go.Figure]:
    """The figures of a recipe comparison from its tables: scores, win/loss against ``reference``,
    training loss, and inside each model the lens and interference per language and the lambdas."""
    figures = {"scores": scores_figure(comparison)}
    if reference is not None:
        figures["win_loss"] = win_loss_figure(pairs, reference)
    if logs is not None:
        figures["training_loss"] = loss_figure(logs, title="Training loss per recipe (driver log)")
    if inside is not None:
        for lang in inside.curves["lang"].unique():
            lens = pivot_probability_figure(
                inside.curves,
                lang=lang,
                title=f"Logit lens per recipe, target {lang}: P(en) solid, P({lang}) dashed (95% CI)",
            )
            figures[f"lens_{lang}"] = lens.update_traces(mode="lines", selector={"fill": "toself"})
            figures[f"interference_{lang}"] = cosine_by_model_figure(inside.interference, lang)
        figures["lambda"] = lambda_by_model_figure(inside.lambdas)
    return figures
