"""Figures of language confusion (plotly), each a function of a table from
:mod:`analyses.stats.confusion_points` or :mod:`analyses.stats.confusion_metrics`."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyses.figures.style import PALETTE, add_band
from analyses.stats.confusion_metrics import ALL

METRIC_NAMES = {"lpr": "LPR", "wpr": "WPR", "lcpr": "LCPR"}
STAT_NAMES = {"entropy_bits": "entropy (bits)", "nucleus_size": "nucleus size at p = 0.75"}
POSITION_NAMES = {"at_cp": "at confusion point", "not_at_cp": "elsewhere"}


def _error_y(rows: pd.DataFrame, value: str, low: str, high: str) -> dict:
    return {
        "type": "data",
        "symmetric": False,
        "array": (rows[high] - rows[value]).tolist(),
        "arrayminus": (rows[value] - rows[low]).tolist(),
        "thickness": 1.5,
        "width": 4,
    }


def cp_distribution_figure(steps: pd.DataFrame, stats: pd.DataFrame, statistic: str = "entropy_bits") -> go.Figure:
    """Distribution of a per-step statistic at confusion points vs elsewhere (steps of the
    completions that have a CP), one panel per task, with the mean and its 95% cluster
    bootstrap interval (from :func:`analyses.stats.confusion_points.cp_statistics`) as a black marker."""
    model = steps["model"].iloc[0]
    tasks = sorted(steps["task"].unique())
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=tasks, shared_yaxes=True, horizontal_spacing=0.05)
    inside = steps[steps["in_completion"] & steps["has_cp"]]
    for col, task in enumerate(tasks, start=1):
        for i, position in enumerate(("not_at_cp", "at_cp")):
            rows = inside[(inside["task"] == task) & (inside["is_confusion_point"] == (position == "at_cp"))]
            name = POSITION_NAMES[position]
            fig.add_trace(
                go.Box(
                    y=rows[statistic],
                    name=name,
                    marker_color=PALETTE[i],
                    boxpoints="outliers",
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            summary = stats[
                (stats["task"] == task)
                & (stats["group"] == "has_cp")
                & (stats["position"] == position)
                & (stats["statistic"] == statistic)
            ]
            if len(summary) and summary["n_steps"].iloc[0] > 0:
                fig.add_trace(
                    go.Scatter(
                        x=[name],
                        y=summary["mean"],
                        mode="markers",
                        marker={"color": "black", "symbol": "diamond", "size": 9},
                        error_y=_error_y(summary, "mean", "ci_low", "ci_high"),
                        name="mean, 95% CI",
                        legendgroup="mean",
                        showlegend=col == 1 and i == 0,
                    ),
                    row=1,
                    col=col,
                )
    n_cp = int(inside["is_confusion_point"].sum())
    fig.update_layout(
        title=f"{STAT_NAMES[statistic].capitalize()} of the next-token distribution at confusion points "
        f"vs elsewhere: {model} ({n_cp} CPs)",
        template="plotly_white",
        width=420 * len(tasks) + 200,
        height=480,
        margin={"t": 90},
    )
    fig.update_yaxes(title_text=STAT_NAMES[statistic], col=1)
    if statistic == "nucleus_size":
        fig.update_yaxes(type="log")
    return fig


def pass_rate_figure(metrics: pd.DataFrame) -> go.Figure:
    """LPR, WPR and LCPR per language (mean over sources, the benchmark's ``(all, lang)``
    rows, and the overall average), one panel per task, 95% bootstrap intervals as error bars."""
    model = metrics["model"].iloc[0]
    tasks = sorted(metrics["task"].unique())
    fig = make_subplots(rows=len(tasks), cols=1, subplot_titles=tasks, shared_xaxes=False, vertical_spacing=0.12)
    for row, task in enumerate(tasks, start=1):
        rows = metrics[(metrics["task"] == task) & (metrics["source"] == ALL)].copy()
        rows["label"] = rows["language"].where(rows["language"] != ALL, "avg")
        for i, (metric, name) in enumerate(METRIC_NAMES.items()):
            shown = rows[rows[metric].notna()]
            fig.add_trace(
                go.Bar(
                    x=shown["label"],
                    y=shown[metric],
                    text=shown[metric].map("{:.2f}".format),  # a rate of 0 is a bar of no height: say it
                    textposition="outside",
                    name=name,
                    marker_color=PALETTE[i],
                    error_y=_error_y(shown, metric, f"{metric}_low", f"{metric}_high")
                    if f"{metric}_low" in shown
                    else None,
                    legendgroup=name,
                    showlegend=row == 1,
                ),
                row=row,
                col=1,
            )
    fig.update_layout(
        title=f"Language confusion pass rates per language: {model}",
        barmode="group",
        template="plotly_white",
        width=1000,
        height=380 * len(tasks) + 80,
        margin={"t": 90},
    )
    fig.update_yaxes(title_text="pass rate", range=[0, 1.15])
    fig.update_xaxes(title_text="language (avg = benchmark average over languages)", row=len(tasks), col=1)
    return fig


def lens_at_cp_figure(summary: pd.DataFrame) -> go.Figure:
    """Logit-lens probability of the confusion-point token per layer (mean over CPs, 95% band),
    one line per task: at which depth does the model start wanting the English token?"""
    model = summary["model"].iloc[0]
    fig = go.Figure()
    for i, (task, rows) in enumerate(summary.groupby("task", sort=True)):
        rows = rows.sort_values("layer")
        color = PALETTE[i % len(PALETTE)]
        x = rows["layer"].tolist()
        add_band(fig, x, rows["ci_low"], rows["ci_high"], color)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows["p_cp_token"],
                mode="lines+markers",
                line={"color": color},
                name=f"{task} ({int(rows['n_cp'].iloc[0])} CPs)",
            )
        )
    fig.update_layout(
        title=f"Logit lens at confusion points: probability of the CP token per layer, {model}",
        xaxis_title="layer (0-based block; last = model output)",
        yaxis_title="p(CP token)",
        template="plotly_white",
        width=900,
        height=520,
    )
    return fig


def sweep_figure(sweep: pd.DataFrame, metrics: tuple[str, ...] = ("lpr", "wpr")) -> go.Figure:
    """LPR and WPR (benchmark averages, 95% bootstrap intervals) against temperature, top-p and
    few-shot count, one column per factor and one row per task (paper Tables 8 and 11)."""
    model = sweep["model"].iloc[0]
    overall = sweep[(sweep["source"] == ALL) & (sweep["language"] == ALL)]
    factors = [f for f in ("temperature", "top_p", "shots") if f in set(overall["factor"])]
    tasks = sorted(overall["task"].unique())
    titles = [f"{task}: {factor}" for task in tasks for factor in factors]
    fig = make_subplots(
        rows=len(tasks),
        cols=len(factors),
        subplot_titles=titles,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        vertical_spacing=0.22,
    )
    for row, task in enumerate(tasks, start=1):
        for col, factor in enumerate(factors, start=1):
            rows = overall[(overall["task"] == task) & (overall["factor"] == factor)].sort_values("value")
            for i, metric in enumerate(metrics):
                shown = rows[rows[metric].notna()]
                name = METRIC_NAMES[metric]
                fig.add_trace(
                    go.Scatter(
                        x=shown["value"],
                        y=shown[metric],
                        mode="lines+markers",
                        name=name,
                        line={"color": PALETTE[i]},
                        legendgroup=name,
                        showlegend=row == 1 and col == 1,
                        error_y=_error_y(shown, metric, f"{metric}_low", f"{metric}_high"),
                    ),
                    row=row,
                    col=col,
                )
            fig.update_xaxes(
                title_text={"temperature": "temperature T", "top_p": "top-p", "shots": "few-shot examples"}[factor],
                row=row,
                col=col,
            )
    fig.update_layout(
        title=f"Mitigation sweep, {model}: pass rates vs decoding settings"
        "<br><sup>one factor at a time around T = 0.3, p = 0.75, 0-shot; 95% bootstrap intervals</sup>",
        template="plotly_white",
        width=380 * len(factors) + 160,
        height=380 * len(tasks) + 120,
        margin={"t": 110},
    )
    fig.update_yaxes(title_text="pass rate", range=[0, 1.05], col=1)
    return fig
