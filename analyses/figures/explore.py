"""The lens explorer's figure, a function of the explorer's table
(:data:`analyses.pipelines.explore.EXPLORE_COLUMNS`): a heatmap of layers x positions, each cell
labelled with the top-1 token and hovering its top-k, coloured by probability, entropy or the
language of the top token; beside it P(latent) and P(target) per layer at the last position."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analyses.figures.style import PALETTE

COLORS = ("prob", "entropy", "lang")
WINDOW = 40  # positions drawn at once; a slider (or dragging) scrolls through longer prompts
DIV_ID = "pivotlens-explorer"  # fixed, so a page written twice is the same file
_LANGUAGE_COLORS = list(qualitative.Dark24)
_SCALES = {"prob": ("Blues", "top-1 probability", 0.0, 1.0), "entropy": ("Viridis_r", "entropy (bits)", 0.0, None)}


def _label(token: str, width: int = 8) -> str:
    """A token as a cell label: visible whitespace, cut to ``width`` characters, HTML-escaped
    (plotly reads tags in text)."""
    shown = token.replace(" ", "·").replace("\n", "⏎").replace("\t", "⇥")
    return html.escape(shown if len(shown) <= width else shown[: width - 1] + "…", quote=False)


def _hovers(table: pd.DataFrame, latent: str) -> list[str]:
    """Per row: the cell's place, its top-k tokens with probabilities, entropy, language and word probabilities."""
    words = [(f"p_{latent}", f"P({latent})"), ("p_target", "P(target)")]
    out = []
    for layer, position, token, tokens, probs, entropy, lang, *word_probs in zip(
        table["layer"],
        table["position"],
        table["token"],
        table["top_tokens"],
        table["top_probs"],
        table["entropy_bits"],
        table["token_lang"],
        *(table[column] for column, _ in words),
    ):
        lines = [f"<b>layer {layer}, position {position}</b> (after {_label(token, 20)})"]
        lines += [f"{_label(tok, 20)}  {prob:.3f}" for tok, prob in zip(tokens, probs)]
        lines.append(f"entropy {entropy:.2f} bits; language {lang}")
        lines += [f"{name} = {value:.3g}" for (_, name), value in zip(words, word_probs) if not np.isnan(value)]
        out.append("<br>".join(lines))
    return out


def _grid(table: pd.DataFrame, values: pd.Series | list) -> np.ndarray:
    """Per-row values as a ``[layer, position]`` array (the table is sorted by layer, position)."""
    return np.asarray(values, dtype=object).reshape(table["layer"].nunique(), table["position"].nunique())


def _language_codes(table: pd.DataFrame) -> dict[str, str]:
    """A colour per language label, in order of first appearance from the output layer down."""
    order = table.sort_values(["layer", "position"], ascending=[False, True])["token_lang"].unique()
    return {
        label: ("#d9d9d9" if label == "other" else _LANGUAGE_COLORS[i % len(_LANGUAGE_COLORS)])
        for i, label in enumerate(order)
    }


def _heatmap(table: pd.DataFrame, color: str, latent: str) -> tuple[go.Heatmap, list[go.Scatter]]:
    layers = sorted(table["layer"].unique())
    positions = sorted(table["position"].unique())
    common = {
        "x": positions,
        "y": layers,
        "text": _grid(table, [_label(t[0]) for t in table["top_tokens"]]),
        "texttemplate": "%{text}",
        "textfont": {"size": 10},
        "customdata": _grid(table, _hovers(table, latent)),
        "hovertemplate": "%{customdata}<extra></extra>",
        "xgap": 1,
        "ygap": 1,
    }
    if color == "lang":
        colors = _language_codes(table)
        index = {label: i for i, label in enumerate(colors)}
        n = max(len(colors), 2)
        scale = [[bound, c] for i, c in enumerate(colors.values()) for bound in (i / n, (i + 1) / n)]
        scale = scale if len(colors) > 1 else [[0, scale[0][1]], [1, scale[0][1]]]
        z = _grid(table, [index[label] for label in table["token_lang"]]).astype(float)
        heatmap = go.Heatmap(z=z, zmin=0, zmax=n, colorscale=scale, showscale=False, **common)
        legend = [
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=label,
                showlegend=True,
                marker={"size": 12, "symbol": "square", "color": c},
            )
            for label, c in colors.items()
        ]
        return heatmap, legend
    scale, title, zmin, zmax = _SCALES[color]
    values = [p[0] for p in table["top_probs"]] if color == "prob" else table["entropy_bits"]
    z = _grid(table, values).astype(float)
    heatmap = go.Heatmap(
        z=z,
        zmin=zmin,
        zmax=zmax if zmax is not None else float(np.nanmax(z)),
        colorscale=scale,
        colorbar={"title": {"text": title}, "x": 1.02},
        **common,
    )
    return heatmap, []


