"""Every table and figure of the exit analysis from one probe table: what ``pivotlens exit`` writes
and what the notebook shows, from the same call."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from analyses.figures.exit import exit_figures
from analyses.figures.io import save_figure
from analyses.stats.early_exit import (
    VARIANTS,
    accuracy_by_layer,
    classifier_table,
    features_by_layer,
    generalisation_table,
    run_strategies,
    static_exit_curve,
    strategy_table,
)
from analyses.stats.flops import DecoderShape, Uncounted
from probes.backend.store import write_parquet_atomic


@dataclass
class ExitReport:
    """Tables (name -> DataFrame) and figures (name -> plotly figure) of one model's exit analysis."""

    model: str
    shape: DecoderShape | Uncounted
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)

    def write(self, out: Path, provenance: dict[str, object] | None = None) -> list[Path]:
        """``exit_<name>.parquet`` for per-item tables, ``exit_<name>.csv`` for summaries, then the
        figures drawn from them under ``figures/`` (:func:`write_figures`)."""
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in self.tables.items():
            if name in ("items", "exits"):
                path = out / f"exit_{name}.parquet"
                write_parquet_atomic(table, path, provenance or {})
            else:
                path = out / f"exit_{name}.csv"
                table.to_csv(path, index=False, float_format="%.6g")
            written.append(path)
        shape_path = out / "exit_flops_shape.json"
        shape_path.write_text(json.dumps(asdict(self.shape), indent=2))
        written.append(shape_path)
        return written + write_figures(out)


def write_figures(out: Path) -> list[Path]:
    """The figures of the exit analysis in ``out`` under ``out/figures``, drawn from the tables
    :meth:`ExitReport.write` wrote there (HTML linking plotly.js from its CDN, and PNG)."""
    tables = {name: pd.read_csv(out / f"exit_{name}.csv") for name in ("layers", "features", "static")}
    figures = exit_figures({**tables, "exits": pd.read_parquet(out / "exit_exits.parquet")})
    return [path for name, fig in figures.items() for path in save_figure(fig, out / "figures" / name)]


def exit_report(
    items: pd.DataFrame,
    shape: DecoderShape | Uncounted,
    model: str,
    *,
    other_items: pd.DataFrame | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> ExitReport:
    """Accuracy and features per layer, exit strategies in every generalisation setting (with
    ``other_items`` from another model: inter-model too), classifier scores, static-exit curves.
    With an :class:`Uncounted` shape the FLOPs columns are NaN and the FLOPs tables
    (``strategies``, ``generalisation``, ``static``) carry its reason in ``flops_note``."""
    own = items[items["model"] == model]
    pooled = (
        own if other_items is None else pd.concat([own, other_items[other_items["model"] != model]], ignore_index=True)
    )
    exits, decisions = run_strategies(pooled, model, shape, test_fraction=test_fraction, seed=seed)
    static = pd.concat([static_exit_curve(own, shape, variant) for variant in VARIANTS], ignore_index=True)
    layers = accuracy_by_layer(own)
    features = features_by_layer(own)
    report = ExitReport(model, shape)
    report.tables = {
        "items": own,
        "layers": layers,
        "features": features,
        "strategies": strategy_table(exits),
        "generalisation": generalisation_table(exits),
        "classifiers": classifier_table(decisions),
        "static": static,
        "exits": exits,
    }
    if isinstance(shape, Uncounted):
        for name in ("strategies", "generalisation", "static"):
            report.tables[name] = report.tables[name].assign(flops_note=shape.reason)
    report.figures = exit_figures(report.tables)
    return report
