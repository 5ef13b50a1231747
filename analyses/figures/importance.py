"""Figures of Taylor importance and linguistic regions (Zhang et al. 2024): where importance
sits (layer x module, per language and for the core region), the region's concentration in
rows, columns and hidden dimensions (Fig. 2-3), and perplexity under removal, structured
removal, perturbation and freezing (Tables 1-5, Fig. 6). Each figure is a function of a table
from :mod:`analyses.pipelines.regions` / :mod:`probes.importance`; nothing here runs a model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analyses.stats.intervals import normal_interval

PALETTE = qualitative.Plotly
MODULE_ORDER = (
    "input_layernorm",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.q_norm",
    "self_attn.k_norm",
    "self_attn.o_proj",
    "post_attention_layernorm",
    "pre_feedforward_layernorm",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
    "post_feedforward_layernorm",
)
REGION_COLORS = {"none": "#7f7f7f", "core-top": "#d62728", "core-bottom": "#1f77b4", "core-random": "#2ca02c"}


def _modules(names) -> list[str]:
    known = [m for m in MODULE_ORDER if m in set(names)]
    return known + sorted(set(names) - set(known))


def _grid(n: int, titles: list[str], cols: int = 4) -> go.Figure:
    rows = math.ceil(n / cols)
    return make_subplots(
        rows=rows,
        cols=min(cols, n),
        subplot_titles=titles,
        horizontal_spacing=0.03,
        vertical_spacing=0.12 if rows > 1 else 0.1,
        shared_yaxes=True,
    )


def _layer_module_matrix(table: pd.DataFrame, value: str, modules: list[str], layers: list[int]) -> np.ndarray:
    pivot = table.pivot_table(index="module", columns="layer", values=value, aggfunc="sum")
    return pivot.reindex(index=modules, columns=layers).to_numpy()


def importance_map_figure(
    summary: pd.DataFrame, core_global: pd.DataFrame | None = None, *, model: str = ""
) -> go.Figure:
    """Heatmaps (module x layer) of where importance sits, one panel per language: log10 of a
    tensor's mean importance per entry relative to the language's mean over all entries
    (0 = average; +1 = ten times the average). The last panel (with ``core_global``, a
    ``region_table`` of the global top-k% of the core score) shows the core region's
    enrichment: log10(share of the tensor selected / k); it needs ``layer`` and ``module`` columns."""
    inside = summary[summary["layer"] >= 0]
    langs = list(dict.fromkeys(inside["lang"]))
    layers = sorted(inside["layer"].unique())
    modules = _modules(inside["module"].unique())
    titles = langs + (["core region (global top-k)"] if core_global is not None else [])
    fig = _grid(len(titles), titles)
    cols = min(4, len(titles))
    for i, lang in enumerate(langs):
        rows = inside[inside["lang"] == lang]
        overall = rows["importance_sum"].sum() / rows["numel"].sum()
        z = np.log10(np.clip(_layer_module_matrix(rows, "importance_mean", modules, layers) / overall, 1e-3, None))
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=layers,
                y=modules,
                coloraxis="coloraxis",
                hovertemplate="layer %{x}<br>%{y}<br>log10 relative importance %{z:.2f}<extra>" + lang + "</extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    if core_global is not None:
        table = core_global.copy()
        fraction = table["selected"].sum() / table["numel"].sum()
        table["enrichment"] = table["fraction_selected"] / fraction
        z = np.log10(
            np.clip(_layer_module_matrix(table[table["layer"] >= 0], "enrichment", modules, layers), 1e-3, None)
        )
        i = len(langs)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=layers,
                y=modules,
                coloraxis="coloraxis",
                hovertemplate="layer %{x}<br>%{y}<br>log10 enrichment %{z:.2f}<extra>core</extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    n_rows = math.ceil(len(titles) / cols)
    fig.update_layout(
        title=f"Where Taylor importance |θ·∇L| sits{': ' + model if model else ''}<br><sup>log10 of the mean per entry "
        "relative to the model-wide mean; core: log10 enrichment of the global top-k</sup>",
        coloraxis={"colorscale": "RdBu_r", "cmid": 0, "colorbar": {"title": "log10 ratio"}},
        template="plotly_white",
        width=330 * cols + 220,
        height=300 * n_rows + 120,
        margin={"t": 90},
    )
    fig.update_xaxes(title_text="layer", row=n_rows)
    return fig


def mask_figure(density: pd.DataFrame, *, region: str = "core-top", model: str = "") -> go.Figure:
    """The region as images (Fig. 2): share of selected entries per block of each matrix
    (rows x columns); vertical or horizontal stripes are its concentration in dimensions."""
    params = list(dict.fromkeys(density["param"]))
    titles = [
        f"layer {int(density[density['param'] == p]['layer'].iloc[0])} {density[density['param'] == p]['module'].iloc[0]}"
        for p in params
    ]
    cols = min(3, len(params))
    fig = make_subplots(
        rows=math.ceil(len(params) / cols),
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.06,
        vertical_spacing=0.12,
    )
    for i, param in enumerate(params):
        cells = density[density["param"] == param]
        image = cells.pivot(index="row_start", columns="col_start", values="density")
        fig.add_trace(
            go.Heatmap(
                z=image.to_numpy(),
                x=image.columns,
                y=image.index,
                coloraxis="coloraxis",
                hovertemplate="rows from %{y}<br>columns from %{x}<br>share selected %{z:.3f}<extra></extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text="row (output dim)", col=1)
    fig.update_xaxes(title_text="column (input dim)")
    fig.update_layout(
        title=f"{region} region inside matrices{': ' + model if model else ''}"
        "<br><sup>share of entries selected per block</sup>",
        coloraxis={"colorscale": "Greys", "colorbar": {"title": "share"}},
        template="plotly_white",
        width=380 * cols + 120,
        height=360 * math.ceil(len(params) / cols) + 100,
    )
    return fig


def concentration_figure(concentration: pd.DataFrame, *, model: str = "") -> go.Figure:
    """Share of the region's entries in the 5 rows (columns) of each matrix that hold most of
    them, divided by the uniform share 5/n, per layer: the core region (solid) against its
    random control of the same size (dashed, the null: about 1 plus sampling noise)."""
    modules = _modules(concentration["module"].unique())
    fig = make_subplots(rows=1, cols=2, subplot_titles=["rows", "columns"], shared_yaxes=True, horizontal_spacing=0.05)
    for col, axis in enumerate(("row", "col"), start=1):
        for i, module in enumerate(modules):
            for region, dash in (("core-top", "solid"), ("core-random", "dash")):
                rows = concentration[
                    (concentration["axis"] == axis)
                    & (concentration["module"] == module)
                    & (concentration["region"] == region)
                ].sort_values("layer")
                if rows.empty:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=rows["layer"],
                        y=rows["top_share"] / rows["uniform_share"],
                        mode="lines",
                        name=f"{module} ({region})",
                        legendgroup=module,
                        showlegend=col == 1,
                        line={"color": PALETTE[i % len(PALETTE)], "dash": dash},
                    ),
                    row=1,
                    col=col,
                )
    fig.add_hline(y=1, line={"dash": "dot", "color": "grey"})
    fig.update_yaxes(type="log", title_text="top-5 share / uniform share", col=1)
    fig.update_xaxes(title_text="layer")
    fig.update_layout(
        title=f"Dimensional concentration of the core region{': ' + model if model else ''}"
        "<br><sup>solid: core top; dashed: random control of the same size</sup>",
        template="plotly_white",
        width=1200,
        height=520,
    )
    return fig


def dimension_figure(dimensions: pd.DataFrame, *, model: str = "", label_top: int = 5) -> go.Figure:
    """Share of the region's entries on each hidden dimension, summed over all layers (Fig. 3's
    dimensions), for the core region and its random control; the grey band is the 95% range of
    a dimension's share under uniform placement (binomial approximation)."""
    fig = go.Figure()
    d_model = int(dimensions["dim"].max()) + 1
    for region, color in (("core-random", "#2ca02c"), ("core-top", "#d62728")):
        rows = dimensions[dimensions["region"] == region].sort_values("dim")
        if rows.empty:
            continue
        fig.add_trace(
            go.Scatter(x=rows["dim"], y=rows["share"], mode="lines", name=region, line={"color": color, "width": 1})
        )
        if region == "core-top":
            total = rows["count"].sum()
            p = 1 / d_model
            low, high = normal_interval(p, math.sqrt(p * (1 - p)), total, z=1.96) if total else (p, p)
            fig.add_hrect(y0=max(low, 0), y1=high, fillcolor="grey", opacity=0.25, line_width=0)
            top = rows.nlargest(label_top, "count")
            fig.add_trace(
                go.Scatter(
                    x=top["dim"],
                    y=top["share"],
                    mode="markers+text",
                    text=[str(d) for d in top["dim"]],
                    textposition="top center",
                    marker={"color": color, "size": 7},
                    name="top dimensions",
                )
            )
    fig.update_layout(
        title=f"Core region per hidden dimension, all layers{': ' + model if model else ''}"
        "<br><sup>grey: 95% range of a dimension's share under uniform placement</sup>",
        xaxis_title="hidden dimension",
        yaxis_title="share of the region's entries",
        template="plotly_white",
        width=1000,
        height=450,
    )
    return fig


