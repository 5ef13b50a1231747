"""Figures of the latent-language lens (Wendler et al. 2024 Fig. 2 layout) and of
PROM's lambda decision per language (PROM Fig. 1/4)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyses.figures.style import add_band
from analyses.stats.prom_lambda import protocol, verdict

LATENT_COLOR, TARGET_COLOR = "#ff7f0e", "#1f77b4"  # tab:orange, tab:blue as in the original


def _band(fig: go.Figure, curve: pd.DataFrame, name: str, color: str, row: int) -> None:
    add_band(fig, curve["layer"], curve["ci_low"], curve["ci_high"], color, row=row, col=1)
    fig.add_trace(go.Scatter(x=curve["layer"], y=curve["mean"], name=name, line={"color": color}), row=row, col=1)


def lens_figure(curves: pd.DataFrame, lang: str, *, title: str | None = None) -> go.Figure:
    """Mean entropy strip over layers, then mean P(latent) and P(target) with 95% bands."""
    data = curves[curves["lang"] == lang]
    latent = next(q for q in data["quantity"].unique() if q.startswith("p_") and q != "p_target")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.1, 0.9], vertical_spacing=0.03)
    entropy = data[data["quantity"] == "entropy_bits"].sort_values("layer")
    fig.add_trace(
        go.Heatmap(
            x=entropy["layer"],
            y=["entropy"],
            z=[entropy["mean"]],
            colorscale="Plasma",
            zmin=0,
            zmax=14,
            colorbar={"title": "entropy (bits)", "len": 0.3, "y": 0.95},
        ),
        row=1,
        col=1,
    )
    _band(fig, data[data["quantity"] == latent].sort_values("layer"), latent.removeprefix("p_"), LATENT_COLOR, 2)
    _band(fig, data[data["quantity"] == "p_target"].sort_values("layer"), lang, TARGET_COLOR, 2)
    n = int(data["n"].max())
    fig.update_layout(
        title=title or f"Logit lens, target {lang} (n = {n}, 95% CI)",
        legend={"x": 0.01, "y": 0.85},
        template="simple_white",
        width=800,
        height=520,
    )
    top = float(data[data["quantity"] != "entropy_bits"]["ci_high"].max())
    # the paper's [0, 1] axis, zoomed in where a small model never gets near it
    fig.update_yaxes(range=[0, 1 if top > 0.3 else max(0.01, 1.15 * top)], title_text="probability", row=2, col=1)
    fig.update_xaxes(title_text="layer", row=2, col=1)
    return fig


def latent_label(lambdas: pd.DataFrame) -> str:
    """The latent language(s) of a lambda table, for axis titles."""
    return ", ".join(sorted(set(lambdas["latent"]))) if "latent" in lambdas else "en"


def lambda_figure(table: pd.DataFrame, *, title: str | None = None, model: str = "") -> go.Figure:
    """Per language at PROM's layer n: mean P(latent) - mean P(target) with its bootstrap 95% CI
    (the latent language is English by default); above 0 the model pivots through it and PROM
    keeps lambda. Grey: undecided, the lens is empty at layer n (both means below the floor). The
    title names task, shots and source."""
    data = table.sort_values("mean_p_latent", ascending=False)
    colors = ["#7f7f7f" if p is None or pd.isna(p) else ("#2ca02c" if p else "#d62728") for p in data["pivot"]]
    diff = data["mean_p_latent"] - data["mean_p_target"]
    difference = f"mean P({latent_label(data)}) - mean P(target)"
    fig = go.Figure(
        go.Scatter(
            x=data["lang"],
            y=diff,
            mode="markers",
            marker={"color": colors, "size": 10},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": data["diff_ci_high"] - diff,
                "arrayminus": diff - data["diff_ci_low"],
                "color": "grey",
            },
            text=[verdict(row) for _, row in data.iterrows()],
            name=difference,
        )
    )
    fig.add_hline(y=0, line_dash="dash", line_color="grey")
    layer = int(data["layer"].iloc[0])
    protocols = sorted({protocol(row).split(", source")[0] for _, row in data.iterrows()})
    sources = sorted(set(data["src_lang"]))
    source = "target language" if list(data["task"].unique()) == ["cloze"] else ", ".join(sources)
    fig.update_layout(
        title=title
        or (
            f"{model + ': ' if model else ''}PROM rule at layer {layer} ({'; '.join(protocols)}, source {source}): "
            "pivot (green, lambda > 0), no pivot (red, lambda = 0), lens empty (grey, undecided); 95% bootstrap CI"
        ),
        xaxis_title="target language",
        yaxis_title=difference,
        template="simple_white",
        width=900,
        height=480,
    )
    return fig