def _final_position(table: pd.DataFrame, latent: str, latent_word: str | None, target: str) -> list[go.Scatter]:
    last = table[table["position"] == table["position"].max()].sort_values("layer")
    curves = [("p_target", f"P({target})", PALETTE[1])]
    if latent_word:
        curves.append((f"p_{latent}", f"P({latent_word}) [{latent}]", PALETTE[0]))
    return [
        go.Scatter(
            x=last[column], y=last["layer"], name=name, mode="lines+markers", line={"color": c}, marker={"size": 5}
        )
        for column, name, c in curves
    ]


def _window(positions: list[int], start: int, window: int) -> list[float]:
    return [positions[start] - 0.5, positions[start + window - 1] + 0.5]


def _scroll(positions: list[int], window: int) -> dict:
    """A slider that moves the window of positions (half a window per step), opened on the last."""
    starts = sorted({*range(0, len(positions) - window, max(1, window // 2)), len(positions) - window})
    steps = [
        {
            "method": "relayout",
            "label": str(positions[start]),
            "args": [{"xaxis.range": _window(positions, start, window)}],
        }
        for start in starts
    ]
    return {
        "active": len(steps) - 1,
        "steps": steps,
        "currentvalue": {"prefix": "first position shown: "},
        "pad": {"t": 70},
        "len": 1.0,
    }


def explorer_figure(
    table: pd.DataFrame,
    *,
    color: str = "prob",
    latent: str = "en",
    target: str | None = None,
    latent_word: str | None = None,
    title: str | None = None,
    window: int | None = None,
) -> go.Figure:
    """Layers (up) x positions (across) of the explorer's table. More than ``window`` positions
    (default :data:`WINDOW`) open on the last ones, with a slider to scroll (or drag the grid)."""
    if color not in COLORS:
        raise ValueError(f"color must be one of {', '.join(COLORS)}, not {color!r}")
    table = table.sort_values(["layer", "position"], ignore_index=True)
    window = window or WINDOW
    heatmap, legend = _heatmap(table, color, latent)
    side = _final_position(table, latent, latent_word, target) if target else []
    fig = make_subplots(
        rows=1,
        cols=2 if side else 1,
        shared_yaxes=True,
        horizontal_spacing=0.02,
        column_widths=[0.8, 0.2] if side else None,
    )
    fig.add_trace(heatmap, row=1, col=1)
    for trace in legend:
        fig.add_trace(trace, row=1, col=1)
    for trace in side:
        fig.add_trace(trace, row=1, col=2)
    positions = sorted(table["position"].unique())
    tokens = table.drop_duplicates("position").set_index("position")["token"]
    shown = min(window, len(positions))
    n_layers = table["layer"].nunique()
    fig.update_xaxes(
        tickmode="array",
        tickvals=positions,
        ticktext=[_label(tokens[p]) for p in positions],
        tickangle=-60,
        title_text="position (input token)",
        row=1,
        col=1,
    )
    if len(positions) > window:
        fig.update_xaxes(range=_window(positions, len(positions) - window, window), row=1, col=1)
        fig.update_layout(sliders=[_scroll(positions, window)])
    fig.update_yaxes(
        title_text="layer",
        fixedrange=True,
        dtick=1 if n_layers <= 20 else 2,
        range=[-0.5, n_layers - 0.5],
        row=1,
        col=1,
    )
    if side:
        fig.update_xaxes(title_text=f"probability at position {positions[-1]}", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        title=title,
        template="plotly_white",
        dragmode="pan",
        height=max(360, 22 * n_layers + 200) + (90 if len(positions) > window else 0),
        width=min(1600, 70 * shown + (300 if side else 0) + 240),
        # the languages in a column on the right; otherwise the colour bar is there and the two curves go on top
        legend={"title": {"text": "top-1 language"}, "x": 1.01, "y": 1.0}
        if color == "lang"
        else {"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 60, "r": 30, "t": 60, "b": 40},
    )
    return fig


def explorer_page(fig: go.Figure, *, title: str, plotlyjs: str | None = None) -> str:
    """A standalone HTML page with a fixed div id: plotly.js inlined (nothing from a CDN), or
    loaded from the file ``plotlyjs`` (a path relative to the page, e.g. ``../plotly.min.js``)."""
    page = fig.to_html(full_html=True, include_plotlyjs=plotlyjs or True, div_id=DIV_ID, config={"scrollZoom": False})
    return page.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1)