def removal_figure(removal: pd.DataFrame, *, model: str = "") -> go.Figure:
    """Perplexity per language with nothing, the core top, bottom or random region zeroed (Table 1)."""
    fraction = removal.loc[removal["scope"] == "core", "fraction"].max()
    fig = go.Figure()
    for region, color in REGION_COLORS.items():
        rows = removal[removal["region"] == region]
        if rows.empty:
            continue
        name = "base (nothing removed)" if region == "none" else f"{region} {fraction:.0%} removed"
        fig.add_trace(
            go.Bar(
                x=rows["lang"],
                y=rows["perplexity"],
                name=name,
                marker_color=color,
                text=[f"{v:.3g}" for v in rows["perplexity"]],
                textposition="outside",
            )
        )
    fig.update_layout(
        title=f"Perplexity with the core region removed (set to 0){': ' + model if model else ''}",
        barmode="group",
        yaxis={"type": "log", "title": "perplexity (held-out, log scale)"},
        xaxis_title="language",
        template="plotly_white",
        width=1000,
        height=480,
    )
    return fig


def _ratio(table: pd.DataFrame, removal: pd.DataFrame) -> pd.DataFrame:
    base = removal[removal["region"] == "none"].set_index("lang")["perplexity"]
    return table.assign(ratio=table["perplexity"] / table["lang"].map(base))


def monolingual_figure(removal: pd.DataFrame, *, model: str = "") -> go.Figure:
    """Perplexity ratio to the base model (log2) for each language's monolingual region removed
    (rows) on each language (columns): Table 5. Left: the region; right: a random region of the
    same size per tensor. A dark diagonal on the left only is a monolingual region."""
    data = _ratio(removal[removal["scope"] == "monolingual"], removal)
    langs = list(dict.fromkeys(removal.loc[removal["region"] == "none", "lang"]))
    removed = list(dict.fromkeys(data["removed_lang"]))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["monolingual region removed", "random region of the same size"],
        shared_yaxes=True,
        horizontal_spacing=0.05,
    )
    for col, selection in enumerate(("top", "random"), start=1):
        rows = data[data["selection"] == selection]
        z = rows.pivot_table(index="removed_lang", columns="lang", values="ratio").reindex(index=removed, columns=langs)
        log2 = np.log2(z.to_numpy())
        fig.add_trace(
            go.Heatmap(
                z=log2,
                x=langs,
                y=removed,
                coloraxis="coloraxis",
                text=np.round(z.to_numpy(), 2),
                texttemplate="%{text}",
                hovertemplate="removed %{y}, measured %{x}: x%{text}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(title_text="region removed (language)", autorange="reversed", col=1)
    fig.update_xaxes(title_text="held-out language")
    fig.update_layout(
        title=f"Monolingual regions: perplexity ratio to the base model{': ' + model if model else ''}",
        coloraxis={"colorscale": "RdBu_r", "cmid": 0, "colorbar": {"title": "log2 ratio"}},
        template="plotly_white",
        width=1150,
        height=480,
    )
    return fig


def _ratio_bars(data: pd.DataFrame, x: str, *, title: str, xaxis_title: str) -> go.Figure:
    """Bars of perplexity / base perplexity (``ratio``) per ``x``, one colour per language."""
    fig = go.Figure()
    for i, lang in enumerate(dict.fromkeys(data["lang"])):
        rows = data[data["lang"] == lang]
        fig.add_trace(go.Bar(x=rows[x], y=rows["ratio"], name=lang, marker_color=PALETTE[i % len(PALETTE)]))
    fig.add_hline(y=1, line={"dash": "dot", "color": "grey"})
    fig.update_layout(
        title=title,
        barmode="group",
        yaxis={"type": "log", "title": "perplexity / base perplexity"},
        xaxis_title=xaxis_title,
        template="plotly_white",
        width=1000,
        height=480,
    )
    return fig


def structure_figure(structure: pd.DataFrame, removal: pd.DataFrame, *, model: str = "") -> go.Figure:
    """Perplexity ratio to the base model with whole hidden dimensions removed from every matrix
    (Table 3): the n rows/columns holding most of the core region (top), a median number
    (middle) or random ones; one bar per language."""
    return _ratio_bars(
        _ratio(structure, removal),
        "region",
        xaxis_title="dimensions removed (which, n)",
        title=f"Structured removal of n hidden dimensions per matrix{': ' + model if model else ''}",
    )


def perturbation_figure(perturbation: pd.DataFrame, removal: pd.DataFrame, *, model: str = "") -> go.Figure:
    """Perplexity ratio to the base model with one hidden dimension re-initialised in every layer
    (Fig. 3): the dimensions holding most of the core region against random ones."""
    data = _ratio(perturbation, removal)
    data = data.assign(
        label=[f"dim {d} ({s}, rank {r})" for d, s, r in zip(data["dim"], data["selection"], data["dim_rank"])]
    )
    return _ratio_bars(
        data,
        "label",
        xaxis_title="hidden dimension perturbed",
        title=f"Single-dimension perturbation across all layers{': ' + model if model else ''}",
    )


def freeze_figure(freeze: pd.DataFrame, *, model: str = "") -> go.Figure:
    """Perplexity per language before further training and after it, with and without the core
    region frozen (Sec. 3.5, Fig. 6)."""
    train_lang = freeze["train_lang"].iloc[0]
    fig = go.Figure()
    for i, (stage, name) in enumerate(
        (("before", "before training"), ("free", "trained, all free"), ("frozen", "trained, core region frozen"))
    ):
        rows = freeze[freeze["stage"] == stage]
        fig.add_trace(
            go.Bar(
                x=rows["lang"],
                y=rows["perplexity"],
                name=name,
                marker_color=PALETTE[i],
                text=[f"{v:.3g}" for v in rows["perplexity"]],
                textposition="outside",
            )
        )
    fig.update_layout(
        title=f"Further training on {train_lang}{': ' + model if model else ''}"
        "<br><sup>forgetting with and without the core region frozen</sup>",
        barmode="group",
        yaxis={"type": "log", "title": "perplexity (held-out, log scale)"},
        xaxis_title="language",
        template="plotly_white",
        width=1000,
        height=480,
    )
    return fig
